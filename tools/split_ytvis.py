#!/usr/bin/env python
"""
Split a YouTube-VIS-format json with ground truth into ``train_sub.json`` and ``valid_sub.json``.

The validation and test ground truth of YouTube-VIS 2019/2021 and OVIS is not public and their
evaluation servers have closed, so a local AP needs an offline split of the train set: train on
``train_sub``, evaluate on ``valid_sub`` (registered as ``{ytvis_2019,ytvis_2021,ovis}_{train,valid}_sub``,
see datasets/README.md). By default 15% of the videos are held out, which gives the TFA paper's split
sizes of YouTube-VIS 2019 (1902 train / 336 valid of 2238); the video lists are ours (seeded), not the
paper's.

    python tools/split_ytvis.py --json datasets/ytvis_2019/train.json --out-dir datasets/ytvis_2019
    python tools/split_ytvis.py --json datasets/ovis/train.json --out-dir datasets/ovis --seed 0

Works for YouTube-VIS 2019 and 2021 (40 classes each, different lists and ids) and OVIS (25 classes,
annotations that may leave out ``iscrowd``): the json's ``categories`` and every other top-level field
are copied unchanged, annotations follow their video, and nothing else is interpreted. Both files are
written atomically (all or nothing); errors end in one line and exit status 2.
"""
import argparse
import json
import logging
import os
import sys

from vis_d2.utils import atomic_write, json_io

logger = logging.getLogger("vis_d2.split_ytvis")

PROG = "split_ytvis"
DEFAULT_VALID_FRACTION = 0.15  # 336 of YouTube-VIS 2019's 2238 train videos (TFA's split sizes)


class SplitError(Exception):
    """A problem with the input or the arguments; its message is the one line the user sees."""


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
    import random

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


def _read_source(json_file):
    try:
        with open(json_file, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SplitError(f"--json {json_file}: cannot read ({e.strerror or e})") from None
    if not raw.strip():
        raise SplitError(f"--json {json_file}: empty file")
    try:
        return json_io.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        hint = "; the file ends early: truncated?" if json_io.looks_truncated(e, raw) else ""
        raise SplitError(f"--json {json_file} is not valid json ({e}){hint}") from None


def _check_source(data, json_file):
    """Raises :class:`SplitError` unless the json can be split."""
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise SplitError(f"{json_file}: expected a YouTube-VIS json with a 'videos' list")
    if not data.get("annotations"):
        raise SplitError(f"{json_file} has no annotations: split a json with ground truth (e.g. train.json)")
    if not isinstance(data["annotations"], list):
        raise SplitError(f"{json_file}: 'annotations' must be a list")
    for i, v in enumerate(data["videos"]):
        if not isinstance(v, dict) or "id" not in v:
            raise SplitError(f"{json_file}: videos[{i}] is not an object with an 'id'")
    for i, a in enumerate(data["annotations"]):
        if not isinstance(a, dict) or "video_id" not in a:
            raise SplitError(f"{json_file}: annotations[{i}] is not an object with a 'video_id'")
    video_ids = [v["id"] for v in data["videos"]]
    if len(set(video_ids)) != len(video_ids):
        dup = sorted({v for v in video_ids if video_ids.count(v) > 1}, key=str)[:5]
        raise SplitError(f"{json_file}: duplicate video ids {dup}")
    orphans = sorted({a["video_id"] for a in data["annotations"]} - set(video_ids), key=str)
    if orphans:
        raise SplitError(f"{json_file}: annotations refer to videos that are not in 'videos': {orphans[:10]}")


def _num_valid(args, num_videos):
    if args.num_valid is not None:
        n = args.num_valid
    else:
        n = round(num_videos * args.valid_fraction)
    if not 1 <= n < num_videos:
        what = f"--num-valid {args.num_valid}" if args.num_valid is not None else (
            f"--valid-fraction {args.valid_fraction} ({n} videos)"
        )
        raise SplitError(
            f"{what}: must be at least 1 and smaller than the number of videos ({num_videos}); got {n}"
        )
    return n


def run(args):
    data = _read_source(args.json)
    _check_source(data, args.json)
    num_valid = _num_valid(args, len(data["videos"]))
    train_ids, valid_ids = split_videos([v["id"] for v in data["videos"]], num_valid, args.seed)
    parts = [("train_sub.json", _subset(data, train_ids)), ("valid_sub.json", _subset(data, valid_ids))]
    texts = [json.dumps(part) for _, part in parts]  # serialised before anything is written
    try:
        os.makedirs(args.out_dir, exist_ok=True)
        paths = [os.path.join(args.out_dir, name) for name, _ in parts]
        # nested: an error in either file leaves both old files (or none) in place
        with atomic_write(paths[0]) as f_train, atomic_write(paths[1]) as f_valid:
            f_train.write(texts[0])
            f_valid.write(texts[1])
    except OSError as e:
        raise SplitError(f"--out-dir {args.out_dir}: cannot write ({e.strerror or e})") from None
    for path, (_, part) in zip(paths, parts):
        logger.info(f"Wrote {path}: {len(part['videos'])} videos, {len(part['annotations'])} annotations")


def main(argv=None):
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__.split("\n\n")[1].strip())
    parser.add_argument("--json", required=True, help="source json with ground truth (train.json)")
    parser.add_argument("--out-dir", required=True, help="where train_sub.json / valid_sub.json go")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--num-valid", type=int, help="videos held out (default: --valid-fraction of them)")
    size.add_argument(
        "--valid-fraction", type=float, default=DEFAULT_VALID_FRACTION,
        help=f"share of the videos held out, rounded (default: {DEFAULT_VALID_FRACTION})",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        run(args)
    except SplitError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return 0


if __name__ == "__main__":
    sys.exit(main())
