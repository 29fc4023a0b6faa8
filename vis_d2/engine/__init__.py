"""Training and evaluation entry points (imports torch and detectron2)."""
from .launch import launch
from .trainer import VideoTrainer, inference_output_dir

__all__ = ["launch", "VideoTrainer", "inference_output_dir"]
