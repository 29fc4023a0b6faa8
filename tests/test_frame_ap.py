"""tools/frame_ap.py: the detector's per-frame image AP, per class and class-agnostic, all and hard videos."""
import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from pycocotools import mask as mask_util

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
_spec = importlib.util.spec_from_file_location("frame_ap_cli", os.path.join(REPO, "tools", "frame_ap.py"))
frame_ap = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(frame_ap)
H, W = 32, 48


def square(y, x, size=10):
    m = np.zeros((H, W), np.uint8)
    m[y:y + size, x:x + size] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode()
    return rle, [float(x), float(y), float(size), float(size)]


def record(video_id, frames, is_hard):
    annotations = []
    for objects in frames:
        frame = []
        for category, (y, x) in objects:
            rle, box = square(y, x)
            frame.append({"category_id": category, "segmentation": rle, "bbox": box, "iscrowd": 0})
        annotations.append(frame)
    return {"video_id": video_id, "height": H, "width": W, "annotations": annotations, "is_hard": is_hard}


RECORDS = [
    record(1, [[(0, (2, 2)), (1, (15, 30))], [(0, (4, 4))]], is_hard=False),
    record(2, [[(1, (10, 10))], []], is_hard=True),
]


def detections_from(records, relabel=None):
    out = {}
    for r in records:
        out[r["video_id"]] = [
            [
                {"category_id": relabel(a["category_id"]) if relabel else a["category_id"], "score": 0.9,
                 "bbox": a["bbox"], "segmentation": a["segmentation"]}
                for a in frame
            ]
            for frame in r["annotations"]
        ]
    return out


def test_ground_truth_as_detections_scores_100_everywhere():
    result = frame_ap.coco_frame_ap(RECORDS, detections_from(RECORDS), num_classes=2)
    assert set(result) == {"all", "hard"}
    for subset in result.values():
        for metric in ("bbox", "segm", "bbox_agnostic", "segm_agnostic"):
            assert subset[metric]["AP"] == pytest.approx(100.0)


def test_wrong_classes_score_0_but_class_agnostic_100():
    result = frame_ap.coco_frame_ap(RECORDS, detections_from(RECORDS, relabel=lambda c: 1 - c), num_classes=2)
    assert result["all"]["segm"]["AP"] == pytest.approx(0.0)
    assert result["all"]["segm_agnostic"]["AP"] == pytest.approx(100.0)


def test_a_missed_frame_lowers_recall_and_ap():
    detections = detections_from(RECORDS)
    detections[1][1] = []  # video 1 frame 1: its only object is missed
    result = frame_ap.coco_frame_ap(RECORDS, detections, num_classes=2)
    assert result["all"]["segm"]["AP"] < 100.0
    assert result["hard"]["segm"]["AP"] == pytest.approx(100.0)  # video 2 alone is still perfect


def test_cli_on_a_random_model_writes_all_figures(tmp_path):
    root = tmp_path / "datasets"
    subprocess.run(
        [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(root / "synth_vis"), "--videos", "2",
         "--val-videos", "2", "--seed", "1", "--height", "96", "--width", "160"],
        check=True, cwd=REPO, capture_output=True,
    )
    out = tmp_path / "frame_ap.json"
    proc = subprocess.run(
        [sys.executable, "tools/frame_ap.py", "--config-file", CONFIG, "--out", str(out), "MODEL.WEIGHTS", "",
         "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"],
        cwd=REPO, env=dict(os.environ, DETECTRON2_DATASETS=str(root)), capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| all | segm |" in proc.stdout
    result = json.loads(out.read_text())
    for subset in result.values():
        for metric in subset.values():
            assert 0.0 <= metric["AP"] <= 100.0
