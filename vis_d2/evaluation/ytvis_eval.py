"""YouTube-VIS evaluation (AP/AR of video instance segmentation), exact and fast; also a CLI.

Computes the same numbers as the official youtubevos/cocoapi ``ytvoseval.py`` (iouType 'segm'), with
every quirk listed in docs/evaluation.md, but without its Python loops over
videos x categories x pairs x frames: the per-frame intersections of all same-cell mask pairs come from
a few hundred pycocotools calls (:mod:`.video_iou`), matching is vectorized over groups, thresholds and area ranges
(:mod:`.matching`), accumulation over thresholds (:mod:`.accumulate`). Everything stays float64, and
the results equal the official ones bit for bit (checked on random and benchmark inputs).

Usage::

    python -m vis_d2.evaluation.ytvis_eval GT.json RESULTS.json --json-out OUT.json [--hard] [--per-category]

``OUT.json`` holds ``{"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm",
"ARl"}`` in percent (the official stats x 100), null where the official gives -1. Malformed input ends
with one line on stderr and exit status 1. This module imports neither torch nor detectron2.
"""
import argparse
import gc
import json
import os
import sys
import time
from typing import Dict, Iterable, Optional

import numpy as np

from .accumulate import accumulate, per_category_ap, stats_to_percent, summarize
from .matching import greedy_match
from .params import AREA_RANGES, IOU_THRESHOLDS, MAX_DETS, METRIC_DESCRIPTIONS, METRIC_KEYS
from .video_iou import cell_intersections, collect_occurrences, track_iou
from .ytvis_io import GroundTruth, Predictions, YTVISFormatError, load_json, parse_ground_truth, parse_results
from ..utils import atomic_write, gc_paused

__all__ = [
    "evaluate_ytvis",
    "evaluate_parsed",
    "per_category_percent",
    "gt_tracks_per_category",
    "format_table",
    "format_metrics_table",
    "format_per_category_table",
    "main",
]


def _eval_video_ids(gt: GroundTruth, video_ids: Optional[Iterable[int]]) -> np.ndarray:
    if video_ids is None:
        return np.array(sorted(gt.videos), dtype=np.int64)
    ids = sorted(set(int(v) for v in video_ids))
    unknown = [v for v in ids if v not in gt.videos]
    if unknown:
        raise YTVISFormatError(f"video_ids: {unknown[:5]} not in the ground truth")
    return np.array(ids, dtype=np.int64)


