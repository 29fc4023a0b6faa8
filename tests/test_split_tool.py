"""tools/split_ytvis.py: a seeded, deterministic train_sub / valid_sub split of a json with ground truth."""
import contextlib
import importlib.util
import json
import os

import pytest

from vis_d2.data.datasets import load_ytvis_json

_TOOL = os.path.join(os.path.dirname(__file__), os.pardir, "tools", "split_ytvis.py")
_spec = importlib.util.spec_from_file_location("split_ytvis", _TOOL)
split_ytvis = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(split_ytvis)


def source(num_videos, tracks_per_video=lambda vid: vid % 3):
    """A YouTube-VIS json whose video ``vid`` has ``tracks_per_video(vid)`` one-frame tracks."""
    videos, annos = [], []
    for vid in range(1, num_videos + 1):
        videos.append({"id": vid, "height": 2, "width": 2, "length": 1, "file_names": [f"{vid}/0.jpg"]})
        for _ in range(tracks_per_video(vid)):
            annos.append({
                "id": len(annos) + 1, "video_id": vid, "category_id": 1, "iscrowd": 0,
                "segmentations": [{"size": [2, 2], "counts": [1, 3]}], "bboxes": [[0, 1, 1, 1]],
                "areas": [3],
            })  # fmt: skip
    return {
        "info": {"description": "test"}, "licenses": [{"id": 1}], "videos": videos,
        "annotations": annos, "categories": [{"id": 1, "name": "cat", "supercategory": "animal"}],
    }  # fmt: skip


def run_tool(tmp_path, data, out_name, *args):
    src = tmp_path / "train.json"
    src.write_text(json.dumps(data))
    out_dir = tmp_path / out_name
    split_ytvis.main(["--json", str(src), "--out-dir", str(out_dir), *args])
    return [json.loads((out_dir / f).read_text()) for f in ("train_sub.json", "valid_sub.json")]


def ids(data, key="videos"):
    return [x["id"] for x in data[key]]


def test_split_is_disjoint_complete_and_annotations_follow_their_video(tmp_path):
    data = source(20)
    train, valid = run_tool(tmp_path, data, "out", "--num-valid", "6", "--seed", "3")
    assert (len(train["videos"]), len(valid["videos"])) == (14, 6)
    assert set(ids(train)).isdisjoint(ids(valid))
    assert sorted(ids(train) + ids(valid)) == ids(data)
    for part in (train, valid):
        assert ids(part) == sorted(ids(part))  # source order kept
        assert {a["video_id"] for a in part["annotations"]} <= set(ids(part))
        assert (part["categories"], part["info"], part["licenses"]) == (
            data["categories"], data["info"], data["licenses"]
        )
    assert sorted(ids(train, "annotations") + ids(valid, "annotations")) == ids(data, "annotations")


def test_same_seed_gives_identical_files_and_another_seed_another_split(tmp_path):
    data = source(30)
    first = run_tool(tmp_path, data, "a", "--num-valid", "5", "--seed", "7")
    again = run_tool(tmp_path, data, "b", "--num-valid", "5", "--seed", "7")
    assert (tmp_path / "a" / "valid_sub.json").read_bytes() == (tmp_path / "b" / "valid_sub.json").read_bytes()
    assert (tmp_path / "a" / "train_sub.json").read_bytes() == (tmp_path / "b" / "train_sub.json").read_bytes()
    other = run_tool(tmp_path, data, "c", "--num-valid", "5", "--seed", "8")
    assert ids(first[1]) == ids(again[1]) and ids(first[1]) != ids(other[1])
    # the json's video order does not change which videos are held out
    data["videos"].reverse()
    shuffled = run_tool(tmp_path, data, "d", "--num-valid", "5", "--seed", "7")
    assert sorted(ids(shuffled[1])) == sorted(ids(first[1]))


def test_default_split_of_youtube_vis_2019_size_is_1902_train_336_valid(tmp_path):
    train, valid = run_tool(tmp_path, source(2238, lambda vid: 1), "out")
    assert (len(train["videos"]), len(valid["videos"])) == (1902, 336)
    assert (len(train["annotations"]), len(valid["annotations"])) == (1902, 336)


def test_outputs_load_as_video_datasets_with_ground_truth(tmp_path):
    run_tool(tmp_path, source(10, lambda vid: 1), "out", "--num-valid", "3")
    for name, n in (("train_sub.json", 7), ("valid_sub.json", 3)):
        dicts = load_ytvis_json(str(tmp_path / "out" / name), str(tmp_path))
        assert len(dicts) == n and all(d["has_annotations"] for d in dicts)
        assert all(len(d["annotations"][0]) == 1 for d in dicts)


