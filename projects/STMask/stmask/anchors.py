"""Anchors of STMask's feature calibration for anchors (FCA, Li et al., CVPR 2021, §3.1.1).

Each prediction branch has one output kernel per anchor shape, and each anchor has the shape of its kernel's
receptive field on the level: kernels (kh, kw) = (3, 3), (3, 5), (5, 3) give anchors of 3s x 3s, 3s x 5s and
5s x 3s pixels (h x w) at a level of stride s, i.e. aspect ratios w/h of 1, 5/3 and 3/5 and one scale per
level. Anchor centres sit in the middle of their cells ((i + 0.5) s), as in the official code. With FCA off,
the anchors are YOLACT's (one scale of 3 cells, w/h = 1, 1/2, 2) and every output kernel is 3x3.
"""
import math
from typing import List, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.anchor_generator import ANCHOR_GENERATOR_REGISTRY
from detectron2.structures import Boxes
from torch import nn

__all__ = ["FCAAnchorGenerator", "yolact_anchor_shapes"]


def yolact_anchor_shapes(scale_cells: float = 3.0, aspect_ratios=(1.0, 0.5, 2.0)) -> List[Tuple[float, float]]:
    """(h, w) in cells of YOLACT's anchors, the baseline that FCA replaces: one scale, w / h = a."""
    return [(scale_cells / math.sqrt(a), scale_cells * math.sqrt(a)) for a in aspect_ratios]


@ANCHOR_GENERATOR_REGISTRY.register()
class FCAAnchorGenerator(nn.Module):
    """One anchor per kernel shape at every location of every level, sized in cells of that level.

    The output follows detectron2's anchor generators: per level, ``Boxes`` of (H_l * W_l * A, 4) in
    XYXY pixels, ordered row-major over locations, then by kernel shape (A = number of shapes).
    """

    box_dim: int = 4

    @configurable
    def __init__(self, *, strides: Sequence[int], anchor_shapes: Sequence[Tuple[float, float]]):
        """
        Args:
            strides: the levels' strides in pixels.
            anchor_shapes: (h, w) of each anchor in feature cells: FCA's kernel shapes, or
                :func:`yolact_anchor_shapes` when FCA is off.
        """
        super().__init__()
        if not anchor_shapes or any(len(k) != 2 or min(k) <= 0 for k in anchor_shapes):
            raise ValueError(f"anchor_shapes must be (h, w) pairs of positive sizes, got {anchor_shapes}")
        self.strides = [int(s) for s in strides]
        self.anchor_shapes = [(float(h), float(w)) for h, w in anchor_shapes]

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        fca = cfg.MODEL.STMASK.FCA
        shapes = fca.KERNEL_SHAPES if fca.ENABLED else yolact_anchor_shapes(3.0, (1.0, 0.5, 2.0))
        return {"strides": [s.stride for s in input_shape], "anchor_shapes": shapes}

    @property
    def num_cell_anchors(self) -> List[int]:
        return [len(self.anchor_shapes)] * len(self.strides)

    @property
    def num_anchors(self) -> List[int]:
        return self.num_cell_anchors

    def level_anchors(self, height: int, width: int, stride: int, device=None) -> torch.Tensor:
        """(height * width * A, 4) XYXY anchors of one level."""
        ys = (torch.arange(height, dtype=torch.float32, device=device) + 0.5) * stride
        xs = (torch.arange(width, dtype=torch.float32, device=device) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy, cx, cy], dim=-1).reshape(-1, 1, 4)  # (HW, 1, 4)
        half = torch.tensor(
            [[-w / 2, -h / 2, w / 2, h / 2] for h, w in self.anchor_shapes], dtype=torch.float32, device=device
        ) * stride  # (A, 4)
        return (centres + half[None]).reshape(-1, 4)

    def forward(self, features: List[torch.Tensor]) -> List[Boxes]:
        """Anchors of the levels whose (B, C, H_l, W_l) feature maps are given."""
        if len(features) != len(self.strides):
            raise ValueError(f"{len(features)} feature maps for {len(self.strides)} anchor levels")
        return [
            Boxes(self.level_anchors(f.shape[-2], f.shape[-1], s, f.device)) for f, s in zip(features, self.strides)
        ]
