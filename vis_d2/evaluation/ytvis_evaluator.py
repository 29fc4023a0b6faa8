"""``YTVISEvaluator``: detectron2's ``DatasetEvaluator`` for video instance segmentation.

Collects the per-video tracks a model outputs (docs/interfaces.md section 4), writes the YouTube-VIS
``results.json`` (and ``results.zip``, what the challenge server accepts) and, when the dataset's json
holds ground truth, computes the official AP/AR with :mod:`vis_d2.evaluation.ytvis_eval`.
"""
import copy
import io
import itertools
import json
import logging
import math
import os
import time
import zipfile
from collections import OrderedDict
from typing import List, Optional

from detectron2.config import configurable
from detectron2.data import MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager

from ..utils import atomic_write, json_io
from ..utils.rle import rle_counts_to_str
from .accumulate import stats_to_percent
from .params import METRIC_KEYS
from .ytvis_eval import (
    evaluate_parsed,
    format_metrics_table,
    format_per_category_table,
    gt_tracks_per_category,
    per_category_percent,
)
from .ytvis_io import parse_ground_truth, parse_results

__all__ = ["YTVISEvaluator", "tracks_to_results"]

logger = logging.getLogger(__name__)


def tracks_to_results(output: dict, contiguous_to_dataset: dict, max_tracks: int = 0) -> List[dict]:
    """One video's model output -> results.json entries, best ``max_tracks`` by score (0: all).

    Args:
        output: ``{"video_id", "length", "pred_tracks": [{"score", "category_id" (contiguous),
            "segmentations": [RLE | None] * length}]}``.
        contiguous_to_dataset: contiguous category id -> the json's category id.
        max_tracks: keep at most this many tracks (highest scores; ties keep model order).

    Returns:
        ``[{"video_id", "category_id", "score", "segmentations"}]`` with RLE ``counts`` as str.
    """
    video_id, length = int(output["video_id"]), int(output["length"])
    tracks = sorted(output["pred_tracks"], key=lambda t: -float(t["score"]))  # stable
    if max_tracks > 0:
        tracks = tracks[:max_tracks]
    results = []
    for track in tracks:
        segs, label = track["segmentations"], int(track["category_id"])
        if len(segs) != length:
            raise ValueError(f"video {video_id}: a track has {len(segs)} segmentations for {length} frames")
        if label not in contiguous_to_dataset:
            raise ValueError(f"video {video_id}: category {label} is not a contiguous id of the dataset")
        results.append(
            {
                "video_id": video_id,
                "category_id": contiguous_to_dataset[label],
                "score": float(track["score"]),
                "segmentations": [None if s is None else rle_counts_to_str(s) for s in segs],
            }
        )
    return results


