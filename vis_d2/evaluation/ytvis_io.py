"""Reading and checking YouTube-VIS ground truth and results (the inputs of the evaluation).

Both the fast evaluation (:mod:`ytvis_eval`) and the reference (:mod:`ytvis_eval_reference`) take their
inputs from here, so every malformed input is reported the same way: a :class:`YTVISFormatError` (the
one class that the dataset loader raises too) whose message is one line naming the file part, the entry
and the video.

Formats (docs/evaluation.md, "Inputs"; docs/interfaces.md):

* ground truth: ``{"videos": [...], "categories": [...], "annotations": [...] | null}``, one annotation per
  track with ``segmentations`` / ``areas`` lists of the video's length; a frame's segmentation is null,
  a polygon list, an uncompressed RLE or a compressed RLE;
* results: a list of ``{"video_id", "category_id", "score", "segmentations"}``, one per predicted track,
  with compressed RLE (``counts`` a str) or null per frame, at the video's resolution. A ``results.zip``
  whose only member is ``results.json`` (what the challenge servers took) is read too.
"""
import io
import json
import math
import zipfile
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Dict, List, Optional, Tuple

import numpy as np

from ..utils import is_crowd, json_io
from ..utils.errors import YTVISFormatError
from ..utils.rle import check_rle, compress_rles, segmentation_to_rle

__all__ = ["YTVISFormatError", "GroundTruth", "Predictions", "load_json", "parse_ground_truth", "parse_results"]


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
    """Read a json file given on the command line; errors become one-line :class:`YTVISFormatError`.

    ``what`` ("ground truth", "results") starts the message. A zip archive holding exactly one ``.json``
    member (the challenge servers' ``results.zip``) is read through.
    """
    # Plain open(): this runs in the CLI, which must not import detectron2 (and its PathManager).
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise YTVISFormatError(f"{what} {path}: cannot read ({e.strerror or e})") from None
    if data[:4] == b"PK\x03\x04":
        data = _single_json_member(data, f"{what} {path}")
    if not data.strip():
        raise YTVISFormatError(f"{what} {path}: empty file (expected YouTube-VIS json)")
    try:
        return json_io.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        hint = "; the file ends early: truncated?" if json_io.looks_truncated(e, data) else ""
        raise YTVISFormatError(f"{what} {path}: not valid JSON ({e}){hint}") from None


def _single_json_member(data: bytes, where: str) -> bytes:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            names = [n for n in z.namelist() if not n.endswith("/")]
            if len(names) != 1 or not names[0].endswith(".json"):
                raise YTVISFormatError(f"{where}: a zip archive must hold exactly one .json file, it holds {names[:5]}")
            return z.read(names[0])
    except zipfile.BadZipFile as e:
        raise YTVISFormatError(f"{where}: broken zip archive ({e})") from None


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


def _gt_track_rles(segs: list, h: int, w: int, where: str) -> List[Optional[dict]]:
    """A GT track's frames -> compressed RLE dicts, None where absent (null or empty, as officially).

    Polygons and uncompressed RLE are converted with pycocotools as the official code does; the
    uncompressed ones of a track (the official train files' form) in one call. A track whose masks are
    all RLE of the right size is checked with C-level passes (as results are, below).
    """
    present = [s for s in segs if s]
    hw = [h, w]
    try:
        if set(map(type, present)) <= {dict} and list(map(_SIZE, present)).count(hw) == len(present):
            counts = list(map(_COUNTS, present))
            kinds = set(map(type, counts))
            if kinds <= {str}:
                return [s if s else None for s in segs]
            if kinds == {list} and list(map(sum, counts)).count(h * w) == len(counts):
                it = iter(compress_rles(present))
                return [next(it) if s else None for s in segs]
    except (KeyError, TypeError):
        pass  # the frame-by-frame path below names the bad frame
    out: List[Optional[dict]] = [None] * len(segs)
    pending = []
    for t, seg in enumerate(segs):
        if not seg:
            continue
        try:
            if isinstance(seg, dict) and isinstance(seg.get("counts"), list):
                check_rle(seg, h, w)
                pending.append(t)
            else:
                out[t] = segmentation_to_rle(seg, h, w)
        except ValueError as e:
            raise YTVISFormatError(f"{where}, frame {t}: {e}") from None
    for t, rle in zip(pending, compress_rles([segs[t] for t in pending])):
        out[t] = rle
    return out


