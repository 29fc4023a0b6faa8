#!/usr/bin/env python
"""Every performance figure of the project in one markdown table, each a ratio measured in one run (`make bench`).

    ./.venv/bin/python tools/benchmark_all.py [--full] [--weights W.pth] [--only evaluator,tracking,...]

Rows (each measured now, on this machine; inputs generated in a temporary folder):
- evaluator: ``tools/benchmark_evaluator.py`` (our evaluator vs the official-style loop reference, process
  start included, metrics checked equal); the YouTube-VIS-2019-val-sized case (``--full``: OVIS-val-sized);
- tracking: ``tools/benchmark_tracking.py overhead`` (full online pipeline vs the detector alone);
- methods: per-frame cost of every ``configs/synth_vis/*_tiny.yaml`` against MaskTrack R-CNN's, on one
  synthetic validation video, interleaved rounds (new method configs are picked up automatically);
- memory: ``tools/benchmark_tracking.py memory``, peak resident memory on a long vs a 50-frame video
  (300 frames at 96x160 input by default; ``--full``: 1000 frames at the config's size);
- mapper: clips per second of one train-mapper process against the clips per second a training step of the
  tiny model consumes (> 1: one loader worker keeps up);
- CUDA (only with a GPU): frames per second at 640x360 with R50-FPN for each ``configs/ytvis_2019/*_R50_FPN.yaml``
  method, against plain Mask R-CNN (detectron2's ``GeneralizedRCNN``) with the same backbone and heads.
Weights are random unless ``--weights`` (tiny MaskTrack R-CNN) or ``--method-weights NAME=PATH`` (another tiny
method) is given; the table says which. Trained weights matter for the per-frame cost: random ones change how
many detections reach the tracker and the mask head. Sizes are small so that
the whole run fits in a few minutes on 2 CPU cores; each row says what it measured.
"""
import argparse
import glob
import os
import re
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
TINY = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
SECTIONS = ("evaluator", "tracking", "methods", "memory", "mapper", "cuda")


def _run(cmd, timeout=900):
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[1:3])} failed:\n{proc.stderr[-1500:]}")
    return proc.stdout


def _tool(name):
    return [sys.executable, os.path.join(REPO, "tools", name)]


def bench_evaluator(args):
    case = "ovis" if args.full else "ytvis19"
    out = _run(_tool("benchmark_evaluator.py") + ["--case", case, "--repeat", "3"])
    m = re.search(rf"^{case}\s+([\d.]+)\s+([\d.]+)", out, re.M)
    same = "agreement of the 12 metrics: OK" in out
    if not m:
        raise RuntimeError("could not read benchmark_evaluator.py's table:\n" + out[-800:])
    fast, ref = float(m.group(1)), float(m.group(2))
    size = "OVIS-val-sized (140 videos x ~60 frames, 100 tracks each)" if args.full else \
        "YouTube-VIS-2019-val-sized (300 videos, 10 tracks each)"
    return [("evaluator vs the official-style loop reference", f"{fast:.2f} s vs {ref:.2f} s", f"{ref / fast:.1f}x faster",
             f"{size}, process start included; metrics {'identical' if same else 'DIFFER'}")]


def bench_tracking(args):
    cmd = _tool("benchmark_tracking.py") + ["overhead", "--frames", str(args.frames), "--rounds", str(args.rounds)]
    out = _run(cmd + (["--weights", args.weights] if args.weights else []))
    det = re.search(r"detector only\s*:\s*([\d.]+)", out)
    full = re.search(r"with track head\+tracker:\s*([\d.]+)", out)
    ratio = re.search(r"ratio\s*:\s*([\d.]+)x", out)
    if not (det and full and ratio):
        raise RuntimeError("could not read benchmark_tracking.py overhead:\n" + out[-800:])
    return [("tracking overhead (track head + tracker vs detector alone)",
             f"{full.group(1)} vs {det.group(1)} ms/frame", f"{float(ratio.group(1)):.2f}x",
             f"tiny MaskTrack R-CNN, {args.frames} frames x {args.rounds} rounds (best), 1 thread, {_weights(args)}")]


def _weights(args):
    return "trained weights" if args.weights else "random weights"


def _video(cfg, root, frames):
    from vis_d2.data.dataset_mapper import YTVISVideoMapper
    from vis_d2.data.datasets import load_ytvis_json
    from vis_d2.data.synthetic import write_split

    json_file = write_split(root, "valid", 1, 0, frame_range=(frames, frames))
    return YTVISVideoMapper(cfg)(load_ytvis_json(json_file, os.path.join(root, "valid", "JPEGImages"))[0])


