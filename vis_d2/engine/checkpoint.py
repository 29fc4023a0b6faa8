"""``VideoCheckpointer``: detectron2's ``DetectionCheckpointer`` that never runs code from a checkpoint file
unless told to, never leaves a truncated checkpoint behind, and never saves broken weights.

- Loading (``_load_file``): ``.pth`` files through ``torch.load(weights_only=True)``, detectron2 model-zoo
  ``.pkl`` files through a numpy-arrays-only unpickler (:func:`vis_d2.checkpoint.load_checkpoint_file`).
  A file that needs a full unpickling is refused with a message saying what that means, unless
  ``allow_pickle`` (``MODEL.WEIGHTS_ALLOW_PICKLE``) is set.
- Saving (``save``, ``tag_last_checkpoint``): written to a temporary file and renamed over the target, so a
  kill mid-write leaves the previous file intact. Weights holding NaN/inf are not saved, and after
  :meth:`refuse_saves` (the trainer calls it when a loss turns non-finite) nothing is saved at all.
"""
import os

import torch
from detectron2.checkpoint import DetectionCheckpointer

from vis_d2.checkpoint.io import atomic_torch_save, atomic_write_text, load_checkpoint_file

__all__ = ["VideoCheckpointer"]


def _is_local_dir(path: str) -> bool:
    # PathManager also serves remote stores (e.g. "manifold://"), where rename-based atomicity does not hold.
    return "://" not in path


class VideoCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` with safe loading and atomic saving (public ``Checkpointer`` API only)."""

    def __init__(self, model, save_dir="", *, allow_pickle=False, save_to_disk=None, **checkpointables):
        """
        Args:
            model, save_dir, save_to_disk, checkpointables: as ``DetectionCheckpointer``.
            allow_pickle: also load files that need a full unpickling (runs code named in the file).
        """
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.allow_pickle = allow_pickle
        self._refusal = None

    def refuse_saves(self, reason: str) -> None:
        """From now on, :meth:`save` writes nothing and logs ``reason`` instead."""
        self._refusal = reason

    def save(self, name: str, **kwargs) -> None:
        """As ``Checkpointer.save``, written atomically; refuses weights with NaN/inf."""
        if not self.save_dir or not self.save_to_disk:
            return
        basename = f"{name}.pth"
        if self._refusal is not None:
            self.logger.warning(f"Not saving checkpoint {basename}: {self._refusal}")
            return
        model_state = self.model.state_dict()
        bad = [k for k, v in model_state.items() if torch.is_floating_point(v) and not bool(torch.isfinite(v).all())]
        if bad:
            self._refusal = f"the weights hold NaN/inf ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''})"
            raise FloatingPointError(
                f"Not saving checkpoint {basename}: {self._refusal}; the previous checkpoint stays as it was"
            )
        if not _is_local_dir(self.save_dir):
            return super().save(name, **kwargs)
        data = {"model": model_state}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        os.makedirs(self.save_dir, exist_ok=True)
        save_file = os.path.join(self.save_dir, basename)
        self.logger.info(f"Saving checkpoint to {save_file}")
        atomic_torch_save(data, save_file)
        self.tag_last_checkpoint(basename)

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if not _is_local_dir(self.save_dir):
            return super().tag_last_checkpoint(last_filename_basename)
        atomic_write_text(os.path.join(self.save_dir, "last_checkpoint"), last_filename_basename)

    def _load_file(self, filename):
        """The formats ``DetectionCheckpointer`` reads, without unpickling code unless ``allow_pickle``."""
        data = load_checkpoint_file(filename, allow_pickle=self.allow_pickle)
        if not isinstance(data, dict):
            raise ValueError(f"Checkpoint {filename} holds a {type(data).__name__}, not a dict of weights")
        if filename.endswith(".pkl"):
            if "model" in data and "__author__" in data:  # detectron2 model-zoo format
                self.logger.info(f"Reading a file from '{data['__author__']}'")
                return data
            # Caffe2 / Detectron1 model zoo: detectron2 renames these by its matching heuristics
            blobs = data.get("blobs", data)
            blobs = {k: v for k, v in blobs.items() if not k.endswith("_momentum")}
            return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}
        if filename.endswith(".pyth"):  # pycls
            if "model_state" not in data:
                raise ValueError(f"Cannot load .pyth file {filename}: pycls checkpoints hold 'model_state'")
            state = {k: v for k, v in data["model_state"].items() if not k.endswith("num_batches_tracked")}
            return {"model": state, "__author__": "pycls", "matching_heuristics": True}
        if "model" not in data:
            data = {"model": data}
        return data
