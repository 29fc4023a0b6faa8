#!/usr/bin/env python
"""Compare VIS methods on the synthetic benchmark: the same data, iterations and seeds for every method.

    ./.venv/bin/python tools/benchmark_methods.py --methods masktrack_rcnn,tfa --seeds 0,1,2 --iters 400 \\
        --out output/bench_methods [--device cuda] [--opts KEY VALUE ...]

For each method and seed it trains ``configs/synth_vis/<method>_tiny.yaml`` (``SEED`` = the seed,
``SOLVER.MAX_ITER`` = ``--iters``) with ``train_net.py``, evaluates the final weights on ``synth_vis_val``
with ``train_net.py --eval-only`` and writes

- ``DIR/results.json``: one entry per method and seed with AP, AP50, AR10, the AP of the hard and of the
  clean videos, seconds per training iteration and end-to-end inference milliseconds per frame;
- ``DIR/table.md``: mean ± std over the seeds per method, and each method's difference to the first one,
  paired by seed (mean ± std of the per-seed differences).

A method entry may carry config overrides after ``@``: ``masktrack_rcnn@MODEL.TRACKER.EMBED_WEIGHT=0.0`` is
MaskTrack R-CNN whose tracker ignores appearance, ``masktrack_rcnn@SOLVER.MAX_ITER=100`` the same detector
trained for 100 iterations. Overrides of inference-only keys (``MODEL.TRACKER.*``, ``TEST.*`` and any key
ending in ``_TEST``, such as ``MODEL.RPN.POST_NMS_TOPK_TEST``) reuse the trained weights of the entry without
them, so such variants cost one evaluation, not one training.

Runs are cached under ``DIR/runs/``, keyed by the method, the seed and the overrides: a re-run skips what
has finished, and a training that was killed resumes from its last checkpoint. A finished run is reused only
while the config it was made with (its ``config.yaml``) still agrees with today's: after a change to a config
file (or to a default) that alters a run, the run is made again, and the old folder is kept beside it as
``*.stale-N``. The synthetic benchmark is
generated under ``$DETECTRON2_DATASETS/synth_vis`` (default ``./datasets``) when it is missing, with the
generator's defaults, as ``make demo`` does.
"""
import argparse
import functools
import hashlib
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional, Sequence, Tuple

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

# Keys that only change inference: a variant overriding only these is evaluated on the base weights. Besides
# the tracker and TEST.*, detectron2's convention: a key ending in _TEST (MODEL.RPN.POST_NMS_TOPK_TEST,
# MODEL.ROI_HEADS.SCORE_THRESH_TEST, INPUT.MIN_SIZE_TEST, ...) is read at inference only.
INFERENCE_ONLY_PREFIXES = ("MODEL.TRACKER.", "TEST.")
INFERENCE_ONLY_SUFFIX = "_TEST"


def is_inference_only(key: str) -> bool:
    """Whether config ``key`` changes inference only (so training runs that differ in it are the same)."""
    return key.startswith(INFERENCE_ONLY_PREFIXES) or key.endswith(INFERENCE_ONLY_SUFFIX)
# Keys that say where a run writes or what it loads, not what it computes.
LOCATION_KEYS = ("OUTPUT_DIR", "MODEL.WEIGHTS", "DATASETS.TEST")
REPORTED = ("AP", "AP50", "AR10", "hard_AP", "clean_AP", "s_per_iter", "ms_per_frame")


