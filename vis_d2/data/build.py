"""Video data loaders, built on detectron2's loader builders.

detectron2's ``get_detection_dataset_dicts`` (and the ``print_instances_class_histogram`` it calls) assume
image dicts with a flat "annotations" list; our video dicts hold one list per frame. So the dataset dicts
are gathered here, and detectron2's ``build_detection_{train,test}_loader`` get them ready-made through
their ``dataset=`` argument (the same call in detectron2 v0.6 and today).
"""
import itertools
import logging
import math
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Union

import torch

from detectron2.data import DatasetCatalog, build_detection_test_loader, build_detection_train_loader
from detectron2.data.samplers import RepeatFactorTrainingSampler, TrainingSampler

from ..utils import is_crowd
from .dataset_mapper import YTVISClipMapper, YTVISVideoMapper

__all__ = [
    "get_video_dataset_dicts",
    "repeat_factors_from_video_category_frequency",
    "build_video_train_loader",
    "build_video_test_loader",
]

logger = logging.getLogger(__name__)


def _has_instances(video_dict: Dict) -> bool:
    return any(
        not is_crowd(a) for a in itertools.chain.from_iterable(video_dict["annotations"])
    )


def get_video_dataset_dicts(names: Union[str, Sequence[str]], filter_empty: bool = True) -> List[Dict]:
    """Concatenate the video dicts of registered datasets (docs/interfaces.md section 1).

    Args:
        names: one dataset name or several, as registered in ``DatasetCatalog``.
        filter_empty: drop videos without any non-crowd instance in any frame (they give a clip
            nothing to learn from).

    Returns:
        list[dict]: one dict per video, in the order of ``names``.
    """
    if isinstance(names, str):
        names = [names]
    assert len(names), "No dataset name given"
    dataset_dicts = []
    for name in names:
        dicts = DatasetCatalog.get(name)
        if not len(dicts):
            raise ValueError(f"Dataset '{name}' is empty")
        logger.info(f"Dataset '{name}': {len(dicts)} videos")
        dataset_dicts.extend(dicts)
    if filter_empty:
        num_before = len(dataset_dicts)
        dataset_dicts = [d for d in dataset_dicts if _has_instances(d)]
        logger.info(
            f"Removed {num_before - len(dataset_dicts)} videos with no usable annotations; "
            f"{len(dataset_dicts)} videos left"
        )
        if not dataset_dicts:
            raise ValueError(f"No video with annotations in {', '.join(names)}")
    return dataset_dicts


def repeat_factors_from_video_category_frequency(
    dataset_dicts: List[Dict], repeat_thresh: float
) -> torch.Tensor:
    """Per-video repeat factors for ``RepeatFactorTrainingSampler`` (LVIS, Gupta et al. 2019, App. B.2).

    The LVIS rule with videos in place of images: f(c) is the fraction of videos in which category c
    appears (any frame, crowd excluded), r(c) = max(1, sqrt(t / f(c))), r(video) = max of r(c) over the
    categories of the video. detectron2's own version reads a flat "annotations" list, which videos lack.

    Returns:
        Tensor (num_videos,): float32 repeat factors.
    """
    video_cats = [
        {
            a["category_id"]
            for a in itertools.chain.from_iterable(d["annotations"])
            if not is_crowd(a)
        }
        for d in dataset_dicts
    ]
    counts = defaultdict(int)
    for cats in video_cats:
        for c in cats:
            counts[c] += 1
    num_videos = len(dataset_dicts)
    category_rep = {c: max(1.0, math.sqrt(repeat_thresh / (n / num_videos))) for c, n in counts.items()}
    return torch.tensor(
        [max((category_rep[c] for c in cats), default=1.0) for cats in video_cats], dtype=torch.float32
    )


def build_video_train_loader(
    cfg, mapper=None, *, dataset: Optional[List[Dict]] = None, sampler=None
):
    """An infinite training loader of clips; each batch is a list of training clip dicts.

    Args:
        cfg: config with vis_d2's keys (``add_vis_config``).
        mapper: default ``YTVISClipMapper(cfg)``.
        dataset: video dicts; default ``get_video_dataset_dicts(cfg.DATASETS.TRAIN,
            cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS)``.
        sampler: default from DATALOADER.SAMPLER_TRAIN: "TrainingSampler" or
            "RepeatFactorTrainingSampler" (with DATALOADER.REPEAT_THRESHOLD, per video).

    Returns:
        torch.utils.data.DataLoader: batches of ``cfg.SOLVER.IMS_PER_BATCH / world size`` clips.
    """
    if dataset is None:
        dataset = get_video_dataset_dicts(
            cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
        )
    if mapper is None:
        mapper = YTVISClipMapper(cfg)
    if sampler is None:
        sampler_name = cfg.DATALOADER.SAMPLER_TRAIN
        logger.info(f"Using training sampler {sampler_name}")
        if sampler_name == "TrainingSampler":
            sampler = TrainingSampler(len(dataset))
        elif sampler_name == "RepeatFactorTrainingSampler":
            sampler = RepeatFactorTrainingSampler(
                repeat_factors_from_video_category_frequency(dataset, cfg.DATALOADER.REPEAT_THRESHOLD)
            )
        else:
            raise ValueError(
                f"Unknown DATALOADER.SAMPLER_TRAIN for videos: {sampler_name} "
                "(TrainingSampler or RepeatFactorTrainingSampler)"
            )
    return build_detection_train_loader(
        dataset=dataset,
        mapper=mapper,
        sampler=sampler,
        total_batch_size=cfg.SOLVER.IMS_PER_BATCH,
        # grouping by aspect ratio is for images of mixed shapes; a video keeps one shape per clip
        aspect_ratio_grouping=False,
        num_workers=cfg.DATALOADER.NUM_WORKERS,
    )


def build_video_test_loader(cfg, dataset_name: str, mapper=None):
    """A loader over every video of ``dataset_name``, one video per batch, in dataset order.

    Args:
        cfg: config with vis_d2's keys.
        dataset_name: the registered dataset to load (not ``cfg.DATASETS.TEST``: each test set is
            evaluated on its own).
        mapper: default ``YTVISVideoMapper(cfg)``.

    Returns:
        torch.utils.data.DataLoader: batches ``[test video dict]`` (InferenceSampler: across processes
        every video is seen exactly once).
    """
    dataset = get_video_dataset_dicts([dataset_name], filter_empty=False)
    if mapper is None:
        mapper = YTVISVideoMapper(cfg)
    return build_detection_test_loader(
        dataset=dataset, mapper=mapper, num_workers=cfg.DATALOADER.NUM_WORKERS
    )
