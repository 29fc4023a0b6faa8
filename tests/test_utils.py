"""vis_d2.utils: atomic writes, the json reader, the RLE conversions and the crowd rule."""
import json
import math
import os
import stat

import numpy as np
import pytest
from pycocotools import mask as mask_util

from vis_d2.utils import atomic_write, is_crowd, json_io
from vis_d2.utils.rle import (
    check_rle,
    compress_rles,
    polygons_to_rle,
    rle_counts_to_str,
    segmentation_to_mask,
    segmentation_to_rle,
)


# ------------------------------------------------------------------------------------- atomic_write
def test_atomic_write_replaces_the_file_only_when_the_block_succeeds(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with atomic_write(str(path)) as f:
        f.write("new, ")
        assert path.read_text() == "old"  # not visible until the block ends
        f.write("complete")
    assert path.read_text() == "new, complete"
    assert os.listdir(tmp_path) == ["metrics.json"]


def test_a_failure_mid_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"complete": true}')
    for error in (OSError(28, "No space left on device"), KeyboardInterrupt()):
        with pytest.raises(type(error)):
            with atomic_write(str(path)) as f:
                f.write('{"trunc')
                raise error
        assert path.read_text() == '{"complete": true}'
        assert os.listdir(tmp_path) == ["results.json"]


def test_a_failure_before_the_first_write_creates_no_file(tmp_path):
    with pytest.raises(ValueError):
        with atomic_write(str(tmp_path / "new.json")):
            raise ValueError("serialisation failed")
    assert os.listdir(tmp_path) == []


def test_atomic_write_bytes_and_permissions_of_a_plain_open(tmp_path):
    with atomic_write(str(tmp_path / "results.zip"), "wb") as f:
        f.write(b"PK\x03\x04")
    with open(tmp_path / "plain", "wb") as f:
        f.write(b"x")
    assert (tmp_path / "results.zip").read_bytes() == b"PK\x03\x04"
    mode = stat.S_IMODE(os.stat(tmp_path / "results.zip").st_mode)
    assert mode == stat.S_IMODE(os.stat(tmp_path / "plain").st_mode)
    with pytest.raises(ValueError, match="mode"):
        with atomic_write(str(tmp_path / "x"), "a"):
            pass


# -------------------------------------------------------------------------------------------- json
@pytest.mark.parametrize("use_orjson", [True, False], ids=["orjson", "json"])
def test_both_json_parsers_give_identical_objects_and_json_accepts_nan(monkeypatch, use_orjson):
    if use_orjson and not json_io.HAVE_ORJSON:
        pytest.skip("orjson not installed (pip install vis_d2[fast])")
    if not use_orjson:
        monkeypatch.setattr(json_io, "orjson", None)
    doc = {"score": 0.1 + 0.2, "tiny": 5e-324, "big": 2**63 + 1, "s": "\u00e9", "n": [None, True, 1.5e300]}
    data = json.dumps(doc).encode()
    assert json_io.loads(data) == json.loads(data)
    assert repr(json_io.loads(data)["score"]) == repr(0.1 + 0.2)
    assert math.isnan(json_io.loads(b'{"score": NaN}')["score"])  # Python's json accepts it; orjson would not
    with pytest.raises(json.JSONDecodeError) as info:
        json_io.loads(b'{"videos": [1, 2')
    assert json_io.looks_truncated(info.value, b'{"videos": [1, 2')
    with pytest.raises(json.JSONDecodeError) as info:
        json_io.loads(b'{"videos" 1}')
    assert not json_io.looks_truncated(info.value, b'{"videos" 1}')


# --------------------------------------------------------------------------------------------- RLE
H, W = 5, 6
MASK = np.zeros((H, W), dtype=np.uint8)
MASK[1:4, 2:5] = 1
UNCOMPRESSED = {"size": [H, W], "counts": [11, 3, 2, 3, 2, 3, 6]}  # column-major runs of MASK


def test_every_mask_form_converts_to_the_same_compressed_rle_with_str_counts():
    encoded = mask_util.encode(np.asfortranarray(MASK))  # bytes counts
    polygon = [[2.0, 1.0, 4.0, 1.0, 4.0, 3.0, 2.0, 3.0]]
    forms = [encoded, rle_counts_to_str(encoded), UNCOMPRESSED, polygon]
    rles = [segmentation_to_rle(f, H, W) for f in forms]
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in rles)
    for rle in rles[:3]:
        assert np.array_equal(mask_util.decode(rle), MASK)
    assert np.array_equal(segmentation_to_mask(polygon, H, W), mask_util.decode(polygons_to_rle(polygon, H, W)) > 0)
    assert compress_rles([UNCOMPRESSED, UNCOMPRESSED])[1] == rles[1]
    assert segmentation_to_rle(None, H, W) is None and segmentation_to_rle({}, H, W) is None
    assert "counts" in encoded and isinstance(encoded["counts"], bytes)  # the caller's dict is not changed


@pytest.mark.parametrize(
    "segm, expected",
    [
        ({"size": [H + 1, W], "counts": "abc"}, "does not match the video's"),
        ({"size": [H, W]}, "needs 'size' and 'counts'"),
        ({"size": [H, W], "counts": [1, 2]}, "sum to 3, not height*width 30"),
        ({"size": [H, W], "counts": ["1"]}, "must be integers"),
        ({"size": [H, W], "counts": 3.5}, "must be a list of ints or a string"),
    ],
)
def test_malformed_rle_is_a_short_value_error(segm, expected):
    with pytest.raises(ValueError, match=None) as info:
        check_rle(segm, H, W)
    assert expected in str(info.value)


def test_missing_or_null_iscrowd_means_not_crowd():
    assert not is_crowd({}) and not is_crowd({"iscrowd": None}) and not is_crowd({"iscrowd": 0})
    assert is_crowd({"iscrowd": 1}) and is_crowd({"iscrowd": True})