class MethodSpec:
    """One entry of ``--methods``: a method name and its config overrides.

    Attributes:
        label: the entry as written (used in tables).
        method: the method name; its config is ``configs/synth_vis/<method>_tiny.yaml``.
        train_opts / eval_opts: ``[KEY, VALUE, ...]`` overrides that change training / only inference.
    """

    def __init__(self, text: str):
        parts = text.split("@")
        self.label = text
        self.method = parts[0]
        if not re.fullmatch(r"[A-Za-z0-9_]+", self.method):
            raise ValueError(f"bad method name {self.method!r} in {text!r}")
        self.train_opts, self.eval_opts = [], []
        for part in parts[1:]:
            if "=" not in part:
                raise ValueError(f"override {part!r} in {text!r} must be KEY=VALUE")
            key, value = part.split("=", 1)
            target = self.eval_opts if is_inference_only(key) else self.train_opts
            target.extend([key, value])

    @property
    def config_file(self) -> str:
        return os.path.join(REPO, "configs", "synth_vis", f"{self.method}_tiny.yaml")


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--methods", required=True, help="comma-separated entries METHOD[@KEY=VALUE...]; the first is the reference")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated training seeds (default 0,1,2)")
    p.add_argument("--iters", type=int, required=True, help="training iterations of every run")
    p.add_argument("--out", required=True, help="output folder (results.json, table.md, runs/)")
    p.add_argument("--device", default=None, help="MODEL.DEVICE for training and evaluation (default: the config's, cpu)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="KEY VALUE pairs applied to every run")
    args = p.parse_args(argv)
    if len(args.opts) % 2:
        p.error("--opts takes KEY VALUE pairs")
    try:
        args.specs = [MethodSpec(m) for m in args.methods.split(",") if m]
        args.seed_list = [int(s) for s in args.seeds.split(",") if s != ""]
    except ValueError as e:
        p.error(str(e))
    if not args.specs or not args.seed_list:
        p.error("need at least one method and one seed")
    for spec in args.specs:
        if not os.path.isfile(spec.config_file):
            known = sorted(f[: -len("_tiny.yaml")] for f in os.listdir(os.path.dirname(spec.config_file)) if f.endswith("_tiny.yaml"))
            p.error(f"no config for method {spec.method!r} ({spec.config_file}); methods: {', '.join(known)}")
    if args.iters < 1:
        p.error("--iters must be >= 1")
    return args


def _key(*parts) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:10]


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else f"{seconds // 60}:{seconds % 60:02d}"


class Run:
    """One (method entry, seed): where it trains and evaluates, and whether that is done."""

    def __init__(self, spec: MethodSpec, seed: int, args: argparse.Namespace):
        self.spec, self.seed = spec, seed
        common = list(args.opts) + (["MODEL.DEVICE", args.device] if args.device else [])
        self.train_opts = common + ["SEED", str(seed), "SOLVER.MAX_ITER", str(args.iters)] + spec.train_opts
        self.eval_opts = common + spec.eval_opts
        train_key = _key(spec.method, self.train_opts)
        self.train_dir = os.path.join(args.out, "runs", f"{spec.method}-{train_key}-seed{seed}")
        self.eval_dir = os.path.join(self.train_dir, f"eval-{_key(self.eval_opts)}")

    @property
    def weights(self) -> str:
        return os.path.join(self.train_dir, "model_final.pth")

    @property
    def metrics_file(self) -> str:
        return os.path.join(self.eval_dir, "inference", "metrics.json")

    @property
    def trained(self) -> bool:
        return os.path.isfile(self.weights)

    def training_changes(self) -> List[str]:
        """How today's training config differs from the one the cached weights were trained with."""
        from vis_d2.engine.defaults import build_config

        current = build_config(self.spec.config_file, self.train_opts)
        return config_changes(os.path.join(self.train_dir, "config.yaml"), current, LOCATION_KEYS, skip=is_inference_only)

    def evaluation_changes(self) -> List[str]:
        """How today's evaluation config differs from the one the cached metrics were computed with."""
        from vis_d2.engine.defaults import build_config

        current = build_config(self.spec.config_file, self.train_opts + self.eval_opts)
        return config_changes(os.path.join(self.eval_dir, "config.yaml"), current, LOCATION_KEYS)

    @property
    def evaluated(self) -> bool:
        return os.path.isfile(self.metrics_file)

    def result(self) -> Dict:
        with open(self.metrics_file) as f:
            m = json.load(f)
        return {
            "method": self.spec.label,
            "seed": self.seed,
            "AP": m["AP"],
            "AP50": m["AP50"],
            "AR10": m["AR10"],
            "hard_AP": m.get("hard", {}).get("AP"),
            "clean_AP": m.get("clean", {}).get("AP"),
            "s_per_iter": seconds_per_iteration(self.train_dir),
            "ms_per_frame": m.get("speed", {}).get("ms_per_frame"),
            "train_dir": os.path.relpath(self.train_dir, os.path.dirname(os.path.dirname(self.train_dir))),
        }


