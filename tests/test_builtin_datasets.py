"""Builtin dataset names and layout (vis_d2/data/datasets/builtin.py; a contract stated in datasets/README.md)."""
import importlib
import json
import os
import subprocess
import sys
import textwrap

from detectron2.data import DatasetCatalog, MetadataCatalog

import vis_d2.data.datasets  # noqa: F401  (registers the builtin datasets)
from vis_d2.data.datasets.categories import OVIS_CLASSES, YTVIS_2019_CLASSES, YTVIS_2021_CLASSES

ROOT = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))

# name -> (json, frames folder) under $DETECTRON2_DATASETS, as datasets/README.md states
EXPECTED = {
    "synth_vis_train": ("synth_vis/train.json", "synth_vis/train/JPEGImages"),
    "synth_vis_val": ("synth_vis/valid.json", "synth_vis/valid/JPEGImages"),
}
for _family in ("ytvis_2019", "ytvis_2021", "ovis"):
    for _split, _on_disk in (("train", "train"), ("val", "valid"), ("test", "test")):
        EXPECTED[f"{_family}_{_split}"] = (f"{_family}/{_on_disk}.json", f"{_family}/{_on_disk}/JPEGImages")
    # the local split of train (tools/split_ytvis.py): ground truth kept, train frames
    for _sub in ("train_sub", "valid_sub"):
        EXPECTED[f"{_family}_{_sub}"] = (f"{_family}/{_sub}.json", f"{_family}/train/JPEGImages")


def test_every_builtin_name_is_registered_with_its_json_and_frames_folder():
    registered = set(DatasetCatalog.list())
    assert len(EXPECTED) == 17
    for name, (json_file, image_root) in EXPECTED.items():
        assert name in registered, name
        meta = MetadataCatalog.get(name)
        assert os.path.normpath(meta.json_file) == os.path.normpath(os.path.join(ROOT, json_file)), name
        assert os.path.normpath(meta.image_root) == os.path.normpath(os.path.join(ROOT, image_root)), name
        assert meta.evaluator_type == "ytvis"


def test_real_datasets_know_their_official_classes_before_any_file_exists():
    for prefix, classes, first, last in (
        ("ytvis_2019", YTVIS_2019_CLASSES, "person", "tennis_racket"),
        ("ytvis_2021", YTVIS_2021_CLASSES, "airplane", "zebra"),
        ("ovis", OVIS_CLASSES, "Person", "Vehical"),
    ):
        for split in ("train", "val", "test", "train_sub", "valid_sub"):
            meta = MetadataCatalog.get(f"{prefix}_{split}")
            assert meta.thing_classes == list(classes)
            assert (meta.thing_classes[0], meta.thing_classes[-1]) == (first, last)
            assert meta.thing_dataset_id_to_contiguous_id == {i + 1: i for i in range(len(classes))}
    assert (len(YTVIS_2019_CLASSES), len(YTVIS_2021_CLASSES), len(OVIS_CLASSES)) == (40, 40, 25)
    assert len(set(YTVIS_2019_CLASSES)) == 40 and YTVIS_2021_CLASSES == tuple(sorted(YTVIS_2021_CLASSES))


def _tiny_json(categories, with_annotations=True):
    videos = [{"id": 3, "height": 4, "width": 4, "length": 2, "file_names": ["a/0.jpg", "a/5.jpg"]}]
    annos = [{
        "id": 1, "video_id": 3, "category_id": categories[0][0], "iscrowd": 0,
        "segmentations": [{"size": [4, 4], "counts": [5, 2, 9]}, None], "bboxes": [[1, 1, 2, 1], None],
        "areas": [2, None],
    }]  # fmt: skip
    return {
        "videos": videos, "annotations": annos if with_annotations else [],
        "categories": [{"id": i, "name": n} for i, n in categories],
    }  # fmt: skip


def test_import_registers_under_detectron2_datasets_lazily_and_loads_from_there(tmp_path):
    """A fresh interpreter, so that $DETECTRON2_DATASETS is read at import as in real use."""
    (tmp_path / "ytvis_2019").mkdir()
    # a corrupt json must not matter until the dataset is used: registering reads nothing
    (tmp_path / "ytvis_2019" / "train.json").write_text("{corrupt")
    (tmp_path / "ytvis_2019" / "valid_sub.json").write_text(json.dumps(_tiny_json([(1, "person")])))
    (tmp_path / "synth_vis").mkdir()
    synth_categories = [(1, "disc"), (2, "star")]
    (tmp_path / "synth_vis" / "valid.json").write_text(json.dumps(_tiny_json(synth_categories, False)))
    script = textwrap.dedent(
        """
        import json, sys
        from detectron2.data import DatasetCatalog, MetadataCatalog
        import vis_d2.data.datasets
        classes_before_loading = MetadataCatalog.get("synth_vis_val").thing_classes
        d = DatasetCatalog.get("ytvis_2019_valid_sub")
        val = DatasetCatalog.get("synth_vis_val")
        print(json.dumps({
            "file_names": d[0]["file_names"], "instances": [len(f) for f in d[0]["annotations"]],
            "synth_classes_before": classes_before_loading,
            "synth_classes_after": MetadataCatalog.get("synth_vis_val").thing_classes,
            "synth_has_annotations": val[0]["has_annotations"],
        }))
        """
    )
    env = dict(os.environ, DETECTRON2_DATASETS=str(tmp_path), PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    frames = os.path.join(str(tmp_path), "ytvis_2019", "train", "JPEGImages")
    assert out["file_names"] == [os.path.join(frames, "a/0.jpg"), os.path.join(frames, "a/5.jpg")]
    assert out["instances"] == [1, 0]
    assert out["synth_has_annotations"] is False
    # before loading: the generator's class list when it defines one, else the json's categories;
    # once loaded, the json's categories in any case
    try:
        synth_classes = getattr(importlib.import_module("vis_d2.data.synthetic"), "SYNTH_CLASSES", None)
    except ModuleNotFoundError:
        synth_classes = None
    assert out["synth_classes_before"] == (list(synth_classes) if synth_classes else ["disc", "star"])
    assert out["synth_classes_after"] == ["disc", "star"]
