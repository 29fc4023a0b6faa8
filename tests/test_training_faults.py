"""Training faults: a NaN/inf loss stops training cleanly and leaves the last good checkpoint as the last one."""
import itertools
import os

import pytest
import torch
from torch import nn

from vis_d2.engine import NonFiniteLossError, VideoCheckpointer, VideoTrainer, attach_loss_guard, build_config

CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "synth_vis",
                      "masktrack_rcnn_tiny.yaml")


class _LossTurnsBadModel(nn.Module):
    """One weight; ``loss_box`` is finite until iteration ``bad_iter`` of the event storage, then ``value``."""

    def __init__(self, bad_iter, value):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3))
        self.bad_iter, self.value = bad_iter, value

    def forward(self, batch):
        from detectron2.utils.events import get_event_storage

        loss = (self.weight ** 2).sum()
        bad = get_event_storage().iter >= self.bad_iter
        return {"loss_cls": loss, "loss_box": loss * self.value if bad else loss * 0.5}


def _toy_trainer(tmp_path, bad_iter, value, max_iter, period):
    class ToyTrainer(VideoTrainer):
        @classmethod
        def build_model(cls, cfg):
            return _LossTurnsBadModel(bad_iter, value)

        @classmethod
        def build_train_loader(cls, cfg):
            return itertools.repeat([{}])

    cfg = build_config(CONFIG, ["OUTPUT_DIR", str(tmp_path), "SOLVER.MAX_ITER", str(max_iter),
                                "SOLVER.CHECKPOINT_PERIOD", str(period), "DATASETS.TEST", "()",
                                "SOLVER.WARMUP_ITERS", "0", "MODEL.DEVICE", "cpu"], freeze=False)
    return ToyTrainer(cfg)


@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_nonfinite_loss_stops_naming_loss_and_iteration_and_keeps_last_checkpoint(tmp_path, value):
    # Checkpoints after iterations 1 and 3 (period 2); loss_box turns bad at iteration 5, the last one, where
    # detectron2's PeriodicCheckpointer would otherwise also write model_final.pth.
    trainer = _toy_trainer(tmp_path, bad_iter=5, value=value, max_iter=6, period=2)
    with pytest.raises(NonFiniteLossError) as info:
        trainer.train()
    err = info.value
    assert err.iteration == 5 and list(err.losses) == ["loss_box"]
    assert "loss_box" in str(err) and "iteration 5" in str(err) and "model_0000003.pth" in str(err)
    assert sorted(f for f in os.listdir(tmp_path) if f.endswith(".pth")) == ["model_0000001.pth", "model_0000003.pth"]
    with open(tmp_path / "last_checkpoint") as f:
        assert f.read() == "model_0000003.pth"
    saved = torch.load(tmp_path / "model_0000003.pth", weights_only=True)
    assert saved["iteration"] == 3 and torch.isfinite(saved["model"]["weight"]).all()
    # A later explicit save is refused too (e.g. a hook's after_train).
    trainer.checkpointer.save("model_final")
    assert not os.path.exists(tmp_path / "model_final.pth")


def test_guard_checks_each_loss_before_backward():
    model = _LossTurnsBadModel(bad_iter=0, value=float("nan")).train()
    attach_loss_guard(model)
    from detectron2.utils.events import EventStorage

    with EventStorage(7):
        with pytest.raises(NonFiniteLossError, match=r"iteration 7: loss_box = nan"):
            model([{}])
    assert model.weight.grad is None  # raised before any backward pass
    model.eval()
    with EventStorage(7):
        model([{}])  # inference outputs are not losses: not checked


def test_checkpointer_refuses_to_save_nan_weights_and_keeps_previous_file(tmp_path):
    model = nn.Linear(2, 2)
    ckpt = VideoCheckpointer(model, str(tmp_path))
    ckpt.save("model_0000001")
    before = (tmp_path / "model_0000001.pth").read_bytes()
    with torch.no_grad():
        model.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="weight"):
        ckpt.save("model_0000001")
    assert (tmp_path / "model_0000001.pth").read_bytes() == before
