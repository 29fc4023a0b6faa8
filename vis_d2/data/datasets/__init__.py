"""Video datasets in the YouTube-VIS json format; importing this package registers the builtin ones."""
from .ytvis import (
    CorruptFrameError,
    MissingFrameError,
    YTVISFormatError,
    load_ytvis_json,
    register_ytvis_instances,
)
from . import builtin as _builtin  # noqa: F401  (registers ytvis_2019_*, ytvis_2021_*, ovis_*, synth_vis_*)
from .builtin import register_all_ytvis

__all__ = [
    "CorruptFrameError",
    "MissingFrameError",
    "YTVISFormatError",
    "load_ytvis_json",
    "register_all_ytvis",
    "register_ytvis_instances",
]
