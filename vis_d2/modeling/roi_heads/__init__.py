"""R-CNN heads registered in detectron2's ``ROI_HEADS_REGISTRY``."""
from .track_roi_heads import TrackROIHeads

__all__ = ["TrackROIHeads"]
