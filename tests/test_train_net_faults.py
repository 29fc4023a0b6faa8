"""train_net.py killed mid-training resumes from its last checkpoint (a real process, a real SIGKILL)."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
FAST = [
    "INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "160",
    "SOLVER.IMS_PER_BATCH", "1", "DATALOADER.NUM_WORKERS", "0", "SOLVER.WARMUP_ITERS", "2",
    "DATASETS.TEST", "()", "SOLVER.CHECKPOINT_PERIOD", "1",
]  # fmt: skip


@pytest.fixture(scope="module")
def synth_env(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    subprocess.run(
        [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(root / "synth_vis"), "--videos", "3",
         "--val-videos", "1", "--seed", "5", "--height", "96", "--width", "160", "--frames", "6"],
        check=True, cwd=REPO, capture_output=True,
    )
    return dict(os.environ, DETECTRON2_DATASETS=str(root))


def _train_net(*args):
    return [sys.executable, "train_net.py", "--config-file", CONFIG, *args]


def test_killed_training_resumes_from_its_last_checkpoint(synth_env, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_net(*FAST, "SOLVER.MAX_ITER", "1000", "OUTPUT_DIR", str(out)), cwd=REPO,
                            env=synth_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 600  # generous: a busy shared machine can be several times slower
        tag = out / "last_checkpoint"
        while time.time() < deadline and proc.poll() is None:
            if tag.exists() and tag.read_text() >= "model_0000001.pth":  # two checkpoints written
                break
            time.sleep(0.2)
        assert proc.poll() is None, "training ended before it could be killed"
        assert tag.exists(), "no checkpoint within 600 s"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    last = (out / "last_checkpoint").read_text().strip()
    iteration = torch.load(out / last, weights_only=True)["iteration"]
    assert iteration >= 1

    done = subprocess.run(_train_net("--resume", *FAST, "SOLVER.MAX_ITER", str(iteration + 3), "OUTPUT_DIR", str(out)),
                          cwd=REPO, env=synth_env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"Starting training from iteration {iteration + 1}" in done.stdout + done.stderr
    assert torch.load(out / "model_final.pth", weights_only=True)["iteration"] == iteration + 2

