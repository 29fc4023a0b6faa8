"""The checkpoint formats ``tools/convert_checkpoint.py`` reads, and what each converts into.

==================== ============================================== ===========================================
format               source                                         fills (default scope)
==================== ============================================== ===========================================
``masktrack-mmdet``  the official MaskTrack R-CNN release            the whole model (every key)
                     (mmdetection v0.x ``state_dict``)
``torchvision``      a torchvision ResNet (``resnet50-*.pth``) or    the ResNet (``backbone.bottom_up.``)
                     the ``backbone.*`` of an mmdetection model
``detectron2``       detectron2 model zoo / trainer checkpoints      the ResNet, plus the FPN when the source
                     (``.pkl`` / ``.pth``, detectron2 names) or      has one (``--scope`` widens it, e.g. to
                     Caffe2 / MSRA ImageNet ``.pkl`` (``res2_0_...``)  the detection heads)
==================== ============================================== ===========================================
"""
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from .convert import Conversion, ConversionError, Dropped, Mapped, RenameResult, convert_state_dict, to_tensor_dict
from .io import load_checkpoint_file
from .mmdet_masktrack import MASKTRACK_CLASS_LAYERS, MASKTRACK_MMDET_OVERRIDES, masktrack_mmdet_rename
from .resnet import PYTORCH_STYLE_OVERRIDES, caffe2_resnet_rename, torchvision_resnet_rename

__all__ = ["FORMATS", "resnet_prefix", "source_state_dict", "convert_checkpoint"]

FORMATS = ("masktrack-mmdet", "torchvision", "detectron2")
_CAFFE2_KEY = re.compile(r"(conv1_w|res_conv1_bn_[sb]|res\d_\d+_branch.*|fc1000_[wb])")


def resnet_prefix(target_shapes: Mapping) -> str:
    """Where detectron2's ResNet sits in the target (e.g. ``backbone.bottom_up.``)."""
    for key in target_shapes:
        if key.endswith("stem.conv1.weight"):
            return key[: -len("stem.conv1.weight")]
    raise ConversionError("the model has no detectron2 ResNet (stem, res2..res5) to convert a backbone into")


def source_state_dict(data, fmt: str) -> Tuple[Dict, List[str]]:
    """The weights inside a loaded checkpoint, and notes on what else the file held (not converted)."""
    if not isinstance(data, Mapping):
        raise ConversionError(f"the file holds a {type(data).__name__}, not a dict of weights")
    for container in ("state_dict", "model", "blobs", "model_state"):  # mmcv, detectron2, Caffe2, pycls
        if container in data and isinstance(data[container], Mapping):
            others = sorted(k for k in data if k != container)
            notes = [f"not converted: the file's other entries {others} (training state / metadata)"] if others else []
            return dict(data[container]), notes
    return dict(data), []


def _detectron2_rename(source_keys, target_shapes) -> callable:
    prefix = resnet_prefix(target_shapes)
    caffe2 = caffe2_resnet_rename(prefix)
    is_caffe2 = any(_CAFFE2_KEY.fullmatch(k) for k in source_keys)

    def rename(key: str) -> RenameResult:
        if is_caffe2:
            return caffe2(key)
        if key in ("pixel_mean", "pixel_std"):
            return Dropped("input normalisation (MODEL.PIXEL_MEAN / PIXEL_STD come from the config)")
        if "anchor_generator.cell_anchors" in key:
            return Dropped("anchor buffers (recomputed from MODEL.ANCHOR_GENERATOR)")
        if key.endswith("num_batches_tracked") and key not in target_shapes:
            return Dropped("BatchNorm's update counter (num_batches_tracked); the model's norm has none")
        if re.match(r"(stem|res[2-5])\.", key):  # a bare detectron2 ResNet
            return Mapped(prefix + key)
        return Mapped(key)  # detectron2 names: the same key in our model (reported if absent)

    return rename


def convert_checkpoint(
    path: str,
    fmt: str,
    target_shapes: Mapping[str, Sequence[int]],
    *,
    allow_pickle: bool = False,
    scope: Optional[Sequence[str]] = None,
    allow_missing: Sequence[str] = (),
    drop_class_layers: bool = False,
) -> Tuple[Conversion, List[str], List[str]]:
    """Read ``path`` (format ``fmt``) and convert it into ``target_shapes``' keys.

    Args:
        path: the source checkpoint file.
        fmt: one of :data:`FORMATS`.
        target_shapes: the target model's state dict key -> shape.
        allow_pickle: permit a full unpickling of the source (runs code named in it).
        scope: target key prefixes to fill (default: the format's, see the module docstring).
        allow_missing: target key prefixes in scope that may stay unfilled.
        drop_class_layers: leave class-dependent layers (box classifier / regressor, mask predictor) to
            initialisation when their shape does not fit (another number of classes) instead of failing.

    Returns:
        The :class:`Conversion` (not yet checked: call ``raise_if_incomplete``), the config overrides the
        converted weights need (``[KEY, VALUE, ...]``), and notes on the source.
    """
    if fmt not in FORMATS:
        raise ConversionError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    source, notes = source_state_dict(load_checkpoint_file(path, allow_pickle=allow_pickle), fmt)
    source = to_tensor_dict(source)
    init_on_mismatch = MASKTRACK_CLASS_LAYERS if drop_class_layers else ()
    if fmt == "masktrack-mmdet":
        rename, default_scope, overrides = masktrack_mmdet_rename(target_shapes), ("",), MASKTRACK_MMDET_OVERRIDES
    elif fmt == "torchvision":
        # mmdetection checkpoints name their ResNet "backbone.<torchvision name>"
        src_prefix = "backbone." if any(k.startswith("backbone.layer") for k in source) else ""
        prefix = resnet_prefix(target_shapes)
        rename = torchvision_resnet_rename(src_prefix, prefix, target_shapes)
        default_scope, overrides = (prefix,), PYTORCH_STYLE_OVERRIDES
    else:
        rename = _detectron2_rename(list(source), target_shapes)
        has_fpn = any(k.startswith("backbone.fpn_") for k in source)
        default_scope, overrides = ("backbone.",) if has_fpn else (resnet_prefix(target_shapes),), []
    conversion = convert_state_dict(
        source, rename, target_shapes, scope=tuple(scope) if scope else default_scope,
        allow_missing=allow_missing, init_on_mismatch=init_on_mismatch,
    )
    return conversion, list(overrides), notes
