"""tools/benchmark_all.py (make bench) smoke test, tiny sizes: the per-method rows come out of one run, new
method configs are picked up from configs/synth_vis/*_tiny.yaml, and a missing GPU is stated. (The other
sections run the other benchmark tools in subprocesses; `make bench` itself exercises them.)"""
import importlib.util
import os

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_spec = importlib.util.spec_from_file_location("benchmark_all", os.path.join(REPO, "tools", "benchmark_all.py"))
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def test_in_process_sections_print_one_markdown_row_each(capsys):
    import torch

    assert bench.main(["--only", "methods,cuda", "--frames", "2", "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ") and "---" not in line][1:]
    methods = sorted(os.path.basename(c)[: -len("_tiny.yaml")]
                     for c in os.listdir(os.path.join(REPO, "configs", "synth_vis")) if c.endswith("_tiny.yaml"))
    for name in methods:
        assert any(f"per-frame cost: {name} vs MaskTrack R-CNN" in r for r in rows)
    assert any(r.startswith("| per-frame cost: masktrack_rcnn vs MaskTrack R-CNN") and "| 1.00x |" in r for r in rows)
    if not torch.cuda.is_available():
        assert any("no CUDA device here" in r for r in rows)
    assert "measured in" in out


def test_weights_for_an_unknown_method_fail_that_row_with_the_known_names(capsys):
    assert bench.main(["--only", "methods", "--frames", "1", "--rounds", "1", "--method-weights", "nope=w.pth"]) == 1
    out = capsys.readouterr().out
    assert "| methods | FAILED |" in out and "unknown methods ['nope']" in out and "masktrack_rcnn" in out
