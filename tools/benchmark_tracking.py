#!/usr/bin/env python
"""Cost of tracking, measured in one run: per-frame time of a video model with and without its track head
and tracker, and peak memory on a long video against a short one.

    ./.venv/bin/python tools/benchmark_tracking.py overhead [--weights output/demo/model_final.pth]
    ./.venv/bin/python tools/benchmark_tracking.py memory

overhead: the same frames go through the same online loop (``inference_video``) twice: (a) the full model
(detection, track embeddings, tracker, masks of the kept detections, RLE, aggregation) and (b) the same
detector and weights without its track head and without association (``StandardROIHeads``: masks of every
detection; ``MODEL.TRACKER.NAME PerFrameTracker``). Both include preprocessing, mask pasting, RLE encoding and
aggregation; the two are interleaved round by round so machine noise hits both alike.
memory: for each video length, a synthetic video is generated, then a fresh subprocess runs the full pipeline on it
and reports how far its resident memory rose above the level before the video (Linux VmHWM, reset just before)
and the size of the RLEs it produced.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

CONFIG = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")


def build_model(config, weights, opts=()):
    from detectron2.checkpoint import DetectionCheckpointer
    from detectron2.config import get_cfg
    from detectron2.modeling import build_model as d2_build_model

    import vis_d2.modeling  # noqa: F401
    from vis_d2.config import add_vis_config
    from vis_d2.projects import add_project_configs

    cfg = get_cfg()
    add_vis_config(cfg)
    add_project_configs(cfg)
    cfg.merge_from_file(config)
    cfg.merge_from_list(list(opts))
    model = d2_build_model(cfg).eval()
    if weights:
        DetectionCheckpointer(model).load(weights)
    return cfg, model


def make_video(root, length, seed=0):
    """One synthetic validation video of ``length`` frames, read back through the test mapper."""
    from vis_d2.data.datasets import load_ytvis_json
    from vis_d2.data.synthetic import write_split

    json_file = write_split(root, "valid", 1, seed, frame_range=(length, length))
    return load_ytvis_json(json_file, os.path.join(root, "valid", "JPEGImages"))[0]


# The same detector without a track head and without association: plain R-CNN heads (every detection is
# segmented as the frame is detected) and a tracker that starts a track per detection.
DETECTOR_ONLY = ["MODEL.META_ARCHITECTURE", "OnlineVideoRCNN", "MODEL.ROI_HEADS.NAME", "StandardROIHeads",
                 "MODEL.TRACKER.NAME", "PerFrameTracker"]


def build_detector_only(args, full_model):
    """The detector-only variant of ``full_model``, with the same weights (the track head's are unused)."""
    _, model = build_model(args.config, "", list(args.opts) + DETECTOR_ONLY)
    missing, _ = model.load_state_dict(full_model.state_dict(), strict=False)
    assert not missing, f"detector-only model lacks weights: {missing}"
    return model.eval()


def run_overhead(args):
    import torch

    from vis_d2.data.dataset_mapper import YTVISVideoMapper

    torch.set_num_threads(args.threads)
    cfg, model = build_model(args.config, args.weights, args.opts)
    detector = build_detector_only(args, model)
    with tempfile.TemporaryDirectory() as root:
        video = YTVISVideoMapper(cfg)(make_video(root, args.frames))
        full, det = [], []
        with torch.no_grad():
            model.inference_video(video), detector.inference_video(video)  # warm-up
            for _ in range(args.rounds):
                t0 = time.perf_counter()
                model.inference_video(video)
                t1 = time.perf_counter()
                detector.inference_video(video)
                t2 = time.perf_counter()
                full.append((t1 - t0) / args.frames)
                det.append((t2 - t1) / args.frames)
    full_ms, det_ms = 1000 * min(full), 1000 * min(det)
    print(f"frames per round: {args.frames}, rounds: {args.rounds}, torch threads: {args.threads}, "
          f"weights: {args.weights or 'random init'}, device: {cfg.MODEL.DEVICE}")
    print(f"detector only          : {det_ms:8.1f} ms/frame (best round)")
    print(f"with track head+tracker: {full_ms:8.1f} ms/frame (best round)")
    print(f"ratio                  : {full_ms / det_ms:8.3f}x  (median-round ratio "
          f"{sorted(f / d for f, d in zip(full, det))[len(full) // 2]:.3f}x)")


def _rss_mib(field):
    """VmRSS (current) or VmHWM (peak since the last reset) of this process, in MiB (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def run_memory_child(args):
    import torch

    from vis_d2.data.dataset_mapper import YTVISVideoMapper
    from vis_d2.data.datasets import load_ytvis_json

    torch.set_num_threads(args.threads)
    cfg, model = build_model(args.config, args.weights, args.opts)
    video_dict = load_ytvis_json(os.path.join(args.video_root, "valid.json"), os.path.join(args.video_root, "valid", "JPEGImages"))[0]
    video = YTVISVideoMapper(cfg)(video_dict)
    with torch.no_grad():  # warm-up on a few frames, so one-time allocations are not counted as growth
        model.inference_video(dict(video, image=video["image"][:3]))
    before = _rss_mib("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:  # reset the peak (VmHWM) to the current RSS
        f.write("5")
    start = time.perf_counter()
    output = model.inference_video(video)
    seconds = time.perf_counter() - start
    peak = _rss_mib("VmHWM")
    rle_bytes = sum(len(s["counts"]) for tr in output["pred_tracks"] for s in tr["segmentations"] if s)
    print(json.dumps({"frames": len(video["image"]), "peak_rss_mib": peak, "rss_before_video_mib": before,
                      "rle_bytes": rle_bytes, "tracks": len(output["pred_tracks"]), "seconds": seconds}))


def run_memory(args):
    """Videos are generated here, so their rendering never counts towards the inference's peak."""
    from vis_d2.data.synthetic import write_split

    rows = []
    with tempfile.TemporaryDirectory() as root:
        for frames in args.lengths:
            video_root = os.path.join(root, str(frames))
            write_split(video_root, "valid", 1, 0, frame_range=(frames, frames))
            cmd = [sys.executable, __file__, "memory-child", "--video-root", video_root, "--config", args.config,
                   "--threads", str(args.threads)] + (["--weights", args.weights] if args.weights else []) + args.opts
            out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(out.strip().splitlines()[-1]))
    print(f"{'frames':>7} {'RSS before video MiB':>21} {'peak during video':>18} {'growth MiB':>11} {'RLE KiB':>8} {'tracks':>7} {'s':>7}")
    for r in rows:
        print(f"{r['frames']:>7} {r['rss_before_video_mib']:>21.1f} {r['peak_rss_mib']:>18.1f} "
              f"{r['peak_rss_mib'] - r['rss_before_video_mib']:>11.1f} {r['rle_bytes'] / 1024:>8.1f} "
              f"{r['tracks']:>7} {r['seconds']:>7.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["overhead", "memory", "memory-child"])
    parser.add_argument("--config", default=CONFIG)
    parser.add_argument("--weights", default="", help="checkpoint (default: random init)")
    parser.add_argument("--frames", type=int, default=20, help="overhead: frames per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lengths", type=int, nargs="+", default=[50, 1000], help="memory: video lengths")
    parser.add_argument("--video-root", help=argparse.SUPPRESS)  # memory-child: the generated video
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is steadiest on 2 cores)")
    # Anything else is a config override, KEY VALUE pairs as in train_net.py (e.g. MODEL.DEVICE cuda).
    args, args.opts = parser.parse_known_args()
    if len(args.opts) % 2 or any(k.startswith("-") for k in args.opts[::2]):
        parser.error(f"unrecognised arguments: {' '.join(args.opts)}")
    {"overhead": run_overhead, "memory": run_memory, "memory-child": run_memory_child}[args.mode](args)


if __name__ == "__main__":
    main()
