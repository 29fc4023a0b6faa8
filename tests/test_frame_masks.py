"""frame_masks: both kinds of mask predictions become binary masks / RLEs at the original resolution."""
import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F

from vis_d2.modeling.frame_masks import (
    encode_frame_masks,
    frame_masks_at_stride,
    paste_and_encode,
    resample_image_masks,
    resize_and_encode,
)


def _decode(rles):
    return mask_util.decode(rles).transpose(2, 0, 1).astype(bool)


def test_without_padding_image_masks_are_resized_like_bilinear_interpolation():
    probs = torch.rand(3, 7, 10, generator=torch.Generator().manual_seed(0))
    out = resample_image_masks(probs, covered_size=(28, 40), input_size=(28, 40), orig_size=(45, 61))
    expected = F.interpolate(probs[:, None], size=(45, 61), mode="bilinear", align_corners=False)[:, 0]
    assert out.shape == (3, 45, 61) and torch.allclose(out, expected, atol=1e-5)


def test_the_padded_part_of_image_masks_is_cropped_away():
    # Network input 28 x 40 padded to 32 x 40; the mask is 1 on the frame and 0 on the padding rows.
    probs = torch.zeros(1, 32, 40)
    probs[:, :28] = 1.0
    rle = resize_and_encode(probs, covered_size=(32, 40), input_size=(28, 40), orig_size=(56, 80))[0]
    assert rle["size"] == [56, 80] and isinstance(rle["counts"], str)
    assert _decode([rle]).all()  # the whole frame, no padding stretched into it
    # A mask on the padding only is empty in the original frame.
    assert not _decode(resize_and_encode(1 - probs, (32, 40), (28, 40), (56, 80))).any()


def test_feature_resolution_masks_land_on_the_right_original_pixels():
    # A stride-4 grid over a 32 x 40 padded input (28 x 40 frame); cells 2..3 (rows) x 1..2 (cols) are on.
    probs = torch.zeros(1, 8, 10)
    probs[:, 2:4, 1:3] = 1.0
    mask = _decode(resize_and_encode(probs, (32, 40), (28, 40), (56, 80)))[0]
    ys, xs = np.nonzero(mask)
    # Input rows 8..15 and columns 4..11, at twice the size in the original frame.
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == (16, 31, 8, 23)


def test_either_kind_is_encoded_by_its_own_path_in_chunks():
    g = torch.Generator().manual_seed(1)
    boxes = torch.tensor([[2.0, 1.0, 6.0, 4.0], [0.0, 0.0, 8.0, 6.0], [1.0, 2.0, 5.0, 6.0]])
    box_probs = torch.rand(3, 1, 28, 28, generator=g)
    got = encode_frame_masks(box_probs, boxes, (8, 8), (8, 8), (6, 8), chunk_size=2)
    assert got == paste_and_encode(box_probs, boxes, (6, 8))
    image_probs = torch.rand(5, 4, 4, generator=g)
    got = encode_frame_masks(image_probs, None, (8, 8), (6, 8), (12, 16), chunk_size=2)
    assert got == resize_and_encode(image_probs, (8, 8), (6, 8), (12, 16), chunk_size=16)
    assert len(got) == 5 and all(r["size"] == [12, 16] for r in got)
    with pytest.raises(ValueError, match="pred_boxes"):
        encode_frame_masks(box_probs, None, (8, 8), (8, 8), (6, 8))
    with pytest.raises(ValueError, match="box-relative"):
        encode_frame_masks(torch.rand(2, 3, 4, 4), boxes[:2], (8, 8), (8, 8), (6, 8))


@pytest.mark.parametrize("kind", ["box", "image"])
def test_tracker_masks_are_at_the_original_size_divided_by_the_stride(kind):
    # Network input 28 x 40 (padded to 32 x 40), original 56 x 80, stride 4: a 14 x 20 canvas where the first
    # detection covers original rows 0..7 and columns 0..19, i.e. canvas rows 0..1 and columns 0..4.
    expected = torch.zeros(14, 20, dtype=torch.bool)
    if kind == "box":
        probs, boxes = torch.ones(2, 1, 28, 28), torch.tensor([[0.0, 0.0, 20.0, 8.0], [8.0, 4.0, 40.0, 20.0]])
        expected[:2, :5] = True
    else:
        probs, boxes = torch.zeros(2, 8, 10), None  # a stride-4 grid over the padded input
        probs[0, :2, :5] = 1.0  # input rows 0..7, cols 0..19 -> original rows 0..15, cols 0..39
        probs[1, 1:5, 2:10] = 1.0
        expected[:4, :10] = True
    masks = frame_masks_at_stride(probs, boxes, (32, 40), (28, 40), (56, 80), stride=4)
    assert masks.shape == (2, 14, 20) and masks.dtype == torch.bool
    assert torch.equal(masks[0], expected)
    empty = frame_masks_at_stride(probs[:0], None if boxes is None else boxes[:0], (32, 40), (28, 40), (57, 80), 4)
    assert empty.shape == (0, 15, 20)
