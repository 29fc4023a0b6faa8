"""Tests of the YouTube-VIS evaluation core (vis_d2.evaluation.ytvis_eval) and its CLI.

Hand-built cases whose answers follow from the rules (docs/evaluation.md),
randomized cases where the fast core must equal the plain reference implementation, and the CLI's
handling of bad input.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_util

from vis_d2.evaluation import METRIC_KEYS, YTVISFormatError, evaluate_ytvis
from vis_d2.evaluation.params import IOU_THRESHOLDS, RECALL_THRESHOLDS
from vis_d2.evaluation.ytvis_eval import evaluate_parsed
from vis_d2.evaluation.ytvis_eval_reference import evaluate_reference_parsed
from vis_d2.evaluation.ytvis_io import parse_ground_truth, parse_results


# ------------------------------------------------------------------------------------------ builders
def box(h, w, y0, y1, x0, x1):
    m = np.zeros((h, w), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def rle(mask):
    r = mask_util.encode(np.asfortranarray(mask.astype(np.uint8)))
    r["counts"] = r["counts"].decode("ascii")
    return r


def gt_track(aid, video_id, masks, category_id=1, iscrowd=0, areas=None):
    """A GT annotation from per-frame masks (None = absent); ``areas`` defaults to the mask areas."""
    if areas is None:
        areas = [None if m is None else float(m.sum()) for m in masks]
    return {
        "id": aid, "video_id": video_id, "category_id": category_id, "iscrowd": iscrowd,
        "segmentations": [None if m is None else rle(m) for m in masks], "areas": areas,
    }  # fmt: skip


def pred(video_id, masks, score, category_id=1):
    return {"video_id": video_id, "category_id": category_id, "score": score,
            "segmentations": [None if m is None else rle(m) for m in masks]}  # fmt: skip


def dataset(videos, annotations, categories=(1,)):
    """``videos``: {id: (height, width, length)}."""
    return {
        "videos": [{"id": v, "height": h, "width": w, "length": n} for v, (h, w, n) in videos.items()],
        "categories": [{"id": c, "name": f"cat{c}"} for c in categories],
        "annotations": annotations,
    }


H, W = 10, 12
A = box(H, W, 0, 4, 0, 4)  # 16 px
B = box(H, W, 5, 9, 6, 10)  # 16 px, disjoint from A


# ------------------------------------------------------------------------------------- known answers
def test_perfect_prediction_scores_100_and_empty_area_ranges_are_null():
    gt = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A])])
    m = evaluate_ytvis(gt, [pred(1, [A, A], 0.9)])
    for k in ("AP", "AP50", "AP75", "APs", "AR1", "AR10", "AR100", "ARs"):
        assert m[k] == pytest.approx(100.0), k
    # the GT is small (16 px): there is no medium or large GT, so those are undefined, not 0
    assert m["APm"] is None and m["APl"] is None and m["ARm"] is None and m["ARl"] is None


def test_video_iou_sums_intersections_and_unions_over_frames():
    # GT: A in frames 0-3. Prediction: A in frames 1-3, plus a disjoint 16 px mask in frame 4.
    # I = 3*16 = 48; U = 64 + 64 - 48 = 80 -> IoU 0.6: matched at thresholds 0.50, 0.55, 0.60 only.
    gt = dataset({1: (H, W, 5)}, [gt_track(1, 1, [A, A, A, A, None])])
    m = evaluate_ytvis(gt, [pred(1, [None, A, A, A, B], 0.9)])
    assert m["AP"] == pytest.approx(30.0)
    assert m["AP50"] == pytest.approx(100.0) and m["AP75"] == pytest.approx(0.0)
    # a null frame and an empty mask are the same thing
    empty = np.zeros((H, W), dtype=np.uint8)
    m2 = evaluate_ytvis(gt, [pred(1, [empty, A, A, A, B], 0.9)])
    assert m2["AP"] == pytest.approx(30.0)


def test_iou_exactly_on_a_threshold_matches_at_it():
    # I = 3*16, U = 4*16: IoU 0.75 == IOU_THRESHOLDS[5], so thresholds 0.50..0.75 (6 of 10) match
    gt = dataset({1: (H, W, 4)}, [gt_track(1, 1, [A, A, A, A])])
    m = evaluate_ytvis(gt, [pred(1, [None, A, A, A], 0.9)])
    assert m["AP"] == pytest.approx(60.0) and m["AP75"] == pytest.approx(100.0)


def test_crowd_gt_is_ignored_and_absorbs_several_predictions():
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A]), gt_track(2, 1, [B], iscrowd=1)])
    preds = [pred(1, [B], 0.95), pred(1, [B], 0.93), pred(1, [A], 0.9)]
    m = evaluate_ytvis(gt, preds)
    # the two higher-scored predictions land on the crowd region: neither true nor false positives
    assert m["AP"] == pytest.approx(100.0) and m["AR100"] == pytest.approx(100.0)
    # the same predictions without the crowd annotation are false positives ranked first
    m_no_crowd = evaluate_ytvis(dataset({1: (H, W, 1)}, [gt_track(1, 1, [A])]), preds)
    assert m_no_crowd["AP"] < 50.0


def test_area_range_ends_are_inclusive_at_128_squared():
    # the track area comes from the json 'areas' field: 16384 is both small and medium
    gt = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A], areas=[16384, 16384])])
    m = evaluate_ytvis(gt, [pred(1, [A, A], 0.9)])
    assert m["APs"] == pytest.approx(100.0) and m["APm"] == pytest.approx(100.0)
    assert m["APl"] is None


def test_gt_track_area_is_the_mean_of_nonzero_areas_entries_not_the_masks():
    # masks of 16 px, but 'areas' says ~70000 (zeros and nulls left out of the mean): a large object
    gt = dataset({1: (H, W, 3)}, [gt_track(1, 1, [A, A, A], areas=[70000, 0, None])])
    m = evaluate_ytvis(gt, [pred(1, [A, A, A], 0.9)])
    assert m["APl"] == pytest.approx(100.0) and m["APs"] is None


def test_unmatched_prediction_outside_an_area_range_is_ignored_for_that_range():
    h, w = 300, 300
    small = box(h, w, 0, 10, 0, 10)
    big = box(h, w, 20, 300, 20, 300)  # 78400 px: large
    gt = dataset({1: (h, w, 1)}, [gt_track(1, 1, [small])])
    m = evaluate_ytvis(gt, [pred(1, [big], 0.99), pred(1, [small], 0.5)])
    assert m["AP"] == pytest.approx(50.0)  # the big false positive ranks first
    assert m["APs"] == pytest.approx(100.0)  # ...but is outside 'small', hence ignored there


def test_ar1_counts_top_one_per_video_and_category():
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A]), gt_track(2, 1, [B])])
    m = evaluate_ytvis(gt, [pred(1, [A], 0.9), pred(1, [B], 0.8)])
    assert m["AR1"] == pytest.approx(50.0) and m["AR10"] == pytest.approx(100.0)


def test_top_100_cut_applies_per_video_and_category():
    # 100 better-scored false positives of category 2 do not push the hit of category 1 out
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A]), gt_track(2, 1, [B], category_id=2)], categories=(1, 2))
    preds = [pred(1, [B], 0.99, category_id=1) for _ in range(100)] + [pred(1, [A], 0.5)]
    assert evaluate_ytvis(gt, preds)["AR100"] == pytest.approx(0.0)  # cat 1 hit cut, cat 2 missed
    preds = [pred(1, [B], 0.99, category_id=2) for _ in range(100)] + [pred(1, [A], 0.5)]
    assert evaluate_ytvis(gt, preds)["AR100"] == pytest.approx(100.0)


def test_equal_iou_goes_to_the_last_gt():
    # P1 has IoU 0.5 with both GTs (tie) and must take the later one (gt 2), leaving gt 1 to P2,
    # which only overlaps gt 1. Were ties to go to the first GT, P2 would be a false positive.
    gt = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, None]), gt_track(2, 1, [None, A])])
    m = evaluate_ytvis(gt, [pred(1, [A, A], 0.9), pred(1, [A, None], 0.8)])
    assert m["AP50"] == pytest.approx(100.0)


def test_a_matched_regular_gt_is_kept_over_a_better_overlapping_crowd_gt():
    # prediction: 10 px. Regular GT: 6 of them (IoU 0.6). Crowd GT: 9 of them (IoU 0.9).
    p = box(H, W, 0, 1, 0, 10)
    g = box(H, W, 0, 1, 0, 6)
    c = box(H, W, 0, 1, 1, 10)
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [g]), gt_track(2, 1, [c], iscrowd=1)])
    m = evaluate_ytvis(gt, [pred(1, [p], 0.9)])
    # thresholds 0.50-0.60 match the regular GT (precision 1); above, only the crowd is reachable
    assert m["AP"] == pytest.approx(30.0)


def test_score_ties_keep_results_file_order():
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A])])
    hit, miss = pred(1, [A], 0.7), pred(1, [B], 0.7)
    assert evaluate_ytvis(gt, [hit, miss])["AP"] == pytest.approx(100.0)
    assert evaluate_ytvis(gt, [miss, hit])["AP"] == pytest.approx(50.0)


def test_empty_results_give_zeros_and_nulls():
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A])])
    m = evaluate_ytvis(gt, [])
    assert m["AP"] == 0.0 and m["AR1"] == 0.0 and m["APs"] == 0.0
    assert m["APm"] is None and m["ARl"] is None


def test_category_without_gt_is_excluded_from_the_means():
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A])], categories=(1, 2))
    m = evaluate_ytvis(gt, [pred(1, [A], 0.9), pred(1, [B], 0.95, category_id=2)])
    assert m["AP"] == pytest.approx(100.0)
    assert m["per_category_AP"] == {"cat1": pytest.approx(100.0), "cat2": None}


def test_video_ids_restrict_the_evaluation_to_those_videos():
    gt = dataset({1: (H, W, 1), 2: (H, W, 1)}, [gt_track(1, 1, [A]), gt_track(2, 2, [A])])
    preds = [pred(1, [A], 0.9), pred(2, [B], 0.9)]
    assert evaluate_ytvis(gt, preds)["AR100"] == pytest.approx(50.0)
    assert evaluate_ytvis(gt, preds, video_ids=[1])["AR100"] == pytest.approx(100.0)
    assert evaluate_ytvis(gt, preds, video_ids=[2])["AR100"] == pytest.approx(0.0)


def test_polygon_uncompressed_and_compressed_gt_give_the_same_result():
    poly = [[0.0, 0.0, 7.0, 0.0, 7.0, 5.0, 0.0, 5.0]]
    h, w = H, W
    mask = mask_util.decode(mask_util.merge(mask_util.frPyObjects(poly, h, w)))
    flat = mask.ravel(order="F")
    change = np.flatnonzero(np.diff(flat)) + 1
    counts = np.diff(np.concatenate([[0], change, [flat.size]])).tolist()
    if flat[0]:
        counts = [0] + counts
    forms = [poly, {"size": [h, w], "counts": counts}, rle(mask)]
    preds = [pred(1, [box(h, w, 0, 4, 0, 7)], 0.9)]
    results = []
    for form in forms:
        ann = {"id": 1, "video_id": 1, "category_id": 1, "iscrowd": 0, "segmentations": [form], "areas": [30.0]}
        results.append(evaluate_ytvis(dataset({1: (h, w, 1)}, [ann]), preds))
    assert results[0] == results[1] == results[2]
    assert 0 < results[0]["AP"] < 100


def test_thresholds_are_built_as_upstream_linspace():
    assert IOU_THRESHOLDS[8] == 0.8999999999999999 and len(IOU_THRESHOLDS) == 10
    assert len(RECALL_THRESHOLDS) == 101 and RECALL_THRESHOLDS[35] == 0.35000000000000003


def test_intersections_are_recovered_exactly_from_iou_on_720p_masks():
    from vis_d2.evaluation.video_iou import cell_intersections, collect_occurrences

    rng = np.random.default_rng(0)
    h, w = 720, 1280
    masks = [(rng.random((h, w)) < p).astype(np.uint8) for p in (0.3, 0.5, 0.7, 0.9, 0.55)]
    dt_masks, gt_masks = masks[:3], masks[3:]
    one_frame = np.zeros(3, dtype=np.int64)
    dt = collect_occurrences([[rle(m)] for m in dt_masks], one_frame, np.zeros(3, dtype=np.int64), 1)
    gt = collect_occurrences([[rle(m)] for m in gt_masks], one_frame[:2], np.zeros(2, dtype=np.int64), 1)
    d, g, inter = cell_intersections(dt, gt, 1)
    got = {(int(i), int(j)): x for i, j, x in zip(d, g, inter)}
    for i, md in enumerate(dt_masks):
        for j, mg in enumerate(gt_masks):
            assert got[i, j] == int((md & mg).sum())  # hundreds of thousands of pixels, exact


# ---------------------------------------------------------------------- fast core == reference
def _random_case(rng):
    """Small random videos: partial tracks, crowds, areas at range bounds, equal scores, duplicates."""
    videos, anns, preds = {}, [], []
    n_cat = int(rng.integers(1, 4))
    for v in range(1, int(rng.integers(1, 6)) + 1):
        h, w = (130, 140) if rng.random() < 0.3 else (int(rng.integers(6, 16)), int(rng.integers(6, 16)))
        n = int(rng.integers(1, 5))
        videos[v] = (h, w, n)
        tracks = []
        for _ in range(int(rng.integers(0, 4))):
            masks = []
            for _ in range(n):
                if rng.random() < 0.2:
                    masks.append(None)
                    continue
                y0, x0 = int(rng.integers(0, h)), int(rng.integers(0, w))
                m = box(h, w, y0, y0 + int(rng.integers(1, h + 1)), x0, x0 + int(rng.integers(1, w + 1)))
                masks.append(m)
            cat = int(rng.integers(1, n_cat + 1))
            areas = [
                None if m is None else float(rng.choice([m.sum(), 16384, 65536, 0, rng.uniform(0, 9e4)]))
                for m in masks
            ]
            anns.append(gt_track(len(anns) + 1, v, masks, cat, int(rng.random() < 0.15), areas))
            tracks.append((cat, masks))
        for _ in range(int(rng.integers(0, 7))):
            if tracks and rng.random() < 0.7:
                cat, masks = tracks[int(rng.integers(len(tracks)))]
                cat = cat if rng.random() < 0.8 else int(rng.integers(1, n_cat + 1))
                masks = [
                    None if m is None or rng.random() < 0.15 else (m ^ (rng.random((h, w)) < 0.15)).astype(np.uint8)
                    for m in masks
                ]
            else:
                cat = int(rng.integers(1, n_cat + 1))
                masks = [None if rng.random() < 0.4 else (rng.random((h, w)) < 0.3).astype(np.uint8) for _ in range(n)]
            score = float(rng.choice([0.5, 0.25])) if rng.random() < 0.3 else float(rng.random())
            preds.append(pred(v, masks, score, cat))
    return dataset(videos, anns, categories=range(1, n_cat + 1)), preds


def test_fast_core_equals_reference_on_random_cases():
    rng = np.random.default_rng(2024)
    checked = 0
    for _ in range(40):
        gt_json, results = _random_case(rng)
        gt = parse_ground_truth(gt_json)
        preds = parse_results(results, gt)
        video_ids = None if rng.random() < 0.7 else [v for v in gt.videos if rng.random() < 0.5]
        fast = evaluate_parsed(gt, preds, video_ids)
        ref = evaluate_reference_parsed(gt, preds, video_ids)
        np.testing.assert_allclose(fast["stats"], ref["stats"], rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast["precision"], np.array(ref["precision"]), rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast["recall"], np.array(ref["recall"]), rtol=0, atol=1e-12)
        np.testing.assert_allclose(fast["category_ap"], ref["category_ap"], rtol=0, atol=1e-12)
        checked += bool((fast["stats"] > 0).any())
    assert checked >= 15  # the cases must actually produce matches, not only zeros


# --------------------------------------------------------------------------------------------- CLI
def run_cli(tmp_path, gt, results, *extra):
    gt_path, res_path, out_path = tmp_path / "gt.json", tmp_path / "res.json", tmp_path / "out.json"
    for path, obj in ((gt_path, gt), (res_path, results)):
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    cmd = [sys.executable, "-m", "vis_d2.evaluation.ytvis_eval", str(gt_path), str(res_path)]
    proc = subprocess.run(cmd + ["--json-out", str(out_path), *extra], capture_output=True, text=True, timeout=60)
    return proc, out_path


def test_cli_writes_the_12_metrics_in_percent_with_nulls(tmp_path):
    gt = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A]), gt_track(2, 1, [B, B])])
    proc, out = run_cli(tmp_path, gt, [pred(1, [A, A], 0.9)])
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(out.read_text())
    assert list(metrics) == list(METRIC_KEYS)
    # precision 1 up to recall 0.5: 51 of the 101 recall thresholds
    assert metrics["AP"] == pytest.approx(100.0 * 51 / 101) and metrics["AR1"] == pytest.approx(50.0)
    assert metrics["APm"] is None
    assert "AR10" in proc.stdout and "50.495" in proc.stdout


def test_cli_hard_flag_evaluates_only_videos_tagged_hard(tmp_path):
    gt = dataset({1: (H, W, 1), 2: (H, W, 1)}, [gt_track(1, 1, [A]), gt_track(2, 2, [A])])
    gt["videos"][1]["is_hard"] = True
    proc, out = run_cli(tmp_path, gt, [pred(1, [A], 0.9)], "--hard")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["AR100"] == 0.0  # video 2 alone: its GT was missed


def test_cli_imports_neither_torch_nor_detectron2(tmp_path):
    gt = dataset({1: (H, W, 1)}, [gt_track(1, 1, [A])])
    proc, _ = run_cli(tmp_path, gt, [], "--per-category")
    assert proc.returncode == 0, proc.stderr
    code = (
        "import sys, runpy; sys.argv = ['ytvis_eval', sys.argv[1], sys.argv[2]];"
        "import vis_d2.evaluation.ytvis_eval as m; m.main(sys.argv[1:]);"
        "bad = [n for n in sys.modules if n.split('.')[0] in ('torch', 'detectron2')]; print('HEAVY', bad)"
    )
    res = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "gt.json"), str(tmp_path / "res.json")],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "HEAVY []" in res.stdout


GOOD_GT = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A])])
GOOD_RESULTS = [pred(1, [A, A], 0.5)]


def _with(obj, **changes):
    return dict(obj, **changes)


BAD_INPUTS = {
    # name: (gt, results, text the one-line error must contain); str = the file's raw text
    "gt not json": ("{not json", [], "not valid JSON"),
    "gt empty file": ("", [], "empty file"),
    "gt truncated": (json.dumps(GOOD_GT)[:-30], [], "truncated?"),
    "gt without videos": ({"categories": [], "annotations": []}, [], "missing key 'videos'"),
    "gt is a list": ([GOOD_GT], [], "expected an object with 'videos'"),
    "gt duplicate video id": (
        {**GOOD_GT, "videos": GOOD_GT["videos"] * 2}, [], "video 1: duplicate video id"
    ),
    "gt duplicate category id": (
        {**GOOD_GT, "categories": GOOD_GT["categories"] * 2}, [], "duplicate category id 1"
    ),
    "gt duplicate annotation id": (
        dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A]), gt_track(1, 1, [B, B])]), [], "duplicate annotation id"
    ),
    "gt annotation of unknown video": (
        dataset({1: (H, W, 2)}, [gt_track(1, 5, [A, A])]), [], "video_id 5 is not in 'videos'"
    ),
    "gt rle of the wrong size": (
        dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, box(H, W + 1, 0, 2, 0, 2)], areas=[16, 4])]),
        [], "frame 1: RLE size [10, 13] does not match",
    ),
    "gt uncompressed rle that does not cover the frame": (
        dataset({1: (H, W, 1)}, [_with(gt_track(1, 1, [A]), segmentations=[{"size": [H, W], "counts": [5, 3]}])]),
        [], "counts sum to 8, not height*width 120",
    ),
    "gt areas missing": (
        dataset({1: (H, W, 2)}, [{k: v for k, v in gt_track(1, 1, [A, A]).items() if k != "areas"}]),
        [], "'areas'",
    ),
    "results empty file": (GOOD_GT, "", "empty file"),
    "results truncated": (GOOD_GT, json.dumps(GOOD_RESULTS)[:-40], "truncated?"),
    "results not a list": (GOOD_GT, {"video_id": 1}, "expected a list"),
    "results entry not an object": (GOOD_GT, [["video_id", 1]], "results[0]: must be an object"),
    "result missing score": (GOOD_GT, [{"video_id": 1, "category_id": 1, "segmentations": [None, None]}], "'score'"),
    "unknown video id": (GOOD_GT, [pred(7, [A, A], 0.5)], "video_id 7 is not a video of the ground truth"),
    "video id not an integer": (GOOD_GT, [_with(GOOD_RESULTS[0], video_id="1")], "'video_id' must be an integer"),
    "unknown category id": (
        GOOD_GT, [pred(1, [A, A], 0.5, category_id=0)], "category_id 0 is not a category of the ground truth (its ids: 1)"
    ),
    "rle of the wrong size": (GOOD_GT, [pred(1, [A, box(H + 1, W, 0, 2, 0, 2)], 0.5)], "frame 1: RLE size [11, 12]"),
    "too few segmentations": (GOOD_GT, [pred(1, [A], 0.5)], "1 segmentations for a video of length 2"),
    "segmentations not a list": (GOOD_GT, [_with(GOOD_RESULTS[0], segmentations=None)], "'segmentations' must be a list"),
    "uncompressed rle result": (
        GOOD_GT,
        [{"video_id": 1, "category_id": 1, "score": 0.5, "segmentations": [{"size": [H, W], "counts": [120]}, None]}],
        "compressed RLE",
    ),
    "polygon result": (GOOD_GT, [_with(GOOD_RESULTS[0], segmentations=[[[0, 0, 4, 0, 4, 4]], None])], "compressed RLE"),
    "score not a number": (GOOD_GT, [dict(pred(1, [A, A], 0.5), score="high")], "'score' must be a finite number"),
    "score NaN": (GOOD_GT, [dict(pred(1, [A, A], 0.5), score=float("nan"))], "'score' must be a finite number, got nan"),
    "score infinite": (GOOD_GT, [dict(pred(1, [A, A], 0.5), score=float("inf"))], "finite number, got inf"),
}


def _write_inputs(tmp_path, gt, results):
    gt_path, res_path = tmp_path / "gt.json", tmp_path / "res.json"
    for path, obj in ((gt_path, gt), (res_path, results)):
        path.write_text(obj if isinstance(obj, str) else json.dumps(obj))
    return gt_path, res_path


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_cli_bad_input_ends_with_one_clear_line_and_status_1_writing_nothing(tmp_path, capsys, name):
    from vis_d2.evaluation.ytvis_eval import main

    gt, results, expected = BAD_INPUTS[name]
    gt_path, res_path = _write_inputs(tmp_path, gt, results)
    out = tmp_path / "out.json"
    status = main([str(gt_path), str(res_path), "--json-out", str(out)])  # in-process: fast
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert status == 1 and captured.out == ""
    assert len(lines) == 1 and lines[0].startswith("ytvis_eval: error: ") and expected in lines[0], lines
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gt.json", "res.json"]  # no output, no temp file


@pytest.mark.parametrize("name", ["gt truncated", "score NaN", "unknown category id"])
def test_cli_process_prints_one_line_and_no_traceback_for_bad_input(tmp_path, name):
    gt, results, expected = BAD_INPUTS[name]
    proc, out = run_cli(tmp_path, gt, results)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0].startswith("ytvis_eval: error: ") and expected in lines[0], lines[0]
    assert not out.exists()


def test_cli_reads_a_results_zip_whose_only_member_is_results_json(tmp_path):
    import zipfile

    gt = dataset({1: (H, W, 2)}, [gt_track(1, 1, [A, A])])
    proc, out = run_cli(tmp_path, gt, [pred(1, [A, A], 0.9)])
    assert proc.returncode == 0, proc.stderr
    with zipfile.ZipFile(tmp_path / "results.zip", "w") as z:
        z.write(tmp_path / "res.json", "results.json")
    cmd = [sys.executable, "-m", "vis_d2.evaluation.ytvis_eval", str(tmp_path / "gt.json"), str(tmp_path / "results.zip")]
    from_zip = subprocess.run(cmd + ["--json-out", str(tmp_path / "zip.json")], capture_output=True, text=True, timeout=60)
    assert from_zip.returncode == 0, from_zip.stderr
    assert json.loads((tmp_path / "zip.json").read_text()) == json.loads(out.read_text())
    with zipfile.ZipFile(tmp_path / "two.zip", "w") as z:
        z.write(tmp_path / "res.json", "results.json")
        z.write(tmp_path / "res.json", "more.json")
    two = subprocess.run(cmd[:-1] + [str(tmp_path / "two.zip")], capture_output=True, text=True, timeout=60)
    assert two.returncode == 1 and "exactly one .json file" in two.stderr and two.stderr.count("\n") == 1


def test_cli_per_category_prints_each_category_with_its_ap_and_gt_tracks(tmp_path):
    gt = dataset(
        {1: (H, W, 1), 2: (H, W, 1)}, [gt_track(1, 1, [A], category_id=1), gt_track(2, 2, [B], category_id=2)],
        categories=(1, 2, 3),
    )  # fmt: skip
    proc, _ = run_cli(tmp_path, gt, [pred(1, [A], 0.9, category_id=1)], "--per-category")
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("category"):].splitlines()
    cells = [c.split() for line in table[1:] for c in line.split("|")]
    assert cells == [["cat1", "100.000", "1"], ["cat2", "0.000", "1"], ["cat3", "n/a", "0"]]
    assert len({len(line) for line in table}) == 1  # columns line up


def test_cli_missing_file_is_one_line(tmp_path):
    cmd = [sys.executable, "-m", "vis_d2.evaluation.ytvis_eval", str(tmp_path / "nope.json"), str(tmp_path / "r.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1 and "cannot read" in proc.stderr


def test_python_api_raises_format_error_naming_the_entry():
    with pytest.raises(YTVISFormatError, match=r"results\[1\] \(video 1\).*length 2"):
        evaluate_ytvis(GOOD_GT, [pred(1, [A, A], 0.5), pred(1, [A], 0.4)])
