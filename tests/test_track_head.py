"""MaskTrack R-CNN's tracking branch: labels, logits, loss (Eq. 2) and the embedding head."""
import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import build_roi_heads
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import vis_d2.modeling  # noqa: F401  registers the heads
from vis_d2.config import add_vis_config
from vis_d2.modeling import TRACK_HEAD_REGISTRY, EmbeddingTrackHead, TrackROIHeads, build_track_head
from vis_d2.modeling.track_heads import (
    masktrack_track_loss,
    track_head_inference,
    track_match_logits,
    track_pid_targets,
)


def test_pid_is_one_plus_index_of_same_instance_among_reference_gts_or_zero_if_absent():
    key_ids = torch.tensor([5, 7, 9, 7, 3])
    ref_ids = torch.tensor([7, 3, 5])
    assert track_pid_targets(key_ids, ref_ids).tolist() == [3, 1, 0, 1, 2]


def test_pid_is_zero_for_every_roi_when_reference_frame_has_no_object():
    pid = track_pid_targets(torch.tensor([1, 2]), torch.zeros(0, dtype=torch.long))
    assert pid.tolist() == [0, 0] and pid.dtype == torch.long


def test_match_logits_prepend_a_constant_zero_new_object_column_to_dot_products():
    key = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    ref = torch.tensor([[3.0, 1.0], [1.0, 1.0], [2.0, 0.5]])
    logits = track_match_logits(key, ref)
    expected = torch.tensor([[0.0, 5.0, 3.0, 3.0], [0.0, -1.0, -1.0, -0.5]])
    assert torch.equal(logits, expected)


def test_loss_of_new_object_label_is_minus_log_of_eq2_dummy_probability():
    key, ref = torch.randn(1, 4), torch.randn(3, 4)
    dots = (key @ ref.t())[0]
    p_new = 1.0 / (1.0 + dots.exp().sum())  # Eq. (2), n = 0
    loss = masktrack_track_loss([track_match_logits(key, ref)], [torch.tensor([0])])
    assert loss.item() == pytest.approx(-math.log(p_new.item()), rel=1e-5)


def test_loss_averages_over_positives_per_image_then_over_images_counting_empty_images():
    def ce(row, label):
        return -torch.log_softmax(row, 0)[label]

    a = torch.tensor([[0.0, 2.0, -1.0], [0.0, 0.5, 0.5]])  # image 0: 2 positive RoIs, 2 ref objects
    b = torch.tensor([[0.0, 3.0]])  # image 1: 1 positive RoI, 1 ref object
    empty = torch.zeros(0, 2)  # image 2: no positive RoI
    la, lb = torch.tensor([1, 0]), torch.tensor([1])
    loss = masktrack_track_loss([a, b, empty], [la, lb, torch.zeros(0, dtype=torch.long)])
    per_image_a = (ce(a[0], 1) + ce(a[1], 0)) / 2
    expected = (per_image_a + ce(b[0], 1) + 0.0) / 3
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)
    # Not the plain mean over all RoIs, which would weigh image 0 twice as much.
    assert loss.item() != pytest.approx(((ce(a[0], 1) + ce(a[1], 0) + ce(b[0], 1)) / 3).item())


def test_loss_without_any_positive_is_zero_but_keeps_the_graph():
    logits = torch.zeros(0, 3, requires_grad=True)
    loss = masktrack_track_loss([logits], [torch.zeros(0, dtype=torch.long)])
    assert loss.item() == 0.0 and loss.requires_grad


def _cfg(**track_head):
    cfg = get_cfg()
    add_vis_config(cfg)
    for k, v in track_head.items():
        setattr(cfg.MODEL.TRACK_HEAD, k, v)
    return cfg


def test_registry_builds_the_official_head_fc_12544_1024_relu_1024_without_last_relu():
    head = build_track_head(_cfg(), ShapeSpec(channels=256, height=7, width=7))
    assert isinstance(head, EmbeddingTrackHead) and "EmbeddingTrackHead" in TRACK_HEAD_REGISTRY
    layers = list(head.fcs)
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Linear"]
    assert (layers[0].in_features, layers[0].out_features, layers[2].out_features) == (12544, 1024, 1024)
    # N(0, 0.01) weights, zero biases
    assert layers[0].weight.std().item() == pytest.approx(0.01, rel=0.05)
    assert layers[0].bias.abs().max().item() == 0.0
    out = head(torch.randn(5, 256, 7, 7))
    assert out.shape == (5, 1024) and (out < 0).any()  # no ReLU after the last FC


def test_relu_after_last_option_gives_nonnegative_embeddings():
    head = build_track_head(_cfg(RELU_AFTER_LAST=True, FC_DIM=16), ShapeSpec(channels=8, height=7, width=7))
    assert (head(torch.randn(20, 8, 7, 7)) >= 0).all()


