"""Video dataset dicts and data loaders (vis_d2/data/build.py)."""
import itertools
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
from PIL import Image

import detectron2.data
import detectron2.data.build
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog
from detectron2.structures import BoxMode
from vis_d2.config import add_vis_config
from vis_d2.data.build import (
    build_video_test_loader,
    build_video_train_loader,
    get_video_dataset_dicts,
    repeat_factors_from_video_category_frequency,
)
from vis_d2.data.dataset_mapper import LazyVideoFrames

H, W = 24, 40


def anno(track_id, category_id=0, iscrowd=0):
    m = np.zeros((H, W), dtype=np.uint8)
    m[4:12, 6:20] = 1
    rle = mask_util.encode(np.asfortranarray(m))
    rle["counts"] = rle["counts"].decode("ascii")
    return {"id": track_id, "category_id": category_id, "bbox": [6, 4, 14, 8], "bbox_mode": BoxMode.XYWH_ABS,
            "segmentation": rle, "iscrowd": iscrowd}


def make_video(tmp_path, video_id, annotations):
    files = []
    for t in range(len(annotations)):
        path = tmp_path / f"{video_id}_{t}.jpg"
        Image.fromarray(np.full((H, W, 3), 40 * t % 255, dtype=np.uint8)).save(path)
        files.append(str(path))
    return {"video_id": video_id, "file_names": files, "height": H, "width": W, "length": len(files),
            "annotations": annotations, "has_annotations": True}


@pytest.fixture
def register():
    """register(videos) -> a fresh dataset name; removed from DatasetCatalog after the test."""
    names = []

    def _register(videos):
        name = f"test_videos_{uuid.uuid4().hex[:8]}"
        DatasetCatalog.register(name, lambda: list(videos))
        names.append(name)
        return name

    yield _register
    for name in names:
        DatasetCatalog.remove(name)


def make_cfg(train=(), workers=0):
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = (24,)
    cfg.INPUT.MAX_SIZE_TRAIN = 100
    cfg.INPUT.MIN_SIZE_TEST = 48
    cfg.INPUT.MAX_SIZE_TEST = 100
    cfg.INPUT.SAMPLING_FRAME_NUM = 3
    cfg.INPUT.SAMPLING_SUPPORT_NUM = 1
    cfg.DATASETS.TRAIN = tuple(train)
    cfg.SOLVER.IMS_PER_BATCH = 2
    cfg.DATALOADER.NUM_WORKERS = workers
    return cfg


def test_dataset_dicts_concatenate_names_and_drop_videos_without_instances(tmp_path, register):
    a = register([make_video(tmp_path, 1, [[anno(1)], []]), make_video(tmp_path, 2, [[], []])])
    b = register([make_video(tmp_path, 3, [[anno(5, iscrowd=1)]]), make_video(tmp_path, 4, [[], [anno(2)]])])
    assert [d["video_id"] for d in get_video_dataset_dicts([a, b])] == [1, 4]
    assert [d["video_id"] for d in get_video_dataset_dicts([a, b], filter_empty=False)] == [1, 2, 3, 4]
    assert [d["video_id"] for d in get_video_dataset_dicts(b, filter_empty=False)] == [3, 4]


def test_empty_dataset_is_a_clear_error(register):
    with pytest.raises(ValueError, match="empty"):
        get_video_dataset_dicts(register([]))


def test_loaders_never_use_detectron2_image_dataset_helpers(tmp_path, register, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("image-dict helper called on video dicts")

    for module in (detectron2.data.build, detectron2.data):
        monkeypatch.setattr(module, "get_detection_dataset_dicts", forbidden)
        monkeypatch.setattr(module, "print_instances_class_histogram", forbidden, raising=False)
    name = register([make_video(tmp_path, 1, [[anno(1)], [anno(1)]])])
    cfg = make_cfg(train=[name])
    assert len(next(iter(build_video_train_loader(cfg)))) == 2
    assert len(next(iter(build_video_test_loader(cfg, name)))) == 1


def test_train_loader_yields_batches_of_clips(tmp_path, register):
    name = register([make_video(tmp_path, v, [[anno(1)], [anno(1)], []]) for v in (1, 2, 3)])
    batch = next(iter(build_video_train_loader(make_cfg(train=[name]))))
    assert len(batch) == 2
    for clip in batch:
        assert clip["video_id"] in (1, 2, 3) and clip["frame_roles"] == ["key", "ref", "support"]
        assert len(clip["image"]) == 3 and len(clip["instances"]) == 3
        assert clip["image"][0].shape == (3, H, W)


def test_train_loader_with_worker_processes_yields_batches(tmp_path, register):
    name = register([make_video(tmp_path, v, [[anno(1)], [anno(1)]]) for v in (1, 2)])
    loader = build_video_train_loader(make_cfg(train=[name], workers=2))
    batches = list(itertools.islice(loader, 3))
    assert [len(b) for b in batches] == [2, 2, 2]
    assert all(c["instances"][0].gt_ids.tolist() == [1] for b in batches for c in b)


def test_test_loader_honours_dataset_name_and_gives_each_video_once(tmp_path, register):
    train = register([make_video(tmp_path, 1, [[anno(1)]])])
    val = register([make_video(tmp_path, 10, [[], [], []]), make_video(tmp_path, 11, [[]])])
    cfg = make_cfg(train=[train], workers=1)  # a worker process: the lazy frames must pickle
    cfg.DATASETS.TEST = (train,)
    batches = list(build_video_test_loader(cfg, val))
    assert [len(b) for b in batches] == [1, 1]
    assert [b[0]["video_id"] for b in batches] == [10, 11]  # videos without instances are kept
    frames = batches[0][0]["image"]
    assert isinstance(frames, LazyVideoFrames) and len(frames) == 3
    assert frames[2].shape == (3, 48, 80)


def test_repeat_factors_favour_videos_with_rare_categories():
    videos = [{"annotations": [[anno(1, category_id=0)], []]} for _ in range(3)]
    videos.append({"annotations": [[anno(1, category_id=0)], [anno(2, category_id=1)]]})
    videos.append({"annotations": [[anno(3, category_id=1, iscrowd=1)]]})  # crowd does not count
    factors = repeat_factors_from_video_category_frequency(videos, repeat_thresh=0.8)
    # category 1 is in 1 of 5 videos: sqrt(0.8 / 0.2) = 2; category 0 in 4 of 5: max(1, sqrt(1)) = 1
    assert torch.allclose(factors, torch.tensor([1.0, 1.0, 1.0, 2.0, 1.0]))


def test_repeat_factor_sampler_from_config_builds_a_working_loader(tmp_path, register):
    name = register([make_video(tmp_path, 1, [[anno(1, 0)]]), make_video(tmp_path, 2, [[anno(1, 1)]])])
    cfg = make_cfg(train=[name])
    cfg.DATALOADER.SAMPLER_TRAIN = "RepeatFactorTrainingSampler"
    cfg.DATALOADER.REPEAT_THRESHOLD = 1.0
    assert len(next(iter(build_video_train_loader(cfg)))) == 2


def test_unknown_training_sampler_is_rejected(tmp_path, register):
    cfg = make_cfg(train=[register([make_video(tmp_path, 1, [[anno(1)]])])])
    cfg.DATALOADER.SAMPLER_TRAIN = "RandomSubsetTrainingSampler"
    with pytest.raises(ValueError, match="SAMPLER_TRAIN"):
        build_video_train_loader(cfg)
