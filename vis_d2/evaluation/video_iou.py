"""Spatio-temporal mask IoU between predicted and ground-truth tracks, batched per frame.

The YouTube-VIS IoU of a prediction track D and a ground-truth track G (Yang et al., "Video Instance
Segmentation", ICCV 2019, section 5) sums over the frames t of the video::

    IoU(D, G) = sum_t |D_t & G_t| / sum_t |D_t | G_t|      (0 when the union is empty)

where a null (absent) frame is an empty mask. Since ``|D_t | G_t| = |D_t| + |G_t| - |D_t & G_t|``, the
total union is ``A_D + A_G - I`` with ``A`` the summed per-frame areas, so only the per-frame
intersections are needed. The official code merges every pair in every frame in Python; here one
pycocotools ``iou`` call (C) per frame covers all the pairs of that frame, and the integer
intersection is recovered exactly from the IoU and the two areas:
``i = round(iou * (a_d + a_g) / (1 + iou))`` (because ``iou = i / (a_d + a_g - i)``; the float error is
far below 0.5 for any mask that fits in memory). All sums are integers held in float64, hence exact.
Track pairs whose IoU provably stays below the lowest matching threshold, judged from areas alone, are
not intersected at all (:func:`cell_intersections`, ``min_iou``).
"""
import itertools
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_util

__all__ = ["MaskOccurrences", "collect_occurrences", "cell_intersections", "track_iou"]

# RLEs per pycocotools area() call: pycocotools <= 2.0.11 builds a uint8 array holding the count, which
# overflows under numpy 2 for more than 255 masks; small chunks also bound the decoded-counts memory.
_AREA_CHUNK = 255


@dataclass
class MaskOccurrences:
    """The present (non-null) per-frame masks of a set of tracks, sorted by cell.

    A cell is one (frame, category) pair: ``cell = (frame_offset[video] + t) * num_categories + category``,
    so only masks of the same video, frame and category share a cell.

    Attributes:
        track: ``(M,)`` int64 index of the track each mask belongs to.
        cell: ``(M,)`` int64 cell key, ascending (ties keep track order).
        areas: ``(M,)`` float64 pixel areas (integers).
        source: ``(M,)`` int64 index of each mask in ``rles``.
        rles: the ``M`` compressed RLE dicts in track order (not re-sorted: moving half a million Python
            references costs more than picking the few that are needed).
    """

    track: np.ndarray
    cell: np.ndarray
    areas: np.ndarray
    source: np.ndarray
    rles: List[dict]

    def area_per_track(self, num_tracks: int) -> np.ndarray:
        """``(num_tracks,)`` float64: summed area over the frames (exact integer sums)."""
        return np.bincount(self.track, weights=self.areas, minlength=num_tracks).astype(np.float64)

    def nonzero_frames_per_track(self, num_tracks: int) -> np.ndarray:
        """``(num_tracks,)`` int64: number of frames with a non-empty mask."""
        return np.bincount(self.track[self.areas > 0], minlength=num_tracks)


def _areas(rles: List[dict]) -> np.ndarray:
    out = np.empty(len(rles), dtype=np.float64)
    for s in range(0, len(rles), _AREA_CHUNK):
        chunk = rles[s : s + _AREA_CHUNK]
        out[s : s + len(chunk)] = mask_util.area(chunk)
    return out


def collect_occurrences(
    segmentations: List[list], frame_offset: np.ndarray, category: np.ndarray, num_categories: int
) -> MaskOccurrences:
    """Flatten tracks into their present masks, sorted by (frame, category) cell.

    Args:
        segmentations: N tracks, each ``[RLE dict | None] * length``; a frame is present when its entry
            is truthy (as upstream).
        frame_offset: ``(N,)`` int64 global index of each track's first frame (its video's offset).
        category: ``(N,)`` int64 category index of each track.
        num_categories: K.
    """
    present = [[t for t, s in enumerate(segs) if s] for segs in segmentations]
    counts = np.fromiter(map(len, present), dtype=np.int64, count=len(present))
    track = np.repeat(np.arange(len(present), dtype=np.int64), counts)
    t = np.fromiter(itertools.chain.from_iterable(present), dtype=np.int64, count=int(counts.sum()))
    cell = (np.asarray(frame_offset, dtype=np.int64)[track] + t) * num_categories + np.asarray(category)[track]
    order = np.argsort(cell, kind="stable")
    rles = [segs[t] for segs, ts in zip(segmentations, present) for t in ts]
    return MaskOccurrences(track=track[order], cell=cell[order], areas=_areas(rles)[order], source=order, rles=rles)


