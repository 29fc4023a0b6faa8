"""Training and evaluation entry points (imports torch and detectron2)."""
from .checkpoint import VideoCheckpointer
from .defaults import ConfigError, build_config
from .launch import launch
from .loss_guard import NonFiniteLossError, attach_loss_guard
from .trainer import VideoTrainer, inference_output_dir

__all__ = [
    "launch",
    "VideoTrainer",
    "VideoCheckpointer",
    "inference_output_dir",
    "ConfigError",
    "build_config",
    "NonFiniteLossError",
    "attach_loss_guard",
]
