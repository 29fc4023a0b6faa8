#!/usr/bin/env python
"""Segment and track the instances of one video with any vis_d2 model; write an overlay video and results.json.

    python tools/demo_video.py --config-file configs/synth_vis/masktrack_rcnn_tiny.yaml \\
        --input VIDEO.mp4|FRAMES_DIR --output out.mp4 [--png-dir DIR] [--results out.json] \\
        [--confidence-threshold 0.5] MODEL.WEIGHTS output/demo/model_final.pth [KEY VALUE ...]

The model runs its own per-video inference (``model([video])``, docs/interfaces.md §3/§4) on a lazy frame
sequence, so every method works and memory stays flat on long videos: frames are decoded one at a time,
first for inference, then again for drawing. Each track keeps one color (from its track id); labels show
the class and the track's score. One output frame per input frame. ``--results`` writes the video's
YouTube-VIS results (``[{"video_id", "category_id", "score", "segmentations"}]``, category ids of the
config's first test dataset when it is registered, else 1..K).

Video files need PyAV (``pip install av``); a folder of frames (sorted by name) needs nothing more. A model
without ``MODEL.WEIGHTS`` runs with random weights (a warning says so). Runs on CPU (``MODEL.DEVICE cpu``,
the synthetic configs' default) or CUDA.
"""
import argparse
import json
import logging
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

logger = logging.getLogger("vis_d2.demo_video")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config-file", required=True)
    p.add_argument("--input", required=True, help="a video file (mp4, ...) or a folder of frames")
    p.add_argument("--output", required=True, help="the overlay video (.mp4, .mkv, .avi, .mov, .webm)")
    p.add_argument("--png-dir", help="also write each drawn frame as DIR/<t>.png")
    p.add_argument("--results", help="write the video's results.json (YouTube-VIS results format)")
    p.add_argument("--confidence-threshold", type=float, default=0.5, help="draw tracks with at least this score")
    p.add_argument("--fps", type=float, default=None, help="output frame rate (default: the input's, 10 for frames)")
    p.add_argument("--video-id", type=int, default=1, help="video_id written in the results")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default: torch's choice; 1 is fastest on a small, busy machine)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    # Anything else is a config override, KEY VALUE pairs as in train_net.py (e.g. MODEL.WEIGHTS w.pth).
    args, args.opts = p.parse_known_args(argv)
    if any(k.startswith("-") for k in args.opts[::2]):
        p.error(f"unrecognised arguments: {' '.join(args.opts)}")
    return args


class _Progress:
    """A frame sequence that advances a progress bar as the model reads new frames."""

    def __init__(self, frames, bar):
        self.frames, self.bar, self.seen = frames, bar, 0

    def __len__(self):
        return len(self.frames)

    def __getitem__(self, index):
        item = self.frames[index]
        if isinstance(index, int) and index >= self.seen:
            self.bar.update(index + 1 - self.seen)
            self.seen = index + 1
        return item

    def __iter__(self):
        for t in range(len(self)):
            yield self[t]


def dataset_categories(cfg, num_classes):
    """(class names, contiguous id -> dataset id) of the config's first test set, or generic ones."""
    from detectron2.data import MetadataCatalog

    names = [f"class {i}" for i in range(num_classes)]
    to_dataset = {i: i + 1 for i in range(num_classes)}
    if cfg.DATASETS.TEST:
        try:
            meta = MetadataCatalog.get(cfg.DATASETS.TEST[0])
            names = list(meta.thing_classes)
            to_dataset = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
        except (AttributeError, KeyError, OSError, ValueError) as e:
            logger.warning(f"no class names for {cfg.DATASETS.TEST[0]} ({e}); using class 0..{num_classes - 1}")
    return names, to_dataset


