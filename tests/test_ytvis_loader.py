"""YouTube-VIS json -> video dicts (vis_d2/data/datasets/ytvis.py; docs/interfaces.md section 1)."""
import copy
import gc
import json
import logging
import os
import uuid

import numpy as np
import pycocotools.mask as mask_util
import pytest
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from vis_d2.data.datasets import ytvis
from vis_d2.data.datasets.ytvis import (
    YTVISFormatError,
    load_ytvis_json,
    register_ytvis_instances,
)

H, W = 6, 8
# what the polygon [2, 1, 5, 1, 5, 4, 2, 4] rasterises to with pycocotools
RECT = np.zeros((H, W), np.uint8)
RECT[1:4, 2:5] = 1
RECT_POLYGON = [[2.0, 1.0, 5.0, 1.0, 5.0, 4.0, 2.0, 4.0]]
RECT_BOX = [2.0, 1.0, 3.0, 3.0]


def uncompressed_rle(mask):
    """COCO uncompressed RLE: column-major run lengths, starting with a run of zeros."""
    flat = mask.flatten(order="F")
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])
    counts = np.diff(bounds).tolist()
    if flat[0] == 1:
        counts = [0] + counts
    return {"size": list(mask.shape), "counts": counts}


def compressed_rle(mask):
    rle = mask_util.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode("ascii")}


def video(vid, length=3, h=H, w=W, **extra):
    return dict(
        id=vid, height=h, width=w, length=length,
        file_names=[f"v{vid}/{5 * t:05d}.jpg" for t in range(length)], **extra,
    )  # fmt: skip


def track(aid, vid, segms, category_id=1, bboxes=None, areas=None, iscrowd=0):
    segms = [copy.deepcopy(s) for s in segms]  # `[segm] * n` would share one object
    n = len(segms)
    return {
        "id": aid, "video_id": vid, "category_id": category_id, "iscrowd": iscrowd,
        "segmentations": segms,
        "bboxes": bboxes if bboxes is not None else [None if s is None else RECT_BOX for s in segms],
        "areas": areas if areas is not None else [None if s is None else 9.0 for s in segms],
        "height": H, "width": W, "length": n,
    }  # fmt: skip


def dataset(videos, annotations, categories=((1, "cat"),)):
    return {
        "info": {}, "licenses": [], "videos": videos, "annotations": annotations,
        "categories": [{"id": i, "name": n, "supercategory": "object"} for i, n in categories],
    }  # fmt: skip


