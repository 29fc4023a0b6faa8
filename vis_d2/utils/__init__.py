"""Small helpers shared across vis_d2.

The names below are standard library only, so importing them stays cheap; :mod:`vis_d2.utils.rle`
(numpy + pycocotools) is imported from its module.
"""
from .annotations import is_crowd
from .atomic import atomic_write
from .errors import YTVISFormatError
from .gc import gc_paused

__all__ = ["atomic_write", "gc_paused", "is_crowd", "YTVISFormatError"]
