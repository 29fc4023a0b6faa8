"""The optimizer of vis_d2's trainer: detectron2's SGD, or AdamW, with per-parameter or whole-model clipping.

detectron2 v0.6 builds SGD only, and its ``CLIP_GRADIENTS`` clips each parameter on its own. Two choices
matter for training from scratch and for following the official MaskTrack R-CNN, so both are config keys:

- ``SOLVER.OPTIMIZER``: "SGD" (detectron2's, with ``MOMENTUM`` / ``NESTEROV``) or "ADAMW" (``SOLVER.BETAS``);
- ``SOLVER.CLIP_GRADIENTS.CLIP_TYPE "full_model"``: one norm over every parameter's gradient, clipped at
  ``CLIP_VALUE`` (the official MaskTrack R-CNN clips the whole model's L2 norm at 35); "value" and "norm"
  keep detectron2's per-parameter meaning.
"""
from typing import Type

import torch
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping

__all__ = ["build_video_optimizer"]

_OPTIMIZERS = ("SGD", "ADAMW")


def _with_full_model_clipping(optimizer_type: Type[torch.optim.Optimizer], max_norm: float, norm_type: float):
    """A subclass of ``optimizer_type`` whose ``step`` first clips the norm of all gradients together."""

    class FullModelGradientClipping(optimizer_type):
        def step(self, closure=None):
            params = [p for group in self.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_norm, norm_type=norm_type)
            return super().step(closure)

    FullModelGradientClipping.__name__ = optimizer_type.__name__ + "WithFullModelGradientClip"
    return FullModelGradientClipping


def build_video_optimizer(cfg, model: torch.nn.Module) -> torch.optim.Optimizer:
    """Build the optimizer named by ``cfg.SOLVER.OPTIMIZER`` over ``model``'s parameters.

    Learning rate, weight decay (and its norm/bias overrides) and the parameter groups are detectron2's
    (``get_default_optimizer_params``), so "SGD" gives exactly what detectron2's ``build_optimizer`` gives.
    """
    name = cfg.SOLVER.OPTIMIZER.upper()
    if name not in _OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER must be one of {', '.join(_OPTIMIZERS)}, got {cfg.SOLVER.OPTIMIZER!r}")
    params = get_default_optimizer_params(
        model,
        base_lr=cfg.SOLVER.BASE_LR,
        weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
        bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
        weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
    )
    if name == "SGD":
        optimizer_type = torch.optim.SGD
        kwargs = {"momentum": cfg.SOLVER.MOMENTUM, "nesterov": cfg.SOLVER.NESTEROV}
    else:
        optimizer_type = torch.optim.AdamW
        kwargs = {"betas": tuple(cfg.SOLVER.BETAS)}
    clip = cfg.SOLVER.CLIP_GRADIENTS
    if clip.ENABLED and clip.CLIP_TYPE == "full_model":
        optimizer_type = _with_full_model_clipping(optimizer_type, clip.CLIP_VALUE, clip.NORM_TYPE)
    else:
        optimizer_type = maybe_add_gradient_clipping(cfg, optimizer_type)
    return optimizer_type(params, lr=cfg.SOLVER.BASE_LR, weight_decay=cfg.SOLVER.WEIGHT_DECAY, **kwargs)
