"""vis_d2's shared model pieces.

Importing this package registers them with detectron2's registries, so that a config naming them
builds with detectron2's own builders:

- ``BACKBONE_REGISTRY``: ``build_small_resnet_backbone``, ``build_small_resnet_fpn_backbone``;
- ``ROI_HEADS_REGISTRY``: ``TrackROIHeads`` (standard box + mask heads + a track head) and
  ``CascadeTrackROIHeads`` (Cascade R-CNN + a track head);
- ``TRACK_HEAD_REGISTRY`` (ours): ``EmbeddingTrackHead``;
- ``TRACKER_REGISTRY`` (ours): ``MultiCueTracker`` (alias ``OnlineTracker``), ``IdentityTracker``,
  ``PerFrameTracker``;
- ``META_ARCH_REGISTRY``: ``OnlineVideoRCNN``.

Also here: the base online video model (:class:`OnlineVideoModel`) with its dense and slot families, the
per-frame mask encoding (:mod:`frame_masks`) and the per-video track aggregation
(:class:`VideoTrackAccumulator`) shared by every method.
"""
from .backbone import build_small_resnet_backbone, build_small_resnet_fpn_backbone
from .frame_masks import encode_frame_masks, paste_and_encode, resize_and_encode
from .meta_arch import FrameCache, OnlineDenseVideoModel, OnlineSlotVideoModel, OnlineVideoModel, OnlineVideoRCNN
from .roi_heads import CascadeTrackROIHeads, TrackBranchMixin, TrackROIHeads
from .track_aggregation import VideoTrackAccumulator, encode_mask_rle
from .track_heads import TRACK_HEAD_REGISTRY, EmbeddingTrackHead, build_track_head
from .tracker import (
    TRACKER_REGISTRY,
    BaseTracker,
    IdentityTracker,
    MultiCueTracker,
    OnlineTracker,
    PerFrameTracker,
    build_tracker,
)

__all__ = [
    "BaseTracker",
    "CascadeTrackROIHeads",
    "EmbeddingTrackHead",
    "FrameCache",
    "IdentityTracker",
    "MultiCueTracker",
    "OnlineDenseVideoModel",
    "OnlineSlotVideoModel",
    "OnlineTracker",
    "OnlineVideoModel",
    "OnlineVideoRCNN",
    "PerFrameTracker",
    "TRACKER_REGISTRY",
    "TRACK_HEAD_REGISTRY",
    "TrackBranchMixin",
    "TrackROIHeads",
    "VideoTrackAccumulator",
    "build_small_resnet_backbone",
    "build_small_resnet_fpn_backbone",
    "build_track_head",
    "build_tracker",
    "encode_frame_masks",
    "encode_mask_rle",
    "paste_and_encode",
    "resize_and_encode",
]
