"""
YouTube-VIS / OVIS annotation json -> vis_d2 video dicts (docs/interfaces.md section 1).

The json holds one entry per *track* (a per-frame list of masks and boxes); vis_d2 wants one dict per
*video* with one list of instances per frame, so the loader transposes tracks into frames. Every mask
leaves the loader as compressed RLE with ``counts`` as str, whatever the json used (polygons, uncompressed
or compressed RLE), so the mappers and the evaluator handle a single form.
"""
import json
import logging
import os
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, Metadata, MetadataCatalog
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager

from vis_d2.utils import YTVISFormatError, gc_paused, is_crowd, json_io
from vis_d2.utils.rle import check_rle, compress_rles, polygons_to_rle, rle_counts_to_str

logger = logging.getLogger(__name__)

__all__ = [
    "load_ytvis_json",
    "register_ytvis_instances",
    "YTVISFormatError",
    "MissingFrameError",
    "CorruptFrameError",
]

_VIDEO_KEYS = ("id", "height", "width", "length", "file_names")
_ANNOTATION_KEYS = ("id", "video_id", "category_id", "segmentations", "bboxes")
_CATEGORY_FIELDS = ("thing_classes", "thing_dataset_id_to_contiguous_id")


class MissingFrameError(FileNotFoundError):
    """A frame listed in a video dict is not on disk (raised by the mappers when they read it)."""

    def __init__(self, path, video_id, frame_idx):
        super().__init__(
            f"Frame {frame_idx} of video {video_id} not found: '{path}'. Check the dataset's image_root "
            "and $DETECTRON2_DATASETS (the expected layout is in datasets/README.md)."
        )
        self.path = path  # not .filename: OSError would then rewrite the message
        self.video_id = video_id
        self.frame_idx = frame_idx


class CorruptFrameError(OSError):
    """A frame file exists but cannot be decoded as an image (truncated or not an image at all)."""

    def __init__(self, path, video_id, frame_idx, reason):
        super().__init__(
            f"Frame {frame_idx} of video {video_id} cannot be decoded: '{path}' ({reason}). "
            "Re-extract or re-download this video's frames."
        )
        self.path = path
        self.video_id = video_id
        self.frame_idx = frame_idx


