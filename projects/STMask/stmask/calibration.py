"""STMask's feature calibration for bounding boxes (FCB, Li et al., CVPR 2021, §3.1.2, Eq. 5-8).

A branch's output for one anchor shape is computed on features sampled from the box that the box branch
predicts for that anchor, instead of the anchor's fixed window: a deformable convolution whose offsets come
from the anchor's own (detached) box deltas, then a convolution with the same kernel.

- **adaptive** (``"ada"``): offsets = a 1x1 convolution (no bias, zero-initialised, so training starts from
  the plain kernel) of the 4-channel delta map;
- **aligned** (``"ali"``): offsets in closed form (:func:`aligned_offsets`), which move the kernel's grid onto
  the decoded box: every point shifts with the box centre, and stretches with the box size by its distance
  from the kernel centre.

Deformable convolution is torchvision's ``deform_conv2d`` (CPU and CUDA), so no compiled extension is needed;
``padding`` is given as (ph, pw), which matters for the non-square kernels.
"""
from typing import Sequence, Tuple

import torch
from torch import nn
from torchvision.ops import DeformConv2d

__all__ = ["FeatureCalibration", "aligned_offsets", "FCB_MODES"]

FCB_MODES = ("none", "ada", "ali")


def aligned_offsets(deltas: torch.Tensor, kernel_size: Tuple[int, int], variances: Sequence[float] = (0.1, 0.2)) -> torch.Tensor:
    """Closed-form FCB offsets (Eq. 8) of a (kh, kw) kernel whose anchor is kh x kw feature cells.

    For the kernel point at (r_y, r_x) cells from the kernel centre:

        dy = v0 * t_y * kh + (exp(v1 * t_h) - 1) * r_y,     dx = v0 * t_x * kw + (exp(v1 * t_w) - 1) * r_x

    Args:
        deltas: (B, 4, H, W) box deltas (t_x, t_y, t_w, t_h) of one anchor shape at every location.
        kernel_size: (kh, kw).

    Returns:
        (B, 2 * kh * kw, H, W) offsets in the layout of ``torchvision.ops.deform_conv2d``: for kernel point
        k = i * kw + j, channel 2k is its y offset and 2k + 1 its x offset, in feature cells.
    """
    kh, kw = kernel_size
    t_x, t_y, t_w, t_h = deltas.unbind(dim=1)  # each (B, H, W)
    r_y = torch.arange(kh, dtype=deltas.dtype, device=deltas.device) - (kh - 1) / 2
    r_x = torch.arange(kw, dtype=deltas.dtype, device=deltas.device) - (kw - 1) / 2
    r_y, r_x = (g.reshape(1, kh * kw, 1, 1) for g in torch.meshgrid(r_y, r_x, indexing="ij"))
    dy = variances[0] * t_y[:, None] * kh + (torch.exp(variances[1] * t_h[:, None]) - 1) * r_y
    dx = variances[0] * t_x[:, None] * kw + (torch.exp(variances[1] * t_w[:, None]) - 1) * r_x
    return torch.stack([dy, dx], dim=2).flatten(1, 2)  # (B, kh*kw, 2, H, W) -> interleaved y, x


class FeatureCalibration(nn.Module):
    """FCB for one branch and one anchor shape: deformable conv (offsets from the box deltas) + ReLU + conv."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Tuple[int, int],
        mode: str = "ada",
        variances: Sequence[float] = (0.1, 0.2),
    ):
        """
        Args:
            in_channels: channels of the branch's tower output (256 in STMask).
            out_channels: the branch's outputs for this anchor (classes, 4 box deltas, coefficients, ...).
            kernel_size: (kh, kw), the anchor's kernel.
            mode: "ada" (learned 1x1 offsets) or "ali" (closed form).
            variances: the box coding's variances (for "ali").
        """
        super().__init__()
        if mode not in ("ada", "ali"):
            raise ValueError(f"FCB mode must be 'ada' or 'ali', got {mode!r}")
        kh, kw = kernel_size
        padding = ((kh - 1) // 2, (kw - 1) // 2)
        self.mode = mode
        self.kernel_size = (kh, kw)
        self.variances = tuple(variances)
        self.deform = DeformConv2d(in_channels, in_channels, (kh, kw), padding=padding)
        self.output = nn.Conv2d(in_channels, out_channels, (kh, kw), padding=padding)
        if mode == "ada":
            self.offset = nn.Conv2d(4, 2 * kh * kw, 1, bias=False)
            nn.init.zeros_(self.offset.weight)

    def offsets(self, deltas: torch.Tensor) -> torch.Tensor:
        """(B, 4, H, W) box deltas -> (B, 2 * kh * kw, H, W) sampling offsets (the deltas are detached)."""
        deltas = deltas.detach()
        if self.mode == "ada":
            return self.offset(deltas)
        return aligned_offsets(deltas, self.kernel_size, self.variances)

    def forward(self, features: torch.Tensor, deltas: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) tower features and (B, 4, H, W) this anchor's box deltas -> (B, out, H, W)."""
        return self.output(torch.relu(self.deform(features, self.offsets(deltas))))
