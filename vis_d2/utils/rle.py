"""Mask encodings of the YouTube-VIS format, converted one way everywhere.

A frame's mask in a YouTube-VIS json is ``null``, polygons (a list of ``[x1, y1, x2, y2, ...]``), an
uncompressed RLE (``{"size": [h, w], "counts": [int, ...]}``, the official train files) or a compressed
RLE (``counts`` a string; what models and results files use). Everything downstream in vis_d2 works on
compressed RLE with ``counts`` as ``str`` (json cannot hold bytes); these helpers are the only place that
converts, so the loader, the evaluation and the tools agree mask for mask. Conversions go through
pycocotools, as the official code does (cv2 rasterises polygons differently).

Needs numpy and pycocotools only (no torch): the evaluation CLI uses it.
"""
from typing import List, Optional, Sequence

import numpy as np
from pycocotools import mask as mask_util

__all__ = [
    "rle_counts_to_str",
    "check_rle",
    "polygons_to_rle",
    "compress_rles",
    "segmentation_to_rle",
    "segmentation_to_mask",
]


def rle_counts_to_str(rle: dict) -> dict:
    """``{"size": [h, w], "counts": str}`` from a compressed RLE with str or bytes counts.

    pycocotools returns bytes counts (and may be given numpy sizes); json and our interfaces want str
    counts and plain int sizes. Always a new dict, so the caller's is never changed.
    """
    counts = rle["counts"]
    if isinstance(counts, bytes):
        counts = counts.decode("ascii")
    h, w = rle["size"]
    return {"size": [int(h), int(w)], "counts": counts}


def check_rle(segm: dict, height: int, width: int) -> None:
    """Check an RLE dict against its video's size.

    Uncompressed runs must cover the image exactly: pycocotools would otherwise read past its buffer
    (longer runs) or give a mask with a silent hole (shorter ones).

    Raises:
        ValueError: with a short problem statement (callers add where it happened).
    """
    size, counts = segm.get("size"), segm.get("counts")
    if size is None or counts is None:
        raise ValueError("RLE needs 'size' and 'counts'")
    if not isinstance(size, (list, tuple)) or len(size) != 2 or size[0] != height or size[1] != width:
        raise ValueError(f"RLE size {size} does not match the video's [height, width] {[height, width]}")
    if isinstance(counts, list):
        try:  # sum() alone: a check per count would cost more than the compression
            total = sum(counts)
        except TypeError:
            raise ValueError("uncompressed RLE counts must be integers") from None
        if total != height * width:
            raise ValueError(f"uncompressed RLE counts sum to {total}, not height*width {height * width}")
    elif not isinstance(counts, (str, bytes)):
        raise ValueError(f"RLE 'counts' must be a list of ints or a string, not {type(counts).__name__}")


def polygons_to_rle(polygons: Sequence[Sequence[float]], height: int, width: int) -> dict:
    """Polygons of one mask -> one compressed RLE (str counts), rasterised by pycocotools and merged.

    Note that pycocotools (and so the official evaluation) reads a first polygon of exactly 4 numbers as a
    box ``[x, y, w, h]``; the training loader drops polygons of fewer than 3 points before calling this.

    Raises:
        ValueError: if pycocotools cannot rasterise them.
    """
    try:
        return rle_counts_to_str(mask_util.merge(mask_util.frPyObjects(list(polygons), height, width)))
    except Exception as e:  # pycocotools raises assorted types on malformed polygons
        raise ValueError(f"cannot rasterise polygon ({e})") from None


def compress_rles(uncompressed: List[dict]) -> List[dict]:
    """Many checked uncompressed RLEs (each with its own size) -> compressed RLEs (str counts), one C call.

    One call for many masks: a call per mask costs more than the compression itself.
    """
    if not uncompressed:
        return []
    # frPyObjects reads each dict's own size; the h, w arguments are unused for RLE dicts.
    return [rle_counts_to_str(r) for r in mask_util.frPyObjects(list(uncompressed), 0, 0)]


def segmentation_to_rle(segm, height: int, width: int) -> Optional[dict]:
    """One frame's mask in any YouTube-VIS form -> compressed RLE (str counts), or None where absent.

    Absent means null or empty (``[]``, ``{}``), as the official evaluation reads it.

    Raises:
        ValueError: on a malformed mask, with a short problem statement.
    """
    if not segm:
        return None
    if isinstance(segm, list):
        if not all(isinstance(p, list) and p and all(_is_number(x) for x in p) for p in segm):
            raise ValueError("polygons must be a list of lists of numbers")
        return polygons_to_rle(segm, height, width)
    if isinstance(segm, dict):
        check_rle(segm, height, width)
        if isinstance(segm["counts"], list):
            return compress_rles([segm])[0]
        return rle_counts_to_str(segm)
    raise ValueError(f"segmentation must be null, polygons or RLE, got {type(segm).__name__}")


def segmentation_to_mask(segm, height: int, width: int) -> Optional[np.ndarray]:
    """One frame's mask in any YouTube-VIS form -> ``(height, width)`` bool array, or None where absent."""
    rle = segmentation_to_rle(segm, height, width)
    if rle is None:
        return None
    return mask_util.decode(rle).astype(bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)