class YTVISEvaluator(DatasetEvaluator):
    """Evaluate video instance segmentation the YouTube-VIS way (results.json + official AP/AR).

    ``evaluate()`` returns ``{"segm": OrderedDict(AP, AP50, ..., ARl, AP-<class>...)}`` in percent (NaN
    where undefined, so detectron2's ``print_csv_format`` can print it), and writes to ``output_dir``:
    ``results.json``, ``results.zip`` (``results.json`` at its root) and, with ground truth,
    ``metrics.json`` (the 12 keys, ``per_category_AP``, ``speed`` and, if the ground truth tags hard
    videos, ``hard`` and ``clean``: the 12 keys on the hard videos only and on the others).

    ``speed`` is the end-to-end inference time per frame (frame decoding, model, tracker, RLE encoding:
    everything between two ``process`` calls), measured from the second video on so that the first
    one's warm-up is left out: ``{"frames", "seconds", "ms_per_frame"}`` (of this process alone).
    """

    @configurable
    def __init__(
        self,
        dataset_name: str,
        output_dir: Optional[str] = None,
        distributed: bool = True,
        *,
        zip_results: bool = True,
        max_tracks_per_video: int = 100,
    ):
        """
        Args:
            dataset_name: a registered dataset whose metadata has ``json_file``,
                ``thing_dataset_id_to_contiguous_id`` and ``thing_classes``.
            output_dir: where results (and metrics) are written; None writes nothing.
            distributed: gather predictions from all processes (only the main process evaluates).
            zip_results: also write ``results.zip`` (cfg ``TEST.VIS_ZIP_RESULTS``).
            max_tracks_per_video: keep the best tracks per video by score; <= 0 keeps all
                (cfg ``TEST.VIS_MAX_TRACKS_PER_VIDEO``).
        """
        self._dataset_name = dataset_name
        self._output_dir = output_dir
        self._distributed = distributed
        self._zip_results = zip_results
        self._max_tracks = max_tracks_per_video
        self._metadata = MetadataCatalog.get(dataset_name)
        if not hasattr(self._metadata, "json_file"):
            raise ValueError(f"YTVISEvaluator needs MetadataCatalog.get({dataset_name!r}).json_file")
        self._contiguous_to_dataset = {c: d for d, c in self._metadata.thing_dataset_id_to_contiguous_id.items()}
        self.reset()

    @classmethod
    def from_config(cls, cfg, dataset_name, output_dir=None, distributed=True):
        return {
            "dataset_name": dataset_name,
            "output_dir": output_dir,
            "distributed": distributed,
            "zip_results": cfg.TEST.VIS_ZIP_RESULTS,
            "max_tracks_per_video": cfg.TEST.VIS_MAX_TRACKS_PER_VIDEO,
        }

    def reset(self):
        self._results = []
        self._last_process_time = None
        self._timed_frames = 0
        self._timed_seconds = 0.0

    def process(self, inputs, outputs):
        """
        Args:
            inputs: test videos (docs/interfaces.md section 3), one per output.
            outputs: ``{"video_id", "height", "width", "length", "pred_tracks"}`` per video (section 4).
        """
        now = time.perf_counter()
        if self._last_process_time is not None:
            self._timed_seconds += now - self._last_process_time
            self._timed_frames += sum(int(inp["length"]) for inp in inputs)
        self._last_process_time = now
        for inp, out in zip(inputs, outputs):
            out = dict(out)
            out.setdefault("video_id", inp["video_id"])
            out.setdefault("length", inp["length"])
            self._results.extend(tracks_to_results(out, self._contiguous_to_dataset, self._max_tracks))

    def _speed(self) -> dict:
        ms = 1000.0 * self._timed_seconds / self._timed_frames if self._timed_frames else None
        return {"frames": self._timed_frames, "seconds": round(self._timed_seconds, 3), "ms_per_frame": ms}

    def _write_results(self, results: List[dict]) -> None:
        PathManager.mkdirs(self._output_dir)
        data = json.dumps(results)
        written = [os.path.join(self._output_dir, "results.json")]
        _write_file(written[0], data)
        if self._zip_results:
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
                z.writestr("results.json", data)  # the only member, at the archive root, as servers expect
            written.append(os.path.join(self._output_dir, "results.zip"))
            _write_file(written[1], buf.getvalue())
        logger.info(f"Wrote {len(results)} predicted tracks to {' and '.join(written)}")

    def evaluate(self):
        if self._distributed:
            comm.synchronize()
            results = list(itertools.chain(*comm.gather(self._results, dst=0)))
            if not comm.is_main_process():
                return {}
        else:
            results = self._results
        # one order whatever the sharding: by video, each video's tracks as the model ranked them
        results = sorted(results, key=lambda r: r["video_id"])
        if self._output_dir:
            self._write_results(results)

        json_file = PathManager.get_local_path(self._metadata.json_file)
        with PathManager.open(json_file, "rb") as f:
            gt_json = json_io.loads(f.read())
        if not gt_json.get("annotations"):
            where = f"in {self._output_dir}" if self._output_dir else "nowhere (no output_dir given)"
            logger.info(
                f"{self._dataset_name} has no ground-truth annotations: predictions written {where}, "
                "for the evaluation server; no metrics computed."
            )
            return OrderedDict()

        gt = parse_ground_truth(gt_json)
        preds = parse_results(results, gt)
        out = evaluate_parsed(gt, preds)
        metrics = stats_to_percent(out["stats"])
        per_category = per_category_percent(gt, out)
        report = dict(metrics, per_category_AP=per_category, speed=self._speed())
        columns = {"all": metrics}
        if gt.hard_video_ids:
            report["hard"] = stats_to_percent(evaluate_parsed(gt, preds, gt.hard_video_ids)["stats"])
            columns[f"hard ({len(gt.hard_video_ids)})"] = report["hard"]
            clean_ids = sorted(set(gt.videos) - set(gt.hard_video_ids))
            if clean_ids:
                report["clean"] = stats_to_percent(evaluate_parsed(gt, preds, clean_ids)["stats"])
                columns[f"clean ({len(clean_ids)})"] = report["clean"]
        subsets = ", hard / clean: the videos tagged is_hard / the others" if len(columns) > 1 else ""
        title = (
            f"YouTube-VIS evaluation of {len(preds)} predicted tracks on {self._dataset_name} "
            f"({len(gt.videos)} videos{subsets})"
        )
        logger.info(title + ":\n" + format_metrics_table(columns, "").lstrip("\n"))
        logger.info(
            "Per-category AP (n/a: no ground truth; tracks: non-crowd GT tracks):\n"
            + format_per_category_table(per_category, gt_tracks_per_category(gt))
        )
        if self._output_dir:
            path = os.path.join(self._output_dir, "metrics.json")
            _write_file(path, json.dumps(report, indent=2))
            logger.info(f"Wrote metrics to {path}")

        segm = OrderedDict((k, math.nan if metrics[k] is None else metrics[k]) for k in METRIC_KEYS)
        for name, ap in per_category.items():
            segm[f"AP-{name}"] = math.nan if ap is None else ap
        return OrderedDict(segm=copy.deepcopy(segm))


def _write_file(path: str, data) -> None:
    """Write str or bytes atomically (temp file + rename) on a local path; other URIs via PathManager."""
    if "://" in path:  # a PathManager handler (no rename across such stores)
        with PathManager.open(path, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
        return
    with atomic_write(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
