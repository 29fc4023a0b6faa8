"""Backbones registered in detectron2's ``BACKBONE_REGISTRY``."""
from .small_resnet import build_small_resnet_backbone, build_small_resnet_fpn_backbone

__all__ = ["build_small_resnet_backbone", "build_small_resnet_fpn_backbone"]