def _flatten(node, prefix: str = "") -> Dict[str, object]:
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@functools.lru_cache(maxsize=1)
def _flat_defaults() -> Dict[str, object]:
    """The default config (every vis_d2 and method key), flattened; built once per process."""
    import yaml

    from vis_d2.engine.defaults import default_config

    return _flatten(yaml.safe_load(default_config().dump()))


def config_changes(saved_yaml: str, current, ignore_prefixes: Sequence[str] = (), skip=None) -> List[str]:
    """``"KEY: saved -> current"`` for every key whose value differs between a run's saved config and ``current``.

    A key the saved config lacks was added to the defaults after the run was made, with the behaviour of
    before as its default: it is a change only when ``current`` sets it to something else. Keys starting
    with one of ``ignore_prefixes``, and those for which ``skip(key)`` is true, are skipped. A run without
    a saved config has nothing to compare: no changes.
    """
    import yaml

    if not os.path.isfile(saved_yaml):
        return []
    with open(saved_yaml) as f:
        saved = _flatten(yaml.safe_load(f) or {})
    now = _flatten(yaml.safe_load(current.dump()))
    defaults = _flat_defaults()
    changes = []
    for key in sorted(now):
        if key.startswith(tuple(ignore_prefixes)) or (skip is not None and skip(key)):
            continue
        if key in saved and saved[key] != now[key]:
            changes.append(f"{key}: {saved[key]!r} -> {now[key]!r}")
        elif key not in saved and key in defaults and defaults[key] != now[key]:
            changes.append(f"{key}: (absent, default {defaults[key]!r}) -> {now[key]!r}")
    return changes


def _set_aside(folder: str) -> str:
    """Rename ``folder`` to the first free ``folder.stale-N``; returns the new name."""
    n = 1
    while os.path.exists(f"{folder}.stale-{n}"):
        n += 1
    os.rename(folder, f"{folder}.stale-{n}")
    return f"{folder}.stale-{n}"


def _set_aside_if_changed(folder: str, changes: List[str], what: str) -> bool:
    """Set ``folder`` aside when ``changes`` is not empty, saying why; returns whether it did."""
    if not changes:
        return False
    moved = _set_aside(folder)
    listed = "; ".join(changes[:3]) + (" ..." if len(changes) > 3 else "")
    print(f"{what} ({listed}): the old folder is in {moved}", flush=True)
    return True


def invalidate_changed_runs(runs: List["Run"]) -> None:
    """Set aside cached trainings and evaluations whose config no longer agrees with today's, saying why."""
    for run in runs:
        if run.trained and os.path.isdir(run.train_dir):
            what = f"{run.spec.method} seed {run.seed}: the config changed since it was trained, training again"
            if _set_aside_if_changed(run.train_dir, run.training_changes(), what):
                continue
        if run.evaluated:
            what = f"{run.spec.label} seed {run.seed}: the config changed since it was evaluated, evaluating again"
            _set_aside_if_changed(run.eval_dir, run.evaluation_changes(), what)


def seconds_per_iteration(train_dir: str) -> Optional[float]:
    """Mean of the per-iteration times detectron2 logged to ``train_dir/metrics.json`` (data loading included)."""
    path = os.path.join(train_dir, "metrics.json")
    if not os.path.isfile(path):
        return None
    times = []
    with open(path) as f:
        for line in f:
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "time" in entry:
                times.append(float(entry["time"]))
    return statistics.fmean(times) if times else None


_ITER_LINE = re.compile(r"iter: (\d+)")


