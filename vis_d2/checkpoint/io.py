"""Reading checkpoints without running code from them, and writing them so that a kill never truncates one.

Loading: a ``.pth`` checkpoint is a pickle inside a zip file; ``torch.load(..., weights_only=True)`` reads
tensors, containers and plain numbers only and refuses everything else. detectron2's model-zoo ``.pkl``
files are plain pickles of numpy arrays; :func:`load_checkpoint_file` reads them with an unpickler that
admits numpy's array reconstruction and nothing more. Any other content (a class, a function, a
``__reduce__`` that calls into a module) needs a full unpickling, which runs whatever code the file names:
that is only done with ``allow_pickle=True``, an explicit opt-in for files from a trusted source.

Writing: :func:`atomic_torch_save` writes to a hidden temporary file in the target's folder, flushes it to
disk and renames it over the target (``os.replace`` is atomic on POSIX and Windows): a reader sees the old
file or the new one, never half of one.
"""
import os
import pickle
import zipfile
from typing import Any, Dict

import torch

from ..utils.atomic import atomic_write

__all__ = [
    "UnsafeCheckpointError",
    "CheckpointReadError",
    "load_checkpoint_file",
    "atomic_torch_save",
    "atomic_write_text",
]


class UnsafeCheckpointError(pickle.UnpicklingError):
    """The file holds Python objects beyond tensors / arrays: loading it would run code named in the file."""


class CheckpointReadError(OSError):
    """The file is missing, truncated or not a checkpoint at all."""


_UNSAFE_ADVICE = (
    "Loading it means unpickling, which can run arbitrary code named in the file with your rights. "
    "If you trust its source, allow it explicitly (MODEL.WEIGHTS_ALLOW_PICKLE True, or --allow-pickle in "
    "tools/convert_checkpoint.py), or convert it once into a tensors-only .pth with tools/convert_checkpoint.py."
)

# (module, name) of the globals a numpy-array pickle needs: the array reconstructor, the dtype and scalar
# constructors. numpy 2 moved numpy.core to numpy._core; pickles name either.
_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("collections", "OrderedDict"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles dicts / lists / numbers / strings / numpy arrays; any other global is refused."""

    def find_class(self, module, name):
        if (module, name) in _NUMPY_GLOBALS:
            import importlib

            import numpy as np

            if module.startswith("numpy.core") and hasattr(np, "_core"):
                module = "numpy._core" + module[len("numpy.core"):]  # avoid numpy 2's deprecated alias
            return getattr(importlib.import_module(module), name)
        if module == "numpy.dtypes" and name.endswith("DType"):  # numpy 2 dtype classes
            import numpy.dtypes

            return getattr(numpy.dtypes, name)
        raise UnsafeCheckpointError(f"the pickle names {module}.{name}")


def _read_pkl(path: str, allow_pickle: bool) -> Any:
    with open(path, "rb") as f:
        if allow_pickle:
            return pickle.load(f, encoding="latin1")
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def _read_torch(path: str, allow_pickle: bool) -> Any:
    return torch.load(path, map_location="cpu", weights_only=not allow_pickle)


def load_checkpoint_file(path: str, *, allow_pickle: bool = False) -> Any:
    """Read a checkpoint file (``.pth``/``.pt``/``.pyth``: torch format; ``.pkl``: a plain pickle).

    Args:
        path: a local file.
        allow_pickle: permit a full unpickling (runs code named in the file). Without it, only tensors,
            numpy arrays, containers, numbers and strings are read.

    Returns:
        The object stored in the file (usually a dict).

    Raises:
        CheckpointReadError: missing, empty, truncated or not a checkpoint.
        UnsafeCheckpointError: the file needs a full unpickling and ``allow_pickle`` is False.
    """
    if not os.path.isfile(path):
        raise CheckpointReadError(f"Checkpoint {path} not found")
    if os.path.getsize(path) == 0:
        raise CheckpointReadError(f"Checkpoint {path} is empty (0 bytes)")
    reader = _read_pkl if path.endswith(".pkl") else _read_torch
    try:
        return reader(path, allow_pickle)
    except UnsafeCheckpointError as e:
        raise UnsafeCheckpointError(f"Checkpoint {path} is not tensors-only ({e}). {_UNSAFE_ADVICE}") from None
    except pickle.UnpicklingError as e:
        # torch's weights_only unpickler says "Weights only load failed" when it meets a forbidden global;
        # other UnpicklingErrors mean a damaged file.
        if "weights only" in str(e).lower() or "weights_only" in str(e).lower():
            first = str(e).strip().splitlines()[0][:200]
            raise UnsafeCheckpointError(
                f"Checkpoint {path} is not tensors-only (torch.load(weights_only=True): {first}). {_UNSAFE_ADVICE}"
            ) from None
        raise CheckpointReadError(f"Checkpoint {path} is damaged or not a checkpoint: {e}") from e
    except (EOFError, zipfile.BadZipFile, RuntimeError, ValueError, IndexError) as e:
        # torch raises RuntimeError ("PytorchStreamReader failed ...") on a truncated zip, EOFError or
        # UnpicklingError on a truncated legacy file.
        raise CheckpointReadError(f"Checkpoint {path} is truncated or not a checkpoint: {str(e)[:200]}") from e


def atomic_torch_save(obj: Dict[str, Any], path: str) -> None:
    """``torch.save(obj, path)``, atomically (see :func:`vis_d2.utils.atomic_write`): a kill mid-save
    leaves the previous checkpoint, never a truncated one."""
    with atomic_write(path, "wb") as f:
        torch.save(obj, f)


def atomic_write_text(path: str, text: str) -> None:
    """Write a small text file atomically (e.g. ``last_checkpoint``)."""
    with atomic_write(path, "w") as f:
        f.write(text)