def _area_out_of_range(area: np.ndarray) -> np.ndarray:
    """``(N, A)`` bool: track area outside each range (both ends inclusive)."""
    lo = np.array([r[0] for r in AREA_RANGES], dtype=np.float64)
    hi = np.array([r[1] for r in AREA_RANGES], dtype=np.float64)
    return (area[:, None] < lo) | (area[:, None] > hi)


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Index of each of ``ids`` in ``sorted_ids``, -1 where absent."""
    if len(sorted_ids) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), len(sorted_ids) - 1)
    return np.where(sorted_ids[pos] == ids, pos, -1)


def _rank_predictions(preds: Predictions, vids: np.ndarray, cat_ids: np.ndarray):
    """Predictions of the evaluated videos and categories, ordered by (video, category, -score, file order).

    Returns:
        idx (indices into ``preds``), group (``video_index * K + category_index``) and rank within the
        group, keeping only rank < ``MAX_DETS[-1]`` (upstream cuts there before anything else).
    """
    K = len(cat_ids)
    vpos, kpos = _positions(vids, preds.video_ids), _positions(cat_ids, preds.category_ids)
    idx = np.flatnonzero((vpos >= 0) & (kpos >= 0))
    group = vpos[idx] * K + kpos[idx]
    # stable score order inside a group == file order on ties (mergesort upstream)
    order = np.lexsort((idx, -preds.scores[idx], group))
    idx, group = idx[order], group[order]
    rank = np.arange(len(idx)) - np.searchsorted(group, group, side="left")
    keep = rank < MAX_DETS[-1]
    return idx[keep], group[keep], rank[keep]


def _match_in_groups(d_group, g_group, pair_dt, pair_gt, inter, d_area, g_area, g_ignore, g_crowd):
    """Match every prediction within its (video, category) group.

    Args:
        d_group: ``(ND,)`` group of each prediction, sorted, predictions in score order inside a group.
        g_group: ``(NG,)`` group of each GT (file order inside a group).
        pair_dt, pair_gt, inter: per-frame intersections of same-group pairs (:func:`cell_intersections`);
            pairs it left out count as IoU 0, which is fine: their IoU is below every threshold anyway.
        d_area, g_area: ``(ND,)``, ``(NG,)`` summed areas over frames.
        g_ignore: ``(NG, A)``; g_crowd: ``(NG,)``.

    Returns:
        matched, matched_ignored: ``(ND, A, T)`` bool.
    """
    nd, A, T = len(d_group), g_ignore.shape[1], len(IOU_THRESHOLDS)
    matched = np.zeros((nd, A, T), dtype=bool)
    matched_ignored = np.zeros((nd, A, T), dtype=bool)

    # GT of each group as columns 0..G-1 (file order)
    gt_sorted = np.argsort(g_group, kind="stable")
    groups, g_first, g_count = np.unique(g_group[gt_sorted], return_index=True, return_counts=True)
    g_col = np.empty(len(g_group), dtype=np.int64)
    g_col[gt_sorted] = np.arange(len(g_group)) - np.repeat(g_first, g_count)
    det_gidx = _positions(groups, d_group)
    dets = np.flatnonzero(det_gidx >= 0)  # predictions whose group has GT; the rest never match
    if len(dets) == 0:
        return matched, matched_ignored

    # one IoU row per prediction, laid out flat: slot = row_start[det] + GT column
    ncol = g_count[det_gidx[dets]]
    row_start = np.cumsum(ncol) - ncol
    slot_det = np.repeat(dets, ncol)
    slot_col = np.arange(int(ncol.sum())) - np.repeat(row_start, ncol)
    slot_gt = gt_sorted[g_first[det_gidx[slot_det]] + slot_col]
    start_of = np.full(nd, -1, dtype=np.int64)
    start_of[dets] = row_start
    same = start_of[pair_dt] >= 0
    inter_sum = np.bincount(
        start_of[pair_dt[same]] + g_col[pair_gt[same]], weights=inter[same], minlength=len(slot_det)
    )
    iou = track_iou(inter_sum, d_area[slot_det], g_area[slot_gt])

    # only rows reaching the lowest threshold somewhere can match or take a GT (see matching.py)
    can = np.maximum.reduceat(iou, row_start) >= IOU_THRESHOLDS.min()
    rows, r_start, r_ncol = dets[can], row_start[can], ncol[can]
    if len(rows) == 0:
        return matched, matched_ignored
    ugroups, r_first, r_count = np.unique(det_gidx[rows], return_index=True, return_counts=True)
    r_grp = np.repeat(np.arange(len(ugroups)), r_count)  # padded-group index of each row
    r_pos = np.arange(len(rows)) - np.repeat(r_first, r_count)  # row index inside its group
    n_grp, g_max = len(ugroups), int(g_count[ugroups].max())

    X = np.full((n_grp, int(r_count.max()), g_max), -1.0)  # -1: below every threshold
    flat_row = np.repeat(np.arange(len(rows)), r_ncol)
    flat_col = np.arange(len(flat_row)) - np.repeat(np.cumsum(r_ncol) - r_ncol, r_ncol)
    X[r_grp[flat_row], r_pos[flat_row], flat_col] = iou[r_start[flat_row] + flat_col]

    cols = np.arange(g_max)
    valid = cols[None, :] < g_count[ugroups][:, None]  # (n_grp, g_max)
    gt_at = np.zeros((n_grp, g_max), dtype=np.int64)  # GT index at (group, column); 0 on padding
    gt_at[valid] = gt_sorted[(g_first[ugroups][:, None] + cols[None, :])[valid]]
    ignore = g_ignore[gt_at].transpose(0, 2, 1) | ~valid[:, None, :]  # (n_grp, A, g_max)
    crowd = g_crowd[gt_at] & valid

    col = greedy_match(X, r_count, ignore, crowd, IOU_THRESHOLDS)[r_grp, r_pos]  # (rows, A, T)
    hit = col >= 0
    gt_hit = gt_at[r_grp[:, None, None], np.maximum(col, 0)]
    matched[rows] = hit
    matched_ignored[rows] = hit & g_ignore[gt_hit, np.arange(A)[None, :, None]]
    return matched, matched_ignored


def evaluate_parsed(gt: GroundTruth, preds: Predictions, video_ids: Optional[Iterable[int]] = None) -> dict:
    """The evaluation on checked inputs (see :mod:`.ytvis_io`).

    Returns:
        dict with ``stats`` ``(12,)`` (official fractions, -1 undefined), ``precision`` ``(T, R, K, A, M)``,
        ``recall`` ``(T, K, A, M)``, ``category_ids`` ``(K,)`` and ``category_ap`` ``(K,)`` (-1 undefined).
    """
    with gc_paused():
        return _evaluate(gt, preds, _eval_video_ids(gt, video_ids))


def _evaluate(gt: GroundTruth, preds: Predictions, vids: np.ndarray) -> dict:
    cat_ids = np.array(gt.category_ids, dtype=np.int64)
    K, A = len(cat_ids), len(AREA_RANGES)
    lengths = np.array([gt.videos[v][2] for v in vids.tolist()], dtype=np.int64)
    frame_offset = np.cumsum(lengths) - lengths

    # ground truth of the evaluated videos and categories, ordered by video id then file order (upstream)
    vid_pos = {v: i for i, v in enumerate(vids.tolist())}
    cat_pos = {c: k for k, c in enumerate(cat_ids.tolist())}
    gts = [g for g in gt.tracks if g["video_id"] in vid_pos and g["category_id"] in cat_pos]
    gts.sort(key=lambda g: vid_pos[g["video_id"]])
    g_video = np.array([vid_pos[g["video_id"]] for g in gts], dtype=np.int64)
    g_cat = np.array([cat_pos[g["category_id"]] for g in gts], dtype=np.int64)
    g_crowd = np.array([g["iscrowd"] for g in gts], dtype=bool)
    g_ignore = g_crowd[:, None] | _area_out_of_range(np.array([g["avg_area"] for g in gts], dtype=np.float64))

    idx, d_group, d_rank = _rank_predictions(preds, vids, cat_ids)
    d_video, d_cat, d_score = d_group // max(K, 1), d_group % max(K, 1), preds.scores[idx]

    # spatio-temporal IoU ingredients: per-frame intersections and summed areas
    nd, ng = len(idx), len(gts)
    dt_occ = collect_occurrences([preds.segmentations[i] for i in idx.tolist()], frame_offset[d_video], d_cat, K)
    gt_occ = collect_occurrences([g["segmentations"] for g in gts], frame_offset[g_video], g_cat, K)
    d_area, g_area = dt_occ.area_per_track(nd), gt_occ.area_per_track(ng)
    nonzero = dt_occ.nonzero_frames_per_track(nd)
    d_avg_area = np.zeros(nd)  # prediction track area: mean of its non-zero frame areas (loadRes)
    np.divide(d_area, nonzero, out=d_avg_area, where=nonzero > 0)
    # matching only asks whether IoU >= a threshold: pairs that cannot reach the lowest are skipped
    pair_dt, pair_gt, inter = cell_intersections(
        dt_occ, gt_occ, K, d_area, g_area, min_iou=float(IOU_THRESHOLDS.min())
    )

    matched, matched_ignored = _match_in_groups(
        d_group, g_video * K + g_cat, pair_dt, pair_gt, inter, d_area, g_area, g_ignore, g_crowd
    )
    ignored = matched_ignored | (~matched & _area_out_of_range(d_avg_area)[:, :, None])
    num_regular = np.zeros((K, A), dtype=np.int64)
    np.add.at(num_regular, g_cat, ~g_ignore)
    precision, recall = accumulate(d_cat, d_video, d_score, d_rank, matched, ignored, num_regular)
    return {
        "stats": summarize(precision, recall),
        "precision": precision,
        "recall": recall,
        "category_ids": cat_ids,
        "category_ap": per_category_ap(precision),
    }


def per_category_percent(gt: GroundTruth, evaluation: dict) -> Dict[str, Optional[float]]:
    """``{category name: AP in percent, or None without GT}`` from :func:`evaluate_parsed`'s output."""
    names = dict(gt.categories)
    return {
        names[c]: (None if ap == -1 else float(ap) * 100.0)
        for c, ap in zip(evaluation["category_ids"].tolist(), evaluation["category_ap"])
    }


