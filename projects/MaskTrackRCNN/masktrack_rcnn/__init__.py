"""MaskTrack R-CNN on vis_d2 (importable as ``vis_d2.projects.masktrack_rcnn``).

Importing it registers the "MaskTrackRCNN" meta-architecture (and, through ``vis_d2.modeling``,
``TrackROIHeads``, ``EmbeddingTrackHead`` and the small backbones) with detectron2's registries.
"""
from .config import add_masktrack_config
from .meta_arch import MaskTrackRCNN

__all__ = ["MaskTrackRCNN", "add_masktrack_config"]
