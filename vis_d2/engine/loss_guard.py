"""Stop training on the first NaN / inf loss, with a message naming the loss and the iteration.

detectron2's ``SimpleTrainer`` checks the *sum* of the losses after the backward pass and raises a
``FloatingPointError`` naming the iteration and printing every loss. We check each loss as the model returns
it (a forward hook, so no trainer internals are touched), before the backward pass and the optimizer step:
the weights are still those of the last good step, and the message says which loss broke. The trainer then
stops saving checkpoints, so the last one written stays the last good one.
"""
from typing import Dict, Mapping, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

__all__ = ["NonFiniteLossError", "find_nonfinite_losses", "attach_loss_guard"]


class NonFiniteLossError(FloatingPointError):
    """A training loss is NaN or inf.

    Attributes:
        losses: name -> value of the non-finite losses.
        iteration: the training iteration (None outside a training loop).
        last_checkpoint: the checkpoint training can resume from, when known.
    """

    def __init__(self, losses: Dict[str, float], iteration: Optional[int], last_checkpoint: Optional[str] = None):
        self.losses, self.iteration, self.last_checkpoint = dict(losses), iteration, last_checkpoint
        names = ", ".join(f"{k} = {v}" for k, v in self.losses.items())
        where = f"at iteration {iteration}" if iteration is not None else "outside the training loop"
        msg = f"Non-finite loss {where}: {names}. Training stopped before the backward pass; no checkpoint is saved after it."
        if last_checkpoint:
            msg += f" The last good checkpoint is {last_checkpoint} (resume from it with --resume)."
        super().__init__(msg)

    def __reduce__(self):  # keep the attributes when the error crosses a process boundary
        return (type(self), (self.losses, self.iteration, self.last_checkpoint))


def find_nonfinite_losses(losses: Mapping[str, torch.Tensor]) -> Dict[str, float]:
    """Name -> value of every loss that holds a NaN or inf (one device sync for all of them)."""
    names = [k for k, v in losses.items() if isinstance(v, torch.Tensor)]
    if not names:
        return {}
    finite = torch.stack([torch.isfinite(losses[k].detach()).all() for k in names])
    if bool(finite.all()):
        return {}
    return {k: float(losses[k].detach().float().sum()) for k, ok in zip(names, finite.tolist()) if not ok}


def _current_iteration() -> Optional[int]:
    from detectron2.utils.events import get_event_storage

    try:
        return int(get_event_storage().iter)
    except AssertionError:  # no EventStorage: not inside a training loop
        return None


def attach_loss_guard(model: nn.Module):
    """Make ``model``'s training forward raise :class:`NonFiniteLossError` on a NaN/inf loss.

    Args:
        model: a model whose training forward returns a dict of losses (or one loss tensor); a DDP wrapper
            is looked through.

    Returns:
        The hook handle (``handle.remove()`` detaches the guard).
    """
    module = model.module if isinstance(model, DistributedDataParallel) else model

    def check(mod, inputs, output):
        if not mod.training:
            return
        losses = {"total_loss": output} if isinstance(output, torch.Tensor) else output
        if not isinstance(losses, Mapping):
            return
        bad = find_nonfinite_losses(losses)
        if bad:
            raise NonFiniteLossError(bad, _current_iteration())

    return module.register_forward_hook(check)