@pytest.mark.parametrize("num_valid", ["5", "9", "0"])
def test_num_valid_out_of_range_is_a_clear_error(tmp_path, capsys, num_valid):
    with pytest.raises(SystemExit) as info:
        run_tool(tmp_path, source(5), "out", "--num-valid", num_valid)
    err = capsys.readouterr().err
    assert info.value.code != 0
    assert "--num-valid" in err and "number of videos (5)" in err and num_valid in err
    assert not (tmp_path / "out").exists()


def _ovis_like(num_videos):
    """OVIS's quirks: 25 classes with capitalised names, annotations without 'iscrowd', null areas."""
    data = source(num_videos, lambda vid: 2)
    data["categories"] = [{"id": i, "name": n} for i, n in enumerate(["Person", "Bird"] + [f"C{i}" for i in range(23)], 1)]
    for a in data["annotations"]:
        del a["iscrowd"]
        a["category_id"] = 25 if a["id"] % 2 else 1
        a["areas"] = [None] * len(a["areas"])
    return data


def _ytvis_2021_like(num_videos):
    """YouTube-VIS 2021: 40 classes (another list than 2019's), ids 1..40."""
    data = source(num_videos, lambda vid: 1)
    data["categories"] = [{"id": i, "name": f"class{i:02d}", "supercategory": "object"} for i in range(1, 41)]
    for a in data["annotations"]:
        a["category_id"] = 1 + a["video_id"] % 40
    return data


@pytest.mark.parametrize("make", [_ovis_like, _ytvis_2021_like], ids=["ovis", "ytvis_2021"])
def test_ovis_and_ytvis_2021_jsons_split_and_load_with_their_own_categories(tmp_path, make):
    data = make(40)
    train, valid = run_tool(tmp_path, data, "out")
    assert (len(train["videos"]), len(valid["videos"])) == (34, 6)  # 15% held out by default
    for part, name in ((train, "train_sub.json"), (valid, "valid_sub.json")):
        assert part["categories"] == data["categories"]
        dicts = load_ytvis_json(str(tmp_path / "out" / name), str(tmp_path))
        instances = [a for d in dicts for frame in d["annotations"] for a in frame]
        assert instances and all(a["iscrowd"] == 0 for a in instances)
        assert {a["category_id"] for a in instances} <= set(range(len(data["categories"])))


def test_a_failure_while_writing_leaves_both_old_files_and_no_temporary_file(tmp_path, monkeypatch):
    run_tool(tmp_path, source(10), "out", "--num-valid", "3", "--seed", "1")
    before = {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()}
    real_atomic_write = split_ytvis.atomic_write

    @contextlib.contextmanager
    def disk_fills_up_in_valid_sub(path, *args, **kwargs):
        with real_atomic_write(path, *args, **kwargs) as f:
            if not path.endswith("valid_sub.json"):
                yield f
                return

            class HalfWritten:
                def write(self, text):
                    f.write(text[: len(text) // 2])
                    raise OSError(28, "No space left on device")

            yield HalfWritten()

    monkeypatch.setattr(split_ytvis, "atomic_write", disk_fills_up_in_valid_sub)
    with pytest.raises(SystemExit) as info:
        split_ytvis.main(["--json", str(tmp_path / "train.json"), "--out-dir", str(tmp_path / "out"),
                          "--num-valid", "4", "--seed", "2"])  # fmt: skip
    assert info.value.code == 2
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == before  # no temp file either


@pytest.mark.parametrize(
    "content, expected",
    [
        ("", "empty file"),
        ('{"videos": [{"id": 1', "truncated?"),
        ("[1, 2]", "expected a YouTube-VIS json with a 'videos' list"),
        ('{"videos": [{"id": 1}, {"id": 1}], "annotations": [{"video_id": 1}]}', "duplicate video ids [1]"),
        ('{"videos": [{"id": 1}], "annotations": [{"video_id": 2}]}', "not in 'videos': [2]"),
        ('{"videos": [{"id": 1}], "annotations": [7]}', "annotations[0] is not an object"),
    ],
    ids=["empty", "truncated", "not_an_object", "duplicate_videos", "orphan_annotation", "annotation_not_object"],
)  # fmt: skip
def test_bad_source_json_ends_in_one_line_and_exit_status_2(tmp_path, capsys, content, expected):
    src = tmp_path / "train.json"
    src.write_text(content)
    with pytest.raises(SystemExit) as info:
        split_ytvis.main(["--json", str(src), "--out-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("split_ytvis: error: ")
    assert expected in err[0], err[0]
    assert not (tmp_path / "out").exists()


def test_source_without_annotations_is_refused(tmp_path, capsys):
    data = source(5)
    data["annotations"] = None
    with pytest.raises(SystemExit) as info:
        run_tool(tmp_path, data, "out", "--num-valid", "2")
    assert info.value.code != 0 and "has no annotations" in capsys.readouterr().err
