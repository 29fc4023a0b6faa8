#!/usr/bin/env python
"""Overlay predicted tracks (results.json) or ground truth on a video's frames and save a GIF.

Each track keeps one color through the video, so identity switches are visible at a glance.

    python tools/visualize_tracks.py --dataset synth_vis_val --results output/demo/results.json \
        --video-id 1 --out output/demo/overlay.gif
    python tools/visualize_tracks.py --gt-json datasets/ytvis_2019/train.json \
        --image-root datasets/ytvis_2019/train/JPEGImages --video-id 3 --out gt.gif     # ground truth
"""
import argparse
import colorsys
import json
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from vis_d2.utils.rle import segmentation_to_mask


def track_color(index):
    """A bright color per track index; golden-ratio hue steps keep neighbouring ids far apart."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618034) % 1.0, 0.85, 1.0)
    return np.array([r * 255, g * 255, b * 255])


def tracks_for_video(video, results, gt_annotations, score_thresh, max_tracks):
    if results is None:
        tracks = [(a["category_id"], 1.0, a["segmentations"]) for a in gt_annotations if a["video_id"] == video["id"]]
    else:
        tracks = [
            (r["category_id"], r["score"], r["segmentations"])
            for r in results
            if r["video_id"] == video["id"] and r["score"] >= score_thresh
        ]
        tracks.sort(key=lambda t: -t[1])
    return tracks[:max_tracks]


def render(video, image_root, tracks, categories, alpha=0.5):
    frames = []
    height, width = video["height"], video["width"]
    for t, name in enumerate(video["file_names"]):
        image = np.asarray(Image.open(os.path.join(image_root, name)).convert("RGB"), dtype=np.float32)
        labels = []
        for k, (category_id, score, segms) in enumerate(tracks):
            mask = segmentation_to_mask(segms[t], height, width) if t < len(segms) else None
            if mask is None or not mask.any():
                continue
            image[mask] = (1 - alpha) * image[mask] + alpha * track_color(k)
            ys, xs = np.nonzero(mask)
            labels.append((int(xs.min()), int(ys.min()), f"#{k} {categories.get(category_id, category_id)} {score:.2f}", k))
        canvas = Image.fromarray(image.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(canvas)
        for x, y, text, k in labels:
            draw.text((x + 1, max(0, y - 11)), text, fill=tuple(int(c) for c in track_color(k)))
        draw.text((2, 2), f"frame {t}", fill=(255, 255, 255))
        frames.append(canvas)
    return frames


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", help="a registered vis_d2 dataset name (gives --gt-json and --image-root)")
    parser.add_argument("--gt-json", help="YouTube-VIS json with the videos (and GT when --results is omitted)")
    parser.add_argument("--image-root", help="folder holding <video>/<frame>.jpg")
    parser.add_argument("--results", help="results.json to draw; omitted: draw the ground truth")
    parser.add_argument("--video-id", type=int, help="video to draw (default: the first in the json)")
    parser.add_argument("--score-thresh", type=float, default=0.3)
    parser.add_argument("--max-tracks", type=int, default=20)
    parser.add_argument("--fps", type=float, default=4.0)
    parser.add_argument("--out", required=True, help="output .gif")
    args = parser.parse_args(argv)

    if args.dataset:
        import vis_d2.data  # noqa: F401  (registers datasets)
        from detectron2.data import MetadataCatalog

        meta = MetadataCatalog.get(args.dataset)
        args.gt_json, args.image_root = meta.json_file, meta.image_root
    if not args.gt_json or not args.image_root:
        parser.error("give --dataset, or both --gt-json and --image-root")
    with open(args.gt_json) as f:
        gt = json.load(f)
    results = None
    if args.results:
        with open(args.results) as f:
            results = json.load(f)
    videos = {v["id"]: v for v in gt["videos"]}
    video_id = args.video_id if args.video_id is not None else gt["videos"][0]["id"]
    if video_id not in videos:
        sys.exit(f"error: video id {video_id} is not in {args.gt_json}")
    categories = {c["id"]: c["name"] for c in gt["categories"]}
    tracks = tracks_for_video(videos[video_id], results, gt.get("annotations") or [], args.score_thresh, args.max_tracks)
    frames = render(videos[video_id], args.image_root, tracks, categories)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    frames[0].save(args.out, save_all=True, append_images=frames[1:], duration=int(1000 / args.fps), loop=0)
    print(f"wrote {args.out}: video {video_id}, {len(frames)} frames, {len(tracks)} tracks")


if __name__ == "__main__":
    main()
