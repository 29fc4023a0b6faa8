"""
Builtin video datasets, registered on import under ``$DETECTRON2_DATASETS`` (default ``datasets``).

The names are the de-facto standard of Detectron2 VIS code (a contract: configs and users rely on them);
the expected layout is described in datasets/README.md. Registering reads nothing, so it works before
the data exists.
"""
import importlib
import os
from typing import Dict, List, Tuple

from .categories import (
    OVIS_CLASSES,
    YTVIS_2019_CLASSES,
    YTVIS_2021_CLASSES,
    metadata_from_class_names,
)
from .ytvis import read_json_categories, register_ytvis_instances

__all__ = ["register_all_ytvis"]


def _standard_splits(prefix: str, folder: str) -> Dict[str, Tuple[str, str]]:
    """The official splits plus the local ``train_sub`` / ``valid_sub`` split of train.

    "val" in the official names, "valid" on disk: the official file names, the conventional dataset names.
    ``{prefix}_{train,valid}_sub`` are an offline split of train (tools/split_ytvis.py) that keeps ground
    truth, so that AP can be computed locally; their frames are the train frames.
    """
    splits = {
        f"{prefix}_{split}": (f"{folder}/{on_disk}/JPEGImages", f"{folder}/{on_disk}.json")
        for split, on_disk in (("train", "train"), ("val", "valid"), ("test", "test"))
    }
    for sub in ("train_sub", "valid_sub"):
        splits[f"{prefix}_{sub}"] = (f"{folder}/train/JPEGImages", f"{folder}/{sub}.json")
    return splits


# name -> (image_root, json_file), relative to the datasets root
_PREDEFINED_SPLITS_YTVIS_2019 = _standard_splits("ytvis_2019", "ytvis_2019")
_PREDEFINED_SPLITS_YTVIS_2021 = _standard_splits("ytvis_2021", "ytvis_2021")
_PREDEFINED_SPLITS_OVIS = _standard_splits("ovis", "ovis")
# written by `python -m vis_d2.data.synthetic --out $DETECTRON2_DATASETS/synth_vis`
_PREDEFINED_SPLITS_SYNTH = {
    "synth_vis_train": ("synth_vis/train/JPEGImages", "synth_vis/train.json"),
    "synth_vis_val": ("synth_vis/valid/JPEGImages", "synth_vis/valid.json"),
}


def _synth_categories(json_file: str) -> Tuple[List[str], Dict[int, int]]:
    """Class names of the synthetic benchmark: the generator's ``SYNTH_CLASSES`` (dataset ids 1..K)
    when that module defines them, else the json's categories.

    Imported here, on first use of the metadata, so registering stays cheap.
    """
    try:
        synthetic = importlib.import_module("vis_d2.data.synthetic")
    except ModuleNotFoundError as e:
        if e.name != "vis_d2.data.synthetic":
            raise  # the generator exists but one of its own imports is missing: say so
        synthetic = None
    classes = getattr(synthetic, "SYNTH_CLASSES", None)
    if classes:
        meta = metadata_from_class_names(classes)
        return meta["thing_classes"], meta["thing_dataset_id_to_contiguous_id"]
    return read_json_categories(json_file)


def register_all_ytvis(root: str) -> None:
    """
    Register every builtin video dataset under ``root``:
    ``{ytvis_2019,ytvis_2021,ovis}_{train,val,test,train_sub,valid_sub}`` and ``synth_vis_{train,val}``.

    Args:
        root: the datasets folder (``$DETECTRON2_DATASETS``).
    """
    families = (
        (_PREDEFINED_SPLITS_YTVIS_2019, YTVIS_2019_CLASSES),
        (_PREDEFINED_SPLITS_YTVIS_2021, YTVIS_2021_CLASSES),
        (_PREDEFINED_SPLITS_OVIS, OVIS_CLASSES),
    )
    for splits, classes in families:
        for name, (image_root, json_file) in splits.items():
            register_ytvis_instances(
                name,
                metadata_from_class_names(classes),
                os.path.join(root, json_file),
                os.path.join(root, image_root),
            )
    for name, (image_root, json_file) in _PREDEFINED_SPLITS_SYNTH.items():
        json_path = os.path.join(root, json_file)
        register_ytvis_instances(
            name,
            {},
            json_path,
            os.path.join(root, image_root),
            categories_fn=lambda json_path=json_path: _synth_categories(json_path),
        )


# Skipped when run as a script (`python -m ...builtin`), like detectron2's builtin.py.
if __name__.endswith(".builtin"):
    _root = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
    register_all_ytvis(_root)
