"""MaskTrack R-CNN's config keys.

MaskTrack R-CNN needs no key beyond detectron2's and vis_d2's shared blocks (``MODEL.TRACK_HEAD``
for the tracking branch, ``MODEL.TRACKER`` for the online matching, ``INPUT.SAMPLING_*`` for the
reference frame), so this only makes sure those are present; it exists so that every method package
offers the same ``add_<method>_config(cfg)`` entry point.
"""
from vis_d2.config import add_vis_config

__all__ = ["add_masktrack_config"]


def add_masktrack_config(cfg):
    """Add the keys MaskTrack R-CNN configs use to a detectron2 config, in place. Idempotent."""
    add_vis_config(cfg)