def evaluate_ytvis(gt: dict, results: list, video_ids: Optional[Iterable[int]] = None) -> Dict[str, object]:
    """Evaluate YouTube-VIS results against ground truth (both as loaded from json).

    Args:
        gt: the annotation json (``videos``, ``categories``, ``annotations``).
        results: the results json: ``[{"video_id", "category_id", "score", "segmentations"}]``.
        video_ids: evaluate only these videos (e.g. the synthetic benchmark's ``is_hard`` videos);
            None: every ground-truth video.

    Returns:
        ``{"AP": ..., ..., "ARl": ...}`` (the 12 :data:`METRIC_KEYS`, percent, None where undefined) plus
        ``"per_category_AP": {category name: AP in percent or None}``.

    Raises:
        YTVISFormatError: malformed input (one-line message naming the entry and video).
    """
    with gc_paused():
        g = parse_ground_truth(gt)
        out = evaluate_parsed(g, parse_results(results, g), video_ids)
    metrics = stats_to_percent(out["stats"])
    metrics["per_category_AP"] = per_category_percent(g, out)
    return metrics


def format_table(metrics: Dict[str, Optional[float]], title: str = "YouTube-VIS evaluation") -> str:
    """A readable table of the 12 metrics (percent; 'n/a' where undefined)."""
    return format_metrics_table({"value": metrics}, title)


