"""Rules about annotation dicts shared by the loader, the sampler, the mappers and the evaluation."""
from typing import Mapping

__all__ = ["is_crowd"]


def is_crowd(annotation: Mapping) -> bool:
    """Whether an annotation (a json track or a per-frame instance dict) is a crowd region.

    A missing or null ``iscrowd`` means not crowd: OVIS and user datasets may leave it out, and the
    official YouTube-VIS files always write 0 or 1.
    """
    return bool(annotation.get("iscrowd") or 0)
