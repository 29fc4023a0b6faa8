"""ResNet parameter names of torchvision / mmdetection and of Caffe2 (Detectron1, MSRA ImageNet models),
renamed to detectron2's ``ResNet`` (``stem``, ``res2``..``res5``, ``convK.norm``, ``shortcut``).

torchvision and mmdetection v0.x name a ResNet identically (mmdetection under ``backbone.``):

=====================================  ===========================================
torchvision / mmdetection              detectron2 (under ``backbone.bottom_up.``)
=====================================  ===========================================
``conv1.weight``                       ``stem.conv1.weight``
``bn1.{weight,bias,running_*}``        ``stem.conv1.norm.*``
``layer{i}.{b}.conv{k}.weight``        ``res{i+1}.{b}.conv{k}.weight``
``layer{i}.{b}.bn{k}.*``               ``res{i+1}.{b}.conv{k}.norm.*``
``layer{i}.{b}.downsample.0.weight``   ``res{i+1}.{b}.shortcut.weight``
``layer{i}.{b}.downsample.1.*``        ``res{i+1}.{b}.shortcut.norm.*``
``fc.*``                               dropped (the ImageNet classifier)
``*.num_batches_tracked``              dropped unless the model's norm keeps one (BN / SyncBN)
=====================================  ===========================================

Caffe2 (``conv1_w``, ``res_conv1_bn_{s,b}``, ``res{s}_{b}_branch2{a,b,c}_{w,bn_s,bn_b}``,
``res{s}_{b}_branch1_*``): branch2a/b/c -> conv1/2/3, branch1 -> shortcut; ``_bn_s`` / ``_bn_b`` are an
affine channel (scale, bias) -> ``norm.weight`` / ``norm.bias`` with ``running_mean`` 0 and ``running_var`` 1
synthesised, as detectron2's own loader fills them; ``fc1000_*`` and ``*_momentum`` are dropped.

The weights are renamed, never changed: a torchvision / mmdetection ("pytorch style") bottleneck puts the
stride in its 3x3 conv and expects RGB input normalised with ImageNet mean/std, so the model needs
``MODEL.RESNETS.STRIDE_IN_1X1 False``, ``INPUT.FORMAT RGB``, ``MODEL.PIXEL_MEAN [123.675, 116.28, 103.53]``
and ``MODEL.PIXEL_STD [58.395, 57.12, 57.375]`` (see :data:`PYTORCH_STYLE_OVERRIDES`). Caffe2 / MSRA
weights are what detectron2's defaults expect (stride in 1x1, BGR, std 1).
"""
import re
from typing import Callable, Mapping, Optional, Sequence

import torch

from .convert import Dropped, Mapped, RenameResult

__all__ = ["PYTORCH_STYLE_OVERRIDES", "torchvision_resnet_rename", "caffe2_resnet_rename"]

# Config overrides a torchvision / mmdetection ResNet needs in a detectron2 model (see the module docstring).
PYTORCH_STYLE_OVERRIDES = [
    "MODEL.RESNETS.STRIDE_IN_1X1", "False",
    "INPUT.FORMAT", "RGB",
    "MODEL.PIXEL_MEAN", "[123.675, 116.28, 103.53]",
    "MODEL.PIXEL_STD", "[58.395, 57.12, 57.375]",
]  # fmt: skip

_BN_FIELDS = ("weight", "bias", "running_mean", "running_var")
_LAYER = re.compile(r"layer(\d)\.(\d+)\.(.+)")


def _norm_field(field: str, target_prefix: str, target_shapes: Mapping) -> RenameResult:
    if field in _BN_FIELDS:
        return Mapped(target_prefix + "norm." + field)
    if field == "num_batches_tracked":
        key = target_prefix + "norm.num_batches_tracked"
        if key in target_shapes:
            return Mapped(key)
        return Dropped("BatchNorm's update counter (num_batches_tracked); the model's norm has none")
    return None


