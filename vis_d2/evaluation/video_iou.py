"""Spatio-temporal mask IoU between predicted and ground-truth tracks, batched over (frame, category) cells.

The YouTube-VIS IoU of a prediction track D and a ground-truth track G (Yang et al., "Video Instance
Segmentation", ICCV 2019, section 5) sums over the frames t of the video::

    IoU(D, G) = sum_t |D_t & G_t| / sum_t |D_t | G_t|      (0 when the union is empty)

where a null (absent) frame is an empty mask. Since ``|D_t | G_t| = |D_t| + |G_t| - |D_t & G_t|``, the
total union is ``A_D + A_G - I`` with ``A`` the summed per-frame areas, so only the per-frame
intersections are needed. The official code merges every pair in every frame in Python; here one
pycocotools ``iou`` call (C) covers the same-cell pairs of many cells (:func:`cell_intersections`), and
the integer intersection is recovered exactly from the IoU and the two areas:
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
# Mask pairs per pycocotools iou() call when consecutive cells share one (see cell_intersections):
# pairs across cells only cost a bounding-box and a size comparison each, so a call can hold many.
_PAIRS_PER_CALL = 2000


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
    # C-level passes (chain / map / compress) over the million frames of a large file, no Python loop
    lengths = np.fromiter(map(len, segmentations), dtype=np.int64, count=len(segmentations))
    flat = list(itertools.chain.from_iterable(segmentations))
    pos = np.flatnonzero(np.fromiter(map(bool, flat), dtype=bool, count=len(flat)))
    track = np.repeat(np.arange(len(segmentations), dtype=np.int64), lengths)[pos]
    t = pos - (np.cumsum(lengths) - lengths)[track]
    cell = (np.asarray(frame_offset, dtype=np.int64)[track] + t) * num_categories + np.asarray(category)[track]
    order = np.argsort(cell, kind="stable")
    rles = list(itertools.compress(flat, flat))
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

    # Masks of the shared cells, cell after cell, and every same-cell (prediction, GT) mask pair.
    d_occ, g_occ = dkeep[_blocks(d_first, d_count)], gkeep[_blocks(g_first, g_count)]
    d_at, g_at = np.cumsum(d_count) - d_count, np.cumsum(g_count) - g_count
    pa, pb = _block_pairs(d_at, d_count, g_at, g_count)  # indices into d_occ / g_occ

    # A pycocotools iou() call per cell would cost ~60 us of Python-side overhead each, more than its C
    # work, so consecutive cells share a call. iou() computes every pair it is given, but compares the
    # declared sizes first: declaring the masks of the k-th cell of a call as [h, w + k * 2**20] makes
    # every pair across cells a size mismatch, skipped in C before any run is merged. For a non-empty
    # mask the declared width is read nowhere else (its bounding box comes from h and the runs), so the
    # same-cell pairs get their exact IoU.
    bounds = _merge_blocks(d_count, g_count, _PAIRS_PER_CALL)
    cell_call = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    cell_slot = np.arange(len(d_count)) - bounds[cell_call]
    d_call_at, g_call_at = d_at[bounds[:-1]], g_at[bounds[:-1]]
    d_call_num = np.add.reduceat(d_count, bounds[:-1])
    g_call_num = np.add.reduceat(g_count, bounds[:-1])
    d_rles = _with_slots(dt, d_occ, np.repeat(cell_slot, d_count))
    g_rles = _with_slots(gt, g_occ, np.repeat(cell_slot, g_count))
    # position of each pair in its call's (nd, ng) result, read in memory (Fortran) order
    pair_call = np.repeat(cell_call, d_count * g_count)
    flat = (pb - g_call_at[pair_call]) * d_call_num[pair_call] + (pa - d_call_at[pair_call])
    pair_bounds = np.searchsorted(pair_call, np.arange(len(d_call_at) + 1))

    not_crowd = np.zeros(int(g_call_num.max()), dtype=np.uint8)  # plain IoU also for crowd GT (official quirk)
    ious = [
        mask_util.iou(d_rles[a : a + na], g_rles[b : b + nb], not_crowd[:nb]).ravel(order="F")[flat[p0:p1]]
        for a, na, b, nb, p0, p1 in zip(
            d_call_at.tolist(), d_call_num.tolist(), g_call_at.tolist(), g_call_num.tolist(),
            pair_bounds[:-1].tolist(), pair_bounds[1:].tolist(),
        )
    ]  # fmt: skip
    iou = np.concatenate(ious)
    hit = iou > 0
    iou, d_occ, g_occ = iou[hit], d_occ[pa[hit]], g_occ[pb[hit]]
    inter = np.rint(iou * (dt.areas[d_occ] + gt.areas[g_occ]) / (1.0 + iou))
    return dt.track[d_occ], gt.track[g_occ], inter


def _with_slots(occ: MaskOccurrences, idx: np.ndarray, slot: np.ndarray) -> List[dict]:
    """The RLEs of masks ``idx``, those of slot k > 0 re-declared as ``[h, w + k * 2**20]`` (same runs).

    Widths are below 2**20, so two masks share a declared size only if they share the slot (and hence the
    cell, and the video's true size): pycocotools never merges runs of masks of different true sizes.
    """
    rles = [occ.rles[j] for j in occ.source[idx].tolist()]
    return [
        r if k == 0 else {"size": [r["size"][0], r["size"][1] + (k << 20)], "counts": r["counts"]}
        for r, k in zip(rles, slot.tolist())
    ]


def _merge_blocks(d_num: np.ndarray, g_num: np.ndarray, max_pairs: int) -> np.ndarray:
    """Greedy runs of consecutive blocks whose merged pair count (sum d) x (sum g) stays <= ``max_pairs``.

    Returns:
        ``(G + 1,)`` int64 boundaries: run i is blocks ``[b[i], b[i + 1])`` (a block over budget alone).
    """
    bounds, sd, sg = [0], 0, 0
    for f, (nd, ng) in enumerate(zip(d_num.tolist(), g_num.tolist())):
        if f > bounds[-1] and (sd + nd) * (sg + ng) > max_pairs:
            bounds.append(f)
            sd, sg = 0, 0
        sd, sg = sd + nd, sg + ng
    bounds.append(len(d_num))
    return np.array(bounds, dtype=np.int64)


def track_iou(intersection: np.ndarray, area_dt: np.ndarray, area_gt: np.ndarray) -> np.ndarray:
    """Spatio-temporal IoU from summed intersections and summed track areas (all float64 integers).

    Returns ``I / (A_d + A_g - I)``, and 0 where the union is empty (the official convention).
    """
    intersection = np.asarray(intersection, dtype=np.float64)
    union = area_dt + area_gt - intersection
    out = np.zeros(intersection.shape, dtype=np.float64)
    np.divide(intersection, union, out=out, where=union > 0)
    return out
