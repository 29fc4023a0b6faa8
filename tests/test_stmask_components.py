"""STMask's building blocks: FCA anchors, the box coding, FCB offsets and the temporal fusion's correlation."""
import math

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import build_anchor_generator
from torch import nn
from torchvision.ops import deform_conv2d

from vis_d2.projects.stmask import (
    FCAAnchorGenerator,
    FeatureCalibration,
    add_stmask_config,
    aligned_offsets,
    decode_boxes,
    encode_boxes,
    local_correlation,
    sampled_deform_conv2d,
)


# ------------------------------------------------------------------------------------ FCA anchors
def test_fca_anchors_have_their_kernels_shape_in_cells_of_the_level_centred_in_each_cell():
    gen = FCAAnchorGenerator(strides=[8, 16], anchor_shapes=[(3, 3), (3, 5), (5, 3)])
    p3, p4 = gen([torch.zeros(1, 4, 2, 3), torch.zeros(1, 4, 1, 2)])
    assert len(p3) == 2 * 3 * 3 and len(p4) == 1 * 2 * 3 and gen.num_cell_anchors == [3, 3]
    # location (row 0, col 0) of stride 8: centre (4, 4); shapes 24x24, 24 high x 40 wide, 40 high x 24 wide
    expected = torch.tensor([[-8.0, -8, 16, 16], [-16, -8, 24, 16], [-8, -16, 16, 24]])
    assert torch.allclose(p3.tensor[:3], expected)
    # row-major over locations: the next location is (row 0, col 1), centre (12, 4)
    assert torch.allclose(p3.tensor[3:6], expected + torch.tensor([8.0, 0, 8, 0]))
    widths, heights = p4.tensor[:3, 2] - p4.tensor[:3, 0], p4.tensor[:3, 3] - p4.tensor[:3, 1]
    assert (widths / heights).tolist() == pytest.approx([1, 5 / 3, 3 / 5])


def test_fca_anchor_generator_is_built_from_the_config_by_name():
    cfg = get_cfg()
    add_stmask_config(cfg)
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "FCAAnchorGenerator"
    gen = build_anchor_generator(cfg, [ShapeSpec(channels=8, stride=s) for s in (8, 16, 32, 64, 128)])
    assert isinstance(gen, FCAAnchorGenerator) and gen.anchor_shapes == [(3, 3), (3, 5), (5, 3)]
    with pytest.raises(ValueError, match="5 anchor levels"):
        gen([torch.zeros(1, 8, 4, 4)])
    # FCA off: YOLACT's anchors, 3 cells of area 9 with w / h = 1, 1/2, 2
    cfg.MODEL.STMASK.FCA.ENABLED = False
    off = build_anchor_generator(cfg, [ShapeSpec(channels=8, stride=8)])
    box = off([torch.zeros(1, 8, 1, 1)])[0].tensor
    w, h = box[:, 2] - box[:, 0], box[:, 3] - box[:, 1]
    assert (w / h).tolist() == pytest.approx([1, 0.5, 2]) and (w * h).tolist() == pytest.approx([24.0**2] * 3)


# ------------------------------------------------------------------------------------ box coding
def test_box_coding_follows_the_centre_size_formula_and_round_trips():
    anchors = torch.tensor([[0.0, 0, 20, 10]])  # centre (10, 5), 20 wide, 10 high
    deltas = torch.tensor([[1.0, -2.0, 5 * math.log(2), 0.0]])
    box = decode_boxes(deltas, anchors)
    # cx = 10 + 0.1 * 1 * 20 = 12, cy = 5 - 0.1 * 2 * 10 = 3, w = 20 * 2, h = 10
    assert torch.allclose(box, torch.tensor([[-8.0, -2, 32, 8]]))
    assert torch.allclose(encode_boxes(box, anchors), deltas, atol=1e-5)


# ------------------------------------------------------------------------------------ FCB
def test_aligned_offsets_match_a_hand_computation_for_a_3x5_kernel():
    t_x, t_y, t_w, t_h = 1.0, -0.5, 5 * math.log(1.5), 0.0  # box 1.5x wider, same height
    deltas = torch.tensor([t_x, t_y, t_w, t_h]).view(1, 4, 1, 1)
    offsets = aligned_offsets(deltas, (3, 5)).view(3, 5, 2)  # (kernel row, kernel col, [y, x])
    for i in range(3):
        for j in range(5):
            r_y, r_x = i - 1, j - 2
            dy = 0.1 * t_y * 3 + (1.0 - 1) * r_y
            dx = 0.1 * t_x * 5 + (1.5 - 1) * r_x
            assert offsets[i, j].tolist() == pytest.approx([dy, dx], abs=1e-6)


