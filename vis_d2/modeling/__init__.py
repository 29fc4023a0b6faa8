"""vis_d2's shared model pieces.

Importing this package registers them with detectron2's registries, so that a config naming them
builds with detectron2's own builders:

- ``BACKBONE_REGISTRY``: ``build_small_resnet_backbone``, ``build_small_resnet_fpn_backbone``;
- ``ROI_HEADS_REGISTRY``: ``TrackROIHeads`` (standard box + mask heads + a track head);
- ``TRACK_HEAD_REGISTRY`` (ours): ``EmbeddingTrackHead``;
- ``META_ARCH_REGISTRY``: ``OnlineVideoRCNN`` (the base of the video methods).

Also here: the online tracker (:class:`OnlineTracker`) and the per-video track aggregation
(:class:`VideoTrackAccumulator`) shared by every method.
"""
from .backbone import build_small_resnet_backbone, build_small_resnet_fpn_backbone
from .meta_arch import OnlineVideoRCNN
from .roi_heads import TrackROIHeads
from .track_aggregation import VideoTrackAccumulator, encode_mask_rle, paste_and_encode
from .track_heads import TRACK_HEAD_REGISTRY, EmbeddingTrackHead, build_track_head
from .tracker import OnlineTracker

__all__ = [
    "EmbeddingTrackHead",
    "OnlineTracker",
    "OnlineVideoRCNN",
    "TRACK_HEAD_REGISTRY",
    "TrackROIHeads",
    "VideoTrackAccumulator",
    "build_small_resnet_backbone",
    "build_small_resnet_fpn_backbone",
    "build_track_head",
    "encode_mask_rle",
    "paste_and_encode",
]