def torchvision_resnet_rename(
    source_prefix: str, target_prefix: str, target_shapes: Mapping[str, Sequence[int]]
) -> Callable[[str], RenameResult]:
    """A rename function for torchvision / mmdetection ResNet names (the module docstring's table).

    Args:
        source_prefix: prefix of the ResNet keys in the source ("" for torchvision, "backbone." for mmdet).
        target_prefix: prefix of detectron2's ResNet in the target ("backbone.bottom_up." in an FPN model).
        target_shapes: the target's state dict shapes (to know whether it keeps ``num_batches_tracked``).

    Returns:
        ``rename(key)``; keys outside ``source_prefix`` get None (unknown to this rule).
    """

    def rename(key: str) -> RenameResult:
        if not key.startswith(source_prefix):
            return None
        name = key[len(source_prefix):]
        if name == "conv1.weight":
            return Mapped(target_prefix + "stem.conv1.weight")
        if name.startswith("bn1."):
            return _norm_field(name[4:], target_prefix + "stem.conv1.", target_shapes)
        if name.startswith("fc."):
            return Dropped("ImageNet classification layer (fc), not part of a detection backbone")
        m = _LAYER.fullmatch(name)
        if not m:
            return None
        stage, block, rest = int(m.group(1)) + 1, m.group(2), m.group(3)
        block_prefix = f"{target_prefix}res{stage}.{block}."
        m = re.fullmatch(r"conv(\d)\.weight", rest)
        if m:
            return Mapped(f"{block_prefix}conv{m.group(1)}.weight")
        m = re.fullmatch(r"bn(\d)\.(\w+)", rest)
        if m:
            return _norm_field(m.group(2), f"{block_prefix}conv{m.group(1)}.", target_shapes)
        if rest == "downsample.0.weight":
            return Mapped(block_prefix + "shortcut.weight")
        if rest.startswith("downsample.1."):
            return _norm_field(rest[len("downsample.1."):], block_prefix + "shortcut.", target_shapes)
        return None

    return rename


_C2_BRANCH = {"branch2a": "conv1", "branch2b": "conv2", "branch2c": "conv3", "branch1": "shortcut"}


def _affine_channel(layer_prefix: str, suffix: str) -> RenameResult:
    if suffix == "b":
        return Mapped(layer_prefix + "norm.bias")
    # Caffe2's affine channel has no running statistics: mean 0, var 1 make FrozenBatchNorm the same affine map.
    return [
        Mapped(layer_prefix + "norm.weight", note="Caffe2 affine channel scale (_bn_s) -> norm.weight"),
        Mapped(layer_prefix + "norm.running_mean", torch.zeros_like, "running_mean 0 synthesised (Caffe2 affine channel)"),
        Mapped(layer_prefix + "norm.running_var", torch.ones_like, "running_var 1 synthesised (Caffe2 affine channel)"),
    ]


def caffe2_resnet_rename(target_prefix: str) -> Callable[[str], RenameResult]:
    """A rename function for Caffe2 / Detectron1 ResNet names (e.g. detectron2's ImageNet ``R-50.pkl``)."""

    def rename(key: str) -> Optional[RenameResult]:
        if key.endswith("_momentum"):
            return Dropped("SGD momentum buffer (Caffe2 *_momentum)")
        if key in ("fc1000_w", "fc1000_b"):
            return Dropped("ImageNet classification layer (fc1000), not part of a detection backbone")
        if key == "conv1_w":
            return Mapped(target_prefix + "stem.conv1.weight")
        m = re.fullmatch(r"res_conv1_bn_([sb])", key)
        if m:
            return _affine_channel(target_prefix + "stem.conv1.", m.group(1))
        m = re.fullmatch(r"res(\d)_(\d+)_(branch2a|branch2b|branch2c|branch1)_(w|bn_s|bn_b)", key)
        if not m:
            return None
        stage, block, branch, kind = m.groups()
        layer_prefix = f"{target_prefix}res{stage}.{block}.{_C2_BRANCH[branch]}."
        if kind == "w":
            return Mapped(layer_prefix + "weight")
        return _affine_channel(layer_prefix, kind[-1])

    return rename
