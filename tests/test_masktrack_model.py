"""MaskTrack R-CNN end to end on tiny in-memory clips and videos: configs, registry, training, inference."""
import glob
import os

import pycocotools.mask as mask_util
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.modeling.backbone import FPN
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

from vis_d2.config import add_vis_config
from vis_d2.modeling import EmbeddingTrackHead, OnlineVideoRCNN, TrackROIHeads
from vis_d2.modeling.meta_arch import clip_frame_slots
from vis_d2.projects import add_project_configs
from vis_d2.projects.masktrack_rcnn import MaskTrackRCNN, add_masktrack_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(REPO, "configs", "**", "*.yaml"), recursive=True))
TINY = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
H, W = 64, 96


def _load(path, opts=()):
    cfg = get_cfg()
    add_vis_config(cfg)
    add_masktrack_config(cfg)
    add_project_configs(cfg)  # every method's keys: the loop below also loads the other methods' configs
    cfg.merge_from_file(path)
    cfg.merge_from_list(list(opts))
    return cfg


def tiny_cfg(*opts):
    """The shipped tiny config, shrunk further so one step takes a fraction of a second."""
    return _load(
        TINY,
        [
            "MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS", [32, 64, 96, 128],
            "MODEL.FPN.OUT_CHANNELS", 32,
            "MODEL.RPN.PRE_NMS_TOPK_TRAIN", 200, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 50,
            "MODEL.RPN.PRE_NMS_TOPK_TEST", 200, "MODEL.RPN.POST_NMS_TOPK_TEST", 50,
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32,
            "MODEL.ROI_BOX_HEAD.CONV_DIM", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 64,
            "MODEL.ROI_MASK_HEAD.CONV_DIM", 32,
            "MODEL.TRACK_HEAD.FC_DIM", 32,
            *opts,
        ],
    )


def _frame(objects, shift=0):
    """uint8 (3, H, W) frame with one flat rectangle per (x, y, w, h, class, id), and its Instances."""
    g = torch.Generator().manual_seed(shift)
    image = torch.randint(0, 40, (3, H, W), dtype=torch.uint8, generator=g)
    boxes, masks = [], torch.zeros(len(objects), H, W, dtype=torch.bool)
    for k, (x, y, w, h, c, _) in enumerate(objects):
        x = x + shift
        image[:, y : y + h, x : x + w] = torch.tensor([90 + 60 * c, 200 - 50 * c, 120], dtype=torch.uint8)[:, None, None]
        masks[k, y : y + h, x : x + w] = True
        boxes.append([x, y, x + w, y + h])
    inst = Instances((H, W))
    inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    inst.gt_classes = torch.tensor([o[4] for o in objects])
    inst.gt_masks = BitMasks(masks)
    inst.gt_ids = torch.tensor([o[5] for o in objects])
    return image, inst


def make_clip(video_id, roles=("key", "ref")):
    objects = [(8, 10, 20, 18, 0, 1), (50, 30, 24, 26, 1, 2)]
    frames = [_frame(objects if i == 0 else objects[::-1], shift=3 * i) for i in range(len(roles))]
    return {
        "video_id": video_id,
        "height": H,
        "width": W,
        "frame_indices": list(range(len(roles))),
        "frame_roles": list(roles),
        "image": [f[0] for f in frames],
        "instances": [f[1] for f in frames],
    }


class CountingFrames:
    """A lazy frame sequence (like LazyVideoFrames) that records which frames were read, in order."""

    def __init__(self, length):
        self.length = length
        self.reads = []

    def __len__(self):
        return self.length

    def __getitem__(self, t):
        self.reads.append(t)
        return _frame([(10 + 2 * t, 12, 22, 20, 0, 1), (55, 28 - t, 20, 24, 1, 2)], shift=t)[0]


# ------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize("path", CONFIGS, ids=[os.path.relpath(p, REPO) for p in CONFIGS])
def test_every_shipped_config_loads_with_the_project_keys(path):
    cfg = _load(path)
    assert cfg.MODEL.TRACK_HEAD.NAME == "EmbeddingTrackHead"
    if os.path.basename(path).startswith("masktrack_rcnn"):
        assert cfg.MODEL.META_ARCHITECTURE == "MaskTrackRCNN"
        assert cfg.MODEL.ROI_HEADS.NAME == "TrackROIHeads"
        assert cfg.DATASETS.TRAIN and cfg.DATASETS.TEST


