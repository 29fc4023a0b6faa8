"""tools/benchmark_methods.py: the method-comparison command trains, evaluates, caches and tabulates."""
import json
import os
import re
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOOL = os.path.join(REPO, "tools", "benchmark_methods.py")
sys.path.insert(0, os.path.join(REPO, "tools"))
import benchmark_methods  # noqa: E402

FAST = ["INPUT.MIN_SIZE_TRAIN", "(96,)", "INPUT.MAX_SIZE_TRAIN", "160", "INPUT.MIN_SIZE_TEST", "96",
        "INPUT.MAX_SIZE_TEST", "160", "SOLVER.IMS_PER_BATCH", "2", "DATALOADER.NUM_WORKERS", "0"]


@pytest.fixture(scope="module")
def synth_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("datasets")
    subprocess.run(
        [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(root / "synth_vis"), "--videos", "4",
         "--val-videos", "3", "--seed", "5", "--height", "96", "--width", "160", "--frames", "4", "6"],
        check=True, cwd=REPO,
    )
    return root


def run_tool(synth_root, out, methods, seeds="0", iters=3):
    env = dict(os.environ, DETECTRON2_DATASETS=str(synth_root))
    cmd = [sys.executable, TOOL, "--methods", methods, "--seeds", seeds, "--iters", str(iters), "--out", out, "--opts", *FAST]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def test_smoke_run_writes_results_and_table_then_skips_finished_runs(synth_root, tmp_path):
    out = str(tmp_path / "bench")
    start = time.perf_counter()
    log = run_tool(synth_root, out, "masktrack_rcnn")
    assert time.perf_counter() - start < 120, "--iters 3 --seeds 0 must stay a quick smoke test"
    with open(os.path.join(out, "results.json")) as f:
        payload = json.load(f)
    (run,) = payload["runs"]
    assert run["method"] == "masktrack_rcnn" and run["seed"] == 0
    for key in ("AP", "AP50", "AR10", "hard_AP", "clean_AP"):
        assert run[key] is None or 0.0 <= run[key] <= 100.0, key
    assert run["s_per_iter"] > 0 and run["ms_per_frame"] > 0
    with open(os.path.join(out, "table.md")) as f:
        table = f.read()
    assert "| masktrack_rcnn | 1 |" in table and "(reference)" in table
    assert "training masktrack_rcnn seed 0" in log

    # A second call with one more, inference-only variant: the finished run is skipped and the variant
    # is evaluated on the same weights, without a new training.
    log = run_tool(synth_root, out, "masktrack_rcnn,masktrack_rcnn@MODEL.TRACKER.EMBED_WEIGHT=0.0")
    assert "training" not in log and "evaluating masktrack_rcnn@MODEL.TRACKER.EMBED_WEIGHT=0.0 seed 0" in log
    assert "evaluating masktrack_rcnn seed 0" not in log
    with open(os.path.join(out, "results.json")) as f:
        runs = json.load(f)["runs"]
    assert [r["method"] for r in runs] == ["masktrack_rcnn", "masktrack_rcnn@MODEL.TRACKER.EMBED_WEIGHT=0.0"]
    assert runs[0]["train_dir"] == runs[1]["train_dir"]
    assert len(os.listdir(os.path.join(out, "runs"))) == 1


def test_overrides_split_into_training_and_inference_only_keys():
    spec = benchmark_methods.MethodSpec("masktrack_rcnn@SOLVER.MAX_ITER=100@MODEL.TRACKER.EMBED_WEIGHT=0.0")
    assert spec.method == "masktrack_rcnn"
    assert spec.train_opts == ["SOLVER.MAX_ITER", "100"]
    assert spec.eval_opts == ["MODEL.TRACKER.EMBED_WEIGHT", "0.0"]
    spec = benchmark_methods.MethodSpec("tfa@MODEL.RPN.POST_NMS_TOPK_TEST=100@MODEL.RPN.POST_NMS_TOPK_TRAIN=100")
    assert spec.eval_opts == ["MODEL.RPN.POST_NMS_TOPK_TEST", "100"]
    assert spec.train_opts == ["MODEL.RPN.POST_NMS_TOPK_TRAIN", "100"]
    with pytest.raises(ValueError, match="KEY=VALUE"):
        benchmark_methods.MethodSpec("masktrack_rcnn@SOLVER.MAX_ITER")


def test_summary_pairs_differences_to_the_first_method_by_seed():
    runs = [
        {"method": m, "seed": s, "AP": ap, "AP50": 0.0, "AR10": 0.0, "hard_AP": ap - 5, "clean_AP": ap + 5,
         "s_per_iter": 1.0, "ms_per_frame": 10.0}
        for m, s, ap in [("a", 0, 20.0), ("a", 1, 24.0), ("b", 0, 21.0), ("b", 1, 27.0)]
    ]
    summary = benchmark_methods.summarize(runs, ["a", "b"])
    assert summary["b"]["delta_AP"] == [1.0, 3.0]
    assert summary["a"]["delta_AP"] == [0.0, 0.0]
    table = benchmark_methods.write_table(summary, ["a", "b"], "header")
    assert "| b | 2 | 24.0 ± 4.2 |" in table and "| 2.0 ± 1.4 |" in table


