"""End to end through the user-facing entry point: train_net.py trains, checkpoints, resumes and evaluates."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
EVAL_KEYS = {"AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"}
# Small frames and few proposals keep each iteration well under a second on 2 cores.
FAST = [
    "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "160",
    "INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160",
    "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0",
    "SOLVER.WARMUP_ITERS", "2",
]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    subprocess.run(
        [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(root / "synth_vis"), "--videos", "4",
         "--val-videos", "2", "--seed", "3", "--height", "96", "--width", "160"],
        check=True, cwd=REPO,
    )
    return root


def run_train_net(synth_root, *opts, flags=()):
    env = dict(os.environ, DETECTRON2_DATASETS=str(synth_root))
    proc = subprocess.run(
        [sys.executable, "train_net.py", "--config-file", CONFIG, *flags, *FAST, *opts],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def test_train_then_resume_then_evaluate(synth_root, tmp_path):
    out = str(tmp_path / "run")
    log = run_train_net(synth_root, "SOLVER.MAX_ITER", "3", "SOLVER.CHECKPOINT_PERIOD", "2", "OUTPUT_DIR", out)
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
    assert re.search(r"iter: 2\b", log) or "Overall training speed" in log
    with open(os.path.join(out, "last_checkpoint")) as f:
        assert f.read().strip() == "model_final.pth"

    # --resume continues after the last checkpoint's iteration (2) instead of starting over.
    log = run_train_net(synth_root, "SOLVER.MAX_ITER", "5", "OUTPUT_DIR", out, flags=["--resume"])
    assert "Starting training from iteration 3" in log

    shutil.rmtree(os.path.join(out, "inference"))  # written by the evaluation at the end of training
    run_train_net(
        synth_root, "MODEL.WEIGHTS", os.path.join(out, "model_final.pth"), "OUTPUT_DIR", out, flags=["--eval-only"]
    )
    inference = os.path.join(out, "inference")
    with open(os.path.join(inference, "metrics.json")) as f:
        metrics = json.load(f)
    assert EVAL_KEYS <= set(metrics)
    assert all(metrics[k] is None or 0.0 <= metrics[k] <= 100.0 for k in EVAL_KEYS)
    assert os.path.isfile(os.path.join(inference, "results.zip"))
    with open(os.path.join(inference, "results.json")) as f:
        results = json.load(f)
    with open(os.path.join(str(synth_root), "synth_vis", "valid.json")) as f:
        lengths = {v["id"]: v["length"] for v in json.load(f)["videos"]}
    assert all(len(r["segmentations"]) == lengths[r["video_id"]] for r in results)


def test_two_processes_train_on_cpu_through_the_gloo_launcher(synth_root, tmp_path):
    # detectron2's own launcher needs NCCL and GPUs; ours falls back to gloo when CUDA is absent.
    out = str(tmp_path / "ddp")
    log = run_train_net(
        synth_root, "SOLVER.MAX_ITER", "2", "DATASETS.TEST", "()", "OUTPUT_DIR", out, flags=["--num-gpus", "2"]
    )
    assert "World size: 2" in log
    assert os.path.isfile(os.path.join(out, "model_final.pth"))
