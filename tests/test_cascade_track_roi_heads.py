"""CascadeTrackROIHeads: Cascade R-CNN heads + one track head on the final stage (the base of TFA)."""
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import vis_d2.modeling  # noqa: F401  registers the heads
from vis_d2.config import add_vis_config
from vis_d2.modeling import CascadeTrackROIHeads, EmbeddingTrackHead, OnlineVideoRCNN

SHAPES = {"p2": ShapeSpec(channels=8, stride=4)}


def _cfg():
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "CascadeTrackROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2"]
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep detections
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.CLS_AGNOSTIC_BBOX_REG = True  # what detectron2's cascade supports
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
    cfg.MODEL.TRACK_HEAD.FC_DIM = 12
    cfg.TEST.DETECTIONS_PER_IMAGE = 4
    return cfg


def _gt(boxes, ids, size=(64, 64)):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_classes = torch.zeros(len(boxes), dtype=torch.long)
    masks = torch.zeros(len(boxes), *size, dtype=torch.bool)
    for m, (x0, y0, x1, y1) in zip(masks, boxes):
        m[int(y0) : int(y1), int(x0) : int(x1)] = True
    inst.gt_masks = BitMasks(masks)
    inst.gt_ids = torch.tensor(ids)
    return inst


def _no_proposals(size=(64, 64)):
    # With no proposals, the ground-truth boxes (added as proposals) are the only RoIs: every positive
    # RoI of the first stage is a key-frame object itself.
    p = Instances(size)
    p.proposal_boxes = Boxes(torch.zeros(0, 4))
    p.objectness_logits = torch.zeros(0)
    return p


KEY_GT = dict(boxes=[[4, 4, 24, 24], [36, 30, 60, 58]], ids=[10, 20])
REF_GT = dict(boxes=[[34, 28, 58, 60], [2, 40, 20, 62], [40, 2, 60, 20]], ids=[30, 20, 40])


