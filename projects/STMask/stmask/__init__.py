"""STMask on vis_d2 (importable as ``vis_d2.projects.stmask``): work in progress.

Built so far: FCA anchors (registered as ``FCAAnchorGenerator`` in detectron2's anchor generator registry),
the box coding, FCB (adaptive and aligned) and the temporal fusion's local correlation. The one-stage model
that assembles them is not built yet (projects/STMask/README.md).
"""
from .anchors import FCAAnchorGenerator
from .box_coding import decode_boxes, encode_boxes
from .calibration import FCB_MODES, FeatureCalibration, aligned_offsets
from .config import add_stmask_config
from .correlation import local_correlation

__all__ = [
    "FCAAnchorGenerator",
    "FCB_MODES",
    "FeatureCalibration",
    "add_stmask_config",
    "aligned_offsets",
    "decode_boxes",
    "encode_boxes",
    "local_correlation",
]