@pytest.mark.parametrize("mode", ["ada", "ali"])
def test_fcb_without_a_box_shift_is_the_plain_kernel(mode):
    # "ali" with zero deltas and "ada" at its zero initialisation sample the anchor's own window: the
    # deformable convolution is then an ordinary convolution with the same weights.
    torch.manual_seed(0)
    fcb = FeatureCalibration(6, 2, (3, 5), mode=mode)
    plain = nn.Conv2d(6, 6, (3, 5), padding=(1, 2))
    with torch.no_grad():
        plain.weight.copy_(fcb.deform_weight)
        plain.bias.copy_(fcb.deform_bias)
    x = torch.randn(1, 6, 5, 7)
    zero = torch.zeros(1, 4, 5, 7)
    assert torch.allclose(fcb(x, zero), fcb.output(torch.relu(plain(x))), atol=1e-5)


def test_fcb_follows_the_deltas_and_never_backpropagates_into_them():
    torch.manual_seed(0)
    fcb = FeatureCalibration(4, 3, (3, 3), mode="ali")
    x = torch.randn(1, 4, 6, 6)
    deltas = torch.zeros(1, 4, 6, 6, requires_grad=True)
    shifted = deltas + torch.tensor([10.0, 0, 0, 0]).view(1, 4, 1, 1)  # t_x 10: 0.1 * 10 * 3 = 3 cells to the right
    assert not torch.allclose(fcb(x, shifted), fcb(x, deltas.detach()))
    fcb(x, shifted).sum().backward()
    assert deltas.grad is None
    with pytest.raises(ValueError, match="mode"):
        FeatureCalibration(4, 3, (3, 3), mode="both")


@pytest.mark.parametrize("kernel,size", [((3, 3), (5, 7)), ((3, 5), (4, 6)), ((5, 3), (1, 1))])
def test_sampled_deform_conv_equals_torchvisions_deform_conv2d_with_gradients(kernel, size):
    torch.manual_seed(0)
    kh, kw = kernel
    padding = ((kh - 1) // 2, (kw - 1) // 2)
    x = torch.randn(2, 3, *size, requires_grad=True)
    offset = (2.5 * torch.randn(2, 2 * kh * kw, *size)).requires_grad_()  # samples inside and outside the map
    weight, bias = torch.randn(4, 3, kh, kw, requires_grad=True), torch.randn(4, requires_grad=True)
    ours = sampled_deform_conv2d(x, offset, weight, bias, padding)
    grads = torch.autograd.grad(ours.square().sum(), (x, offset, weight, bias))
    ref = deform_conv2d(x, offset, weight, bias, padding=padding)
    ref_grads = torch.autograd.grad(ref.square().sum(), (x, offset, weight, bias))
    assert torch.allclose(ours, ref, atol=1e-4)
    for g, r in zip(grads, ref_grads):
        assert torch.allclose(g, r, atol=1e-3, rtol=1e-3)


# ------------------------------------------------------------------------------------ correlation
def _loop_correlation(a, b, d):
    r = d // 2
    _, c, h, w = a.shape
    out = torch.zeros(a.shape[0], d * d, h, w)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            for y in range(h):
                for x in range(w):
                    if 0 <= y + dy < h and 0 <= x + dx < w:
                        out[:, (dy + r) * d + (dx + r), y, x] = (a[:, :, y, x] * b[:, :, y + dy, x + dx]).sum(1) / c
    return out


def test_local_correlation_equals_a_loop_over_displacements_and_locations():
    torch.manual_seed(0)
    a, b = torch.randn(2, 3, 4, 5), torch.randn(2, 3, 4, 5)
    assert torch.allclose(local_correlation(a, b, patch_size=3), _loop_correlation(a, b, 3), atol=1e-6)
    out = local_correlation(a, b, patch_size=11)
    assert out.shape == (2, 121, 4, 5)
    assert torch.allclose(out[:, 60], (a * b).sum(1) / 3)  # the centre channel: no displacement
    with pytest.raises(ValueError, match="odd"):
        local_correlation(a, b, patch_size=4)