def format_metrics_table(columns: Dict[str, Dict[str, Optional[float]]], title: str) -> str:
    """The 12 metrics of several evaluations side by side, e.g. ``{"all": m, "hard": h, "clean": c}``.

    One row per metric (percent, 3 decimals, 'n/a' where undefined), one column per evaluation, then the
    metric's definition.
    """
    names = list(columns)
    width = max([7] + [len(n) for n in names])
    lines = [title, f"{'metric':<7} " + " ".join(f"{n:>{width}}" for n in names) + "   definition"]
    for k in METRIC_KEYS:
        cells = " ".join(f"{_pct(columns[n].get(k)):>{width}}" for n in names)
        lines.append(f"{k:<7} {cells}   {METRIC_DESCRIPTIONS[k]}")
    return "\n".join(lines)


def format_per_category_table(
    per_category: Dict[str, Optional[float]], gt_tracks: Optional[Dict[str, int]] = None, columns: int = 3
) -> str:
    """Per-category AP (percent) as a table of ``columns`` (category, AP[, GT tracks]) groups per row.

    Categories keep their id order; 'n/a' marks a category without (non-crowd) ground truth, which the
    means leave out.
    """
    items = list(per_category.items())
    if not items:
        return "per-category AP: no categories"
    name_w = max([len(n) for n, _ in items] + [len("category")])
    cell = (lambda n, v: f"{n:<{name_w}} {_pct(v):>7}" + (f" {gt_tracks.get(n, 0):>6}" if gt_tracks else ""))
    head = f"{'category':<{name_w}} {'AP':>7}" + (f" {'tracks':>6}" if gt_tracks else "")
    rows = [items[i : i + columns] for i in range(0, len(items), columns)]
    lines = [" | ".join([head] * min(columns, len(items)))]
    lines += [" | ".join(cell(n, v) for n, v in row) for row in rows]
    return "\n".join(lines)


