"""Tests of YTVISEvaluator: detectron2's DatasetEvaluator protocol around the YouTube-VIS evaluation."""
import json
import logging
import math
import zipfile

import numpy as np
import pytest
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import print_csv_format
from pycocotools import mask as mask_util

from vis_d2.config import add_vis_config
from vis_d2.evaluation import METRIC_KEYS, YTVISEvaluator

H, W = 8, 10


def box(y0, y1, x0, x1):
    m = np.zeros((H, W), dtype=np.uint8)
    m[y0:y1, x0:x1] = 1
    return m


def model_rle(mask):
    return mask_util.encode(np.asfortranarray(mask))  # counts as bytes, as a model would produce


def json_rle(mask):
    r = model_rle(mask)
    r["counts"] = r["counts"].decode("ascii")
    return r


A, B = box(0, 3, 0, 3), box(4, 8, 5, 10)
# the json's category ids are not contiguous: 3 -> 0 ("cat"), 7 -> 1 ("dog")
DATASET_TO_CONTIGUOUS = {3: 0, 7: 1}


def write_gt(path, with_annotations=True, hard_video=None):
    videos = [{"id": v, "height": H, "width": W, "length": 2} for v in (1, 2)]
    if hard_video is not None:
        videos[hard_video - 1]["is_hard"] = True
    anns = [
        {"id": 1, "video_id": 1, "category_id": 3, "iscrowd": 0,
         "segmentations": [json_rle(A), json_rle(A)], "areas": [9, 9]},
        {"id": 2, "video_id": 2, "category_id": 7, "iscrowd": 0,
         "segmentations": [None, json_rle(B)], "areas": [None, 20]},
    ]  # fmt: skip
    gt = {
        "videos": videos,
        "categories": [{"id": 3, "name": "cat"}, {"id": 7, "name": "dog"}],
        "annotations": anns if with_annotations else None,
    }
    path.write_text(json.dumps(gt))


@pytest.fixture
def register(tmp_path, request):
    """Register a dataset named after the test, whose json is written by ``write_gt``."""
    names = []

    def _register(**gt_kwargs):
        name = f"ytvis_eval_test_{request.node.name}_{len(names)}"
        json_file = tmp_path / f"{name}.json"
        write_gt(json_file, **gt_kwargs)
        DatasetCatalog.register(name, lambda: [])
        MetadataCatalog.get(name).set(
            json_file=str(json_file), thing_dataset_id_to_contiguous_id=DATASET_TO_CONTIGUOUS,
            thing_classes=["cat", "dog"], evaluator_type="ytvis",
        )  # fmt: skip
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def output(video_id, tracks):
    return {"video_id": video_id, "height": H, "width": W, "length": 2, "pred_tracks": tracks}


def track(score, label, masks):
    return {"track_id": 0, "score": score, "category_id": label,
            "segmentations": [None if m is None else model_rle(m) for m in masks]}  # fmt: skip


def run(evaluator, outputs):
    evaluator.reset()
    for out in outputs:  # batch size 1, as the test loader gives
        evaluator.process([{"video_id": out["video_id"], "length": out["length"]}], [out])
    return evaluator.evaluate()


PERFECT = [output(1, [track(0.9, 0, [A, A])]), output(2, [track(0.8, 1, [None, B])])]


def test_evaluate_writes_results_zip_and_metrics_and_returns_segm(register, tmp_path):
    name = register()
    out_dir = tmp_path / "inference"
    res = run(YTVISEvaluator(name, str(out_dir), distributed=False), PERFECT)

    assert list(res) == ["segm"]
    assert [k for k in res["segm"] if not k.startswith("AP-")] == list(METRIC_KEYS)
    assert res["segm"]["AP"] == pytest.approx(100.0) and res["segm"]["AR1"] == pytest.approx(100.0)
    assert math.isnan(res["segm"]["APl"])  # undefined (no large GT): NaN for print_csv_format
    print_csv_format(res)  # what train_net does with it: must not choke on undefined metrics
    assert res["segm"]["AP-cat"] == pytest.approx(100.0)

    results = json.loads((out_dir / "results.json").read_text())
    assert sorted((r["video_id"], r["category_id"]) for r in results) == [(1, 3), (2, 7)]  # dataset ids
    assert all(isinstance(s["counts"], str) for r in results for s in r["segmentations"] if s)
    assert results[1]["segmentations"][0] is None
    with zipfile.ZipFile(out_dir / "results.zip") as z:
        assert z.namelist() == ["results.json"]
        assert json.loads(z.read("results.json")) == results

    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["AP"] == pytest.approx(100.0) and metrics["APl"] is None
    assert metrics["per_category_AP"] == {"cat": pytest.approx(100.0), "dog": pytest.approx(100.0)}
    assert "hard" not in metrics


def test_metrics_include_the_hard_videos_subset_when_tagged(register, tmp_path):
    name = register(hard_video=2)
    miss_video_2 = [output(1, [track(0.9, 0, [A, A])]), output(2, [track(0.8, 1, [A, None])])]
    run(YTVISEvaluator(name, str(tmp_path), distributed=False), miss_video_2)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["AR100"] == pytest.approx(50.0)
    assert set(metrics["hard"]) == set(METRIC_KEYS) and metrics["hard"]["AR100"] == 0.0