def write(tmp_path, data, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def decode(obj):
    return mask_util.decode(obj["segmentation"])


def test_every_segmentation_format_loads_as_the_same_compressed_rle_with_str_counts(tmp_path):
    formats = {
        1: RECT_POLYGON,
        2: uncompressed_rle(RECT),
        3: compressed_rle(RECT),
    }
    annos = [track(aid, 1, [segm] * 3) for aid, segm in formats.items()]
    # a second video of another size in the same file: uncompressed RLEs are compressed in one batch
    big = np.zeros((5, 11), np.uint8)
    big[0:2, 7:11] = 1
    annos.append(track(4, 2, [uncompressed_rle(big)] * 2, bboxes=[[7, 0, 4, 2]] * 2))
    dicts = load_ytvis_json(write(tmp_path, dataset([video(1), video(2, 2, 5, 11)], annos)), tmp_path)

    for frame in dicts[0]["annotations"]:
        assert [o["id"] for o in frame] == [1, 2, 3]
        for obj in frame:
            assert isinstance(obj["segmentation"]["counts"], str)
            assert obj["segmentation"]["size"] == [H, W]
            np.testing.assert_array_equal(decode(obj), RECT)
    for frame in dicts[1]["annotations"]:
        np.testing.assert_array_equal(decode(frame[0]), big)


def test_compressed_rle_with_bytes_counts_is_turned_into_str(tmp_path, monkeypatch):
    # json cannot hold bytes, but pycocotools returns them: a source that is not a json file may too
    rle = mask_util.encode(np.asfortranarray(RECT))
    data = dataset([video(1, 1)], [track(1, 1, [{"size": [H, W], "counts": rle["counts"]}])])
    monkeypatch.setattr(ytvis, "_read_json", lambda json_file: data)
    obj = load_ytvis_json("in_memory.json", tmp_path)[0]["annotations"][0][0]
    assert isinstance(obj["segmentation"]["counts"], str)
    np.testing.assert_array_equal(decode(obj), RECT)


def test_absent_frames_are_skipped_only_for_that_instance(tmp_path):
    segm = compressed_rle(RECT)
    absent = track(
        7, 1, [segm, None, segm, segm, segm],
        bboxes=[RECT_BOX, RECT_BOX, None, RECT_BOX, [2.0, 1.0, 0.5, 3.0]],  # frame 4: width < 1
        areas=[9.0, None, 9.0, 0.0, 9.0],  # frame 3: zero area
    )  # fmt: skip
    always = track(8, 1, [segm] * 5)
    dicts = load_ytvis_json(write(tmp_path, dataset([video(1, 5)], [absent, always])), tmp_path)
    ids_per_frame = [[o["id"] for o in frame] for frame in dicts[0]["annotations"]]
    assert ids_per_frame == [[7, 8], [8], [8], [8], [8]]


def test_track_id_category_box_and_crowd_flag_are_carried_into_every_frame(tmp_path):
    annos = [
        track(41, 1, [compressed_rle(RECT)] * 3, category_id=1),
        track(42, 1, [compressed_rle(RECT)] * 3, category_id=2, iscrowd=1),
    ]
    data = dataset([video(1)], annos, categories=((1, "cat"), (2, "dog")))
    dicts = load_ytvis_json(write(tmp_path, data), tmp_path)
    for frame in dicts[0]["annotations"]:
        assert [(o["id"], o["category_id"], o["iscrowd"]) for o in frame] == [(41, 0, 0), (42, 1, 1)]
        assert all(o["bbox"] == RECT_BOX and o["bbox_mode"] == BoxMode.XYWH_ABS for o in frame)


def test_category_ids_become_contiguous_in_id_order_and_metadata_maps_them_back(tmp_path):
    name = f"test_contiguous_{uuid.uuid4().hex}"
    categories = ((20, "zebra"), (3, "cat"), (7, "dog"))  # unsorted, with gaps
    annos = [track(1, 1, [compressed_rle(RECT)] * 3, category_id=cid) for cid in (20,)]
    annos.append(track(2, 1, [compressed_rle(RECT)] * 3, category_id=3))
    dicts = load_ytvis_json(write(tmp_path, dataset([video(1)], annos, categories)), tmp_path, name)
    try:
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["cat", "dog", "zebra"]
        assert meta.thing_dataset_id_to_contiguous_id == {3: 0, 7: 1, 20: 2}
        contiguous_to_dataset = {v: k for k, v in meta.thing_dataset_id_to_contiguous_id.items()}
        got = [(o["id"], contiguous_to_dataset[o["category_id"]]) for o in dicts[0]["annotations"][0]]
        assert got == [(1, 20), (2, 3)]
    finally:
        MetadataCatalog.remove(name)


def test_json_categories_win_over_disagreeing_metadata_with_a_warning(tmp_path, caplog):
    name = f"test_disagree_{uuid.uuid4().hex}"
    MetadataCatalog.get(name).set(thing_classes=["a", "b", "c"], evaluator_type="ytvis")
    data = dataset([video(1)], [track(1, 1, [compressed_rle(RECT)] * 3, category_id=5)], ((5, "x"),))
    try:
        with caplog.at_level(logging.WARNING, logger=ytvis.__name__):
            load_ytvis_json(write(tmp_path, data), tmp_path, name)
        meta = MetadataCatalog.get(name)
        assert meta.thing_classes == ["x"] and meta.thing_dataset_id_to_contiguous_id == {5: 0}
        assert meta.evaluator_type == "ytvis"  # the rest of the metadata survives
        assert "disagree" in caplog.text
    finally:
        MetadataCatalog.remove(name)


@pytest.mark.parametrize("annotations", ["null", "empty", "absent"])
def test_file_without_annotations_gives_empty_frames_and_has_annotations_false(tmp_path, annotations):
    data = dataset([video(1, 4), video(2, 2)], [])
    if annotations == "null":
        data["annotations"] = None
    elif annotations == "absent":
        del data["annotations"]
    dicts = load_ytvis_json(write(tmp_path, data, "valid.json"), tmp_path)
    assert [d["annotations"] for d in dicts] == [[[]] * 4, [[]] * 2]
    assert [d["has_annotations"] for d in dicts] == [False, False]
    dicts[0]["annotations"][0].append("x")  # frames must not share one list
    assert dicts[0]["annotations"][1] == []


def test_video_fields_frame_paths_and_extra_keys(tmp_path):
    videos = [video(5, 2, is_hard=True, hard_frames=[1]), video(9, 1)]
    annos = [track(1, 9, [compressed_rle(RECT)])]
    dicts = load_ytvis_json(write(tmp_path, dataset(videos, annos)), tmp_path / "JPEGImages")
    first, second = dicts
    root = os.path.abspath(tmp_path / "JPEGImages")
    assert first["file_names"] == [os.path.join(root, "v5/00000.jpg"), os.path.join(root, "v5/00005.jpg")]
    assert (first["video_id"], first["height"], first["width"], first["length"]) == (5, H, W, 2)
    assert first["is_hard"] is True and first["hard_frames"] == [1]
    assert "is_hard" not in second and "hard_frames" not in second
    assert first["has_annotations"] and first["annotations"] == [[], []]  # labelled, no object


def _set(path, value):
    """A mutation of a valid json: sets data[path[0]][path[1]]... = value (None deletes the key)."""

    def mutate(data):
        node = data
        for key in path[:-1]:
            node = node[key]
        if value is None:
            del node[path[-1]]
        else:
            node[path[-1]] = value

    return mutate


def _valid_data():
    videos = [video(1, 3), video(2, 3)]
    annos = [track(10, 1, [compressed_rle(RECT)] * 3), track(11, 2, [uncompressed_rle(RECT)] * 3)]
    return dataset(videos, annos)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (_set(("videos", 1, "length"), None), ["video 2", "missing key 'length'"]),
        (_set(("videos", 1, "file_names"), ["a.jpg"]), ["video 2", "'file_names' has 1 entries", "'length' is 3"]),
        (_set(("annotations", 1, "category_id"), None), ["video 2", "annotation 11", "missing key 'category_id'"]),
        (_set(("annotations", 1, "segmentations"), [None] * 2), ["video 2", "annotation 11", "'segmentations' has 2"]),
        (_set(("annotations", 1, "bboxes"), [RECT_BOX] * 4), ["video 2", "annotation 11", "'bboxes' has 4"]),
        (_set(("annotations", 1, "video_id"), 99), ["video 99", "annotation 11", "not among the json's videos"]),
        (_set(("annotations", 0, "segmentations", 2, "size"), [H, W + 1]),
         ["video 1", "annotation 10", "frame 2", f"RLE size [{H}, {W + 1}]"]),
        (_set(("annotations", 1, "segmentations", 1), {"size": [H + 1, W], "counts": [(H + 1) * W]}),
         ["video 2", "annotation 11", "frame 1", "RLE size"]),
        (_set(("annotations", 1, "segmentations", 2, "counts"), [1, 2, 3]),
         ["video 2", "annotation 11", "frame 2", f"sum to 6, not height*width {H * W}"]),
        (_set(("annotations", 0, "bboxes", 1), [1, 2, 3]), ["video 1", "annotation 10", "frame 1", "bbox"]),
        (_set(("annotations", 0, "category_id"), 4), ["video 1", "annotation 10", "category_id 4"]),
        (_set(("videos", 1, "id"), 1), ["video 1", "duplicate video id"]),
        (_set(("annotations", 1, "id"), 10), ["video 2", "annotation 10", "duplicate annotation id"]),
        (_set(("annotations", 0, "segmentations", 0, "counts"), 12.5),
         ["video 1", "annotation 10", "frame 0", "'counts' must be"]),
        (_set(("annotations", 0, "segmentations", 1), "a string"), ["annotation 10", "frame 1", "segmentation must be"]),
        (_set(("categories", 0, "name"), None), ["needs an 'id' and a 'name'"]),
        (_set(("videos",), {"id": 1}), ["expected an object with a 'videos' list"]),
    ],
    ids=[
        "video_missing_key", "file_names_length", "annotation_missing_key", "segmentations_length",
        "bboxes_length", "unknown_video_id", "compressed_rle_size", "uncompressed_rle_size",
        "uncompressed_rle_sum", "bad_bbox", "unknown_category", "duplicate_video",
        "duplicate_annotation", "rle_counts_type", "segmentation_type", "category_without_name", "videos_not_a_list",
    ],
)  # fmt: skip
def test_malformed_json_fails_with_one_message_naming_file_video_and_frame(tmp_path, mutate, expected):
    data = _valid_data()
    load_ytvis_json(write(tmp_path, data, "ok.json"), tmp_path)  # the unmutated file is fine
    bad = copy.deepcopy(data)
    mutate(bad)
    path = write(tmp_path, bad, "bad.json")
    with pytest.raises(YTVISFormatError) as info:
        load_ytvis_json(path, tmp_path)
    message = str(info.value)
    assert "\n" not in message and path in message
    for part in expected:
        assert part in message
    assert isinstance(info.value, ValueError)


