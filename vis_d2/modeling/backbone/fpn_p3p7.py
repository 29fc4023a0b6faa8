"""FPN backbones with levels P3-P7 (P6 and P7 from stride-2 convolutions on P5), for one-stage heads.

YOLACT-style models (STMask) predict on P3-P7 of an FPN over C3-C5, with P6 = conv3x3/2(P5) and P7 =
conv3x3/2(P6). detectron2's RetinaNet backbone builds P6 from C5 instead; these builders use detectron2's own
``FPN`` and ``LastLevelP6P7`` with ``in_feature="p5"``.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, build_resnet_backbone
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from .small_resnet import build_small_resnet_backbone

__all__ = ["build_resnet_fpn_p3p7_backbone", "build_small_resnet_fpn_p3p7_backbone"]


def _fpn_p3p7(cfg, bottom_up) -> FPN:
    out_channels = cfg.MODEL.FPN.OUT_CHANNELS
    return FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=out_channels,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelP6P7(out_channels, out_channels, in_feature="p5"),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_p3p7_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """detectron2's ResNet + FPN over ``MODEL.FPN.IN_FEATURES`` (res3-res5) + P6/P7 from P5."""
    return _fpn_p3p7(cfg, build_resnet_backbone(cfg, input_shape))


@BACKBONE_REGISTRY.register()
def build_small_resnet_fpn_p3p7_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """The small GroupNorm ResNet of the synthetic benchmark + FPN P3-P7 (P6/P7 from P5)."""
    return _fpn_p3p7(cfg, build_small_resnet_backbone(cfg, input_shape))