def _model(config, weights="", opts=()):
    from detectron2.modeling import build_model

    from vis_d2.engine import VideoCheckpointer, build_config

    cfg = build_config(config, list(opts))
    model = build_model(cfg).eval()
    if weights:
        VideoCheckpointer(model).load(weights)
    return cfg, model


def bench_methods(args):
    import torch

    torch.set_num_threads(1)
    configs = sorted(glob.glob(os.path.join(REPO, "configs", "synth_vis", "*_tiny.yaml")))
    configs.sort(key=lambda c: c != TINY)  # MaskTrack R-CNN first: the reference
    weights = dict(w.split("=", 1) for w in args.method_weights)
    if args.weights:
        weights.setdefault("masktrack_rcnn", args.weights)
    names = [os.path.basename(c)[: -len("_tiny.yaml")] for c in configs]
    unknown = set(weights) - set(names)
    if unknown:
        raise ValueError(f"--method-weights for unknown methods {sorted(unknown)}; tiny configs: {names}")
    models = {name: _model(c, weights.get(name, ""))[1] for name, c in zip(names, configs)}
    cfg, _ = _model(TINY)
    times = {name: [] for name in models}
    with tempfile.TemporaryDirectory() as root, torch.no_grad():
        video = _video(cfg, root, args.frames)
        for model in models.values():
            model([video])  # warm-up
        for _ in range(args.rounds):
            for name, model in models.items():
                tic = time.perf_counter()
                model([video])
                times[name].append((time.perf_counter() - tic) / args.frames * 1000)
    ref = min(times["masktrack_rcnn"])
    return [(f"per-frame cost: {name} vs MaskTrack R-CNN", f"{min(t):.1f} vs {ref:.1f} ms/frame", f"{min(t) / ref:.2f}x",
             f"configs/synth_vis/{name}_tiny.yaml, {args.frames}-frame synthetic video, best of {args.rounds}, "
             f"1 thread, {'weights ' + weights[name] if name in weights else 'random weights'}") for name, t in times.items()]


def bench_memory(args):
    lengths = [50, 1000] if args.full else [50, 300]
    opts = [] if args.full else ["INPUT.MIN_SIZE_TEST", "96", "INPUT.MAX_SIZE_TEST", "160"]
    cmd = _tool("benchmark_tracking.py") + ["memory", *opts, "--lengths", *map(str, lengths)]
    out = _run(cmd + (["--weights", args.weights] if args.weights else []), timeout=3600)
    rows = {int(m.group(1)): (float(m.group(2)), float(m.group(3)), float(m.group(4)))
            for m in re.finditer(r"^\s*(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", out, re.M)}
    if set(rows) != set(lengths):
        raise RuntimeError("could not read benchmark_tracking.py memory:\n" + out[-800:])
    (s_peak, s_grow), (l_peak, l_grow) = [(rows[n][1], rows[n][2]) for n in lengths]
    size = "the config's 192x320" if args.full else "96x160 input"
    return [(f"peak memory, {lengths[1]}- vs {lengths[0]}-frame video", f"{l_peak:.0f} vs {s_peak:.0f} MiB "
             f"(growth {l_grow:.1f} vs {s_grow:.1f})", f"{l_peak / s_peak:.2f}x",
             f"tiny MaskTrack R-CNN inference, {size}, resident set peak (VmHWM), {_weights(args)}")]


def bench_mapper(args):
    import torch

    from vis_d2.data.dataset_mapper import YTVISClipMapper
    from vis_d2.data.datasets import load_ytvis_json
    from vis_d2.data.synthetic import write_split
    from vis_d2.solver import build_video_optimizer

    torch.set_num_threads(1)
    cfg, model = _model(TINY, args.weights)
    with tempfile.TemporaryDirectory() as root:
        videos = load_ytvis_json(write_split(root, "train", 4, 0, frame_range=(10, 10)),
                                 os.path.join(root, "train", "JPEGImages"))
        mapper = YTVISClipMapper(cfg, is_train=True)
        mapper(videos[0])
        n_clips = 4 * args.rounds * 2
        tic = time.perf_counter()
        clips = [mapper(videos[i % len(videos)]) for i in range(n_clips)]
        mapper_rate = n_clips / (time.perf_counter() - tic)
    batch = cfg.SOLVER.IMS_PER_BATCH
    model.train()
    optimizer = build_video_optimizer(cfg, model)
    from detectron2.utils.events import EventStorage

    step_times = []
    with EventStorage(0):
        for i in range(args.rounds + 1):
            tic = time.perf_counter()
            losses = model(clips[:batch])
            optimizer.zero_grad()
            sum(losses.values()).backward()
            optimizer.step()
            step_times.append(time.perf_counter() - tic)
    train_rate = batch / min(step_times[1:])
    return [("mapper throughput vs training step rate", f"{mapper_rate:.1f} vs {train_rate:.1f} clips/s",
             f"{mapper_rate / train_rate:.1f}x", f"tiny config (2-frame clips, 192x320, batch {batch}): one mapper "
             f"process vs the clips one training step consumes (best of {args.rounds}), 1 thread")]


