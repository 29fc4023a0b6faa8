"""The synthetic video instance segmentation benchmark, written in YouTube-VIS format.

    python -m vis_d2.data.synthetic --out datasets/synth_vis --videos 80 --seed 0

writes ``train.json`` and ``valid.json`` (both with ground truth) and the frames
``{train,valid}/JPEGImages/<video>/<frame>.jpg``: the layout the ``synth_vis_{train,val}`` datasets expect
under ``$DETECTRON2_DATASETS/synth_vis``. Output is deterministic: the same arguments give byte-identical
json and JPEG files, whatever ``--workers`` is (each video draws from its own stream, seeded by
``(seed, split, video index)``).

What a video holds (see :mod:`vis_d2.data.synthetic_scene` for the numbers): 3-6 textured shapes of the
classes :data:`SYNTH_CLASSES`, moving with velocity and acceleration, growing or shrinking, rotating,
entering and leaving the frame and occluding each other; every third video has two look-alikes (same
class, similar size, different texture) crossing paths; some frames are degraded (motion blur, heavy
noise or low contrast), never two in a row. The background is muted smooth color noise with distractor
lines and blobs (some textured) that are not instances, panned by a slow camera motion.

Annotation choices (YouTube-VIS section 1 of the format notes):
    * ``segmentations`` are *uncompressed* RLE (``counts`` a list of ints, column-major), as in the real
      YouTube-VIS train ground truth, so loaders exercise the same path; ``bboxes`` are ``[x, y, w, h]``
      of the mask, ``areas`` its pixel count. A frame where the instance is fully occluded or outside
      the frame has ``null`` in all three (an area of 0 is never written).
    * Masks are the visible parts, exact from the renderer, disjoint across instances.
    * Each video entry also carries ``hard_frames`` (indices of the degraded frames, sorted),
      ``hard_frame_kinds`` (their degradation: "blur", "noise" or "low_contrast"), ``lookalike_crossings``
      (pairs of annotation ids of same-class instances whose silhouettes overlap in some frame, i.e. one
      passes in front of the other) and ``is_hard``, true when the video has a look-alike crossing or at
      least 25% degraded frames (``4 * len(hard_frames) >= length``).

Writing into a folder that holds an older dataset overwrites its json and frames; frames of videos the
new json does not list stay on disk (harmless, but use an empty folder for a clean copy).

Imports only numpy and PIL (no torch, no detectron2), so the generator starts fast.
"""
import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from .synthetic_render import SHAPES, RenderedVideo, render_video
from .synthetic_scene import SCENARIOS, SceneStyle, VideoPlan, plan_video

logger = logging.getLogger(__name__)

# category id k + 1 is SYNTH_CLASSES[k]: shape families with clearly distinct silhouettes
SYNTH_CLASSES = ("circle", "square", "triangle", "cross", "ring", "star")
assert set(SYNTH_CLASSES) <= set(SHAPES), "every class needs a shape in synthetic_render.SHAPES"

SPLITS = ("train", "valid")  # json name and frame folder; registered as synth_vis_train / synth_vis_val
FRAME_STEP = 5  # YouTube-VIS annotates every 5th frame, so names go 00000, 00005, ...
JPEG_QUALITY = 90


def video_name(split: str, index: int) -> str:
    return f"{split}_{index:05d}"


def frame_name(t: int) -> str:
    return f"{FRAME_STEP * t:05d}.jpg"


def plan_for(
    seed: int,
    split: str,
    index: int,
    frame_range: Tuple[int, int],
    height: int,
    width: int,
    attempt: int = 0,
    style: SceneStyle = SceneStyle(),
) -> VideoPlan:
    """The plan of video ``index`` of ``split``; depends on nothing else, so videos can render in any order.

    The scenario cycles with the index ("crossing", "enter_leave", "free"), so any split of 3 or more
    videos has each of them. ``attempt`` selects another stream for a re-draw.
    """
    rng = np.random.default_rng([seed, SPLITS.index(split), index, attempt])
    length = int(rng.integers(frame_range[0], frame_range[1] + 1))
    scenario = SCENARIOS[index % len(SCENARIOS)]
    return plan_video(rng, SYNTH_CLASSES, height, width, length, scenario, style)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """Column-major (Fortran order) run lengths of a binary mask, starting with a run of zeros.

    Args:
        mask: (H, W) bool.

    Returns:
        ``{"size": [H, W], "counts": [int, ...]}``, what ``pycocotools.mask.frPyObjects`` reads.
    """
    flat = mask.ravel(order="F")
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0]:
        counts = [0] + counts
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts}


