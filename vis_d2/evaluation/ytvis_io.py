"""Reading and checking YouTube-VIS ground truth and results (the inputs of the evaluation).

Both the fast evaluation (:mod:`ytvis_eval`) and the reference (:mod:`ytvis_eval_reference`) take their
inputs from here, so every malformed input is reported the same way: a :class:`YTVISFormatError` whose
message is one line naming the file part, the entry and the video.

Formats (see ``shared/methods/ytvis_format.md`` sections 1-2 and docs/interfaces.md):

* ground truth: ``{"videos": [...], "categories": [...], "annotations": [...] | null}``, one annotation per
  track with ``segmentations`` / ``areas`` lists of the video's length; a frame's segmentation is null,
  a polygon list, an uncompressed RLE or a compressed RLE;
* results: a list of ``{"video_id", "category_id", "score", "segmentations"}``, one per predicted track,
  with compressed RLE (``counts`` a str) or null per frame, at the video's resolution.
"""
import json
import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

import numpy as np
from pycocotools import mask as mask_util

__all__ = ["YTVISFormatError", "GroundTruth", "Predictions", "load_json", "parse_ground_truth", "parse_results"]


class YTVISFormatError(ValueError):
    """Malformed evaluation input. ``str(err)`` is a single line meant for the user."""


@dataclass
class GroundTruth:
    """Checked ground truth.

    Attributes:
        videos: ``{video_id: (height, width, length)}`` in json order.
        categories: ``[(category_id, name)]`` sorted by id, ids unique.
        tracks: one dict per annotation, in json order: ``id``, ``video_id``, ``category_id``,
            ``iscrowd`` (bool), ``avg_area`` (float: mean of the non-null, non-zero ``areas`` entries, the
            official track area), ``segmentations`` (``[compressed RLE dict | None] * length``; polygons
            and uncompressed RLE are converted with pycocotools exactly as the official code does).
        hard_video_ids: ids of videos tagged ``"is_hard": true`` (synthetic benchmark), sorted.
    """

    videos: Dict[int, Tuple[int, int, int]]
    categories: List[Tuple[int, str]]
    tracks: List[dict]
    hard_video_ids: List[int] = field(default_factory=list)

    @property
    def category_ids(self) -> List[int]:
        return [c for c, _ in self.categories]


@dataclass
class Predictions:
    """Checked results, in file order (the order that breaks score ties).

    Attributes:
        video_ids, category_ids: ``(N,)`` int64.
        scores: ``(N,)`` float64.
        segmentations: ``N`` lists of ``[compressed RLE dict | None] * video length``.
    """

    video_ids: np.ndarray
    category_ids: np.ndarray
    scores: np.ndarray
    segmentations: List[list]

    def __len__(self):
        return len(self.segmentations)