def _blocks(start: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Concatenation of the index ranges ``start[c] + arange(count[c])``."""
    return np.repeat(start, count) + np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)


def _block_pairs(first_a, count_a, first_b, count_b):
    """Every (a, b) of each block c: a in first_a[c] + range(count_a[c]), b likewise; row-major per block."""
    npair = count_a * count_b
    block = np.repeat(np.arange(len(npair)), npair)
    p = np.arange(int(npair.sum())) - np.repeat(np.cumsum(npair) - npair, npair)
    nb = count_b[block]
    return first_a[block] + p // nb, first_b[block] + p % nb


def _shared_cells(dt: MaskOccurrences, dkeep: np.ndarray, gt: MaskOccurrences, gkeep: np.ndarray):
    """Cells holding masks of both sets: per cell, (first, count) in ``dkeep`` and in ``gkeep``."""
    d_cells, d_first, d_count = np.unique(dt.cell[dkeep], return_index=True, return_counts=True)
    g_cells, g_first, g_count = np.unique(gt.cell[gkeep], return_index=True, return_counts=True)
    _, di, gi = np.intersect1d(d_cells, g_cells, assume_unique=True, return_indices=True)
    return d_first[di], d_count[di], g_first[gi], g_count[gi]


def _may_reach(dt, gt, d_occ, g_occ, dt_track_area, gt_track_area, min_iou):
    """Per mask pair: can its track pair reach ``min_iou``? Decided from areas alone (no mask decoding).

    With M = sum over shared frames of min(|D_t|, |G_t|) >= I, the IoU I / (A_d + A_g - I) is at most
    M / (A_d + A_g - M): a track pair whose bound is below ``min_iou`` never matches at a threshold
    >= ``min_iou``, so its intersections need not be computed (a margin keeps rounding on the safe side).
    """
    num_gt = len(gt_track_area)
    key = dt.track[d_occ] * num_gt + gt.track[g_occ]
    ukey, inv = np.unique(key, return_inverse=True)
    bound = np.bincount(inv, weights=np.minimum(dt.areas[d_occ], gt.areas[g_occ]))
    total = dt_track_area[ukey // num_gt] + gt_track_area[ukey % num_gt]
    return (bound * (1.0 + min_iou) >= min_iou * total * (1.0 - 1e-9))[inv]


def cell_intersections(
    dt: MaskOccurrences,
    gt: MaskOccurrences,
    num_categories: int,
    dt_track_area: Optional[np.ndarray] = None,
    gt_track_area: Optional[np.ndarray] = None,
    min_iou: float = 0.0,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel intersections of (prediction mask, GT mask) pairs that share a cell.

    Args:
        dt, gt: the masks of the predicted and the ground-truth tracks.
        num_categories: K of the cell keys (``cell // K`` is the frame).
        dt_track_area, gt_track_area: summed areas per track; needed when ``min_iou > 0``.
        min_iou: skip track pairs whose IoU provably stays below this (see :func:`_may_reach`); callers
            that only compare IoUs with thresholds >= ``min_iou`` get the same decisions, cheaper.

    Returns:
        dt_track, gt_track, intersection: ``(P,)`` arrays, one entry per overlapping pair and frame
        (pairs with an empty intersection are dropped); ``intersection`` is float64 holding integers.
    """
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64))
    # empty masks intersect nothing: leave them out of the C calls
    dkeep, gkeep = np.flatnonzero(dt.areas > 0), np.flatnonzero(gt.areas > 0)
    d_first, d_count, g_first, g_count = _shared_cells(dt, dkeep, gt, gkeep)
    if len(d_first) == 0:
        return empty
    if min_iou > 0:
        pa, pb = _block_pairs(d_first, d_count, g_first, g_count)
        ok = _may_reach(dt, gt, dkeep[pa], gkeep[pb], dt_track_area, gt_track_area, min_iou)
        dkeep, gkeep = dkeep[np.unique(pa[ok])], gkeep[np.unique(pb[ok])]  # still sorted by cell
        d_first, d_count, g_first, g_count = _shared_cells(dt, dkeep, gt, gkeep)
        if len(d_first) == 0:
            return empty

    # One C call per frame covers the shared cells of all its categories (fewer calls; the few
    # cross-category pairs are computed and dropped). Masks of the shared cells, frame after frame:
    d_occ, g_occ = dkeep[_blocks(d_first, d_count)], gkeep[_blocks(g_first, g_count)]
    d_rles = [dt.rles[j] for j in dt.source[d_occ].tolist()]
    g_rles = [gt.rles[j] for j in gt.source[g_occ].tolist()]
    _, d_at, d_num = np.unique(dt.cell[d_occ] // num_categories, return_index=True, return_counts=True)
    _, g_at, g_num = np.unique(gt.cell[g_occ] // num_categories, return_index=True, return_counts=True)

    not_crowd = np.zeros(int(g_num.max()), dtype=np.uint8)  # plain IoU also for crowd GT (official quirk)
    ious = [
        mask_util.iou(d_rles[a : a + na], g_rles[b : b + nb], not_crowd[:nb]).ravel(order="C")
        for a, na, b, nb in zip(d_at.tolist(), d_num.tolist(), g_at.tolist(), g_num.tolist())
    ]
    iou = np.concatenate(ious)
    pa, pb = _block_pairs(d_at, d_num, g_at, g_num)  # iou() returns (nd, ng): row-major order
    d_occ, g_occ = d_occ[pa], g_occ[pb]
    hit = (iou > 0) & (dt.cell[d_occ] == gt.cell[g_occ])
    iou, d_occ, g_occ = iou[hit], d_occ[hit], g_occ[hit]
    inter = np.rint(iou * (dt.areas[d_occ] + gt.areas[g_occ]) / (1.0 + iou))
    return dt.track[d_occ], gt.track[g_occ], inter


def track_iou(intersection: np.ndarray, area_dt: np.ndarray, area_gt: np.ndarray) -> np.ndarray:
    """Spatio-temporal IoU from summed intersections and summed track areas (all float64 integers).

    Returns ``I / (A_d + A_g - I)``, and 0 where the union is empty (the official convention).
    """
    intersection = np.asarray(intersection, dtype=np.float64)
    union = area_dt + area_gt - intersection
    out = np.zeros(intersection.shape, dtype=np.float64)
    np.divide(intersection, union, out=out, where=union > 0)
    return out
