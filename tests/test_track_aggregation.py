"""VideoTrackAccumulator and RLE helpers: per-video `pred_tracks` (docs/interfaces.md §4)."""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch

from vis_d2.modeling.frame_masks import paste_and_encode
from vis_d2.modeling.track_aggregation import VideoTrackAccumulator, encode_mask_rle, encode_masks_rle

H, W = 6, 8


def _rle(value=1):
    mask = np.zeros((H, W), dtype=bool)
    mask[:value, :value] = True
    return encode_mask_rle(mask)


def _by_id(acc):
    return {t["track_id"]: t for t in acc.tracks()}


def test_score_is_the_mean_of_per_frame_scores():
    acc = VideoTrackAccumulator(3, H, W)
    acc.add_frame(0, [0], [0.2], [1], [_rle()])
    acc.add_frame(2, torch.tensor([0]), torch.tensor([0.8]), torch.tensor([1]), [_rle()])
    assert _by_id(acc)[0]["score"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    "labels, expected", [([2, 2, 1], 2), ([3, 1, 3, 1], 1), ([4, 0, 0, 4, 4], 4)]
)
def test_category_is_the_majority_vote_with_ties_to_the_lowest_label(labels, expected):
    acc = VideoTrackAccumulator(len(labels), H, W)
    for t, label in enumerate(labels):
        acc.add_frame(t, [7], [0.5], [label], [_rle()])
    assert _by_id(acc)[7]["category_id"] == expected


def test_segmentations_have_one_entry_per_frame_with_none_where_the_track_was_absent():
    acc = VideoTrackAccumulator(4, H, W)
    acc.add_frame(1, [0, 1], [0.9, 0.9], [0, 0], [_rle(2), _rle(3)])
    acc.add_frame(3, [0], [0.9], [0], [_rle(4)])
    tracks = _by_id(acc)
    seg0 = tracks[0]["segmentations"]
    assert len(seg0) == 4 and seg0[0] is None and seg0[2] is None
    assert mask_util.area(seg0[1]) == 4 and mask_util.area(seg0[3]) == 16
    assert [s is None for s in tracks[1]["segmentations"]] == [True, False, True, True]


def test_dropped_detections_with_id_minus_one_are_skipped():
    acc = VideoTrackAccumulator(2, H, W)
    acc.add_frame(0, [-1, 0, -1], [0.99, 0.1, 0.99], [3, 1, 3], [_rle(), _rle(), _rle()])
    acc.add_frame(1, [-1], [0.99], [3], [_rle()])
    tracks = acc.tracks()
    assert [t["track_id"] for t in tracks] == [0]
    assert tracks[0]["score"] == pytest.approx(0.1) and tracks[0]["category_id"] == 1


def test_tracks_follow_the_interface_and_are_json_serialisable():
    acc = VideoTrackAccumulator(2, H, W)
    acc.add_frame(0, [3, 1], [0.5, 0.6], [0, 2], [_rle(), _rle()])
    tracks = acc.tracks()
    assert [t["track_id"] for t in tracks] == [1, 3]
    for t in tracks:
        assert set(t) == {"track_id", "score", "category_id", "segmentations"}
        assert isinstance(t["score"], float) and isinstance(t["category_id"], int)
        rle = t["segmentations"][0]
        assert rle["size"] == [H, W] and isinstance(rle["counts"], str)
    json.dumps(tracks)


def test_bytes_counts_are_stored_as_str():
    rle = mask_util.encode(np.asfortranarray(np.ones((H, W), dtype=np.uint8)))
    assert isinstance(rle["counts"], bytes)
    acc = VideoTrackAccumulator(1, H, W)
    acc.add_frame(0, [0], [0.5], [0], [rle])
    assert isinstance(acc.tracks()[0]["segmentations"][0]["counts"], str)


def test_add_frame_rejects_wrong_rle_size_and_duplicate_ids():
    acc = VideoTrackAccumulator(2, H, W)
    wrong = encode_mask_rle(np.ones((W, H), dtype=bool))
    with pytest.raises(ValueError, match="size"):
        acc.add_frame(0, [0], [0.5], [0], [wrong])
    with pytest.raises(ValueError, match="twice"):
        acc.add_frame(0, [1, 1], [0.5, 0.5], [0, 0], [_rle(), _rle()])
    with pytest.raises(ValueError, match="outside"):
        acc.add_frame(2, [0], [0.5], [0], [_rle()])


def test_encode_mask_rle_round_trips_with_str_counts():
    rng = np.random.default_rng(0)
    masks = rng.random((3, H, W)) > 0.5
    rles = encode_masks_rle(torch.from_numpy(masks))
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in rles)
    np.testing.assert_array_equal(mask_util.decode(rles).transpose(2, 0, 1), masks)
    np.testing.assert_array_equal(mask_util.decode(encode_mask_rle(masks[1])), masks[1])
    assert encode_masks_rle(np.zeros((0, H, W), dtype=bool)) == []


def test_paste_and_encode_fills_each_box_at_the_original_resolution():
    probs = torch.ones(3, 1, 28, 28)
    probs[2] = 0.2  # below the threshold: empty mask
    boxes = torch.tensor([[2.0, 1.0, 6.0, 4.0], [0.0, 0.0, 8.0, 6.0], [0.0, 0.0, 8.0, 6.0]])
    rles = paste_and_encode(probs, boxes, (H, W), chunk_size=2)
    masks = mask_util.decode(rles).transpose(2, 0, 1).astype(bool)
    expected = np.zeros((H, W), dtype=bool)
    expected[1:4, 2:6] = True
    np.testing.assert_array_equal(masks[0], expected)
    assert masks[1].all() and not masks[2].any()
    assert all(isinstance(r["counts"], str) and r["size"] == [H, W] for r in rles)