def load_json(path: str, what: str):
    """Read a json file given on the command line; errors become one-line :class:`YTVISFormatError`."""
    # Plain open(): this runs in the CLI, which must not import detectron2 (and its PathManager).
    try:
        with open(path, "r") as f:
            return json.load(f)
    except OSError as e:
        raise YTVISFormatError(f"{what} {path}: cannot read ({e.strerror or e})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise YTVISFormatError(f"{what} {path}: not valid JSON ({e})") from None


def _is_int(x) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def _is_number(x) -> bool:
    return isinstance(x, (int, float, np.integer, np.floating)) and not isinstance(x, bool)


def _require_int(obj: dict, key: str, where: str) -> int:
    if key not in obj:
        raise YTVISFormatError(f"{where}: missing key '{key}'")
    if not _is_int(obj[key]):
        raise YTVISFormatError(f"{where}: '{key}' must be an integer, got {obj[key]!r:.40}")
    return int(obj[key])


def _parse_videos(videos) -> Tuple[Dict[int, Tuple[int, int, int]], List[int]]:
    if not isinstance(videos, list):
        raise YTVISFormatError(f"ground truth: 'videos' must be a list, got {type(videos).__name__}")
    out, hard = {}, []
    for i, v in enumerate(videos):
        where = f"ground truth videos[{i}]"
        if not isinstance(v, dict):
            raise YTVISFormatError(f"{where}: must be an object, got {type(v).__name__}")
        vid = _require_int(v, "id", where)
        where = f"ground truth video {vid}"
        h, w = _require_int(v, "height", where), _require_int(v, "width", where)
        if "length" in v:
            length = _require_int(v, "length", where)
        elif isinstance(v.get("file_names"), list):
            length = len(v["file_names"])
        else:
            raise YTVISFormatError(f"{where}: missing key 'length' (and no 'file_names' to count)")
        if vid in out:
            raise YTVISFormatError(f"{where}: duplicate video id")
        out[vid] = (h, w, length)
        if v.get("is_hard"):
            hard.append(vid)
    return out, sorted(hard)


def _parse_categories(categories) -> List[Tuple[int, str]]:
    if not isinstance(categories, list):
        raise YTVISFormatError(f"ground truth: 'categories' must be a list, got {type(categories).__name__}")
    out = {}
    for i, c in enumerate(categories):
        if not isinstance(c, dict):
            raise YTVISFormatError(f"ground truth categories[{i}]: must be an object, got {type(c).__name__}")
        cid = _require_int(c, "id", f"ground truth categories[{i}]")
        if cid in out:
            raise YTVISFormatError(f"ground truth categories[{i}]: duplicate category id {cid}")
        out[cid] = str(c.get("name", cid))
    return sorted(out.items())


def _gt_frame_rle(seg, h: int, w: int, where: str) -> Optional[dict]:
    """One ground-truth frame -> compressed RLE dict, or None where absent (null or empty, as officially)."""
    if not seg:
        return None
    if isinstance(seg, list):  # polygons, rasterised by pycocotools (cv2 would give other masks)
        if not all(isinstance(p, list) and p and all(_is_number(x) for x in p) for p in seg):
            raise YTVISFormatError(f"{where}: polygons must be a list of lists of numbers")
        try:
            return mask_util.merge(mask_util.frPyObjects(seg, h, w))
        except Exception as e:  # pycocotools raises assorted types on malformed polygons
            raise YTVISFormatError(f"{where}: cannot rasterise polygon ({e})") from None
    if isinstance(seg, dict):
        size, counts = seg.get("size"), seg.get("counts")
        if size is None or counts is None:
            raise YTVISFormatError(f"{where}: RLE needs 'size' and 'counts'")
        if list(size) != [h, w]:
            raise YTVISFormatError(f"{where}: RLE size {list(size)} does not match the video's [{h}, {w}]")
        if isinstance(counts, list):  # uncompressed RLE
            try:
                return mask_util.frPyObjects(seg, h, w)
            except Exception as e:
                raise YTVISFormatError(f"{where}: bad uncompressed RLE ({e})") from None
        if isinstance(counts, (str, bytes)):
            return seg
        raise YTVISFormatError(f"{where}: RLE 'counts' must be a list or a string")
    raise YTVISFormatError(f"{where}: segmentation must be null, polygons or RLE, got {type(seg).__name__}")


def _track_area(areas, where: str) -> float:
    """The official track area: mean of the truthy (non-null, non-zero) per-frame areas, 0 if none."""
    if not isinstance(areas, list):
        raise YTVISFormatError(f"{where}: missing or non-list 'areas' (the track area comes from it)")
    kept = [a for a in areas if a]
    if not all(_is_number(a) for a in kept):
        raise YTVISFormatError(f"{where}: 'areas' entries must be numbers or null")
    # np.mean as upstream, so that float areas sum in the same (pairwise) order
    return float(np.array(kept).mean()) if kept else 0.0


def parse_ground_truth(gt) -> GroundTruth:
    """Check a ground-truth dict and convert its masks to compressed RLE.

    Raises:
        YTVISFormatError: on any malformed part, naming it.
    """
    if not isinstance(gt, dict):
        raise YTVISFormatError(
            f"ground truth: expected an object with 'videos', 'categories', 'annotations', got {type(gt).__name__}"
        )
    for key in ("videos", "categories"):
        if key not in gt:
            raise YTVISFormatError(f"ground truth: missing key '{key}' (is this a YouTube-VIS annotation file?)")
    videos, hard = _parse_videos(gt["videos"])
    categories = _parse_categories(gt["categories"])
    anns = gt.get("annotations") or []  # null / empty / absent for splits without ground truth
    if not isinstance(anns, list):
        raise YTVISFormatError(f"ground truth: 'annotations' must be a list, got {type(anns).__name__}")

    tracks, seen = [], set()
    for i, ann in enumerate(anns):
        if not isinstance(ann, dict):
            raise YTVISFormatError(f"ground truth annotations[{i}]: must be an object, got {type(ann).__name__}")
        where = f"ground truth annotations[{i}]"
        aid = _require_int(ann, "id", where)
        vid = _require_int(ann, "video_id", f"{where} (id {aid})")
        where = f"ground truth annotation id {aid} (video {vid})"
        cid = _require_int(ann, "category_id", where)
        if aid in seen:
            raise YTVISFormatError(f"{where}: duplicate annotation id")
        seen.add(aid)
        if vid not in videos:
            raise YTVISFormatError(f"{where}: video_id {vid} is not in 'videos'")
        h, w, length = videos[vid]
        segs = ann.get("segmentations")
        if not isinstance(segs, list):
            raise YTVISFormatError(f"{where}: missing or non-list 'segmentations'")
        if len(segs) != length:
            raise YTVISFormatError(f"{where}: {len(segs)} segmentations for a video of length {length}")
        tracks.append(
            {
                "id": aid,
                "video_id": vid,
                "category_id": cid,
                "iscrowd": bool(ann.get("iscrowd", 0)),
                "avg_area": _track_area(ann.get("areas"), where),
                "segmentations": [_gt_frame_rle(s, h, w, f"{where}, frame {t}") for t, s in enumerate(segs)],
            }
        )
    return GroundTruth(videos=videos, categories=categories, tracks=tracks, hard_video_ids=hard)


def _check_result_segmentations(segs, h: int, w: int, where: str) -> None:
    hw, hw_t = [h, w], (h, w)
    bad = [
        t
        for t, s in enumerate(segs)
        if s is not None
        and not (
            type(s) is dict
            and (s.get("size") == hw or s.get("size") == hw_t)
            and isinstance(s.get("counts"), (str, bytes))
        )
    ]
    if not bad:
        return
    t, s = bad[0], segs[bad[0]]
    if isinstance(s, dict) and isinstance(s.get("counts"), (str, bytes)) and s.get("size") is not None:
        raise YTVISFormatError(f"{where}, frame {t}: RLE size {s.get('size')} does not match the video's [{h}, {w}]")
    raise YTVISFormatError(
        f"{where}, frame {t}: segmentation must be null or a compressed RLE "
        f"{{'size': [{h}, {w}], 'counts': str}}, got {str(s)[:60]}"
    )


def parse_results(results, gt: GroundTruth) -> Predictions:
    """Check a results list against the ground truth's videos.

    Every ``video_id`` must be a ground-truth video (an assertion upstream); categories that the ground
    truth does not list are kept here and ignored by the evaluation, as upstream.

    Raises:
        YTVISFormatError: on any malformed entry, naming it.
    """
    if not isinstance(results, list):
        raise YTVISFormatError(
            f"results: expected a list of {{video_id, category_id, score, segmentations}}, got {type(results).__name__}"
        )
    n = len(results)
    video_ids = np.empty(n, dtype=np.int64)
    category_ids = np.empty(n, dtype=np.int64)
    scores = np.empty(n, dtype=np.float64)
    segmentations = []
    for i, r in enumerate(results):
        where = f"results[{i}]"
        if not isinstance(r, dict):
            raise YTVISFormatError(f"{where}: must be an object, got {type(r).__name__}")
        missing = [k for k in ("video_id", "category_id", "score", "segmentations") if k not in r]
        if missing:
            raise YTVISFormatError(f"{where}: missing key(s) {', '.join(repr(k) for k in missing)}")
        vid = _require_int(r, "video_id", where)
        if vid not in gt.videos:
            raise YTVISFormatError(f"{where}: video_id {vid} is not a video of the ground truth")
        where = f"results[{i}] (video {vid})"
        cid = _require_int(r, "category_id", where)
        score = r["score"]
        if not _is_number(score) or not math.isfinite(score):
            raise YTVISFormatError(f"{where}: 'score' must be a finite number, got {score!r:.40}")
        h, w, length = gt.videos[vid]
        segs = r["segmentations"]
        if not isinstance(segs, list):
            raise YTVISFormatError(f"{where}: 'segmentations' must be a list, got {type(segs).__name__}")
        if len(segs) != length:
            raise YTVISFormatError(f"{where}: {len(segs)} segmentations for a video of length {length}")
        _check_result_segmentations(segs, h, w, where)
        video_ids[i], category_ids[i], scores[i] = vid, cid, score
        segmentations.append(segs)
    return Predictions(video_ids, category_ids, scores, segmentations)