def test_official_settings_are_in_the_ytvis_2019_config():
    cfg = _load(os.path.join(REPO, "configs", "ytvis_2019", "masktrack_rcnn_R50_FPN.yaml"))
    assert (cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST) == (360, 640)
    assert cfg.MODEL.RPN.POST_NMS_TOPK_TEST == 200 and cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE == 128
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.IMS_PER_BATCH, cfg.TEST.DETECTIONS_PER_IMAGE) == (0.005, 8, 10)
    assert cfg.SOLVER.STEPS[0] < cfg.SOLVER.STEPS[1] < cfg.SOLVER.MAX_ITER
    # The track head and tracker values come from vis_d2/config.py's defaults, which are MaskTrack R-CNN's.
    head, tracker = cfg.MODEL.TRACK_HEAD, cfg.MODEL.TRACKER
    assert (head.NAME, head.NUM_FC, head.FC_DIM, head.RELU_AFTER_LAST) == ("EmbeddingTrackHead", 2, 1024, False)
    assert tracker.NAME == "MultiCueTracker"
    assert (tracker.EMBED_WEIGHT, tracker.SCORE_WEIGHT, tracker.BOX_IOU_WEIGHT, tracker.LABEL_WEIGHT) == (1, 1, 2, 10)
    assert (tracker.MASK_IOU_WEIGHT, tracker.MEMORY_RETAIN_FRAMES, tracker.UPDATE_LABEL) == (0, -1, False)


# ------------------------------------------------------------------------------------ registry
def test_registry_builds_masktrack_rcnn_with_track_roi_heads_and_small_gn_backbone_from_config():
    cfg = _load(TINY)
    model = build_model(cfg)
    assert isinstance(model, MaskTrackRCNN) and isinstance(model, OnlineVideoRCNN)
    assert isinstance(model.roi_heads, TrackROIHeads)
    assert isinstance(model.roi_heads.track_head, EmbeddingTrackHead)
    assert isinstance(model.backbone, FPN)
    assert any(isinstance(m, torch.nn.GroupNorm) for m in model.backbone.bottom_up.modules())
    # the 7x7 box RoI features of the FPN levels feed the track head
    assert model.roi_heads.track_head.fcs[0].in_features == cfg.MODEL.FPN.OUT_CHANNELS * 7 * 7


def test_masktrack_rcnn_refuses_roi_heads_without_a_track_branch():
    with pytest.raises(ValueError, match="TrackROIHeads"):
        build_model(tiny_cfg("MODEL.ROI_HEADS.NAME", "StandardROIHeads"))


# ------------------------------------------------------------------------------------ training
def test_training_step_gives_finite_losses_and_gradients_reach_the_track_head():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    model.train()
    with EventStorage():
        losses = model([make_clip(0), make_clip(1)])
    expected = {"loss_cls", "loss_box_reg", "loss_mask", "loss_track", "loss_rpn_cls", "loss_rpn_loc"}
    assert set(losses) == expected
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    for p in model.roi_heads.track_head.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("feature_grad_scale", [1.0, 0.0])
def test_the_track_loss_trains_the_shared_backbone_only_with_a_nonzero_feature_grad_scale(feature_grad_scale):
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE", feature_grad_scale))
    model.train()
    with EventStorage():
        model([make_clip(0)])["loss_track"].backward()
    assert model.roi_heads.track_head.fcs[0].weight.grad.abs().sum() > 0
    stem_grad = model.backbone.bottom_up.stem.conv1.weight.grad
    # 1 (the paper): through the key and reference RoI features; 0 (the tiny config): the head alone
    reaches_backbone = stem_grad is not None and bool(stem_grad.abs().sum() > 0)
    assert reaches_backbone == (feature_grad_scale > 0)


def test_the_tiny_config_trains_the_track_head_on_detached_features():
    assert tiny_cfg().MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE == 0.0


@pytest.mark.parametrize("detect_all_frames", [False, True])
def test_detection_losses_on_reference_frames_only_with_detect_all_frames(monkeypatch, detect_all_frames):
    model = build_model(tiny_cfg("MODEL.VIDEO.DETECT_ALL_FRAMES", detect_all_frames))
    model.train()
    seen_ids = []
    roi_forward = model.roi_heads.forward

    def recording_forward(images, features, proposals, targets=None, **kwargs):
        seen_ids.append(sorted(targets[0].gt_ids.tolist()))
        _, losses = roi_forward(images, features, proposals, targets, **kwargs)
        # A constant per call: key frame 1, reference frame 3, so the mean over frames is 2.
        constant = 1.0 if len(seen_ids) == 1 else 3.0
        return None, {k: (v * 0 + constant if k != "loss_track" else v) for k, v in losses.items()}

    monkeypatch.setattr(model.roi_heads, "forward", recording_forward)
    with EventStorage():
        losses = model([make_clip(0)])
    assert len(seen_ids) == (2 if detect_all_frames else 1)
    assert float(losses["loss_cls"]) == (2.0 if detect_all_frames else 1.0)
    assert float(losses["loss_mask"]) == float(losses["loss_cls"])
    assert torch.isfinite(losses["loss_track"]) and float(losses["loss_track"]) not in (1.0, 2.0, 3.0)


