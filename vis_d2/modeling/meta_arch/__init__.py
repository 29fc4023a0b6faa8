"""Video meta-architectures: the base online video model and its three families.

- :class:`OnlineVideoModel`: backbone, clip batching, the one temporal hook and the online inference loop.
- :class:`OnlineVideoRCNN` (registered in ``META_ARCH_REGISTRY``): RPN + R-CNN heads with a track branch;
  MaskTrack R-CNN, TFA (with :class:`CascadeTrackROIHeads`) and CompFeat build on it.
- :class:`OnlineDenseVideoModel`: a dense one-stage head; STMask will build on it.
- :class:`OnlineSlotVideoModel`: slots whose index is the identity; HITF will build on it.
"""
from .clip_frames import FrameBatch, clip_frame_slots, split_frame_batches
from .frame_cache import FrameCache
from .online_dense_model import OnlineDenseVideoModel
from .online_slot_model import OnlineSlotVideoModel, slots_to_detections
from .online_video_model import OnlineVideoModel, rescale_boxes
from .online_video_rcnn import OnlineVideoRCNN

__all__ = [
    "FrameBatch",
    "FrameCache",
    "OnlineDenseVideoModel",
    "OnlineSlotVideoModel",
    "OnlineVideoModel",
    "OnlineVideoRCNN",
    "clip_frame_slots",
    "rescale_boxes",
    "slots_to_detections",
    "split_frame_batches",
]
