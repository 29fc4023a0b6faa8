"""STMask end to end on tiny in-memory clips: built by name, a training step, online inference, ablation keys."""
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.utils.events import EventStorage
from test_masktrack_model import CountingFrames, make_clip
from torch import nn

from vis_d2.config import add_vis_config
from vis_d2.modeling import OnlineDenseVideoModel
from vis_d2.projects.stmask import STMask, FeatureCalibration, add_stmask_config, fast_nms, stmask_match_scores

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "configs", "synth_vis", "stmask_tiny.yaml")


def tiny_cfg(*opts):
    """The shipped tiny STMask config, shrunk so that one step takes a fraction of a second."""
    cfg = get_cfg()
    add_vis_config(cfg)
    add_stmask_config(cfg)
    cfg.merge_from_file(TINY)
    cfg.merge_from_list(
        [
            "MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS", [32, 64, 96, 128],
            "MODEL.FPN.OUT_CHANNELS", 32,
            "MODEL.STMASK.HEAD.CONV_DIM", 32, "MODEL.STMASK.PROTO_CONV_DIM", 32, "MODEL.STMASK.HEAD.EMBED_DIM", 16,
            "MODEL.STMASK.TF.CONV_DIMS", [32, 32, 64],
            "MODEL.STMASK.NUM_CLASSES", 3,
            *opts,
        ]  # fmt: skip
    )
    return cfg


def _train_step(model):
    model.train()
    with EventStorage():
        return model([make_clip(1), make_clip(2)])


def test_stmask_is_built_by_name_as_a_dense_online_model_with_fca_kernels():
    model = build_model(tiny_cfg())
    assert isinstance(model, STMask) and isinstance(model, OnlineDenseVideoModel)
    assert model.head_in_features == ["p3", "p4", "p5", "p6", "p7"]
    kernels = [conv.kernel_size for conv in model.head.outputs["box"]]
    assert kernels == [(3, 3), (3, 5), (5, 3)]
    assert isinstance(model.head.outputs["class"][0], FeatureCalibration)  # [code] default: FCB(ada) on class
    assert model.temporal_fusion is not None


def test_training_step_has_finite_losses_and_gradients_reach_every_new_module():
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.STMASK.FCB.MASK", "ali", "MODEL.STMASK.FCB.TRACK", "ada"))
    losses = _train_step(model)
    expected = {"loss_class", "loss_box", "loss_centerness", "loss_mask", "loss_track", "loss_box_shift", "loss_mask_shift"}
    assert set(losses) == expected and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    modules = {
        "head towers": model.head.towers, "head outputs": model.head.outputs, "protonet": model.protonet,
        "temporal fusion": model.temporal_fusion,
        "FCB(ada) offsets": model.head.outputs["class"][1].offset,
    }  # fmt: skip
    for name, module in modules.items():
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0, name


@pytest.mark.parametrize("scale", [1.0, 0.0])
def test_the_track_loss_trains_the_shared_features_only_with_a_positive_track_feature_grad_scale(scale):
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.STMASK.HEAD.TRACK_FEATURE_GRAD_SCALE", scale))
    _train_step(model)["loss_track"].backward()

    def reached(module):
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert reached(model.head.towers["track"])
    assert reached(model.head.upfeature) == (scale > 0)
    assert reached(model.backbone) == (scale > 0)


def test_online_inference_tracks_a_short_video_reading_each_frame_once():
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.STMASK.SCORE_THRESH_TEST", 0.0)).eval()
    frames = CountingFrames(5)
    out = model([{"video_id": 3, "height": 64, "width": 96, "length": 5, "image": frames}])[0]
    assert frames.reads == list(range(5))
    assert out["pred_tracks"] and all(len(t["segmentations"]) == 5 for t in out["pred_tracks"])


def test_fast_nms_drops_boxes_overlapping_a_better_one_and_keeps_the_best_first():
    boxes = torch.tensor([[0.0, 0, 10, 10], [1, 1, 10, 10], [20, 20, 30, 30], [0, 0, 9, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7, 0.95])
    assert fast_nms(boxes, scores, iou_threshold=0.5, top_k=10).tolist() == [3, 2]
    assert fast_nms(boxes, scores, iou_threshold=0.5, top_k=1).tolist() == [3]


def test_match_scores_rescale_the_cosine_and_put_the_new_object_threshold_in_column_zero():
    e = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), dim=1)
    scores = stmask_match_scores(e, e)
    assert torch.allclose(scores, torch.tensor([[1.4, 1.0, 0.5], [1.4, 0.5, 1.0]]))