def _read_json(json_file):
    try:
        with PathManager.open(json_file, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise FileNotFoundError(
            f"YouTube-VIS json '{json_file}' not found (the expected layout under $DETECTRON2_DATASETS "
            "is in datasets/README.md)"
        ) from None
    if not data.strip():
        raise YTVISFormatError.in_file(json_file, "empty file")
    try:
        return json_io.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        hint = "; the file ends early: truncated?" if json_io.looks_truncated(e, data) else ""
        raise YTVISFormatError.in_file(json_file, f"not valid json ({e}){hint}") from None


def _category_mapping(categories, json_file) -> Tuple[List[str], Dict[int, int]]:
    """Class names and dataset id -> contiguous id (0..K-1, in increasing dataset id)."""
    if not isinstance(categories, list):
        raise YTVISFormatError.in_file(json_file, "'categories' must be a list")
    for c in categories:
        if not isinstance(c, dict) or "id" not in c or "name" not in c:
            raise YTVISFormatError.in_file(json_file, f"category {c!r} needs an 'id' and a 'name'")
    categories = sorted(categories, key=lambda c: c["id"])
    ids = [c["id"] for c in categories]
    if len(set(ids)) != len(ids):
        raise YTVISFormatError.in_file(json_file, f"duplicate category ids in {ids}")
    return [c["name"] for c in categories], {cid: i for i, cid in enumerate(ids)}


def read_json_categories(json_file) -> Tuple[List[str], Dict[int, int]]:
    """``(thing_classes, thing_dataset_id_to_contiguous_id)`` from a json's ``categories``."""
    data = _read_json(json_file)
    if not isinstance(data, dict) or "categories" not in data:
        raise YTVISFormatError.in_file(json_file, "missing key 'categories'")
    return _category_mapping(data["categories"], json_file)


def _reconcile_metadata(dataset_name, classes, id_map, json_file):
    """Make the dataset's metadata agree with the json's categories (the json wins, with a warning)."""
    meta = MetadataCatalog.get(dataset_name)
    old_classes = meta.get("thing_classes")
    old_map = meta.get("thing_dataset_id_to_contiguous_id")
    agree = (old_classes is None or list(old_classes) == classes) and (
        old_map is None or dict(old_map) == id_map
    )
    if agree:
        if old_classes is None:
            meta.thing_classes = classes
        if old_map is None:
            meta.thing_dataset_id_to_contiguous_id = id_map
        return
    logger.warning(
        f"The categories of '{json_file}' disagree with the metadata of dataset '{dataset_name}' "
        f"(json: {len(classes)} classes {classes}; registered: {old_classes}, {old_map}). Using the "
        "json's; a model built before this point has the registered class count."
    )
    # Metadata refuses to change a value in place, so the entry is rebuilt with the json's classes.
    fields = meta.as_dict()
    fields.pop("name", None)
    fields.update(thing_classes=classes, thing_dataset_id_to_contiguous_id=id_map)
    MetadataCatalog.remove(dataset_name)
    MetadataCatalog.get(dataset_name).set(**fields)


def _video_record(video, image_root, has_annotations, extra_video_keys, json_file):
    if not isinstance(video, dict):
        raise YTVISFormatError.in_file(json_file, f"a video must be an object, not {type(video).__name__}")
    for key in _VIDEO_KEYS:
        if key not in video:
            raise YTVISFormatError.in_file(json_file, f"missing key '{key}'", video_id=video.get("id"))
    vid, length, file_names = video["id"], video["length"], video["file_names"]
    if not isinstance(file_names, list) or len(file_names) != length:
        n = len(file_names) if isinstance(file_names, list) else type(file_names).__name__
        problem = f"'file_names' has {n} entries but 'length' is {length}"
        raise YTVISFormatError.in_file(json_file, problem, video_id=vid)
    record = {
        "video_id": vid,
        "file_names": [os.path.join(image_root, f) for f in file_names],
        "height": video["height"],
        "width": video["width"],
        "length": length,
        "annotations": [[] for _ in range(length)],
        "has_annotations": has_annotations,
    }
    for key in extra_video_keys:
        if key in video:
            record[key] = video[key]
    return record


class _TrackConverter:
    """Transposes json tracks into per-frame instance dicts, converting every mask to compressed RLE.

    Uncompressed RLEs (the YouTube-VIS train format) are only collected here and compressed in one
    pycocotools call by :meth:`finish`: a call per frame would cost more than the compression itself.
    """

    def __init__(self, json_file, id_map, records_by_video_id):
        self.json_file = json_file
        self.id_map = id_map
        self.records = records_by_video_id
        self.seen_ids = set()
        self.pending = []  # (instance dict, uncompressed RLE dict) waiting for finish()
        self.num_instances = 0
        self.num_no_polygon = 0
        self._where = (None, None)  # (video id, annotation id) of the track being converted

    def _error(self, problem, frame_idx=None):
        return YTVISFormatError.in_file(self.json_file, problem, *self._where, frame_idx)

    def add_track(self, anno):
        """Append the track's instance to its video's ``annotations`` in each frame where it is present."""
        self._where = (None, None)
        if not isinstance(anno, dict):
            raise self._error(f"an annotation must be an object, not {type(anno).__name__}")
        self._where = (anno.get("video_id"), anno.get("id"))
        for key in _ANNOTATION_KEYS:
            if key not in anno:
                raise self._error(f"missing key '{key}'")
        record = self.records.get(anno["video_id"])
        if record is None:
            raise self._error("its video_id is not among the json's videos")
        if anno["id"] in self.seen_ids:
            raise self._error("duplicate annotation id")
        self.seen_ids.add(anno["id"])
        h, w, n = record["height"], record["width"], record["length"]
        for key in ("segmentations", "bboxes", "areas"):
            values = anno.get(key)
            if key == "areas" and values is None:  # optional
                continue
            if not isinstance(values, list) or len(values) != n:
                got = len(values) if isinstance(values, list) else type(values).__name__
                raise self._error(f"'{key}' has {got} entries but the video's 'length' is {n}")
        if anno["category_id"] not in self.id_map:
            raise self._error(f"category_id {anno['category_id']} is not among the json's categories")
        base = {
            "id": anno["id"],
            "category_id": self.id_map[anno["category_id"]],
            "bbox_mode": BoxMode.XYWH_ABS,
            "iscrowd": int(is_crowd(anno)),  # OVIS-style files may leave it out: not crowd
        }
        segms, boxes, areas = anno["segmentations"], anno["bboxes"], anno.get("areas")
        frames = record["annotations"]
        for t in range(n):
            segm, box = segms[t], boxes[t]
            # Absent from this frame: null mask or box, zero area or a degenerate box (MaskTrack's rule).
            if segm is None or box is None:
                continue
            if areas is not None and areas[t] is not None and areas[t] <= 0:
                continue
            try:
                x, y, bw, bh = (float(v) for v in box)
            except (TypeError, ValueError):
                raise self._error(f"bbox {box!r} is not [x, y, w, h]", t) from None
            if bw < 1 or bh < 1:
                continue
            obj = dict(base, bbox=[x, y, bw, bh])
            if isinstance(segm, dict):
                self._set_rle(obj, segm, h, w, t)
            elif isinstance(segm, list):
                if not self._set_polygons(obj, segm, h, w, t):
                    continue
            else:
                raise self._error(f"segmentation must be an RLE dict, polygons or null, not {segm!r}", t)
            frames[t].append(obj)
            self.num_instances += 1

    def _set_rle(self, obj, segm, h, w, t):
        try:
            check_rle(segm, h, w)
        except ValueError as e:
            raise self._error(str(e), t) from None
        if isinstance(segm["counts"], list):
            self.pending.append((obj, segm))
        else:
            obj["segmentation"] = rle_counts_to_str({"size": [h, w], "counts": segm["counts"]})

    def _set_polygons(self, obj, segm, h, w, t):
        if not all(isinstance(p, list) for p in segm):
            raise self._error("polygons must be a list of [x1, y1, x2, y2, ...] lists", t)
        # As detectron2's COCO loader: a polygon of fewer than 3 points cannot be rasterised; drop it.
        polygons = [p for p in segm if len(p) % 2 == 0 and len(p) >= 6]
        if not polygons:
            self.num_no_polygon += 1
            return False
        try:
            obj["segmentation"] = polygons_to_rle(polygons, h, w)
        except ValueError as e:
            raise self._error(str(e), t) from None
        return True

    def finish(self):
        """Compress the collected uncompressed RLEs; call once after the last :meth:`add_track`."""
        if self.pending:
            # Each uncompressed RLE carries its own size, so one call serves all videos.
            rles = compress_rles([segm for _, segm in self.pending])
            for (obj, _), rle in zip(self.pending, rles):
                obj["segmentation"] = rle
            self.pending = []
        if self.num_no_polygon:
            logger.warning(f"Skipped {self.num_no_polygon} frame annotations with no valid polygon.")


def load_ytvis_json(
    json_file: str,
    image_root: str,
    dataset_name: Optional[str] = None,
    extra_video_keys: Sequence[str] = ("is_hard", "hard_frames"),
) -> List[Dict]:
    """
    Load a YouTube-VIS-format json (YouTube-VIS 2019/2021, OVIS, the synthetic benchmark).

    Args:
        json_file: path of the annotation json.
        image_root: folder that the videos' ``file_names`` are relative to.
        dataset_name: if given, the dataset's metadata gets ``thing_classes`` and
            ``thing_dataset_id_to_contiguous_id`` from the json (with a warning if it had different ones).
        extra_video_keys: video fields copied into the dicts when present.

    Returns:
        list[dict]: one dict per video, in json order, as in docs/interfaces.md section 1. Category ids are
        contiguous (0..K-1 in increasing dataset id); ``id`` is the json's track id. For files without
        annotations (val/test), every frame's list is empty and ``has_annotations`` is False.

    Raises:
        FileNotFoundError: if ``json_file`` does not exist.
        YTVISFormatError: if the json is malformed (missing keys, list lengths that disagree with the
            video's ``length``, unknown video or category ids, RLE of the wrong size, ...).
    """
    start = time.perf_counter()
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    with gc_paused():
        records, num_instances = _load(json_file, image_root, dataset_name, extra_video_keys)
    has_annotations = any(r["has_annotations"] for r in records)
    logger.info(
        f"Loaded {len(records)} videos ({num_instances} frame instances) from {json_file} in "
        f"{time.perf_counter() - start:.2f} s"
        + ("" if has_annotations else "; no annotations: a split without ground truth")
    )
    return records


def _load(json_file, image_root, dataset_name, extra_video_keys):
    data = _read_json(json_file)
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise YTVISFormatError.in_file(json_file, "expected an object with a 'videos' list")
    annotations = data.get("annotations") or []  # null, [] or absent for val/test
    if not isinstance(annotations, list):
        raise YTVISFormatError.in_file(json_file, "'annotations' must be a list or null")
    has_annotations = len(annotations) > 0

    if "categories" in data:
        classes, id_map = _category_mapping(data["categories"], json_file)
        if dataset_name is not None:
            _reconcile_metadata(dataset_name, classes, id_map, json_file)
    elif has_annotations:
        raise YTVISFormatError.in_file(json_file, "missing key 'categories'")
    else:
        id_map = {}

    # Frame paths are absolute (interfaces.md); URIs of other PathManager handlers are left alone.
    if "://" not in image_root:
        image_root = os.path.abspath(image_root)
    records, by_id = [], {}
    for video in data["videos"]:
        record = _video_record(video, image_root, has_annotations, extra_video_keys, json_file)
        if record["video_id"] in by_id:
            raise YTVISFormatError.in_file(json_file, "duplicate video id", video_id=record["video_id"])
        by_id[record["video_id"]] = record
        records.append(record)

    converter = _TrackConverter(json_file, id_map, by_id)
    for anno in annotations:
        converter.add_track(anno)
    converter.finish()
    return records, converter.num_instances


class _LazyCategoryMetadata(Metadata):
    """Metadata whose ``thing_classes`` / ``thing_dataset_id_to_contiguous_id`` are resolved on first use.

    Registration must not read files (they may not exist yet), but models read the class count from the
    metadata before the dataset is loaded; resolving on first access serves both.
    """

    def __getattr__(self, key):
        if key in _CATEGORY_FIELDS:
            resolve = _CATEGORY_RESOLVERS.get(self.name)
            if resolve is not None:
                try:
                    classes, id_map = resolve()
                except (OSError, ValueError) as e:
                    # AttributeError keeps Metadata.get(key, default) and hasattr() working.
                    problem = f"'{key}' of dataset '{self.name}' is not available yet: {e}"
                    raise AttributeError(problem) from e
                # Set through __dict__: Metadata.__setattr__ would call getattr and come back here.
                self.__dict__.setdefault("thing_classes", list(classes))
                self.__dict__.setdefault("thing_dataset_id_to_contiguous_id", dict(id_map))
                return self.__dict__[key]
        return super().__getattr__(key)


# dataset name -> callable returning (thing_classes, thing_dataset_id_to_contiguous_id)
_CATEGORY_RESOLVERS: Dict[str, Callable[[], Tuple[List[str], Dict[int, int]]]] = {}


def register_ytvis_instances(
    name: str,
    metadata: dict,
    json_file: str,
    image_root: str,
    categories_fn: Optional[Callable[[], Tuple[List[str], Dict[int, int]]]] = None,
):
    """
    Register a YouTube-VIS-format dataset. Nothing is read now: the json is loaded when
    ``DatasetCatalog.get(name)`` is called.

    Args:
        name: dataset name, e.g. "ytvis_2019_train".
        metadata: extra metadata, usually ``thing_classes`` and ``thing_dataset_id_to_contiguous_id``.
            Without ``thing_classes``, they are resolved on first access by ``categories_fn``, or
            else from the json's ``categories``.
        json_file: path of the annotation json.
        image_root: folder that the videos' ``file_names`` are relative to.
        categories_fn: optional callable returning ``(thing_classes, thing_dataset_id_to_contiguous_id)``.
    """
    json_file, image_root = os.fspath(json_file), os.fspath(image_root)
    DatasetCatalog.register(name, lambda: load_ytvis_json(json_file, image_root, name))
    if "thing_classes" not in metadata:
        _CATEGORY_RESOLVERS[name] = categories_fn or (lambda: read_json_categories(json_file))
        if name not in MetadataCatalog:
            MetadataCatalog[name] = _LazyCategoryMetadata(name=name)
    MetadataCatalog.get(name).set(
        json_file=json_file, image_root=image_root, evaluator_type="ytvis", **metadata
    )
