"""Greedy COCO-style matching of predicted tracks to ground-truth tracks, vectorized.

Per (video, category), at each IoU threshold and area range, predictions are visited by descending score;
each takes the ground truth with the highest IoU >= threshold among those still free. The official rules
(youtubevos/cocoapi ``YTVOSeval.evaluateVid``), all kept here:

* ignored GTs (crowd, or track area outside the range) are visited after the regular ones, so a
  prediction takes a regular GT when it can; once it has one, the search stops at the first ignored GT
  even if that overlaps more;
* ties in IoU go to the last GT in (ignore-sorted, then file) order;
* a crowd GT is never used up: it can absorb any number of predictions.

The loop runs over prediction ranks only; all (video, category) groups, thresholds and area ranges are
handled at once with numpy. Rows that reach no threshold against any GT never match and never change
which GTs are taken, so callers pass only the rows that can match (in score order) and the loop is short.
"""
import numpy as np

__all__ = ["greedy_match"]


def greedy_match(
    ious: np.ndarray, num_rows: np.ndarray, gt_ignore: np.ndarray, gt_crowd: np.ndarray, thresholds: np.ndarray
) -> np.ndarray:
    """Match predictions to ground truth in many independent groups at once.

    Args:
        ious: ``(N, D, G)`` float64, IoU of row d (predictions in descending score order) with GT column
            g, for N groups; padding (rows past ``num_rows``, missing columns) must be below every threshold
            (e.g. -1).
        num_rows: ``(N,)`` number of valid rows per group.
        gt_ignore: ``(N, A, G)`` bool, GT ignored for area range a (crowd or area outside the range).
        gt_crowd: ``(N, G)`` bool, crowd GT (can be matched many times).
        thresholds: ``(T,)`` IoU thresholds.

    Returns:
        ``(N, D, A, T)`` int64: the GT column matched by row d, or -1.
    """
    n, d_max, g_max = ious.shape
    a_num, t_num = gt_ignore.shape[1], len(thresholds)
    match = np.full((n, d_max, a_num, t_num), -1, dtype=np.int64)
    if n == 0 or d_max == 0 or g_max == 0:
        return match

    # Groups sorted by row count (descending): at rank r the groups still active are a prefix.
    order = np.argsort(-np.asarray(num_rows), kind="stable")
    inv = np.empty_like(order)
    inv[order] = np.arange(n)
    ious, gt_ignore, gt_crowd = ious[order], gt_ignore[order], gt_crowd[order]
    active_until = np.asarray(num_rows)[order]

    thr = np.asarray(thresholds, dtype=np.float64)[None, None, :, None]  # (1, 1, T, 1)
    regular = ~gt_ignore[:, :, None, :]  # (N, A, 1, G)
    crowd = gt_crowd[:, None, None, :]  # (N, 1, 1, G)
    taken = np.zeros((n, a_num, t_num, g_max), dtype=bool)
    for r in range(d_max):
        na = int(np.count_nonzero(active_until > r))
        if na == 0:
            break
        x = ious[:na, r][:, None, None, :]  # (na, 1, 1, G)
        ok = (x >= thr) & (~taken[:na] | crowd[:na])  # free GTs reaching the threshold
        ok_regular = ok & regular[:na]
        # a regular candidate hides every ignored one; otherwise only ignored candidates remain in `ok`
        cand = np.where(ok_regular.any(-1, keepdims=True), ok_regular, ok)
        score = np.where(cand, x, -np.inf)
        best = g_max - 1 - np.argmax(score[..., ::-1], axis=-1)  # last column holding the max: ties -> last
        found = cand.any(-1)  # (na, A, T)
        gi, ai, ti = np.nonzero(found)
        taken[gi, ai, ti, best[gi, ai, ti]] = True
        match[:na, r] = np.where(found, best, -1)
    return match[inv]  # back from sorted-group order