def test_missing_or_invalid_json_file_names_the_path(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError, match="nope.json"):
        load_ytvis_json(missing, tmp_path)
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{not json")
    with pytest.raises(YTVISFormatError, match="garbled.json.*not valid json"):
        load_ytvis_json(str(garbled), tmp_path)


@pytest.mark.parametrize(
    "content, expected",
    [(b"", "empty file"), (b"  \n", "empty file"), (b'{"videos": [{"id": 1, "he', "truncated?"),
     (b"\xff\xfe\x00garbage", "not valid json")],
    ids=["empty", "blank", "truncated", "binary"],
)  # fmt: skip
def test_empty_truncated_or_binary_json_is_one_format_error_naming_the_file(tmp_path, content, expected):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(YTVISFormatError) as info:
        load_ytvis_json(str(path), tmp_path)
    assert expected in str(info.value) and str(path) in str(info.value) and "\n" not in str(info.value)


def test_the_loader_and_the_evaluation_raise_one_and_the_same_format_error(tmp_path):
    from vis_d2.evaluation import YTVISFormatError as EvalFormatError
    from vis_d2.evaluation.ytvis_io import parse_ground_truth
    from vis_d2.utils import YTVISFormatError as SharedFormatError

    assert YTVISFormatError is EvalFormatError is SharedFormatError
    bad = dataset([video(1, 3)], [track(10, 1, [compressed_rle(RECT)] * 2)])  # 2 masks, 3 frames
    caught = []
    for load in (lambda: load_ytvis_json(write(tmp_path, bad), tmp_path), lambda: parse_ground_truth(bad)):
        try:
            load()
        except YTVISFormatError as e:  # one except clause catches both
            caught.append(e)
    assert len(caught) == 2 and all(e.__class__ is SharedFormatError for e in caught)


def test_register_is_lazy_and_reads_classes_from_the_json_when_not_given(tmp_path):
    name = f"test_lazy_{uuid.uuid4().hex}"
    json_file = str(tmp_path / "later.json")
    register_ytvis_instances(name, {}, json_file, str(tmp_path))  # the file does not exist yet
    try:
        meta = MetadataCatalog.get(name)
        assert meta.get("thing_classes") is None  # unavailable, but no crash
        assert (meta.json_file, meta.evaluator_type) == (json_file, "ytvis")
        data = dataset([video(1)], [track(1, 1, [compressed_rle(RECT)] * 3, category_id=4)], ((4, "fox"),))
        write(tmp_path, data, "later.json")
        assert meta.thing_classes == ["fox"]
        assert meta.thing_dataset_id_to_contiguous_id == {4: 0}
        dicts = DatasetCatalog.get(name)
        assert dicts[0]["annotations"][0][0]["category_id"] == 0
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_loading_leaves_garbage_collection_enabled_even_after_an_error(tmp_path):
    assert gc.isenabled()
    load_ytvis_json(write(tmp_path, _valid_data()), tmp_path)
    assert gc.isenabled()
    with pytest.raises(YTVISFormatError):
        load_ytvis_json(write(tmp_path, {"videos": None}, "bad.json"), tmp_path)
    assert gc.isenabled()
