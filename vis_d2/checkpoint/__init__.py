"""Checkpoint reading/writing without surprises, and conversion of other codebases' weights into vis_d2 models.

- :mod:`.io`: tensors-only loading (``weights_only``), atomic writing.
- :mod:`.convert`: a rule-based renaming engine that accounts for every source and target tensor.
- :mod:`.resnet`: torchvision / mmdetection / Caffe2 ResNet names -> detectron2's ``ResNet``.
- :mod:`.mmdet_masktrack`: the official MaskTrack R-CNN release (mmdetection v0.x) -> our MaskTrack R-CNN.
"""
from .io import (
    CheckpointReadError,
    UnsafeCheckpointError,
    atomic_torch_save,
    atomic_write_text,
    load_checkpoint_file,
)

__all__ = [
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "atomic_torch_save",
    "atomic_write_text",
    "load_checkpoint_file",
]