def build_demo_model(cfg):
    import torch
    from detectron2.modeling import build_model

    from vis_d2.engine import VideoCheckpointer

    model = build_model(cfg)
    if cfg.MODEL.WEIGHTS:
        VideoCheckpointer(model, allow_pickle=cfg.MODEL.WEIGHTS_ALLOW_PICKLE).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: running a randomly initialised model")
    return model.eval()


def run(args) -> dict:
    import numpy as np
    import torch
    from detectron2.data import detection_utils as utils
    from tqdm import tqdm

    import vis_d2.data  # noqa: F401  registers the builtin datasets (class names)
    from vis_d2.checkpoint import atomic_write_text
    from vis_d2.engine import build_config
    from vis_d2.engine.track_visualizer import TrackVisualizer
    from vis_d2.engine.video_io import VideoFileWriter, open_frames
    from vis_d2.evaluation.ytvis_evaluator import tracks_to_results

    cfg = build_config(args.config_file, args.opts)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    model = build_demo_model(cfg)
    frames, info = open_frames(args.input, utils.build_augmentation(cfg, is_train=False), cfg.INPUT.FORMAT)
    length, height, width = info["length"], info["height"], info["width"]
    video = {"video_id": args.video_id, "height": height, "width": width, "length": length,
             "file_names": info["file_names"]}

    start, cpu_start = time.perf_counter(), time.process_time()
    with torch.no_grad(), tqdm(total=length, desc="segment + track", unit="frame", disable=args.no_progress) as bar:
        output = model([dict(video, image=_Progress(frames, bar))])[0]
    infer_s = time.perf_counter() - start

    names, to_dataset = dataset_categories(cfg, cfg.MODEL.ROI_HEADS.NUM_CLASSES)
    if args.results:
        results = tracks_to_results(output, to_dataset, cfg.TEST.VIS_MAX_TRACKS_PER_VIDEO)
        os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
        atomic_write_text(args.results, json.dumps(results))

    visualizer = TrackVisualizer(output["pred_tracks"], names, score_threshold=args.confidence_threshold)
    fps = args.fps or info["fps"] or 10.0
    writer = VideoFileWriter(args.output, fps, width, height)
    if args.png_dir:
        os.makedirs(args.png_dir, exist_ok=True)
    from PIL import Image

    try:
        with tqdm(total=length, desc="draw + encode", unit="frame", disable=args.no_progress) as bar:
            for t, rgb in enumerate(info["raw_frames"]()):
                drawn = visualizer.draw(np.asarray(rgb), t, frame_text=f"frame {t}")
                writer.write(drawn)
                if args.png_dir:
                    Image.fromarray(drawn).save(os.path.join(args.png_dir, f"{t:05d}.png"))
                bar.update(1)
        writer.close()
    except BaseException:
        writer.abort()
        raise
    total_s, cpu_s = time.perf_counter() - start, time.process_time() - cpu_start
    summary = {"frames": length, "tracks": len(output["pred_tracks"]), "drawn_tracks": len(visualizer.tracks),
               "inference_fps": length / infer_s, "end_to_end_fps": length / total_s,
               "cpu_seconds_per_frame": cpu_s / length,
               "device": str(cfg.MODEL.DEVICE)}
    print(f"{args.output}: {length} frames, {summary['tracks']} tracks ({summary['drawn_tracks']} drawn at score >= "
          f"{args.confidence_threshold}); {summary['inference_fps']:.2f} frames/s for segmentation + tracking, "
          f"{summary['end_to_end_fps']:.2f} frames/s end to end on {cfg.MODEL.DEVICE} "
          f"({summary['cpu_seconds_per_frame']:.2f} CPU s/frame)")
    return summary


def main(argv=None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from vis_d2.checkpoint import CheckpointReadError, UnsafeCheckpointError
    from vis_d2.engine import ConfigError
    from vis_d2.engine.video_io import MissingVideoDependency

    try:
        run(args)
    except (ConfigError, CheckpointReadError, UnsafeCheckpointError, MissingVideoDependency, OSError,
            ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