def _run_logged(cmd: List[str], log_path: str, on_iter=None) -> None:
    """Run ``cmd``, appending its output to ``log_path``; calls ``on_iter(i)`` on detectron2's iteration lines."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    with open(log_path, "a") as log:
        log.write(f"$ {' '.join(cmd)}\n")
        log.flush()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in proc.stdout:
            log.write(line)
            match = _ITER_LINE.search(line) if on_iter else None
            if match:
                on_iter(int(match.group(1)) + 1)
        if proc.wait() != 0:
            raise RuntimeError(f"command failed (exit {proc.returncode}); see {log_path}:\n  {' '.join(cmd)}")


class Progress:
    """Prints one line per step and an estimate of the time left, from the steps measured so far."""

    def __init__(self, runs: List[Run], iters: int):
        self.todo_train = {r.train_dir for r in runs if not r.trained}
        self.todo_eval = sum(1 for r in runs if not r.evaluated)
        self.iters = iters
        self.train_seconds_per_iter: List[float] = []
        self.eval_seconds: List[float] = []
        self.start = time.perf_counter()

    def remaining(self, current_iter_fraction: float = 0.0) -> Optional[float]:
        if not self.train_seconds_per_iter and self.todo_train:
            return None
        train = statistics.fmean(self.train_seconds_per_iter) * self.iters if self.train_seconds_per_iter else 0.0
        evaluate = statistics.fmean(self.eval_seconds) if self.eval_seconds else 0.0
        return train * (len(self.todo_train) - current_iter_fraction) + evaluate * self.todo_eval

    def say(self, text: str, fraction: float = 0.0):
        left = self.remaining(fraction)
        eta = f" | about {_fmt_duration(left)} left" if left is not None else ""
        print(f"[{_fmt_duration(time.perf_counter() - self.start)}] {text}{eta}", flush=True)


def train(run: Run, progress: Progress, index: str) -> None:
    os.makedirs(run.train_dir, exist_ok=True)
    resume = os.path.isfile(os.path.join(run.train_dir, "last_checkpoint"))
    cmd = [sys.executable, os.path.join(REPO, "train_net.py"), "--config-file", run.spec.config_file]
    cmd += ["--resume"] if resume else []
    cmd += run.train_opts + ["OUTPUT_DIR", run.train_dir, "DATASETS.TEST", "()"]
    iters = int(dict(zip(run.train_opts[::2], run.train_opts[1::2]))["SOLVER.MAX_ITER"])
    progress.say(f"{index} training {run.spec.method} seed {run.seed} for {iters} iterations{' (resuming)' if resume else ''}")
    started = time.perf_counter()
    last_report = [started]

    def on_iter(i):
        now = time.perf_counter()
        if now - last_report[0] >= 60:
            last_report[0] = now
            progress.say(f"{index}   iteration {i}/{iters}", fraction=i / iters)

    _run_logged(cmd, os.path.join(run.train_dir, "train.log"), on_iter)
    progress.train_seconds_per_iter.append((time.perf_counter() - started) / iters)
    progress.todo_train.discard(run.train_dir)


def evaluate(run: Run, progress: Progress, index: str) -> None:
    os.makedirs(run.eval_dir, exist_ok=True)
    cmd = [sys.executable, os.path.join(REPO, "train_net.py"), "--config-file", run.spec.config_file, "--eval-only"]
    cmd += run.train_opts + run.eval_opts + ["MODEL.WEIGHTS", run.weights, "OUTPUT_DIR", run.eval_dir]
    progress.say(f"{index} evaluating {run.spec.label} seed {run.seed}")
    started = time.perf_counter()
    _run_logged(cmd, os.path.join(run.eval_dir, "eval.log"))
    progress.eval_seconds.append(time.perf_counter() - started)
    progress.todo_eval -= 1


def ensure_benchmark() -> str:
    """The synthetic benchmark's folder, generated (with the generator's defaults) when it is missing; a
    warning when the data there was written with other settings."""
    root = os.path.join(os.environ.get("DETECTRON2_DATASETS", os.path.join(REPO, "datasets")), "synth_vis")
    if not os.path.isfile(os.path.join(root, "valid.json")):
        print(f"Generating the synthetic benchmark in {root}", flush=True)
        subprocess.run([sys.executable, "-m", "vis_d2.data.synthetic", "--out", root], cwd=REPO, check=True)
    from vis_d2.data.synthetic import differences_from_defaults

    for difference in differences_from_defaults(root):
        print(f"Warning: {root} differs from the generator's defaults ({difference}): the figures are not "
              "comparable with the documented ones; regenerate it with python -m vis_d2.data.synthetic", flush=True)
    return root


def _mean_std(values: List[float]) -> Tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def _cell(values: List[Optional[float]], digits: int = 1) -> str:
    values = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not values:
        return "-"
    mean, std = _mean_std(values)
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def summarize(results: List[Dict], labels: List[str]) -> Dict[str, Dict]:
    """Per method: ``{metric: (mean, std)}`` and, against the first method, the seed-paired AP differences."""
    by_method = {label: {r["seed"]: r for r in results if r["method"] == label} for label in labels}
    reference = by_method[labels[0]]
    summary = {}
    for label in labels:
        runs = by_method[label]
        entry = {k: [runs[s][k] for s in sorted(runs)] for k in REPORTED}
        for metric in ("AP", "hard_AP"):
            common = sorted(set(runs) & set(reference))
            entry[f"delta_{metric}"] = [
                runs[s][metric] - reference[s][metric]
                for s in common
                if runs[s][metric] is not None and reference[s][metric] is not None
            ]
        entry["seeds"] = sorted(runs)
        summary[label] = entry
    return summary


def write_table(summary: Dict[str, Dict], labels: List[str], header: str) -> str:
    lines = [header, ""]
    lines.append("| method | seeds | AP | AP50 | AR10 | hard AP | clean AP | ΔAP vs first | Δ hard AP | s/iter (train) | ms/frame (inference) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|")
    for i, label in enumerate(labels):
        e = summary[label]
        delta = "(reference)" if i == 0 else _cell(e["delta_AP"])
        delta_hard = "(reference)" if i == 0 else _cell(e["delta_hard_AP"])
        lines.append(
            f"| {label} | {len(e['seeds'])} | {_cell(e['AP'])} | {_cell(e['AP50'])} | {_cell(e['AR10'])} | "
            f"{_cell(e['hard_AP'])} | {_cell(e['clean_AP'])} | {delta} | {delta_hard} | "
            f"{_cell(e['s_per_iter'], 2)} | {_cell(e['ms_per_frame'], 0)} |"
        )
    lines += ["", "mean ± std over seeds; Δ: the per-seed difference to the first method, mean ± std over seeds."]
    return "\n".join(lines) + "\n"


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    runs = [Run(spec, seed, args) for seed in args.seed_list for spec in args.specs]
    # Each entry's config is built once, with the overrides its runs will get, before anything is written:
    # a typo or a wrong value type fails now, not after hours of training.
    from vis_d2.engine.defaults import ConfigError, build_config

    for run in (r for r in runs if r.seed == args.seed_list[0]):  # one run per entry
        try:
            build_config(run.spec.config_file, run.train_opts + run.eval_opts)
        except ConfigError as e:
            print(f"error: method entry {run.spec.label!r}: {e}", file=sys.stderr)
            return 2
    os.makedirs(args.out, exist_ok=True)
    data_root = ensure_benchmark()
    invalidate_changed_runs(runs)
    progress = Progress(runs, args.iters)
    done = sum(r.evaluated for r in runs)
    progress.say(f"{len(runs)} runs ({len(args.specs)} methods x {len(args.seed_list)} seeds), {done} already finished")
    for k, run in enumerate(runs, start=1):
        index = f"[{k}/{len(runs)}]"
        if run.evaluated:
            continue
        if not run.trained:
            train(run, progress, index)
        evaluate(run, progress, index)
        r = run.result()
        progress.say(f"{index} {run.spec.label} seed {run.seed}: AP {r['AP']:.1f}, hard AP {r['hard_AP'] if r['hard_AP'] is None else round(r['hard_AP'], 1)}")

    results = [r.result() for r in runs]
    labels = [s.label for s in args.specs]
    with open(os.path.join(data_root, "valid.json")) as f:
        dataset_info = json.load(f).get("info", {})
    payload = {
        "methods": labels,
        "seeds": args.seed_list,
        "iters": args.iters,
        "device": args.device or "config default",
        "opts": args.opts,
        "dataset": {"root": data_root, "info": dataset_info},
        "runs": results,
        "summary": summarize(results, labels),
    }
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(payload, f, indent=2)
    header = f"Synthetic benchmark (synth_vis_val), {args.iters} iterations, seeds {args.seeds}" + (
        f", opts {' '.join(args.opts)}" if args.opts else ""
    )
    table = write_table(payload["summary"], labels, header)
    with open(os.path.join(args.out, "table.md"), "w") as f:
        f.write(table)
    print(table)
    progress.say(f"wrote {os.path.join(args.out, 'results.json')} and table.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