def _track_area(areas, where: str) -> float:
    """The official track area: mean of the truthy (non-null, non-zero) per-frame areas, 0 if none."""
    if not isinstance(areas, list):
        raise YTVISFormatError(f"{where}: missing or non-list 'areas' (the track area comes from it)")
    kept = [a for a in areas if a]
    if not set(map(type, kept)) <= {int, float} and not all(_is_number(a) for a in kept):
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
                "iscrowd": is_crowd(ann),  # OVIS-style files may leave it out: not crowd
                "avg_area": _track_area(ann.get("areas"), where),
                "segmentations": _gt_track_rles(segs, h, w, where),
            }
        )
    return GroundTruth(videos=videos, categories=categories, tracks=tracks, hard_video_ids=hard)


_SIZE, _COUNTS = itemgetter("size"), itemgetter("counts")
_RLE_COUNTS_TYPES = {str, bytes}


def _check_result_segmentations(segs: list, h: int, w: int, where: str) -> None:
    """Every frame null or a compressed RLE of the video's size.

    The common case is checked with C-level passes (``map`` / ``list.count``), one per property, instead of
    a Python loop over the million frames of an OVIS-sized file; only a failing track takes the slow
    path that finds and names the first bad frame.
    """
    present = list(filter(None, segs))  # the truthy entries
    if len(present) + segs.count(None) == len(segs):  # no falsy entry other than None ({}, "", 0...)
        if not present:
            return
        try:
            if (
                set(map(type, present)) == {dict}
                and list(map(_SIZE, present)).count([h, w]) == len(present)
                and set(map(type, map(_COUNTS, present))) <= _RLE_COUNTS_TYPES
            ):
                return
        except KeyError:
            pass
    hw = [h, w]
    hw_t = (h, w)
    for t, s in enumerate(segs):
        if s is None:
            continue
        counts = s.get("counts") if type(s) is dict else None
        if isinstance(counts, (str, bytes)):
            size = s.get("size")
            if size == hw or size == hw_t:
                continue
            if size is not None:
                raise YTVISFormatError(f"{where}, frame {t}: RLE size {size} does not match the video's [{h}, {w}]")
        raise YTVISFormatError(
            f"{where}, frame {t}: segmentation must be null or a compressed RLE "
            f"{{'size': [{h}, {w}], 'counts': str}}, got {str(s)[:60]}"
        )


def parse_results(results, gt: GroundTruth) -> Predictions:
    """Check a results list against the ground truth's videos.

    Every ``video_id`` must be a ground-truth video (an assertion upstream), and every ``category_id`` a
    ground-truth category: upstream ignores the others silently, which hides the common bug of writing
    contiguous ids (0..K-1) instead of the dataset's (docs/evaluation.md, "Where we differ").

    Raises:
        YTVISFormatError: on any malformed entry, naming it.
    """
    if not isinstance(results, list):
        raise YTVISFormatError(
            f"results: expected a list of {{video_id, category_id, score, segmentations}}, got {type(results).__name__}"
        )
    n = len(results)
    known_categories = set(gt.category_ids)
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
        if cid not in known_categories:
            raise YTVISFormatError(
                f"{where}: category_id {cid} is not a category of the ground truth "
                f"(its ids: {_id_ranges(gt.category_ids)})"
            )
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


def _id_ranges(ids: List[int]) -> str:
    """``[1, 2, 3, 7]`` -> ``"1..3, 7"`` (short, for messages)."""
    parts, ids = [], sorted(ids)
    i = 0
    while i < len(ids):
        j = i
        while j + 1 < len(ids) and ids[j + 1] == ids[j] + 1:
            j += 1
        parts.append(str(ids[i]) if i == j else f"{ids[i]}..{ids[j]}")
        i = j + 1
    text = ", ".join(parts) or "none"
    return text if len(text) <= 60 else text[:57] + "..."
