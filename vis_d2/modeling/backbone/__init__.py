"""Backbones registered in detectron2's ``BACKBONE_REGISTRY``."""
from .fpn_p3p7 import build_resnet_fpn_p3p7_backbone, build_small_resnet_fpn_p3p7_backbone
from .small_resnet import build_small_resnet_backbone, build_small_resnet_fpn_backbone

__all__ = [
    "build_resnet_fpn_p3p7_backbone",
    "build_small_resnet_backbone",
    "build_small_resnet_fpn_backbone",
    "build_small_resnet_fpn_p3p7_backbone",
]
