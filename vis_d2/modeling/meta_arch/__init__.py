"""Video meta-architectures registered in detectron2's ``META_ARCH_REGISTRY``."""
from .clip_frames import FrameBatch, clip_frame_slots, split_frame_batches
from .online_video_rcnn import OnlineVideoRCNN

__all__ = ["FrameBatch", "OnlineVideoRCNN", "clip_frame_slots", "split_frame_batches"]
