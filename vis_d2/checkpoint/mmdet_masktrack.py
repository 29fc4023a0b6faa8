"""The official MaskTrack R-CNN release (youtubevos/MaskTrackRCNN, mmdetection v0.x) -> our MaskTrack R-CNN.

Every remapping, source (mmdetection v0.x) -> target (detectron2 / vis_d2):

- ``backbone.*`` (torchvision-named ResNet-50): see :mod:`vis_d2.checkpoint.resnet` -> ``backbone.bottom_up.*``.
- ``neck.lateral_convs.{i}.conv.*`` -> ``backbone.fpn_lateral{i+2}.*``; ``neck.fpn_convs.{i}.conv.*`` ->
  ``backbone.fpn_output{i+2}.*`` (i = 0..3 for C2..C5). P6 is a stride-2 max-pool in both (mmdet's
  ``num_outs=5`` without extra convs = detectron2's ``LastLevelMaxPool``); an ``fpn_convs.4`` (extra conv)
  has no counterpart and is refused.
- ``rpn_head.rpn_conv.*`` -> ``proposal_generator.rpn_head.conv.*``; ``rpn_reg`` -> ``anchor_deltas``,
  unchanged: both lay the 4A channels out anchor-major ``(A, 4)`` with deltas (dx, dy, dw, dh), both order
  a location's A anchors by aspect ratio (h/w = 0.5, 1, 2) for the one size per level, and both flatten
  predictions (H, W, A). ``rpn_cls`` -> ``objectness_logits``: with sigmoid objectness (the release's
  ``use_sigmoid_cls=True``) unchanged; a softmax RPN (2A channels, (A, 2) with class 1 = object) becomes
  ``w[1::2] - w[0::2]`` (the same probability: softmax over two logits = sigmoid of their difference).
- ``bbox_head.shared_fcs.{i}.*`` -> ``roi_heads.box_head.fc{i+1}.*`` (both flatten the 256x7x7 RoI
  feature in (C, H, W) order).
- ``bbox_head.fc_cls.*`` (K+1 rows, **background first**, row c = class c-1) -> ``box_predictor.cls_score``
  (**background last**): rows reordered ``[1, ..., K, 0]``.
- ``bbox_head.fc_reg.*`` (class-specific, 4(K+1) rows: (class, 4) with the background's 4 rows first) ->
  ``box_predictor.bbox_pred`` (4K rows, no background): the first 4 rows dropped. Deltas are (dx, dy, dw,
  dh) in both; mmdet's target stds (0.1, 0.1, 0.2, 0.2) are detectron2's ``BBOX_REG_WEIGHTS`` (10, 10, 5, 5),
  which our config sets. A class-agnostic head (4 rows) maps unchanged.
- ``mask_head.convs.{i}.conv.*`` -> ``roi_heads.mask_head.mask_fcn{i+1}.*``; ``mask_head.upsample.*``
  (2x2 deconv) -> ``mask_head.deconv.*``; ``mask_head.conv_logits.*`` (K+1 channels, background first and
  never used) -> ``mask_head.predictor.*`` (K): channel 0 dropped.
- ``track_head.fcs.{i}.*`` -> the i-th linear layer of ``roi_heads.track_head.fcs`` (``fcs.0``, ``fcs.2``:
  our head keeps its ReLUs inside the same ``nn.Sequential``).
- dropped: ``*.num_batches_tracked`` (FrozenBN has no counter).

Class order: the release's label c (1..K) is the c-th category of the dataset json in increasing id
(its ``cat2label``), which is our contiguous id c-1 (also increasing dataset id). For YouTube-VIS 2019
(ids 1..40) the two agree class for class.

What the weights cannot carry (the legacy box convention, see the README): mmdet v0.x measures a box as
``x2 - x1 + 1`` wide, puts anchor centres at ``(k + 0.5) * stride`` in continuous coordinates and pools
RoIs without the half-pixel shift. :data:`MASKTRACK_MMDET_OVERRIDES` sets the detectron2 options that
reproduce this (``ANCHOR_GENERATOR.OFFSET 0.5``, ``POOLER_TYPE ROIAlign``) and the pytorch-style ResNet
input (RGB, ImageNet mean/std, stride in the 3x3 conv). The remaining difference, the +1 in box widths
when decoding deltas, shifts a box by at most about one pixel.
"""
import re
from typing import Callable, Mapping, Sequence

import torch

from .convert import Dropped, Mapped, RenameResult
from .resnet import PYTORCH_STYLE_OVERRIDES, torchvision_resnet_rename

__all__ = ["MASKTRACK_MMDET_OVERRIDES", "MASKTRACK_CLASS_LAYERS", "masktrack_mmdet_rename"]

MASKTRACK_MMDET_OVERRIDES = PYTORCH_STYLE_OVERRIDES + [
    "MODEL.ANCHOR_GENERATOR.OFFSET", "0.5",
    "MODEL.ROI_BOX_HEAD.POOLER_TYPE", "ROIAlign",
    "MODEL.ROI_MASK_HEAD.POOLER_TYPE", "ROIAlign",
]  # fmt: skip