def test_training_step_gives_stage_and_track_losses_and_gradients_reach_the_track_head():
    torch.manual_seed(0)
    heads = build_roi_heads(_cfg(), SHAPES)
    assert isinstance(heads, CascadeTrackROIHeads) and isinstance(heads.track_head, EmbeddingTrackHead)
    assert heads.num_cascade_stages == 3
    heads.train()
    features = {"p2": torch.randn(1, 8, 16, 16, requires_grad=True)}
    ref_features = {"p2": torch.randn(1, 8, 16, 16)}
    with EventStorage():
        _, losses = heads(None, features, [_no_proposals()], [_gt(**KEY_GT)],
                          ref_features=ref_features, ref_targets=[_gt(**REF_GT)])  # fmt: skip
    expected = {f"loss_{k}_stage{s}" for k in ("cls", "box_reg") for s in range(3)} | {"loss_mask", "loss_track"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss_track"].backward()
    for p in heads.track_head.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert features["p2"].grad.abs().sum() > 0


def test_track_loss_uses_the_first_stage_positives_against_the_reference_gt_boxes(monkeypatch):
    torch.manual_seed(0)
    heads = build_roi_heads(_cfg(), SHAPES).train()
    captured = {}

    def spy(key_embeds, ref_embeds, targets):
        captured.update(key=key_embeds, ref=ref_embeds, targets=targets)
        return {"loss_track": sum(k.sum() for k in key_embeds) * 0}

    monkeypatch.setattr(heads.track_head, "losses", spy)
    feats = {"p2": torch.randn(1, 8, 16, 16)}
    with EventStorage():
        heads(None, feats, [_no_proposals()], [_gt(**KEY_GT)], ref_features=feats, ref_targets=[_gt(**REF_GT)])
    # The two key objects (id 10: absent from the reference -> 0; id 20: the reference's 2nd object -> 2).
    assert sorted(captured["targets"][0].tolist()) == [0, 2]
    assert captured["key"][0].shape == (2, 12) and captured["ref"][0].shape == (3, 12)


class RecordingHeads(CascadeTrackROIHeads):
    """Records which stage's RoI features are asked for, and scales the final stage's (as TFA's hook would)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls, self.final_scale = [], 1.0

    def stage_roi_features(self, stage, features, boxes):
        self.calls.append(stage)
        out = super().stage_roi_features(stage, features, boxes)
        return out * self.final_scale if stage == self.num_cascade_stages - 1 else out


def test_stage_hook_feeds_every_stage_and_the_track_head_reads_the_final_stage():
    torch.manual_seed(0)
    heads = RecordingHeads(_cfg(), SHAPES).train()
    feats = {"p2": torch.randn(1, 8, 16, 16)}
    with EventStorage():
        heads(None, feats, [_no_proposals()], [_gt(**KEY_GT)], ref_features=feats, ref_targets=[_gt(**REF_GT)])
    assert heads.calls == [0, 1, 2, 2, 2]  # three stages, then the key and reference track RoIs

    heads.eval()
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.tensor([[4.0, 4, 24, 24], [30, 30, 60, 60], [2, 30, 30, 62]]))
    proposals.objectness_logits = torch.zeros(3)
    heads.calls = []
    with torch.no_grad():
        (dets,) = heads.detect(feats, [proposals])
        assert heads.calls == [0, 1, 2, 2]
        heads.final_scale = 2.0  # the transform of the final stage reaches the track embeddings
        (scaled,) = heads.detect(feats, [proposals])
    assert 0 < len(dets) <= 4 and dets.pred_track_embeds.shape == (len(dets), 12) and not dets.has("pred_masks")
    assert not torch.allclose(scaled.pred_track_embeds, dets.pred_track_embeds)
    with torch.no_grad():
        (masked,) = heads.predict_masks(feats, [dets])
    assert masked.pred_masks.shape == (len(dets), 1, 28, 28)


def _detector_cfg(meta_architecture):
    """A tiny FPN detector whose ROI heads are the cascade with a track head."""
    cfg = _cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = meta_architecture
    cfg.MODEL.BACKBONE.NAME = "build_small_resnet_fpn_backbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS = [32, 64, 32, 64]
    cfg.MODEL.SMALL_RESNET.NUM_BLOCKS = [1, 1, 1, 1]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 8
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 30
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 30
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    return cfg


def _image(seed, with_ids):
    image = torch.randint(0, 50, (3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    image[:, 4:24, 4:24] = 200
    gt = _gt(KEY_GT["boxes"], KEY_GT["ids"])
    if not with_ids:
        gt.remove("gt_ids")
    return image, gt


def test_plain_generalized_rcnn_with_cascade_track_heads_trains_and_predicts_embeddings():
    torch.manual_seed(0)
    model = build_model(_detector_cfg("GeneralizedRCNN"))
    assert type(model) is GeneralizedRCNN and isinstance(model.roi_heads, CascadeTrackROIHeads)
    image, gt = _image(0, with_ids=False)
    with EventStorage():
        losses = model.train()([{"image": image, "instances": gt}])
    assert "loss_track" not in losses and all(torch.isfinite(v) for v in losses.values())
    with torch.no_grad():
        (out,) = model.eval()([{"image": image, "height": 128, "width": 128}])
    inst = out["instances"]
    assert inst.pred_track_embeds.shape == (len(inst), 12) and inst.pred_masks.shape[1:] == (128, 128)


def test_online_video_rcnn_with_cascade_track_heads_trains_on_clips_and_tracks_a_video():
    torch.manual_seed(0)
    model = build_model(_detector_cfg("OnlineVideoRCNN"))
    assert isinstance(model, OnlineVideoRCNN) and isinstance(model.roi_heads, CascadeTrackROIHeads)
    # The tracker scores appearance with this track head's own definition.
    assert model.tracker.match_scores == model.roi_heads.track_head.match_scores
    frames = [_image(s, with_ids=True) for s in range(2)]
    clip = {"video_id": 0, "height": 64, "width": 64, "frame_roles": ["key", "ref"],
            "image": [f[0] for f in frames], "instances": [f[1] for f in frames]}  # fmt: skip
    with EventStorage():
        losses = model.train()([clip])
    assert "loss_track" in losses and all(torch.isfinite(v) for v in losses.values())
    video = {"video_id": 3, "height": 64, "width": 64, "length": 3, "image": [_image(s, True)[0] for s in range(3)]}
    with torch.no_grad():
        (out,) = model.eval()([video])
    assert out["pred_tracks"] and all(len(t["segmentations"]) == 3 for t in out["pred_tracks"])
