"""STMask on vis_d2 (importable as ``vis_d2.projects.stmask``): work in progress.

Importing it registers the "STMask" meta-architecture, the ``FCAAnchorGenerator`` and the ``STMaskTracker``:
the one-stage model (head with FCA / FCB, ProtoNet, losses, the temporal fusion in training and at inference).
Not measured on the benchmark yet (projects/STMask/README.md).
"""
from .anchors import FCAAnchorGenerator
from .box_coding import decode_boxes, encode_boxes
from .calibration import FCB_MODES, FeatureCalibration, aligned_offsets, sampled_deform_conv2d
from .config import add_stmask_config
from .correlation import local_correlation
from .head import ProtoNet, STMaskHead
from .meta_arch import STMask, fast_nms, stmask_match_scores
from .temporal import TemporalFusion
from .tracker import STMaskTracker

__all__ = [
    "FCAAnchorGenerator",
    "FCB_MODES",
    "FeatureCalibration",
    "ProtoNet",
    "STMask",
    "STMaskHead",
    "STMaskTracker",
    "TemporalFusion",
    "add_stmask_config",
    "aligned_offsets",
    "decode_boxes",
    "encode_boxes",
    "fast_nms",
    "local_correlation",
    "sampled_deform_conv2d",
    "stmask_match_scores",
]
