"""YouTube-VIS evaluation.

Import-light on purpose (no torch, no detectron2, nothing imported eagerly): the CLI
``python -m vis_d2.evaluation.ytvis_eval`` must start fast, and running a submodule with ``-m`` must not
find it already imported by its package. The names below load on first access (PEP 562).
"""
import importlib

_LAZY = {
    "evaluate_ytvis": ".ytvis_eval",
    "METRIC_KEYS": ".params",
    "YTVISFormatError": ".ytvis_io",
    "YTVISEvaluator": ".ytvis_evaluator",  # imports detectron2
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