# Layers whose shape depends on the number of classes (left to initialisation with --drop-class-layers).
MASKTRACK_CLASS_LAYERS = (
    "roi_heads.box_predictor.cls_score.",
    "roi_heads.box_predictor.bbox_pred.",
    "roi_heads.mask_head.predictor.",
)


def _background_first_to_last(t: torch.Tensor) -> torch.Tensor:
    return torch.cat([t[1:], t[:1]], dim=0)


def _drop_background_boxes(t: torch.Tensor) -> torch.Tensor:
    return t[4:] if t.shape[0] > 4 else t  # class-agnostic regression (4 rows) has no background part


def _drop_background_mask(t: torch.Tensor) -> torch.Tensor:
    return t[1:] if t.shape[0] > 1 else t  # class-agnostic mask (1 channel) has none either


def _softmax_rpn_to_sigmoid(num_anchors: int):
    def transform(t: torch.Tensor) -> torch.Tensor:
        if t.shape[0] == num_anchors:
            return t
        if t.shape[0] != 2 * num_anchors:
            return t  # left for the shape check to report
        return t[1::2] - t[0::2]

    return transform


def _linear_layer_names(target_shapes: Mapping, prefix: str) -> Sequence[str]:
    """Prefixes of the linear layers under ``prefix`` in order, e.g. ``[...fcs.0., ...fcs.2.]``."""
    indices = sorted(
        {int(m.group(1)) for k in target_shapes for m in [re.fullmatch(re.escape(prefix) + r"(\d+)\.weight", k)] if m}
    )
    return [f"{prefix}{i}." for i in indices]


def masktrack_mmdet_rename(target_shapes: Mapping[str, Sequence[int]]) -> Callable[[str], RenameResult]:
    """A rename function for the official MaskTrack R-CNN state dict (see the module docstring)."""
    resnet = torchvision_resnet_rename("backbone.", "backbone.bottom_up.", target_shapes)
    anchors_key = "proposal_generator.rpn_head.objectness_logits.weight"
    num_anchors = target_shapes[anchors_key][0] if anchors_key in target_shapes else 3
    track_fcs = _linear_layer_names(target_shapes, "roi_heads.track_head.fcs.")

    simple = [  # (source pattern, target template, transform, note)
        (r"neck\.lateral_convs\.(\d)\.conv\.(weight|bias)", "backbone.fpn_lateral{l}.{1}", None, ""),
        (r"neck\.fpn_convs\.(\d)\.conv\.(weight|bias)", "backbone.fpn_output{l}.{1}", None, ""),
        (r"rpn_head\.rpn_conv\.(weight|bias)", "proposal_generator.rpn_head.conv.{0}", None, ""),
        (r"rpn_head\.rpn_reg\.(weight|bias)", "proposal_generator.rpn_head.anchor_deltas.{0}", None, ""),
        (r"rpn_head\.rpn_cls\.(weight|bias)", "proposal_generator.rpn_head.objectness_logits.{0}",
         _softmax_rpn_to_sigmoid(num_anchors), "objectness: sigmoid kept; a softmax (2A) head becomes fg - bg"),
        (r"bbox_head\.shared_fcs\.(\d)\.(weight|bias)", "roi_heads.box_head.fc{n}.{1}", None, ""),
        (r"bbox_head\.fc_cls\.(weight|bias)", "roi_heads.box_predictor.cls_score.{0}", _background_first_to_last,
         "rows [1..K, 0]: mmdet's background-first classes -> detectron2's background-last"),
        (r"bbox_head\.fc_reg\.(weight|bias)", "roi_heads.box_predictor.bbox_pred.{0}", _drop_background_boxes,
         "the background's 4 regression rows dropped (detectron2 has none)"),
        (r"mask_head\.convs\.(\d)\.conv\.(weight|bias)", "roi_heads.mask_head.mask_fcn{n}.{1}", None, ""),
        (r"mask_head\.upsample\.(weight|bias)", "roi_heads.mask_head.deconv.{0}", None, ""),
        (r"mask_head\.conv_logits\.(weight|bias)", "roi_heads.mask_head.predictor.{0}", _drop_background_mask,
         "the background mask channel 0 dropped"),
    ]

    def rename(key: str) -> RenameResult:
        if key.startswith("module."):  # saved from a DataParallel wrapper
            key = key[len("module."):]
        if key.startswith("backbone."):
            return resnet(key)
        if key.endswith("num_batches_tracked"):
            return Dropped("BatchNorm's update counter (num_batches_tracked); the model's norm has none")
        for pattern, template, transform, note in simple:
            m = re.fullmatch(pattern, key)
            if m:
                groups = m.groups()
                level = int(groups[0]) + 2 if "{l}" in template else None
                if level is not None and level > 5:
                    return None  # an extra FPN conv (P6 by convolution): detectron2's FPN here max-pools
                number = int(groups[0]) + 1 if "{n}" in template else None
                return Mapped(template.format(*groups, l=level, n=number), transform, note)
        m = re.fullmatch(r"track_head\.fcs\.(\d+)\.(weight|bias)", key)
        if m and int(m.group(1)) < len(track_fcs):
            return Mapped(track_fcs[int(m.group(1))] + m.group(2), note="i-th track FC -> i-th linear of fcs")
        return None

    return rename