def mask_bbox(mask: np.ndarray) -> List[float]:
    """``[x, y, w, h]`` of the mask's pixels (a pixel spans [j, j+1)), as pycocotools' ``toBbox`` gives it."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] - cols[0] + 1), float(rows[-1] - rows[0] + 1)]


def _annotate(plan: VideoPlan, video: RenderedVideo):
    """Per-track json annotations (without ids) and the look-alike crossings, as local track indices.

    Tracks never visible are dropped (YouTube-VIS has no all-null tracks).
    """
    annotations, kept = [], []
    for k, track in enumerate(plan.tracks):
        segms, boxes, areas = [], [], []
        for t in range(plan.length):
            m = video.visible[k, t]
            area = int(m.sum())
            present = area > 0
            segms.append(uncompressed_rle(m) if present else None)
            boxes.append(mask_bbox(m) if present else None)
            areas.append(float(area) if present else None)
        if all(a is None for a in areas):
            continue
        kept.append(k)
        annotations.append(
            {
                "category_id": SYNTH_CLASSES.index(track.shape) + 1,
                "iscrowd": 0,
                "height": plan.height,
                "width": plan.width,
                "length": plan.length,
                "segmentations": segms,
                "bboxes": boxes,
                "areas": areas,
            }
        )
    crossings = []
    for i, a in enumerate(kept):
        for j in range(i + 1, len(kept)):
            b = kept[j]
            if plan.tracks[a].shape == plan.tracks[b].shape and (video.full[a] & video.full[b]).any():
                crossings.append((i, j))
    return annotations, crossings


def _write_video(job: tuple) -> dict:
    """Plan, render and write one video's frames; returns its json pieces (ids are assigned later).

    A plan whose instances are never visible (all occluded or outside) is re-drawn from the next
    stream, so every video has at least one annotated instance.
    """
    root, split, seed, index, frame_range, height, width, style = job
    for attempt in range(10):
        plan = plan_for(seed, split, index, frame_range, height, width, attempt, style)
        video = render_video(plan)
        annotations, crossings = _annotate(plan, video)
        if annotations:
            break
    else:
        logger.warning("video %d of %s: no visible instance after 10 draws; written without one", index, split)
    name = video_name(split, index)
    folder = os.path.join(root, split, "JPEGImages", name)
    os.makedirs(folder, exist_ok=True)
    file_names = []
    for t in range(plan.length):
        Image.fromarray(video.frames[t]).save(os.path.join(folder, frame_name(t)), quality=JPEG_QUALITY)
        file_names.append(f"{name}/{frame_name(t)}")
    hard = sorted(plan.degradations)
    entry = {
        "width": width,
        "height": height,
        "length": plan.length,
        "file_names": file_names,
        "license": 1,
        "flickr_url": "",
        "coco_url": "",
        "date_captured": "",
        "hard_frames": hard,
        "hard_frame_kinds": [plan.degradations[t].kind for t in hard],
        "is_hard": bool(crossings) or 4 * len(hard) >= plan.length,
    }
    return {"video": entry, "annotations": annotations, "crossings": crossings}


def write_split(
    root: str,
    split: str,
    num_videos: int,
    seed: int,
    frame_range: Tuple[int, int] = (10, 20),
    height: int = 192,
    width: int = 320,
    workers: int = 1,
    style: SceneStyle = SceneStyle(),
) -> str:
    """Generate ``num_videos`` videos of ``split`` under ``root``; returns the path of ``<split>.json``.

    The json is written last (through a temporary file) so that a run that stops early never leaves a
    json pointing at missing frames.
    """
    start = time.perf_counter()
    os.makedirs(root, exist_ok=True)
    jobs = [(root, split, seed, i, tuple(frame_range), height, width, style) for i in range(num_videos)]
    if workers > 1 and num_videos > 1:
        with ProcessPoolExecutor(max_workers=min(workers, num_videos)) as pool:
            results = list(pool.map(_write_video, jobs))
    else:
        results = [_write_video(job) for job in jobs]

    videos, annotations = [], []
    for vid, res in enumerate(results, start=1):
        first_ann = len(annotations) + 1
        for ann in res["annotations"]:
            annotations.append({"id": len(annotations) + 1, "video_id": vid, **ann})
        video = {"id": vid, **res["video"]}
        video["lookalike_crossings"] = [[first_ann + i, first_ann + j] for i, j in res["crossings"]]
        videos.append(video)
    dataset = {
        "info": {
            "description": "vis_d2 synthetic video instance segmentation benchmark",
            "version": "1.0",
            "generator": "vis_d2.data.synthetic",
            "split": split,
            "seed": seed,
            "frame_range": list(frame_range),
            "height": height,
            "width": width,
            "style": dataclasses.asdict(style),
        },
        "licenses": [{"id": 1, "name": "generated by vis_d2, free to use", "url": ""}],
        "videos": videos,
        "categories": [{"id": k + 1, "name": n, "supercategory": "shape"} for k, n in enumerate(SYNTH_CLASSES)],
        "annotations": annotations,
    }
    path = os.path.join(root, f"{split}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(dataset, f, separators=(",", ":"))
    os.replace(tmp, path)
    logger.info(
        "%s: %d videos (%d hard), %d frames, %d tracks in %.1f s -> %s",
        split, len(videos), sum(v["is_hard"] for v in videos), sum(v["length"] for v in videos),
        len(annotations), time.perf_counter() - start, path,
    )
    return path


def generate_dataset(
    out_dir: str,
    num_videos: int,
    seed: int = 0,
    num_val_videos: Optional[int] = None,
    frame_range: Tuple[int, int] = (10, 20),
    height: int = 192,
    width: int = 320,
    workers: int = 1,
    style: SceneStyle = SceneStyle(),
) -> Dict[str, str]:
    """Write the train and valid splits under ``out_dir``.

    Args:
        num_videos: train videos.
        num_val_videos: valid videos; default as many as ``num_videos`` (at least 4). The benchmark's
            valid split is as large as its train split because 20 valid videos are too few to measure: the
            same weights scored AP 10.1 on the first 20 and 6.1 on the first 80 (docs/synthetic_benchmark.md).
        frame_range: (min, max) video length in frames, both inclusive.
        style: how hard the videos look (:class:`SceneStyle`).

    Returns:
        ``{"train": path of train.json, "valid": path of valid.json}``.
    """
    if num_val_videos is None:
        num_val_videos = default_val_videos(num_videos)
    if seed < 0 or num_videos < 0 or num_val_videos < 0:
        raise ValueError("seed and video counts must be >= 0")
    if height < 16 or width < 16:
        raise ValueError(f"frames of {height}x{width} are too small: need at least 16x16")
    if not 1 <= frame_range[0] <= frame_range[1]:
        raise ValueError(f"bad frame range {frame_range}: need 1 <= min <= max")
    counts = {"train": num_videos, "valid": num_val_videos}
    return {
        split: write_split(out_dir, split, counts[split], seed, frame_range, height, width, workers, style)
        for split in SPLITS
    }


def default_val_videos(num_train_videos: int) -> int:
    """The valid split's default size: as many videos as the train split, at least 4."""
    return max(4, num_train_videos)


