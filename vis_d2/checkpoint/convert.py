"""Rename another codebase's state dict into a vis_d2 model's, accounting for every tensor on both sides.

A conversion is a *rename function* (source key -> what becomes of it) applied to every source tensor,
checked against the target model's state dict (key -> shape):

- every source tensor is either mapped to a target key (possibly transformed, e.g. rows reordered),
  deliberately dropped with a stated reason, or *unknown* -- and unknown keys make the conversion fail
  (nothing is silently dropped);
- every target key inside the conversion's scope must be filled exactly once with a tensor of its shape;
- target keys outside the scope (e.g. the detection heads when only a backbone is converted) are left to
  the model's initialisation and listed as such.

:func:`convert_state_dict` returns a :class:`Conversion` that holds the converted tensors and the full
account; :meth:`Conversion.raise_if_incomplete` turns any gap into one :class:`ConversionError` listing it.
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch

__all__ = ["Mapped", "Dropped", "Conversion", "ConversionError", "convert_state_dict", "to_tensor_dict"]

Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass
class Mapped:
    """A source tensor (transformed by ``transform`` when given) becomes target ``target``.

    ``note`` says what the transform does (it is printed in the conversion report).
    """

    target: str
    transform: Optional[Transform] = None
    note: str = ""


@dataclass
class Dropped:
    """A source tensor deliberately not converted, and why."""

    reason: str


RenameResult = Union[Mapped, Dropped, Sequence[Mapped], None]


class ConversionError(ValueError):
    """The source does not fit the target model; the message lists every key at fault."""


def _in(key: str, prefixes: Iterable[str]) -> bool:
    return any(key.startswith(p) for p in prefixes)


@dataclass
class Conversion:
    """The converted tensors and the account of every source and target key.

    Attributes:
        tensors: target key -> converted tensor.
        origin: target key -> (source key, note).
        dropped: source key -> reason.
        unknown: source keys the rename function has no rule for, or whose target is not in the model.
        missing: target keys in scope that no source tensor filled.
        left_to_init: target keys deliberately not filled (outside the scope, or allowed to stay).
        mismatched: (source key, target key, source shape, target shape) after the transform.
        duplicates: target keys two source tensors mapped to.
    """

    tensors: Dict[str, torch.Tensor] = field(default_factory=dict)
    origin: Dict[str, Tuple[str, str]] = field(default_factory=dict)
    dropped: Dict[str, str] = field(default_factory=dict)
    unknown: List[str] = field(default_factory=list)
    missing: List[str] = field(default_factory=list)
    left_to_init: Dict[str, str] = field(default_factory=dict)
    mismatched: List[Tuple[str, str, tuple, tuple]] = field(default_factory=list)
    duplicates: List[str] = field(default_factory=list)

    def problems(self) -> List[str]:
        lines = []
        if self.unknown:
            lines.append(f"{len(self.unknown)} source keys have no counterpart in the model: "
                         + ", ".join(self.unknown[:12]) + (" ..." if len(self.unknown) > 12 else ""))
        if self.mismatched:
            lines.append(f"{len(self.mismatched)} shapes differ: " + "; ".join(
                f"{s} {tuple(a)} -> {t} {tuple(b)}" for s, t, a, b in self.mismatched[:8]))
        if self.missing:
            lines.append(f"{len(self.missing)} model keys are not in the source: "
                         + ", ".join(self.missing[:12]) + (" ..." if len(self.missing) > 12 else ""))
        if self.duplicates:
            lines.append("filled twice: " + ", ".join(self.duplicates))
        return lines

    def raise_if_incomplete(self) -> None:
        problems = self.problems()
        if problems:
            raise ConversionError("Cannot convert the checkpoint:\n  " + "\n  ".join(problems))

    def summary(self) -> str:
        """A human-readable report: counts, every transform, every dropped key, what is left to init."""
        notes = sorted({(o[1], t.rsplit(".", 1)[0]) for t, o in self.origin.items() if o[1]})
        lines = [f"converted {len(self.tensors)} tensors"]
        lines += [f"  {layer}: {note}" for note, layer in notes]
        if self.dropped:
            by_reason: Dict[str, List[str]] = {}
            for key, reason in self.dropped.items():
                by_reason.setdefault(reason, []).append(key)
            lines.append(f"dropped {len(self.dropped)} source tensors:")
            lines += [f"  {len(keys)} x {reason} (e.g. {keys[0]})" for reason, keys in by_reason.items()]
        if self.left_to_init:
            by_reason = {}
            for key, reason in self.left_to_init.items():
                by_reason.setdefault(reason, []).append(key)
            lines.append(f"left to the model's initialisation: {len(self.left_to_init)} tensors:")
            lines += [f"  {len(keys)} x {reason} (e.g. {keys[0]})" for reason, keys in by_reason.items()]
        return "\n".join(lines)


def to_tensor_dict(state: Mapping) -> Dict[str, torch.Tensor]:
    """Tensors and numpy arrays (detectron2 / Caffe2 model-zoo pickles) as tensors; other values refused."""
    out = {}
    for key, value in state.items():
        if isinstance(value, torch.Tensor):
            out[key] = value
        elif isinstance(value, np.ndarray):
            out[key] = torch.as_tensor(value)
        else:
            raise ConversionError(f"source entry {key} is a {type(value).__name__}, not a tensor")
    return out


def convert_state_dict(
    source: Mapping[str, torch.Tensor],
    rename: Callable[[str], RenameResult],
    target_shapes: Mapping[str, Sequence[int]],
    *,
    scope: Sequence[str] = ("",),
    allow_missing: Sequence[str] = (),
    init_on_mismatch: Sequence[str] = (),
) -> Conversion:
    """Convert ``source`` into the target's keys; see the module docstring.

    Args:
        source: source key -> tensor.
        rename: source key -> :class:`Mapped` (or several, e.g. synthesised BatchNorm statistics),
            :class:`Dropped`, or None for "no rule" (reported as unknown).
        target_shapes: the target model's state dict keys and shapes.
        scope: prefixes of the target keys this conversion must fill ("" = all).
        allow_missing: prefixes of target keys in scope that may stay unfilled (reported).
        init_on_mismatch: prefixes of target keys that are left to initialisation when the source shape
            differs (e.g. class-dependent layers for another number of classes), instead of failing.
    """
    conv = Conversion()
    for key, tensor in source.items():
        result = rename(key)
        if result is None:
            conv.unknown.append(key)
            continue
        if isinstance(result, Dropped):
            conv.dropped[key] = result.reason
            continue
        for mapped in [result] if isinstance(result, Mapped) else list(result):
            target = mapped.target
            if target not in target_shapes:
                conv.unknown.append(f"{key} (-> {target}, not in the model)")
                continue
            if not _in(target, scope):
                conv.left_to_init[target] = "outside the conversion's scope"
                conv.dropped[key] = f"maps to {target.split('.')[0]}.*, outside the scope {list(scope)}"
                continue
            value = mapped.transform(tensor) if mapped.transform else tensor
            want = tuple(target_shapes[target])
            if tuple(value.shape) != want:
                if _in(target, init_on_mismatch):
                    conv.left_to_init[target] = "shape differs from the source (e.g. another number of classes)"
                    conv.dropped[key] = f"shape {tuple(value.shape)} does not fit the model's {want}"
                    continue
                conv.mismatched.append((key, target, tuple(value.shape), want))
                continue
            if target in conv.tensors:
                conv.duplicates.append(target)
                continue
            conv.tensors[target] = value.detach().clone().contiguous()
            conv.origin[target] = (key, mapped.note)
    for target in target_shapes:
        if target in conv.tensors or target in conv.left_to_init:
            continue
        if not _in(target, scope):
            conv.left_to_init[target] = "outside the conversion's scope"
        elif _in(target, allow_missing):
            conv.left_to_init[target] = "not in the source (allowed)"
        else:
            conv.missing.append(target)
    return conv