def test_clips_without_a_reference_frame_train_without_track_loss():
    model = build_model(tiny_cfg())
    model.train()
    with EventStorage():
        losses = model([make_clip(0, roles=("key",))])
    assert "loss_track" not in losses and "loss_mask" in losses


def test_support_frames_reach_the_temporal_extension_point_and_refs_the_track_loss(monkeypatch):
    model = build_model(tiny_cfg())
    model.train()
    seen = {}

    def temporal_features(key_features, support_features):
        seen["support"] = support_features
        return key_features

    monkeypatch.setattr(model, "temporal_features", temporal_features)
    with EventStorage():
        losses = model([make_clip(0, roles=("key", "ref", "support")), make_clip(1, roles=("key", "ref", "support"))])
    assert "loss_track" in losses
    assert len(seen["support"]) == 1 and seen["support"][0]["p2"].shape[0] == 2


def test_clips_of_one_batch_must_share_their_role_layout():
    with pytest.raises(ValueError, match="layout"):
        clip_frame_slots([make_clip(0, ("key", "ref")), make_clip(1, ("key", "support"))])
    assert clip_frame_slots([make_clip(0, ("key", "support", "ref"))]) == {"key": [0], "ref": [2], "support": [1]}


# ------------------------------------------------------------------------------------ inference
def _eval_model(*opts):
    torch.manual_seed(0)
    # Random weights score every class about 1/7: a zero threshold makes sure detections exist.
    model = build_model(tiny_cfg("MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0, *opts))
    return model.eval()


def test_inference_reads_frames_lazily_in_order_and_returns_section4_tracks_at_original_size():
    model = _eval_model()
    frames = CountingFrames(4)
    # The frames are network-sized (64x96); the video's original resolution is twice that.
    video = {"video_id": 7, "height": 2 * H, "width": 2 * W, "length": 4, "image": frames}
    with torch.no_grad():
        (out,) = model([video])
    assert frames.reads == [0, 1, 2, 3]
    assert {k: out[k] for k in ("video_id", "height", "width", "length")} == {
        "video_id": 7, "height": 2 * H, "width": 2 * W, "length": 4}
    tracks = out["pred_tracks"]
    assert tracks, "random weights at score threshold 0 must give detections"
    assert len({t["track_id"] for t in tracks}) == len(tracks)
    per_frame = [0] * 4
    for track in tracks:
        assert set(track) == {"track_id", "score", "category_id", "segmentations"}
        assert 0.0 < track["score"] <= 1.0 and 0 <= track["category_id"] < 6
        assert len(track["segmentations"]) == 4
        for t, rle in enumerate(track["segmentations"]):
            if rle is None:
                continue
            per_frame[t] += 1
            assert rle["size"] == [2 * H, 2 * W] and isinstance(rle["counts"], str)
            assert mask_util.decode(rle).shape == (2 * H, 2 * W)
    assert all(n <= 10 for n in per_frame)  # TEST.DETECTIONS_PER_IMAGE


def test_tracker_boxes_and_pasted_masks_are_at_the_original_resolution(monkeypatch):
    model = _eval_model()
    real_detect, real_update = model.roi_heads.detect, model.tracker.update
    net_boxes, orig_boxes = [], []

    def detect(features, proposals):
        out = real_detect(features, proposals)
        net_boxes.append(out[0].pred_boxes.tensor.clone())
        return out

    def update(frame_idx, detections):
        orig_boxes.append(detections.pred_boxes.tensor.clone())
        return real_update(frame_idx, detections)

    monkeypatch.setattr(model.roi_heads, "detect", detect)
    monkeypatch.setattr(model.tracker, "update", update)
    with torch.no_grad():
        (out,) = model([{"video_id": 1, "height": 2 * H, "width": 3 * W, "length": 2, "image": CountingFrames(2)}])
    scale = torch.tensor([3.0, 2.0, 3.0, 2.0])  # x by 3, y by 2
    for net, orig in zip(net_boxes, orig_boxes):
        assert torch.allclose(orig, net * scale, atol=1e-3)
    for track in out["pred_tracks"]:
        for t, rle in enumerate(track["segmentations"]):
            if rle is None or mask_util.area(rle) == 0:
                continue
            x, y, w, h = mask_util.toBbox(rle).tolist()
            inside = (x >= orig_boxes[t][:, 0] - 1) & (y >= orig_boxes[t][:, 1] - 1)
            inside &= (x + w <= orig_boxes[t][:, 2] + 1) & (y + h <= orig_boxes[t][:, 3] + 1)
            assert inside.any(), "a pasted mask lies outside every detection box of its frame"


def test_masks_are_predicted_only_for_detections_the_tracker_keeps(monkeypatch):
    model = _eval_model()
    real_update, real_masks = model.tracker.update, model.roi_heads.predict_masks
    log = {"dets": [], "kept": [], "masked": []}

    def update(frame_idx, detections):
        ids = real_update(frame_idx, detections)
        ids[1::2] = -1  # pretend every other detection lost a conflict
        log["dets"].append(len(ids))
        log["kept"].append(int((ids >= 0).sum()))
        return ids

    def predict_masks(features, instances):
        log["masked"].append(len(instances[0]))
        return real_masks(features, instances)

    monkeypatch.setattr(model.tracker, "update", update)
    monkeypatch.setattr(model.roi_heads, "predict_masks", predict_masks)
    with torch.no_grad():
        (out,) = model([{"video_id": 1, "height": H, "width": W, "length": 2, "image": CountingFrames(2)}])
    assert log["dets"] and all(n > 1 for n in log["dets"])
    assert log["masked"] == log["kept"] and all(k < n for k, n in zip(log["kept"], log["dets"]))
    outputs_per_frame = [sum(t["segmentations"][f] is not None for t in out["pred_tracks"]) for f in range(2)]
    assert outputs_per_frame == log["masked"]


def test_mask_iou_cue_gives_the_tracker_every_detections_mask_at_quarter_resolution(monkeypatch):
    model = _eval_model("MODEL.TRACKER.MASK_IOU_WEIGHT", 2.0)
    shapes = []
    real_update = model.tracker.update

    def update(frame_idx, detections):
        shapes.append((detections.pred_track_embeds.shape[0], tuple(detections.track_masks.shape)))
        return real_update(frame_idx, detections)

    monkeypatch.setattr(model.tracker, "update", update)
    with torch.no_grad():
        model([{"video_id": 1, "height": 2 * H + 1, "width": 2 * W, "length": 2, "image": CountingFrames(2)}])
    assert shapes and all(m == (n, (2 * H + 1 + 3) // 4, 2 * W // 4) for n, m in shapes)


def test_detector_only_variant_outputs_every_detection_as_a_one_frame_track():
    # What tools/benchmark_tracking.py compares against: plain R-CNN heads (no track head) in the same loop.
    model = _eval_model("MODEL.META_ARCHITECTURE", "OnlineVideoRCNN", "MODEL.ROI_HEADS.NAME", "StandardROIHeads",
                        "MODEL.TRACKER.NAME", "PerFrameTracker")  # fmt: skip
    assert not hasattr(model.roi_heads, "track_head")
    with torch.no_grad():
        (out,) = model([{"video_id": 1, "height": H, "width": W, "length": 3, "image": CountingFrames(3)}])
    tracks = out["pred_tracks"]
    assert len(tracks) > 3 and [t["track_id"] for t in tracks] == list(range(len(tracks)))
    assert all(sum(s is not None for s in t["segmentations"]) == 1 for t in tracks)


# ------------------------------------------------------------------------------------ small backbone
def test_small_gn_backbone_gives_fpn_levels_p2_to_p6_at_strides_4_to_64():
    cfg = tiny_cfg()
    model = build_model(cfg)
    shapes = model.backbone.output_shape()
    assert {k: v.stride for k, v in shapes.items()} == {"p2": 4, "p3": 8, "p4": 16, "p5": 32, "p6": 64}
    out = model.backbone(torch.zeros(1, 3, H, W))
    assert out["p2"].shape == (1, 32, H // 4, W // 4) and out["p6"].shape[-2:] == (1, 2)


@pytest.mark.parametrize(
    "widths, message",
    [([32, 64, 64, 128], "wider or narrower"), ([32, 48, 96, 128], "multiple of 32")],
)
def test_small_backbone_rejects_widths_detectron2_blocks_cannot_build(widths, message):
    with pytest.raises(ValueError, match=message):
        build_model(tiny_cfg("MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS", widths))
