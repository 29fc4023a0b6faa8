"""Checkpoint files: loaded without running code from them, written so that a kill never truncates one."""
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch
from torch import nn

from vis_d2.checkpoint import CheckpointReadError, UnsafeCheckpointError, atomic_torch_save, load_checkpoint_file
from vis_d2.engine import VideoCheckpointer


class _Payload:
    """What a malicious pickle does: unpickling calls a function of the file's choosing."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_own_checkpoints_round_trip_through_weights_only_loading(tmp_path):
    model = nn.Linear(3, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    VideoCheckpointer(model, str(tmp_path), optimizer=optimizer).save("model_0000009", iteration=9)
    other = nn.Linear(3, 2)
    extra = VideoCheckpointer(other, str(tmp_path)).resume_or_load("", resume=True)
    assert extra["iteration"] == 9 and torch.equal(other.weight, model.weight)
    # the same file passes torch's own tensors-only loader
    torch.load(tmp_path / "model_0000009.pth", weights_only=True)


def test_pickle_with_code_is_refused_with_advice_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"model": {"w": torch.zeros(1)}, "extra": _Payload(str(marker))}, path)
    os.remove(marker) if marker.exists() else None  # (saving does not call __reduce__'s function, but be sure)
    with pytest.raises(UnsafeCheckpointError, match="MODEL.WEIGHTS_ALLOW_PICKLE") as info:
        VideoCheckpointer(nn.Linear(1, 1)).load(str(path))
    assert "arbitrary code" in str(info.value)
    assert not marker.exists()
    # the explicit opt-in loads it (and, as warned, runs the file's code)
    load_checkpoint_file(str(path), allow_pickle=True)
    assert marker.exists()


def test_pkl_with_code_is_refused_but_model_zoo_numpy_pkl_loads(tmp_path):
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pkl"
    with open(evil, "wb") as f:
        pickle.dump({"model": {"weight": np.zeros(2)}, "__author__": _Payload(str(marker))}, f)
    with pytest.raises(UnsafeCheckpointError, match=r"names io\.open"):
        load_checkpoint_file(str(evil))
    assert not marker.exists()

    model = nn.Linear(2, 3)
    zoo = tmp_path / "model_final_abc.pkl"  # detectron2 model-zoo layout: numpy arrays, "__author__"
    weights = {"weight": np.arange(6, dtype=np.float32).reshape(3, 2), "bias": np.array([1, 2, 3], np.float32)}
    with open(zoo, "wb") as f:
        pickle.dump({"model": weights, "__author__": "Detectron2 Model Zoo"}, f)
    VideoCheckpointer(model).load(str(zoo))
    assert torch.equal(model.weight, torch.arange(6.0).reshape(3, 2))


def test_truncated_checkpoint_gives_one_clear_error(tmp_path):
    path = tmp_path / "model.pth"
    torch.save({"model": {"w": torch.zeros(1000)}}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointReadError, match="truncated"):
        VideoCheckpointer(nn.Linear(1, 1)).load(str(path))
    (tmp_path / "empty.pth").write_bytes(b"")
    with pytest.raises(CheckpointReadError, match="empty"):
        load_checkpoint_file(str(tmp_path / "empty.pth"))


def test_interrupted_save_leaves_previous_checkpoint_and_no_temp_file(tmp_path, monkeypatch):
    model = nn.Linear(4, 4)
    ckpt = VideoCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000001")
    before = (tmp_path / "model_0000001.pth").read_bytes()

    def half_written_then_killed(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", half_written_then_killed)
    with torch.no_grad():
        model.weight.add_(1)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save("model_0000001")
    assert (tmp_path / "model_0000001.pth").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_0000001.pth"]


def test_sigkill_during_repeated_saves_never_leaves_a_truncated_checkpoint(tmp_path):
    # A child rewrites a 16 MB checkpoint in a loop (almost all of its time is spent mid-write); we SIGKILL
    # it at a moment of our choosing and read what is left.
    target = tmp_path / "model.pth"
    child = textwrap.dedent(f"""
        import torch, sys
        from vis_d2.checkpoint import atomic_torch_save
        w = torch.zeros(4 * 1024 * 1024)
        for i in range(1000000):
            w.fill_(i)
            atomic_torch_save({{"model": {{"w": w}}, "iteration": i}}, {str(target)!r})
            if i == 1:
                print("ready", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", child], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(0.37)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    data = load_checkpoint_file(str(target))
    assert data["iteration"] >= 1 and bool((data["model"]["w"] == data["iteration"]).all())


def test_atomic_torch_save_replaces_the_file_in_one_step(tmp_path):
    path = tmp_path / "x.pth"
    atomic_torch_save({"a": torch.ones(1)}, str(path))
    atomic_torch_save({"a": torch.zeros(1)}, str(path))
    assert load_checkpoint_file(str(path))["a"].item() == 0.0
    assert os.listdir(tmp_path) == ["x.pth"]
