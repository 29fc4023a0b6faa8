"""Reference YouTube-VIS evaluation: deliberately plain, slow, and written from the rules.

This is the **test oracle** of the fast :mod:`vis_d2.evaluation.ytvis_eval` and the **benchmark
baseline** of ``tools/benchmark_evaluator.py``; do not use it for real evaluations. It follows the rules
of docs/evaluation.md one step at a time, with ordinary Python loops
per video, category, prediction/GT pair and frame, the way the official ``ytvoseval.py`` is organised,
and it shares nothing with the fast path except input checking (:mod:`.ytvis_io`) and the constant
parameters (:mod:`.params`). Agreement with the fast path is tested to 1e-12.

CLI (same arguments as the fast one)::

    python -m vis_d2.evaluation.ytvis_eval_reference GT.json RESULTS.json --json-out OUT.json
"""
import argparse
import json
import sys
from collections import defaultdict
from typing import Iterable, Optional

from pycocotools import mask as mask_util

from ..utils import atomic_write
from .params import AREA_LABELS, AREA_RANGES, IOU_THRESHOLDS, MAX_DETS, METRIC_KEYS, RECALL_THRESHOLDS
from .ytvis_io import GroundTruth, Predictions, YTVISFormatError, load_json, parse_ground_truth, parse_results

__all__ = ["evaluate_reference", "evaluate_reference_parsed", "main"]

_EPS = 2.220446049250313e-16  # np.spacing(1), keeps precision defined when nothing is counted yet


def _area(rle) -> int:
    return int(mask_util.area(rle))


def _video_iou(d_segs, g_segs) -> float:
    """Total intersection over total union across frames; a missing frame is an empty mask."""
    inter = union = 0
    for d, g in zip(d_segs, g_segs):
        if d and g:
            inter += _area(mask_util.merge([d, g], intersect=True))
            union += _area(mask_util.merge([d, g], intersect=False))
        elif d:
            union += _area(d)
        elif g:
            union += _area(g)
    return inter / union if union > 0 else 0.0


def _prediction_area(segs) -> float:
    """Mean of the non-zero frame areas of a predicted track (0 when it has none)."""
    areas = [_area(s) for s in segs if s]
    areas = [a for a in areas if a]
    return sum(areas) / len(areas) if areas else 0.0


def _match(ious, gt_ignored, gt_crowd, threshold):
    """Greedy matching of score-ordered predictions (rows) to GTs (columns) at one threshold.

    Returns one entry per prediction: the matched GT column or None.
    """
    G = len(gt_ignored)
    order = [g for g in range(G) if not gt_ignored[g]] + [g for g in range(G) if gt_ignored[g]]
    used = [False] * G
    out = []
    for row in ious:
        best, best_iou = None, threshold
        for g in order:
            if used[g] and not gt_crowd[g]:
                continue  # a regular GT is matched once; a crowd GT absorbs any number
            if best is not None and not gt_ignored[best] and gt_ignored[g]:
                break  # holding a regular GT: ignored GTs are never preferred
            if row[g] >= best_iou:  # '>=': equal IoU goes to the later GT
                best, best_iou = g, row[g]
        if best is not None:
            used[best] = True
        out.append(best)
    return out


