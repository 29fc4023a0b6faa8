"""R-CNN heads with a track branch, registered in detectron2's ``ROI_HEADS_REGISTRY``.

- :class:`TrackROIHeads`: ``StandardROIHeads`` + a track head (MaskTrack R-CNN, CompFeat);
- :class:`CascadeTrackROIHeads`: ``CascadeROIHeads`` + a track head on the final stage (TFA);
- :class:`TrackBranchMixin`: the track branch both share.
"""
from .cascade_track_roi_heads import CascadeTrackROIHeads
from .track_branch import TrackBranchMixin
from .track_roi_heads import TrackROIHeads

__all__ = ["CascadeTrackROIHeads", "TrackBranchMixin", "TrackROIHeads"]