def test_unknown_method_names_the_known_ones(tmp_path):
    proc = subprocess.run(
        [sys.executable, TOOL, "--methods", "nosuch", "--iters", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 2 and "no config for method 'nosuch'" in proc.stderr and "masktrack_rcnn" in proc.stderr


def test_a_bad_override_fails_before_any_training(tmp_path):
    proc = subprocess.run(
        [sys.executable, TOOL, "--methods", "masktrack_rcnn,masktrack_rcnn@MODEL.TRACKER.EMBED_WEIGHT=0",
         "--iters", "1", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True,
    )
    assert proc.returncode == 2
    assert "MODEL.TRACKER.EMBED_WEIGHT" in proc.stderr and "write 0.0" in proc.stderr
    assert not os.path.exists(os.path.join(tmp_path, "runs"))


def _cached_run(tmp_path, methods, train_cfg_opts=(), eval_cfg_opts=None):
    """A Run whose training (and, with ``eval_cfg_opts``, evaluation) looks finished, made with those overrides."""
    from vis_d2.engine.defaults import build_config

    args = benchmark_methods.parse_args(["--methods", methods, "--seeds", "0", "--iters", "500", "--out", str(tmp_path)])
    run = benchmark_methods.Run(args.specs[0], 0, args)
    os.makedirs(run.train_dir)
    with open(os.path.join(run.train_dir, "config.yaml"), "w") as f:
        f.write(build_config(run.spec.config_file, run.train_opts + list(train_cfg_opts)).dump())
    open(run.weights, "w").close()
    if eval_cfg_opts is not None:
        os.makedirs(os.path.dirname(run.metrics_file))
        with open(os.path.join(run.eval_dir, "config.yaml"), "w") as f:
            f.write(build_config(run.spec.config_file, run.train_opts + run.eval_opts + list(eval_cfg_opts)).dump())
        with open(run.metrics_file, "w") as f:
            json.dump({"AP": 1.0, "AP50": 1.0, "AR10": 1.0}, f)
    return run


def test_config_changes_lists_changed_keys_but_not_locations_or_keys_one_side_lacks(tmp_path):
    from vis_d2.engine.defaults import build_config

    config = os.path.join(REPO, "configs", "synth_vis", "masktrack_rcnn_tiny.yaml")
    saved = tmp_path / "config.yaml"
    saved.write_text(build_config(config, ["SOLVER.BASE_LR", "0.5", "OUTPUT_DIR", "/elsewhere"]).dump())
    assert benchmark_methods.config_changes(str(saved), build_config(config, ["SOLVER.BASE_LR", "0.5"]),
                                            benchmark_methods.LOCATION_KEYS) == []
    assert benchmark_methods.config_changes(str(saved), build_config(config, [])) == [
        "OUTPUT_DIR: '/elsewhere' -> 'output/synth_vis/masktrack_rcnn_tiny'",
        f"SOLVER.BASE_LR: 0.5 -> {build_config(config, []).SOLVER.BASE_LR!r}",
    ]
    # A key the saved config lacks (added to the defaults later): a change only when set off its default.
    saved.write_text(re.sub(r"\n *TFA:\n( {4}.*\n)+", "\n", saved.read_text()))
    assert "TOP_K" not in saved.read_text() and "SOLVER" in saved.read_text()
    assert benchmark_methods.config_changes(str(saved), build_config(config, ["SOLVER.BASE_LR", "0.5"]),
                                            benchmark_methods.LOCATION_KEYS) == []
    assert benchmark_methods.config_changes(str(saved), build_config(config, ["MODEL.TFA.TOP_K", "7",
                                            "SOLVER.BASE_LR", "0.5"]), benchmark_methods.LOCATION_KEYS) == [
        f"MODEL.TFA.TOP_K: (absent, default {build_config(config, []).MODEL.TFA.TOP_K!r}) -> 7"
    ]
    assert benchmark_methods.config_changes(str(tmp_path / "missing.yaml"), build_config(config, [])) == []


def test_a_cached_training_made_with_another_config_is_set_aside_and_redone(tmp_path, capsys):
    run = _cached_run(tmp_path, "masktrack_rcnn", train_cfg_opts=["SOLVER.BASE_LR", "0.123"], eval_cfg_opts=[])
    assert run.trained and run.evaluated
    benchmark_methods.invalidate_changed_runs([run])
    assert not run.trained and not run.evaluated
    assert os.path.isfile(os.path.join(run.train_dir + ".stale-1", "model_final.pth"))
    assert "SOLVER.BASE_LR: 0.123 ->" in capsys.readouterr().out


def test_an_inference_only_change_redoes_the_evaluation_but_keeps_the_weights(tmp_path, capsys):
    run = _cached_run(tmp_path, "masktrack_rcnn", eval_cfg_opts=["MODEL.TRACKER.MIN_MATCH_IOU", "0.3"])
    untouched = _cached_run(tmp_path / "b", "masktrack_rcnn", eval_cfg_opts=[])
    benchmark_methods.invalidate_changed_runs([run, untouched])
    assert run.trained and not run.evaluated
    assert os.path.isfile(os.path.join(run.eval_dir + ".stale-1", "inference", "metrics.json"))
    assert "MODEL.TRACKER.MIN_MATCH_IOU: 0.3 -> 0.01" in capsys.readouterr().out
    assert untouched.trained and untouched.evaluated
