"""STMask's temporal fusion module (TF, Li et al., CVPR 2021, §3.2, Eq. 10-14, Fig. 5).

From frame t to frame t+1: the local correlation of the two frames' P4 features (motion), concatenated with
both frames' ``upfeature`` maps of the prediction head at P4, is RoI-pooled at frame t's boxes; a small
temporal net predicts, per box, the shift of its box (coded like the box deltas, frame t's box as the
anchor) and of its raw mask coefficients. The cross-frame mask is then
``sigmoid(P_t+1 @ tanh(c_t + dc))`` cropped by the shifted box.
"""
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import roi_align

from .correlation import local_correlation

__all__ = ["TemporalFusion"]


class TemporalFusion(nn.Module):
    """Correlation + concatenation (Eq. 10) and the temporal net (Fig. 5): box and coefficient shifts."""

    def __init__(
        self,
        in_channels: int,
        up_channels: int,
        stride: int,
        num_prototypes: int = 32,
        patch_size: int = 11,
        conv_dims: Tuple[int, int, int] = (512, 512, 1024),
        pooler_resolution: int = 7,
    ):
        """
        Args:
            in_channels: FPN channels of the correlated level (P4).
            up_channels: channels of the head's ``upfeature`` maps.
            stride: the level's stride in input pixels (RoIs are given in input pixels).
            num_prototypes: mask coefficients per instance.
            patch_size: d of the local correlation (odd).
            conv_dims: the temporal net's three 3x3 convs ([code]: 512, 512, 1024).
            pooler_resolution: RoIAlign output size ([code]: 7).
        """
        super().__init__()
        self.in_channels = in_channels
        self.stride = stride
        self.patch_size = patch_size
        self.pooler_resolution = pooler_resolution
        channels = patch_size**2 + 2 * up_channels
        layers = []
        for dim in conv_dims:
            layers += [nn.Conv2d(channels, dim, 3, padding=1), nn.ReLU(inplace=True)]
            channels = dim
        self.convs = nn.Sequential(*layers)
        self.box_shift = nn.Linear(channels, 4)
        self.coef_shift = nn.Linear(channels, num_prototypes)
        for layer in (self.box_shift, self.coef_shift):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def fuse(self, feat_t: torch.Tensor, feat_next: torch.Tensor, up_t: torch.Tensor, up_next: torch.Tensor) -> torch.Tensor:
        """Eq. 10: (B, d^2 + 2 * up, H, W) = ReLU([LeakyReLU(corr(f_t, f_t+1)), up_t, up_t+1])."""
        corr = F.leaky_relu(local_correlation(feat_t, feat_next, self.patch_size), 0.1)
        return torch.relu(torch.cat([corr, up_t, up_next], dim=1))

    def forward(self, fused: torch.Tensor, boxes: List[torch.Tensor]) -> Tuple[torch.Tensor, torch.Tensor]:
        """The shifts of frame t's boxes, per image of ``fused``.

        Args:
            fused: (B, C, H, W) output of :meth:`fuse`.
            boxes: per image, (R_b, 4) XYXY boxes of frame t in input pixels.

        Returns:
            (R, 4) box shifts (deltas relative to the boxes themselves) and (R, K) coefficient shifts,
            R = sum R_b, in the order of ``boxes``.
        """
        if sum(len(b) for b in boxes) == 0:
            empty = fused.new_zeros((0, self.box_shift.out_features))
            return empty, fused.new_zeros((0, self.coef_shift.out_features))
        rois = roi_align(fused, [b.to(fused.dtype) for b in boxes], self.pooler_resolution,
                         spatial_scale=1.0 / self.stride, sampling_ratio=2, aligned=True)  # fmt: skip
        x = self.convs(rois).mean(dim=(2, 3))
        return self.box_shift(x), self.coef_shift(x)