def evaluate_reference_parsed(gt: GroundTruth, preds: Predictions, video_ids: Optional[Iterable[int]] = None) -> dict:
    """Same output as :func:`vis_d2.evaluation.ytvis_eval.evaluate_parsed` (``precision``/``recall`` as lists)."""
    vids = sorted(gt.videos) if video_ids is None else sorted(set(int(v) for v in video_ids))
    for v in vids:
        if v not in gt.videos:
            raise YTVISFormatError(f"video_ids: {v} not in the ground truth")
    cats = gt.category_ids
    T, R, K, A, M = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS), len(cats), len(AREA_RANGES), len(MAX_DETS)

    gts = defaultdict(list)
    for g in gt.tracks:
        gts[g["video_id"], g["category_id"]].append(g)
    dts = defaultdict(list)
    for i in range(len(preds)):
        dts[int(preds.video_ids[i]), int(preds.category_ids[i])].append(i)

    # per (video, category): predictions in score order (stable), their match at every (area, threshold)
    evals = {}
    for v in vids:
        for c in cats:
            g_list, d_list = gts[v, c], dts[v, c]
            if not g_list and not d_list:
                continue
            d_list = sorted(d_list, key=lambda i: -float(preds.scores[i]))[: MAX_DETS[-1]]
            ious = [[_video_iou(preds.segmentations[i], g["segmentations"]) for g in g_list] for i in d_list]
            d_areas = [_prediction_area(preds.segmentations[i]) for i in d_list]
            per_area = []
            for lo, hi in AREA_RANGES:
                g_ign = [g["iscrowd"] or not (lo <= g["avg_area"] <= hi) for g in g_list]
                d_out = [not (lo <= a <= hi) for a in d_areas]
                per_thr = []
                for thr in IOU_THRESHOLDS:
                    m = _match(ious, g_ign, [g["iscrowd"] for g in g_list], thr)
                    # (is true positive, is ignored) per prediction
                    per_thr.append(
                        [
                            (False, d_out[j]) if m[j] is None else (not g_ign[m[j]], g_ign[m[j]])
                            for j in range(len(d_list))
                        ]
                    )
                per_area.append({"npig": g_ign.count(False), "dets": per_thr})
            evals[v, c] = {"scores": [float(preds.scores[i]) for i in d_list], "areas": per_area}

    precision = [[[[[-1.0] * M for _ in range(A)] for _ in range(K)] for _ in range(R)] for _ in range(T)]
    recall = [[[[-1.0] * M for _ in range(A)] for _ in range(K)] for _ in range(T)]
    for k, c in enumerate(cats):
        for a in range(A):
            for m, max_det in enumerate(MAX_DETS):
                npig = sum(evals[v, c]["areas"][a]["npig"] for v in vids if (v, c) in evals)
                if npig == 0:
                    continue
                for t in range(T):
                    entries = []  # (score, tp, ignored), videos in ascending id, each in score order
                    for v in vids:
                        if (v, c) not in evals:
                            continue
                        e = evals[v, c]
                        for j in range(min(max_det, len(e["scores"]))):
                            tp, ign = e["areas"][a]["dets"][t][j]
                            entries.append((e["scores"][j], tp, ign))
                    entries.sort(key=lambda x: -x[0])  # stable across videos
                    tps = fps = 0
                    rc, pr = [], []
                    for _, tp, ign in entries:
                        if not ign:
                            tps += tp
                            fps += not tp
                        rc.append(tps / npig)
                        pr.append(tps / (fps + tps + _EPS))
                    recall[t][k][a][m] = rc[-1] if rc else 0.0
                    for i in range(len(pr) - 2, -1, -1):
                        pr[i] = max(pr[i], pr[i + 1])
                    for r, rthr in enumerate(RECALL_THRESHOLDS):
                        first = next((i for i, x in enumerate(rc) if x >= rthr), None)
                        precision[t][r][k][a][m] = 0.0 if first is None else pr[first]

    def mean_valid(values):
        values = [x for x in values if x > -1]
        return sum(values) / len(values) if values else -1.0

    def ap(area="all", max_det=100, thr=None, cat=None):
        a, m = AREA_LABELS.index(area), MAX_DETS.index(max_det)
        ts = [t for t in range(T) if thr is None or IOU_THRESHOLDS[t] == thr]
        ks = range(K) if cat is None else [cat]
        return mean_valid([precision[t][r][k][a][m] for t in ts for r in range(R) for k in ks])

    def ar(area="all", max_det=100):
        a, m = AREA_LABELS.index(area), MAX_DETS.index(max_det)
        return mean_valid([recall[t][k][a][m] for t in range(T) for k in range(K)])

    stats = [ap(), ap(thr=0.5), ap(thr=0.75), ap("small"), ap("medium"), ap("large")]
    stats += [ar(max_det=1), ar(max_det=10), ar(), ar("small"), ar("medium"), ar("large")]
    return {
        "stats": stats,
        "precision": precision,
        "recall": recall,
        "category_ids": list(cats),
        "category_ap": [ap(cat=k) for k in range(K)],
    }


def evaluate_reference(gt: dict, results: list, video_ids: Optional[Iterable[int]] = None) -> dict:
    """Reference counterpart of :func:`vis_d2.evaluation.ytvis_eval.evaluate_ytvis` (same return value)."""
    g = parse_ground_truth(gt)
    out = evaluate_reference_parsed(g, parse_results(results, g), video_ids)
    metrics = {k: (None if s == -1 else s * 100.0) for k, s in zip(METRIC_KEYS, out["stats"])}
    names = dict(g.categories)
    metrics["per_category_AP"] = {
        names[c]: (None if x == -1 else x * 100.0) for c, x in zip(out["category_ids"], out["category_ap"])
    }
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vis_d2.evaluation.ytvis_eval_reference")
    parser.add_argument("gt")
    parser.add_argument("results")
    parser.add_argument("--json-out")
    args = parser.parse_args(argv)
    try:
        metrics = evaluate_reference(load_json(args.gt, "ground truth"), load_json(args.results, "results"))
    except YTVISFormatError as e:
        print(f"ytvis_eval_reference: error: {e}", file=sys.stderr)
        return 1
    metrics.pop("per_category_AP")
    for k in METRIC_KEYS:
        print(f"{k:<6} {'n/a' if metrics[k] is None else format(metrics[k], '.3f')}")
    if args.json_out:
        with atomic_write(args.json_out) as f:
            json.dump(metrics, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