def test_max_tracks_per_video_keeps_the_best_scores(register, tmp_path):
    name = register()
    tracks = [track(s, 0, [B, B]) for s in (0.2, 0.9, 0.5)]
    run(YTVISEvaluator(name, str(tmp_path), distributed=False, max_tracks_per_video=2), [output(1, tracks)])
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["score"] for r in results] == [0.9, 0.5]


def test_without_ground_truth_only_results_are_written(register, tmp_path):
    name = register(with_annotations=False)
    res = run(YTVISEvaluator(name, str(tmp_path), distributed=False), PERFECT)
    assert res == {}
    assert (tmp_path / "results.json").exists() and (tmp_path / "results.zip").exists()
    assert not (tmp_path / "metrics.json").exists()


def test_built_from_config_reads_zip_and_track_limit(register, tmp_path):
    name = register()
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.TEST.VIS_ZIP_RESULTS = False
    cfg.TEST.VIS_MAX_TRACKS_PER_VIDEO = 1
    evaluator = YTVISEvaluator(cfg, name, str(tmp_path))  # distributed=True works in one process too
    # video 1 also has a "dog" false positive scored above video 2's dog hit: kept, it would halve dog AP
    outputs = [output(1, [track(0.3, 1, [B, B]), track(0.9, 0, [A, A])]), output(2, [track(0.2, 1, [None, B])])]
    res = run(evaluator, outputs)
    assert res["segm"]["AP"] == pytest.approx(100.0)
    assert len(json.loads((tmp_path / "results.json").read_text())) == 2
    assert not (tmp_path / "results.zip").exists()


def test_track_length_mismatch_is_an_error(register):
    evaluator = YTVISEvaluator(register(), None, distributed=False)
    bad = {"video_id": 1, "height": H, "width": W, "length": 2, "pred_tracks": [track(0.9, 0, [A])]}
    with pytest.raises(ValueError, match="1 segmentations for 2 frames"):
        evaluator.process([{"video_id": 1, "length": 2}], [bad])


def test_results_zip_holds_exactly_one_top_level_results_json_that_the_cli_reads(register, tmp_path):
    run(YTVISEvaluator(register(), str(tmp_path), distributed=False), PERFECT)
    with zipfile.ZipFile(tmp_path / "results.zip") as z:
        assert [(i.filename, i.is_dir()) for i in z.infolist()] == [("results.json", False)]
    from vis_d2.evaluation.ytvis_io import load_json

    assert load_json(str(tmp_path / "results.zip"), "results") == json.loads((tmp_path / "results.json").read_text())


def test_logs_show_all_hard_and_clean_side_by_side_and_a_per_category_table(register, tmp_path, caplog):
    name = register(hard_video=2)
    with caplog.at_level(logging.INFO, logger="vis_d2.evaluation.ytvis_evaluator"):
        run(YTVISEvaluator(name, str(tmp_path), distributed=False), PERFECT)
    text = "\n".join(r.getMessage() for r in caplog.records)
    header = next(line for line in text.splitlines() if line.startswith("metric "))
    assert header.split()[:4] == ["metric", "all", "hard", "(1)"] and "clean" in header
    assert any(line.split()[:2] == ["AP", "100.000"] for line in text.splitlines())
    per_category = text[text.index("Per-category AP"):].splitlines()[1:3]
    assert [c.split() for c in per_category[1].split("|")] == [["cat", "100.000", "1"], ["dog", "100.000", "1"]]


def test_a_failure_while_writing_metrics_keeps_the_previous_file_and_no_temporary(register, tmp_path, monkeypatch):
    import contextlib

    from vis_d2.evaluation import ytvis_evaluator

    name = register()
    run(YTVISEvaluator(name, str(tmp_path), distributed=False), PERFECT)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.suffix in (".json", ".zip")}
    real = ytvis_evaluator.atomic_write

    @contextlib.contextmanager
    def killed_while_writing_metrics(path, *args, **kwargs):
        with real(path, *args, **kwargs) as f:
            if path.endswith("metrics.json"):
                f.write("{\"AP\": 1")
                raise KeyboardInterrupt  # a kill mid-write
            yield f

    monkeypatch.setattr(ytvis_evaluator, "atomic_write", killed_while_writing_metrics)
    with pytest.raises(KeyboardInterrupt):
        run(YTVISEvaluator(name, str(tmp_path), distributed=False), [output(1, [track(0.9, 0, [A, A])])])
    assert json.loads((tmp_path / "metrics.json").read_bytes()) == json.loads(before["metrics.json"])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_malformed_ground_truth_raises_the_format_error_and_writes_no_metrics(tmp_path, register):
    from vis_d2.evaluation import YTVISFormatError

    name = register()
    gt = json.loads(open(MetadataCatalog.get(name).json_file).read())
    gt["annotations"][0]["segmentations"][1] = {"size": [H + 1, W], "counts": "abc"}
    open(MetadataCatalog.get(name).json_file, "w").write(json.dumps(gt))
    with pytest.raises(YTVISFormatError, match=r"annotation id 1 \(video 1\), frame 1: RLE size"):
        run(YTVISEvaluator(name, str(tmp_path), distributed=False), PERFECT)
    assert json.loads((tmp_path / "results.json").read_text())  # the predictions are kept, complete
    assert not (tmp_path / "metrics.json").exists()
