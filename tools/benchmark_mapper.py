#!/usr/bin/env python
"""Throughput of the training clip mapper and loader on generated 360p JPEG videos.

Writes a few 640x360 JPEG videos with moving textured ellipses (RLE masks) to a temporary directory,
then measures clips per second through ``YTVISClipMapper`` in this process and through
``build_video_train_loader`` with worker processes. Nothing is kept afterwards.

    ./.venv/bin/python tools/benchmark_mapper.py --frames-per-clip 3 --workers 2
"""
import argparse
import itertools
import logging
import os
import tempfile
import time

import numpy as np
import pycocotools.mask as mask_util
import torch
from PIL import Image

from detectron2.config import get_cfg
from detectron2.structures import BoxMode
from vis_d2.config import add_vis_config
from vis_d2.data.build import build_video_train_loader
from vis_d2.data.dataset_mapper import YTVISClipMapper
from vis_d2.utils.rle import rle_counts_to_str

WIDTH, HEIGHT = 640, 360


def make_videos(root, num_videos, num_frames, num_objects, seed):
    """Write JPEG videos under ``root``; return their video dicts (docs/interfaces.md section 1)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    videos = []
    for v in range(num_videos):
        # Smooth colour noise upsampled from a coarse grid: JPEG sizes and decode cost like real frames.
        coarse = rng.integers(0, 256, size=(HEIGHT // 20, WIDTH // 20, 3), dtype=np.uint8)
        background = np.asarray(Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.BILINEAR))
        starts = rng.uniform([60, 60], [WIDTH - 60, HEIGHT - 60], size=(num_objects, 2))
        speeds = rng.uniform(-6, 6, size=(num_objects, 2))
        radii = rng.uniform(20, 60, size=(num_objects, 2))
        colors = rng.integers(0, 256, size=(num_objects, 3))
        os.makedirs(os.path.join(root, f"video{v}"))
        files, annotations = [], []
        for t in range(num_frames):
            frame = background.copy()
            frame_annos = []
            for k in range(num_objects):
                cx, cy = starts[k] + t * speeds[k]
                mask = ((xx - cx) / radii[k, 0]) ** 2 + ((yy - cy) / radii[k, 1]) ** 2 <= 1
                if not mask.any():
                    continue
                frame[mask] = colors[k]
                rle = rle_counts_to_str(mask_util.encode(np.asfortranarray(mask.astype(np.uint8))))
                frame_annos.append(
                    {"id": v * 100 + k, "category_id": k % 3, "bbox": mask_util.toBbox(rle).tolist(),
                     "bbox_mode": BoxMode.XYWH_ABS, "segmentation": rle, "iscrowd": 0}
                )
            path = os.path.join(root, f"video{v}", f"{t:05d}.jpg")
            Image.fromarray(frame).save(path, quality=90)
            files.append(path)
            annotations.append(frame_annos)
        videos.append({"video_id": v, "file_names": files, "height": HEIGHT, "width": WIDTH,
                       "length": num_frames, "annotations": annotations, "has_annotations": True})
    return videos


def make_cfg(args):
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.MASK_ON = True
    cfg.INPUT.MASK_FORMAT = "bitmask"
    cfg.INPUT.MIN_SIZE_TRAIN = (HEIGHT,)  # 360p in, 360p out: the resize is still applied
    cfg.INPUT.MAX_SIZE_TRAIN = WIDTH
    cfg.INPUT.SAMPLING_FRAME_NUM = args.frames_per_clip
    cfg.INPUT.SAMPLING_SUPPORT_NUM = args.supports
    cfg.SOLVER.IMS_PER_BATCH = args.batch_size
    cfg.DATALOADER.NUM_WORKERS = args.workers
    return cfg


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--frames", type=int, default=30, help="frames per video")
    parser.add_argument("--objects", type=int, default=3, help="instances per video")
    parser.add_argument("--frames-per-clip", type=int, default=3, help="INPUT.SAMPLING_FRAME_NUM")
    parser.add_argument("--supports", type=int, default=1, help="INPUT.SAMPLING_SUPPORT_NUM")
    parser.add_argument("--clips", type=int, default=100, help="clips timed in the single process")
    parser.add_argument("--batches", type=int, default=50, help="batches timed through the loader")
    parser.add_argument("--batch-size", type=int, default=2, help="SOLVER.IMS_PER_BATCH")
    parser.add_argument("--workers", type=int, default=2, help="DATALOADER.NUM_WORKERS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch threads for the single-process run (data loader workers always use 1)",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    with tempfile.TemporaryDirectory(prefix="vis_d2_bench_") as root:
        videos = make_videos(root, args.videos, args.frames, args.objects, args.seed)
        cfg = make_cfg(args)
        np.random.seed(args.seed)
        # PyTorch's DataLoader gives each worker one thread; the same here makes the two runs
        # comparable (on a busy 2-core machine, 2 threads made the small tensor ops several times slower).
        torch.set_num_threads(args.threads)
        mapper = YTVISClipMapper(cfg)
        mapper(videos[0])  # warm-up: first-call imports and allocations
        start = time.perf_counter()
        for i in range(args.clips):
            mapper(videos[i % len(videos)])
        single = args.clips / (time.perf_counter() - start)

        loader = iter(build_video_train_loader(cfg, mapper=mapper, dataset=videos))
        next(loader)  # worker start-up is not throughput
        start = time.perf_counter()
        for batch in itertools.islice(loader, args.batches):
            pass
        through_loader = args.batches * args.batch_size / (time.perf_counter() - start)
        del loader

    print(
        f"{args.frames_per_clip}-frame clips, {WIDTH}x{HEIGHT} JPEG, {args.objects} instances per frame, "
        f"bitmask RLE"
    )
    print(
        f"  mapper, single process : {single:7.1f} clips/s ({args.clips} clips, "
        f"{args.threads} torch thread(s))"
    )
    print(
        f"  loader, {args.workers} workers       : {through_loader:7.1f} clips/s "
        f"({args.batches} batches of {args.batch_size})"
    )


if __name__ == "__main__":
    main()
