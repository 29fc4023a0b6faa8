"""Precision/recall accumulation and the 12-number summary of the YouTube-VIS evaluation.

Same definitions as COCO / youtubevos ``accumulate`` + ``summarize``: per category, area range and
maxDets, the predictions of all videos are ranked by score (stable: ties by ascending video id, then by
their order in the results file), precision is made monotone from the right and read at the 101 recall
thresholds (0 past the last recall reached); recall is the last recall reached. A category without
non-ignored ground truth keeps -1 and is left out of every mean.
"""
from typing import Tuple

import numpy as np

from .params import AREA_LABELS, IOU_THRESHOLDS, MAX_DETS, METRIC_KEYS, RECALL_THRESHOLDS

__all__ = ["accumulate", "summarize", "per_category_ap", "stats_to_percent"]


def accumulate(
    category: np.ndarray,
    video: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
    matched: np.ndarray,
    ignored: np.ndarray,
    num_regular_gt: np.ndarray,
) -> Tuple[np.ndarray, np.ndarray]:
    """Precision and recall arrays of the official evaluation.

    Args:
        category, video, score, rank: ``(N,)`` per prediction: category index, video index (ascending
            video id), score, and rank within its (video, category) by score (file order on ties).
            Only predictions with ``rank < MAX_DETS[-1]`` should be passed.
        matched: ``(N, A, T)`` bool, matched to some GT.
        ignored: ``(N, A, T)`` bool, matched to an ignored GT, or unmatched with an area outside range.
        num_regular_gt: ``(K, A)`` int, number of non-ignored GT per category and area range.

    Returns:
        precision ``(T, R, K, A, M)`` and recall ``(T, K, A, M)``, -1 where a category has no GT.
    """
    T, R = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    K, A = num_regular_gt.shape
    M = len(MAX_DETS)
    precision = -np.ones((T, R, K, A, M))
    recall = -np.ones((T, K, A, M))

    order = np.lexsort((rank, video, -score, category))  # last key is primary
    tp_all = matched & ~ignored
    fp_all = ~matched & ~ignored
    for m, max_det in enumerate(MAX_DETS):
        sel = order[rank[order] < max_det]
        cat_sel = category[sel]
        bounds = np.searchsorted(cat_sel, np.arange(K + 1), side="left")
        for k in range(K):
            seg = sel[bounds[k] : bounds[k + 1]]
            nd = len(seg)
            for a in range(A):
                npig = int(num_regular_gt[k, a])
                if npig == 0:
                    continue
                if nd == 0:
                    recall[:, k, a, m] = 0
                    precision[:, :, k, a, m] = 0
                    continue
                tp = np.cumsum(tp_all[seg, a, :], axis=0).astype(np.float64).T  # (T, nd)
                fp = np.cumsum(fp_all[seg, a, :], axis=0).astype(np.float64).T
                rc = tp / npig
                pr = tp / (fp + tp + np.spacing(1))
                recall[:, k, a, m] = rc[:, -1]
                # monotone precision envelope, then read at the recall thresholds (0 beyond the last)
                pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
                for t in range(T):
                    idx = np.searchsorted(rc[t], RECALL_THRESHOLDS, side="left")
                    reached = idx < nd
                    precision[t, reached, k, a, m] = pr[t, idx[reached]]
                    precision[t, ~reached, k, a, m] = 0
    return precision, recall


def _mean_valid(values: np.ndarray) -> float:
    valid = values[values > -1]
    return float(np.mean(valid)) if valid.size else -1.0


def summarize(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """The official 12 ``stats`` (fractions, -1 where undefined), in :data:`METRIC_KEYS` order."""
    a_all, a_s, a_m, a_l = (AREA_LABELS.index(x) for x in ("all", "small", "medium", "large"))
    m1, m10, m100 = (MAX_DETS.index(x) for x in (1, 10, 100))
    t50 = np.where(IOU_THRESHOLDS == 0.5)[0]
    t75 = np.where(IOU_THRESHOLDS == 0.75)[0]
    # same element order as upstream before np.mean, so the pairwise sums round identically
    return np.array(
        [
            _mean_valid(precision[:, :, :, a_all, m100]),
            _mean_valid(precision[t50][:, :, :, a_all, m100]),
            _mean_valid(precision[t75][:, :, :, a_all, m100]),
            _mean_valid(precision[:, :, :, a_s, m100]),
            _mean_valid(precision[:, :, :, a_m, m100]),
            _mean_valid(precision[:, :, :, a_l, m100]),
            _mean_valid(recall[:, :, a_all, m1]),
            _mean_valid(recall[:, :, a_all, m10]),
            _mean_valid(recall[:, :, a_all, m100]),
            _mean_valid(recall[:, :, a_s, m100]),
            _mean_valid(recall[:, :, a_m, m100]),
            _mean_valid(recall[:, :, a_l, m100]),
        ],
        dtype=np.float64,
    )


def per_category_ap(precision: np.ndarray) -> np.ndarray:
    """``(K,)`` AP@[.5:.95] (area all, maxDets 100) per category, -1 where the category has no GT."""
    a_all, m100 = AREA_LABELS.index("all"), MAX_DETS.index(100)
    return np.array([_mean_valid(precision[:, :, k, a_all, m100]) for k in range(precision.shape[2])])


def stats_to_percent(stats: np.ndarray) -> dict:
    """``{key: official stat x 100, or None where the official gives -1}`` for the 12 keys."""
    return {k: (None if s == -1 else float(s) * 100.0) for k, s in zip(METRIC_KEYS, stats)}