# ------------------------------------------------------------------------------------ ablation keys
def test_fca_off_uses_3x3_kernels_and_yolact_anchors():
    model = build_model(tiny_cfg("MODEL.STMASK.FCA.ENABLED", False))
    assert all(conv.kernel_size == (3, 3) for conv in model.head.outputs["box"])
    ratios = [w / h for h, w in model.anchor_generator.anchor_shapes]
    assert ratios == pytest.approx([1, 0.5, 2])


@pytest.mark.parametrize("branch,key", [("class", "CLASS"), ("coef", "MASK"), ("track", "TRACK")])
def test_each_fcb_switch_sets_its_own_branch_only(branch, key):
    cfg = tiny_cfg("MODEL.STMASK.FCB.CLASS", "none", f"MODEL.STMASK.FCB.{key}", "ali")
    outputs = build_model(cfg).head.outputs
    for name in ("class", "coef", "track"):
        calibrated = all(isinstance(m, FeatureCalibration) and m.mode == "ali" for m in outputs[name])
        plain = all(type(m) is nn.Conv2d for m in outputs[name])
        assert calibrated if name == branch else plain


def test_tf_off_builds_no_temporal_module_and_has_no_shift_losses():
    model = build_model(tiny_cfg("MODEL.STMASK.TF.ENABLED", False))
    assert model.temporal_fusion is None
    losses = _train_step(model)
    assert "loss_box_shift" not in losses and "loss_mask_shift" not in losses


# ------------------------------------------------------------------------------------ temporal fusion at inference
def test_tf_moves_every_track_into_the_current_frame_before_matching():
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.STMASK.SCORE_THRESH_TEST", 0.0)).eval()
    seen = []
    original = model.tracker.move_tracks

    def spy(**kw):
        seen.append((model.tracker.memory()["boxes"].clone(), kw["boxes"].clone(), len(model.tracker)))
        original(**kw)

    model.tracker.move_tracks = spy
    model([{"video_id": 3, "height": 64, "width": 96, "length": 4, "image": CountingFrames(4)}])
    assert len(seen) == 3  # frames 1, 2, 3: the memory of the previous frame moved into the current one
    before, after, num_tracks = seen[0]
    assert after.shape == (num_tracks, 4) and not torch.allclose(before, after)
    assert len(model.frame_cache) == 1  # only the previous frame's maps are cached


def test_tracks_missed_by_the_detector_are_filled_from_their_moved_masks_for_a_bounded_time():
    torch.manual_seed(0)
    cfg = tiny_cfg("MODEL.STMASK.SCORE_THRESH_TEST", 0.0, "MODEL.STMASK.TF.MAX_FILL_FRAMES", 2,
                   "MODEL.STMASK.TF.SCORE_DECAY", 1.0)  # fmt: skip
    model = build_model(cfg).eval()
    detect, calls = model.detect_frame, []

    def detect_in_frame_0_only(images, features):  # later frames: no detection at all
        detections = detect(images, features)
        calls.append(1)
        return detections if len(calls) == 1 else detections[:0]

    model.detect_frame = detect_in_frame_0_only
    out = model([{"video_id": 3, "height": 64, "width": 96, "length": 5, "image": CountingFrames(5)}])[0]
    filled = [t for t in out["pred_tracks"] if t["segmentations"][1] is not None and t["segmentations"][2] is not None]
    assert filled, "the 2 frames after the last detection are filled from the moved tracks"
    for track in out["pred_tracks"]:
        assert track["segmentations"][3] is None and track["segmentations"][4] is None  # > 2 frames after


def test_the_ytvis_config_builds_the_code_settings():
    cfg = get_cfg()
    add_vis_config(cfg)
    add_stmask_config(cfg)
    cfg.merge_from_file(os.path.join(REPO, "configs", "ytvis_2019", "stmask_R50_FPN.yaml"))
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg)
    assert isinstance(model, STMask) and model.head.num_classes == 40
    assert model.backbone.output_shape()["p7"].stride == 128 and model.temporal_fusion.patch_size == 11
    assert [c.out_channels for c in model.temporal_fusion.convs if isinstance(c, nn.Conv2d)] == [512, 512, 1024]
