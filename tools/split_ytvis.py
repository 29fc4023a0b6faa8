#!/usr/bin/env python
"""
Split a YouTube-VIS-format json with ground truth into ``train_sub.json`` and ``valid_sub.json``.

YouTube-VIS val/test ground truth is not public, so local AP needs an offline split of train
(registered as ``ytvis_2019_train_sub`` / ``ytvis_2019_valid_sub``). The default sizes are those of the
TFA paper's split of YouTube-VIS 2019 (1902 train / 336 valid videos of 2238); the video lists are ours
(seeded), not the paper's.

    python tools/split_ytvis.py --json datasets/ytvis_2019/train.json \\
        --out-dir datasets/ytvis_2019 --num-valid 336 --seed 0
"""
import argparse
import json
import logging
import os
import random
import sys

from detectron2.utils.file_io import PathManager

logger = logging.getLogger("vis_d2.split_ytvis")


def split_videos(video_ids, num_valid, seed):
    """
    Pick the held-out videos.

    Args:
        video_ids (list[int]): every video id of the source json.
        num_valid (int): how many videos to hold out; 1 <= num_valid < len(video_ids).
        seed (int): the same seed and ids always give the same split.

    Returns:
        (set[int], set[int]): train ids, valid ids.
    """
    # Sorting first makes the split independent of the json's video order.
    shuffled = sorted(video_ids)
    random.Random(seed).shuffle(shuffled)
    return set(shuffled[num_valid:]), set(shuffled[:num_valid])


def _subset(data, keep_ids):
    """A copy of the json with only the videos in ``keep_ids`` and their annotations; every
    other top-level field (info, licenses, categories, ...) is kept as is."""
    out = dict(data)
    out["videos"] = [v for v in data["videos"] if v["id"] in keep_ids]
    out["annotations"] = [a for a in data["annotations"] if a["video_id"] in keep_ids]
    return out


def _check_source(data, json_file):
    """Returns an error message, or None if the json can be split."""
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        return f"{json_file}: expected a YouTube-VIS json with a 'videos' list"
    if not data.get("annotations"):
        return f"{json_file} has no annotations: split a json with ground truth (e.g. train.json)"
    video_ids = [v.get("id") for v in data["videos"]]
    if len(set(video_ids)) != len(video_ids):
        return f"{json_file}: duplicate video ids"
    known = set(video_ids)
    orphans = sorted({a.get("video_id") for a in data["annotations"]} - known, key=str)
    if orphans:
        return f"{json_file}: annotations refer to videos that are not in 'videos': {orphans[:10]}"
    return None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0].strip())
    parser.add_argument("--json", required=True, help="source json with ground truth (train.json)")
    parser.add_argument("--out-dir", required=True, help="where train_sub.json / valid_sub.json go")
    parser.add_argument("--num-valid", type=int, default=336, help="videos held out (default: 336)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    try:
        with PathManager.open(args.json, "r") as f:
            data = json.load(f)
    except FileNotFoundError:
        parser.error(f"--json {args.json} not found")
    except json.JSONDecodeError as e:
        parser.error(f"--json {args.json} is not valid json ({e})")
    problem = _check_source(data, args.json)
    if problem:
        parser.error(problem)
    num_videos = len(data["videos"])
    if not 1 <= args.num_valid < num_videos:
        parser.error(
            f"--num-valid must be at least 1 and smaller than the number of videos ({num_videos}), "
            f"got {args.num_valid}"
        )

    train_ids, valid_ids = split_videos([v["id"] for v in data["videos"]], args.num_valid, args.seed)
    PathManager.mkdirs(args.out_dir)
    for file_name, ids in (("train_sub.json", train_ids), ("valid_sub.json", valid_ids)):
        subset = _subset(data, ids)
        path = os.path.join(args.out_dir, file_name)
        with PathManager.open(path, "w") as f:
            json.dump(subset, f)
        logger.info(
            f"Wrote {path}: {len(subset['videos'])} videos, {len(subset['annotations'])} annotations"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