def test_head_losses_are_scaled_by_loss_weight_and_log_accuracy():
    head = build_track_head(_cfg(FC_DIM=8, LOSS_WEIGHT=0.5), ShapeSpec(channels=4, height=7, width=7))
    key, ref = torch.randn(3, 8), torch.randn(2, 8)
    targets = torch.tensor([0, 1, 2])
    with EventStorage() as storage:
        loss = head.losses([key], [ref], [targets])["loss_track"]
        acc = storage.latest()["track_head/accuracy"][0]
    raw = masktrack_track_loss([track_match_logits(key, ref)], [targets])
    assert loss.item() == pytest.approx(0.5 * raw.item())
    expected_acc = (track_match_logits(key, ref).argmax(1) == targets).float().mean().item()
    assert acc == pytest.approx(expected_acc)


def test_inference_helper_splits_embeddings_per_image():
    a, b = Instances((10, 10)), Instances((10, 10))
    a.pred_boxes, b.pred_boxes = Boxes(torch.zeros(2, 4)), Boxes(torch.zeros(3, 4))
    embeds = torch.arange(10.0).view(5, 2)
    track_head_inference(embeds, [a, b])
    assert torch.equal(a.pred_track_embeds, embeds[:2]) and torch.equal(b.pred_track_embeds, embeds[2:])


# ------------------------------------------------------------------ labels through TrackROIHeads
def _roi_heads_cfg():
    cfg = _cfg(FC_DIM=16)
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.ROI_HEADS.NAME = "TrackROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2"]
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 16
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 16
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 8
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


def test_positive_rois_get_pid_of_their_gt_and_reference_side_is_the_reference_gt_boxes(monkeypatch):
    torch.manual_seed(0)
    heads = build_roi_heads(_roi_heads_cfg(), {"p2": ShapeSpec(channels=8, stride=4)})
    assert isinstance(heads, TrackROIHeads)
    heads.train()
    key_gt = _gt([[4, 4, 24, 24], [36, 30, 60, 58]], ids=[10, 20])
    ref_gt = _gt([[34, 28, 58, 60], [2, 40, 20, 62], [40, 2, 60, 20]], ids=[30, 20, 40])
    # The GT boxes are the only proposals (added as proposals), so every positive RoI is a GT itself.
    proposals = Instances((64, 64))
    proposals.proposal_boxes = Boxes(torch.zeros(0, 4))
    proposals.objectness_logits = torch.zeros(0)
    captured = {}

    def spy(key_embeds, ref_embeds, targets):
        captured.update(key=key_embeds, ref=ref_embeds, targets=targets)
        return {"loss_track": sum(k.sum() for k in key_embeds) * 0}

    monkeypatch.setattr(heads.track_head, "losses", spy)
    features = {"p2": torch.randn(1, 8, 16, 16)}
    ref_features = {"p2": torch.randn(1, 8, 16, 16)}
    with EventStorage():
        _, losses = heads(None, features, [proposals], [key_gt], ref_features=ref_features, ref_targets=[ref_gt])
    assert "loss_track" in losses and {"loss_cls", "loss_box_reg", "loss_mask"} <= set(losses)
    # id 10 is absent from the reference frame -> 0; id 20 is the reference's 2nd object -> 2
    assert sorted(captured["targets"][0].tolist()) == [0, 2]
    assert captured["key"][0].shape == (2, 16)
    assert captured["ref"][0].shape == (3, 16)  # one embedding per reference GT box


def _head_with_grad_scale(scale):
    torch.manual_seed(0)
    return EmbeddingTrackHead(ShapeSpec(channels=2, height=3, width=3), fc_dims=[8, 4], feature_grad_scale=scale)


@pytest.mark.parametrize("scale", [0.0, 0.5, 1.0])
def test_feature_grad_scale_multiplies_the_gradient_reaching_the_roi_features_but_not_the_head_weights(scale):
    roi = torch.randn(5, 2, 3, 3)
    grads = {}
    for s in (1.0, scale):
        head = _head_with_grad_scale(s).train()
        x = roi.clone().requires_grad_(True)
        head(x).pow(2).sum().backward()
        grads[s] = (x.grad, head.fcs[0].weight.grad)
    full_input_grad, full_weight_grad = grads[1.0]
    input_grad, weight_grad = grads[scale]
    assert full_input_grad.abs().sum() > 0
    if scale == 0.0:
        assert input_grad is None  # detached: the loss does not reach what produced the features
    else:
        assert torch.allclose(input_grad, full_input_grad * scale)
    assert torch.allclose(weight_grad, full_weight_grad)


def test_feature_grad_scale_leaves_the_embeddings_unchanged():
    roi = torch.randn(4, 2, 3, 3)
    full, detached = _head_with_grad_scale(1.0).train(), _head_with_grad_scale(0.0).train()
    assert torch.equal(full(roi), detached(roi))


def test_feature_grad_scale_comes_from_the_config_and_must_not_be_negative():
    cfg = get_cfg()
    add_vis_config(cfg)
    assert cfg.MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE == 1.0  # the paper: the track loss trains the features too
    cfg.MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE = 0.0
    assert build_track_head(cfg, ShapeSpec(channels=2, height=7, width=7)).feature_grad_scale == 0.0
    with pytest.raises(ValueError, match="feature_grad_scale"):
        _head_with_grad_scale(-1.0)
