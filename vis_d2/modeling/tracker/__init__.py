"""Online trackers (``TRACKER_REGISTRY``, chosen by ``MODEL.TRACKER.NAME``) shared by every vis_d2 method.

- ``MultiCueTracker`` (default; also importable as ``OnlineTracker``): MaskTrack R-CNN's matching of
  appearance, score, box IoU and class (+ TFA's mask IoU) against a memory of tracks: MaskTrack R-CNN,
  TFA and CompFeat (with its correlation head as the appearance score); STMask's matching (cosine
  appearance, shifted memory masks) will be a subclass of it.
- ``IdentityTracker``: track id = the id the model assigned (query / slot models: HITF).
- ``PerFrameTracker``: no association (the detector-only baseline).
"""
from .build import TRACKER_REGISTRY, BaseTracker, MatchScores, build_tracker
from .memory import TrackMemory
from .multi_cue import MultiCueTracker, OnlineTracker, pairwise_mask_iou
from .simple import IdentityTracker, PerFrameTracker

__all__ = [
    "TRACKER_REGISTRY",
    "BaseTracker",
    "IdentityTracker",
    "MatchScores",
    "MultiCueTracker",
    "OnlineTracker",
    "PerFrameTracker",
    "TrackMemory",
    "build_tracker",
    "pairwise_mask_iou",
]