def bench_cuda(args):
    import torch

    if not torch.cuda.is_available():
        return [("CUDA: FPS at 640x360, R50-FPN, per method vs Mask R-CNN", "n/a", "n/a", "no CUDA device here")]
    from detectron2.modeling import build_model

    from vis_d2.engine import build_config

    base = os.path.join(REPO, "configs", "ytvis_2019", "masktrack_rcnn_R50_FPN.yaml")
    opts = ["MODEL.DEVICE", "cuda", "MODEL.WEIGHTS", ""]
    frames = [torch.randint(0, 255, (3, 360, 640), dtype=torch.uint8) for _ in range(args.cuda_frames)]
    video = {"video_id": 1, "height": 360, "width": 640, "length": len(frames), "image": frames}

    def fps(fn):
        fn()  # warm-up (cudnn autotuning, allocations)
        torch.cuda.synchronize()
        tic = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return len(frames) / (time.perf_counter() - tic)

    cfg = build_config(base, opts + ["MODEL.META_ARCHITECTURE", "GeneralizedRCNN", "MODEL.ROI_HEADS.NAME", "StandardROIHeads"])
    plain = build_model(cfg).eval()
    with torch.no_grad():
        ref = fps(lambda: [plain([{"image": f, "height": 360, "width": 640}]) for f in frames])
        rows = [("CUDA FPS at 640x360: plain Mask R-CNN R50-FPN", f"{ref:.1f} frames/s", "1.00x",
                 f"{torch.cuda.get_device_name()}, random weights, {len(frames)} frames, batch 1")]
        for config in sorted(glob.glob(os.path.join(REPO, "configs", "ytvis_2019", "*_R50_FPN.yaml"))):
            name = os.path.basename(config)[: -len("_R50_FPN.yaml")]
            model = build_model(build_config(config, opts)).eval()
            rate = fps(lambda: model([video]))
            rows.append((f"CUDA FPS at 640x360: {name} R50-FPN vs Mask R-CNN", f"{rate:.1f} vs {ref:.1f} frames/s",
                         f"{rate / ref:.2f}x", "whole online pipeline (tracking, masks, RLE), random weights"))
            del model
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true", help="the issue's sizes: OVIS-sized evaluator case, 1000-frame memory run")
    p.add_argument("--weights", default="", help="trained weights of the tiny MaskTrack R-CNN (default: random)")
    p.add_argument("--method-weights", action="append", default=[], metavar="NAME=PATH",
                   help="trained weights of another tiny method for the per-frame cost (e.g. tfa=output/tfa/model_final.pth)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--frames", type=int, default=10, help="frames per timing round")
    p.add_argument("--rounds", type=int, default=3, help="timing rounds (the best counts)")
    p.add_argument("--cuda-frames", type=int, default=50)
    args = p.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"--only: unknown sections {sorted(unknown)}; choose from {','.join(SECTIONS)}")
    start = time.perf_counter()
    rows = []
    import torch

    threads = torch.get_num_threads()
    for name in sections:
        tic = time.perf_counter()
        try:
            rows += globals()[f"bench_{name}"](args)
        except Exception as e:  # one failing figure must not hide the others
            rows.append((name, "FAILED", "-", str(e).strip().splitlines()[0][:160]))
        finally:
            torch.set_num_threads(threads)
        print(f"[bench] {name}: {time.perf_counter() - tic:.0f} s", file=sys.stderr, flush=True)
    print("| figure | measured | ratio | setting |")
    print("|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nmeasured in {time.perf_counter() - start:.0f} s on {os.cpu_count()} CPU cores "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    return 1 if any(r[1] == "FAILED" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
