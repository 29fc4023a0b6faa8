#!/usr/bin/env python
"""Per-frame image AP of a video model's detector: every annotated frame scored as a still image.

Video AP mixes two things, detection and association. This tool scores the detections alone: it runs
the model online exactly as inference does (features, temporal context, ``detect_frame``) but stops
before the tracker, pastes every detection's mask and scores all frames with pycocotools' COCOeval,
per class and class-agnostic, on all frames and on the hard videos' frames.

    python tools/frame_ap.py --config-file configs/synth_vis/masktrack_rcnn_tiny.yaml \
        MODEL.WEIGHTS output/demo/model_final.pth [--out frame_ap.json]
"""
import argparse
import contextlib
import io
import json
import logging
import sys
from typing import Dict, List

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from pycocotools import mask as mask_util
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

import vis_d2.data  # noqa: F401  registers the builtin datasets
import vis_d2.modeling  # noqa: F401
from vis_d2.engine import ConfigError, VideoCheckpointer, VideoTrainer, build_config
from vis_d2.modeling.frame_masks import encode_frame_masks
from vis_d2.modeling.meta_arch.online_video_model import rescale_boxes
from vis_d2.utils import atomic_write

@torch.no_grad()
def video_frame_detections(model, video: dict) -> List[List[dict]]:
    """Each frame's detections before tracking: ``[{"category_id", "score", "bbox", "segmentation"}]``.

    The frames go through the model's own online loop (``OnlineVideoModel.detect_video_frames``), so that
    methods with a temporal context see the same cache as in inference; the tracker is not run.
    """
    orig_size = (int(video["height"]), int(video["width"]))
    per_frame = []
    for images, features, detections in model.detect_video_frames(video):
        dets = []
        if len(detections):
            orig_boxes = None
            if detections.has("pred_boxes"):
                orig_boxes = rescale_boxes(detections.pred_boxes, images.image_sizes[0], orig_size).tensor
            if not detections.has("pred_masks"):
                detections = model.predict_masks(features, detections)
            rles = encode_frame_masks(
                detections.pred_masks, orig_boxes, tuple(images.tensor.shape[-2:]), images.image_sizes[0],
                orig_size, threshold=model.mask_threshold,
            )  # fmt: skip
            if orig_boxes is None:
                boxes = mask_util.toBbox(rles).tolist()
            else:
                boxes = BoxMode.convert(orig_boxes, BoxMode.XYXY_ABS, BoxMode.XYWH_ABS).tolist()
            for k, rle in enumerate(rles):
                dets.append(
                    {
                        "category_id": int(detections.pred_classes[k]),
                        "score": float(detections.scores[k]),
                        "bbox": [float(v) for v in boxes[k]],
                        "segmentation": rle,
                    }
                )
        per_frame.append(dets)
    return per_frame


def coco_frame_ap(records: List[dict], detections: Dict[int, List[List[dict]]], num_classes: int) -> Dict:
    """COCOeval bbox and segm AP over every annotated frame, per class and class-agnostic.

    Args:
        records: the dataset's video records (per-frame ``annotations`` with contiguous ``category_id``).
        detections: video_id -> per-frame detection lists from :func:`video_frame_detections`.

    Returns:
        ``{"all" | "hard": {"bbox" | "segm" | "bbox_agnostic" | "segm_agnostic": {"AP", "AP50", "AP75"}}}``;
        "hard" only when the records carry ``is_hard``.
    """
    subsets = {"all": records}
    if any("is_hard" in r for r in records):
        subsets["hard"] = [r for r in records if r.get("is_hard")]
    out = {}
    for subset, recs in subsets.items():
        out[subset] = {}
        for agnostic in (False, True):
            gt, dt = _coco_dicts(recs, detections, num_classes, agnostic)
            for iou_type in ("bbox", "segm"):
                name = iou_type + ("_agnostic" if agnostic else "")
                out[subset][name] = _evaluate(gt, dt, iou_type)
    return out


def _coco_dicts(records, detections, num_classes, agnostic):
    images, annotations, results = [], [], []
    for record in records:
        h, w = int(record["height"]), int(record["width"])
        for t, frame_annos in enumerate(record["annotations"]):
            image_id = len(images) + 1
            images.append({"id": image_id, "height": h, "width": w})
            for anno in frame_annos:
                segm = anno["segmentation"]
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": image_id,
                        "category_id": 1 if agnostic else anno["category_id"] + 1,
                        "bbox": list(anno["bbox"]),
                        "area": float(mask_util.area(segm)),
                        "segmentation": segm,
                        "iscrowd": anno.get("iscrowd", 0),
                    }
                )
            for det in detections[record["video_id"]][t]:
                results.append(dict(det, image_id=image_id, category_id=1 if agnostic else det["category_id"] + 1))
    categories = [{"id": 1}] if agnostic else [{"id": c + 1} for c in range(num_classes)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _evaluate(gt_dict, results, iou_type) -> Dict[str, float]:
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        gt = COCO()
        gt.dataset = gt_dict
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, iou_type)
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": 100 * ev.stats[0], "AP50": 100 * ev.stats[1], "AP75": 100 * ev.stats[2]}


def format_table(result: Dict) -> str:
    lines = ["| frames | metric | AP | AP50 | AP75 |", "|---|---|---|---|---|"]
    for subset, metrics in result.items():
        for name, m in metrics.items():
            lines.append(f"| {subset} | {name} | {m['AP']:.1f} | {m['AP50']:.1f} | {m['AP75']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--dataset", default=None, help="a registered video dataset (default: DATASETS.TEST[0])")
    parser.add_argument("--out", default=None, help="also write the figures to this json file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides, e.g. MODEL.WEIGHTS W")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        cfg = build_config(args.config_file, args.opts)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    dataset = args.dataset or cfg.DATASETS.TEST[0]
    model = VideoTrainer.build_model(cfg)
    VideoCheckpointer(model, allow_pickle=cfg.MODEL.WEIGHTS_ALLOW_PICKLE).load(cfg.MODEL.WEIGHTS)
    model.eval()
    records = DatasetCatalog.get(dataset)
    detections = {}
    loader = VideoTrainer.build_test_loader(cfg, dataset)
    for i, batch in enumerate(loader):
        for video in batch:
            detections[video["video_id"]] = video_frame_detections(model, video)
        print(f"\r[frame_ap] {i + 1}/{len(records)} videos", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    result = coco_frame_ap(records, detections, len(MetadataCatalog.get(dataset).thing_classes))
    print(format_table(result))
    if args.out:
        with atomic_write(args.out) as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