def gt_tracks_per_category(gt: GroundTruth) -> Dict[str, int]:
    """``{category name: number of non-crowd GT tracks}`` (what a per-category AP rests on)."""
    names = dict(gt.categories)
    counts = {name: 0 for name in names.values()}
    for g in gt.tracks:
        if not g["iscrowd"] and g["category_id"] in names:
            counts[names[g["category_id"]]] += 1
    return counts


def _pct(v: Optional[float]) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def _parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m vis_d2.evaluation.ytvis_eval",
        description="YouTube-VIS AP/AR (equal to youtubevos/cocoapi ytvoseval x 100), fast. "
        "Rules and differences: docs/evaluation.md.",
    )
    parser.add_argument("gt", help="ground-truth annotation json (YouTube-VIS format)")
    parser.add_argument(
        "results", help="results json: [{video_id, category_id, score, segmentations}], or a results.zip holding it"
    )
    parser.add_argument("--json-out", help="write the 12 metrics (percent, null where undefined) here")
    parser.add_argument(
        "--hard", action="store_true", help="evaluate only the videos tagged \"is_hard\": true in the ground truth"
    )
    parser.add_argument("--per-category", action="store_true", help="also print the AP of every category")
    parser.add_argument("--debug", action="store_true", help="show the traceback of unexpected errors")
    return parser.parse_args(argv)


def _run(args) -> None:
    tic = time.perf_counter()
    gt = parse_ground_truth(load_json(args.gt, "ground truth"))
    preds = parse_results(load_json(args.results, "results"), gt)
    video_ids = None
    if args.hard:
        if not gt.hard_video_ids:
            raise YTVISFormatError(f"ground truth {args.gt}: --hard given but no video has \"is_hard\": true")
        video_ids = gt.hard_video_ids
    out = evaluate_parsed(gt, preds, video_ids)
    metrics = stats_to_percent(out["stats"])
    if args.json_out:  # before printing: a closed stdout pipe must not lose the result
        try:
            with atomic_write(args.json_out) as f:
                json.dump(metrics, f, indent=2)
        except OSError as e:
            raise YTVISFormatError(f"--json-out {args.json_out}: cannot write ({e.strerror or e})") from None
    n_videos = len(gt.videos) if video_ids is None else len(video_ids)
    title = (
        f"YouTube-VIS evaluation: {n_videos} videos, {len(gt.categories)} categories, "
        f"{len(preds)} predicted tracks ({time.perf_counter() - tic:.2f} s)"
    )
    print(format_table(metrics, title))
    if args.per_category:
        print(format_per_category_table(per_category_percent(gt, out), gt_tracks_per_category(gt)))
    sys.stdout.flush()


def main(argv=None) -> int:
    """CLI entry point; returns the exit status (0 ok, 1 bad input or failure)."""
    args = _parse_args(argv)
    prog = "ytvis_eval"
    try:
        with gc_paused():
            _run(args)
    except BrokenPipeError:  # e.g. piped into `head`: the output was not wanted, the evaluation is done
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except YTVISFormatError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # the CLI contract: one line, never a traceback wall
        if args.debug:
            raise
        msg = str(e).splitlines()[0] if str(e) else ""
        print(f"{prog}: error: unexpected {type(e).__name__}: {msg} (rerun with --debug)", file=sys.stderr)
        return 1
    return 0


def _exit_now(status: int) -> None:
    """End the process without tearing down the millions of parsed json objects one by one.

    Everything is written and closed by then; freeing a large results file object by object (and the
    collector's pass over them) would add about half a second to an OVIS-sized evaluation.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    gc.disable()  # the CLI allocates acyclic json data only; no collector pass is needed until exit
    _exit_now(main())
