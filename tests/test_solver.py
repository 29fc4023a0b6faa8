"""vis_d2.solver: SGD as detectron2 builds it, AdamW, and whole-model gradient clipping."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.solver import build_optimizer

from vis_d2.config import add_vis_config
from vis_d2.solver import build_video_optimizer


def _cfg(**solver):
    cfg = get_cfg()
    add_vis_config(cfg)
    for key, value in solver.items():
        node, name = cfg.SOLVER, key
        if "." in key:
            sub, name = key.split(".")
            node = getattr(cfg.SOLVER, sub)
        setattr(node, name, value)
    return cfg


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.GroupNorm(1, 3), torch.nn.Linear(3, 2))


def _one_step(cfg, builder):
    model = _model()
    optimizer = builder(cfg, model)
    model(torch.ones(2, 4)).pow(2).sum().mul(100).backward()
    optimizer.step()
    return optimizer, [p.detach().clone() for p in model.parameters()]


def test_sgd_matches_detectron2s_own_optimizer_step_for_step():
    cfg = _cfg(BASE_LR=0.1, MOMENTUM=0.9)
    _, ours = _one_step(cfg, build_video_optimizer)
    _, theirs = _one_step(cfg, build_optimizer)
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs))


def test_adamw_is_built_with_the_configured_betas_and_weight_decay():
    cfg = _cfg(OPTIMIZER="AdamW", BASE_LR=1e-3, BETAS=(0.8, 0.9), WEIGHT_DECAY=0.05)
    optimizer, _ = _one_step(cfg, build_video_optimizer)
    assert isinstance(optimizer, torch.optim.AdamW)
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.9) and group["lr"] == 1e-3


def test_full_model_clipping_bounds_the_norm_of_all_gradients_together():
    cfg = _cfg(**{"BASE_LR": 1.0, "MOMENTUM": 0.0, "WEIGHT_DECAY": 0.0, "CLIP_GRADIENTS.ENABLED": True,
                  "CLIP_GRADIENTS.CLIP_TYPE": "full_model", "CLIP_GRADIENTS.CLIP_VALUE": 0.5})
    model = _model()
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = build_video_optimizer(cfg, model)
    model(torch.ones(2, 4)).pow(2).sum().mul(100).backward()
    raw_norm = torch.norm(torch.stack([p.grad.norm() for p in model.parameters()]))
    optimizer.step()
    # Plain SGD with lr 1 moves the parameters by exactly the (clipped) gradient.
    step = torch.norm(torch.stack([(b - p.detach()).norm() for b, p in zip(before, model.parameters())]))
    assert raw_norm > 0.5 and abs(float(step) - 0.5) < 1e-4


def test_unknown_optimizer_name_is_a_clear_error():
    with pytest.raises(ValueError, match="SOLVER.OPTIMIZER must be one of SGD, ADAMW"):
        build_video_optimizer(_cfg(OPTIMIZER="LAMB"), _model())
