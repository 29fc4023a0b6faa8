"""Parameters of the YouTube-VIS evaluation (youtubevos/cocoapi ``ytvoseval.Params``, iouType 'segm').

The values are the official ones and are built the way the official code builds them: the thresholds
come from ``np.linspace`` (so ``IOU_THRESHOLDS[8] == 0.8999999999999999`` and several recall thresholds
sit one ulp above k/100); another construction would flip comparisons that land exactly on a threshold.
"""
import numpy as np

__all__ = [
    "IOU_THRESHOLDS",
    "RECALL_THRESHOLDS",
    "MAX_DETS",
    "AREA_RANGES",
    "AREA_LABELS",
    "METRIC_KEYS",
    "METRIC_DESCRIPTIONS",
]

# (T,) = (10,): 0.50:0.05:0.95
IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
# (R,) = (101,): 0.00:0.01:1.00
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
# top-k predictions per (video, category), not per video
MAX_DETS = (1, 10, 100)
# Track areas are per-frame mean areas, hence ranges larger than COCO's 32^2 / 96^2.
# Both ends are inclusive, so 128**2 is both small and medium.
AREA_RANGES = ((0**2, 1e5**2), (0**2, 128**2), (128**2, 256**2), (256**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")

# The 12 summary numbers, in the order of the official ``stats`` vector.
METRIC_KEYS = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
METRIC_DESCRIPTIONS = {
    "AP": "AP   @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "AP50": "AP   @[IoU=0.50      | area=   all | maxDets=100]",
    "AP75": "AP   @[IoU=0.75      | area=   all | maxDets=100]",
    "APs": "AP   @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "APm": "AP   @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "APl": "AP   @[IoU=0.50:0.95 | area= large | maxDets=100]",
    "AR1": "AR   @[IoU=0.50:0.95 | area=   all | maxDets=  1]",
    "AR10": "AR   @[IoU=0.50:0.95 | area=   all | maxDets= 10]",
    "AR100": "AR   @[IoU=0.50:0.95 | area=   all | maxDets=100]",
    "ARs": "AR   @[IoU=0.50:0.95 | area= small | maxDets=100]",
    "ARm": "AR   @[IoU=0.50:0.95 | area=medium | maxDets=100]",
    "ARl": "AR   @[IoU=0.50:0.95 | area= large | maxDets=100]",
}