# SceneStyle fields added after the first release, with the value that reproduces the draws made before them.
_KNOBS_BEFORE_THEY_EXISTED = {"instance_weights": [0.2, 0.35, 0.3, 0.15]}


def differences_from_defaults(root: str) -> List[str]:
    """How the benchmark in ``root`` differs from what today's generator defaults write (empty: it matches).

    Checked: the calibration (``info.style`` of train.json against :class:`SceneStyle`'s defaults) and the
    rule that the valid split has as many videos as the train split. Figures measured on data that differs
    are not comparable with the documented ones; ``make demo`` regenerates such data, the method benchmark
    warns about it.
    """
    paths = {split: os.path.join(root, f"{split}.json") for split in ("train", "valid")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        return [f"missing {', '.join(missing)}"]
    splits = {}
    for split, path in paths.items():
        with open(path) as f:
            splits[split] = json.load(f)
    found = []
    style = splits["train"].get("info", {}).get("style")
    if isinstance(style, dict):
        # data written before a knob existed was drawn as that knob's "before" value
        style = {**_KNOBS_BEFORE_THEY_EXISTED, **style}
    defaults = json.loads(json.dumps(dataclasses.asdict(SceneStyle())))  # tuples as JSON lists, as stored
    if style != defaults:
        found.append(f"calibration {style} instead of the defaults {defaults}")
    num_train, num_valid = len(splits["train"]["videos"]), len(splits["valid"]["videos"])
    if num_valid != default_val_videos(num_train):
        found.append(f"{num_valid} valid videos for {num_train} train videos (default: {default_val_videos(num_train)})")
    return found


def _default_out() -> str:
    return os.path.join(os.environ.get("DETECTRON2_DATASETS", "datasets"), "synth_vis")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m vis_d2.data.synthetic",
        description="Generate the synthetic video instance segmentation benchmark in YouTube-VIS format.",
    )
    p.add_argument("--out", default=_default_out(), help="output folder (default: $DETECTRON2_DATASETS/synth_vis)")
    p.add_argument("--videos", type=int, default=80, help="number of train videos")
    p.add_argument("--val-videos", type=int, default=None, help="number of valid videos (default: as many as --videos, at least 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--frames", type=int, nargs="+", default=[10, 20], metavar="N",
        help="video length: MIN MAX (inclusive) or one fixed N (default 10 20)",
    )
    p.add_argument("--height", type=int, default=192)
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    default = SceneStyle()
    g = p.add_argument_group("calibration (how hard the benchmark looks; the defaults are the benchmark's)")
    g.add_argument("--texture-contrast", type=float, default=default.texture_contrast,
                   help=f"0: flat-colored objects ... 1: full two-tone textures (default {default.texture_contrast})")
    g.add_argument("--distractor-scale", type=float, default=default.distractor_scale,
                   help=f"multiplies the number of background lines and blobs (default {default.distractor_scale})")
    g.add_argument("--textured-distractors", type=float, default=default.textured_distractor_share,
                   help=f"share of background blobs with an object texture (default {default.textured_distractor_share})")
    g.add_argument("--degraded-videos", type=float, default=default.degraded_video_share,
                   help=f"share of videos with degraded frames (default {default.degraded_video_share})")
    g.add_argument("--instance-weights", type=float, nargs="+", metavar="W", default=default.instance_weights,
                   help="relative weights of 1, 2, 3, ... instances per video (default: 0 0 1 1 1 1, i.e. 3-6; "
                        "the first release: 0.2 0.35 0.3 0.15)")
    args = p.parse_args(argv)
    if len(args.frames) not in (1, 2):
        p.error("--frames takes MIN MAX or one N")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    frame_range = (args.frames[0], args.frames[-1])
    start = time.perf_counter()
    try:
        style = SceneStyle(
            texture_contrast=args.texture_contrast,
            distractor_scale=args.distractor_scale,
            textured_distractor_share=args.textured_distractors,
            degraded_video_share=args.degraded_videos,
            instance_weights=tuple(args.instance_weights),
        )
        generate_dataset(
            args.out, args.videos, args.seed, args.val_videos, frame_range, args.height, args.width, args.workers, style
        )
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logger.info("done in %.1f s", time.perf_counter() - start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
