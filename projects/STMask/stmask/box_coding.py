"""STMask's (YOLACT's, SSD's) box coding: centre-size deltas with variances (0.1, 0.2).

    cx = a_cx + v0 * t_x * a_w,   cy = a_cy + v0 * t_y * a_h,   w = a_w * exp(v1 * t_w),   h = a_h * exp(v1 * t_h)

FCB's aligned offsets and the temporal fusion's box shifts use the same coding.
"""
from typing import Tuple

import torch

__all__ = ["decode_boxes", "encode_boxes"]


def _centre_size(boxes: torch.Tensor) -> Tuple[torch.Tensor, ...]:
    w = boxes[..., 2] - boxes[..., 0]
    h = boxes[..., 3] - boxes[..., 1]
    return boxes[..., 0] + 0.5 * w, boxes[..., 1] + 0.5 * h, w, h


def encode_boxes(boxes: torch.Tensor, anchors: torch.Tensor, variances=(0.1, 0.2)) -> torch.Tensor:
    """(..., 4) XYXY target boxes relative to (..., 4) XYXY anchors -> (..., 4) deltas (t_x, t_y, t_w, t_h)."""
    bx, by, bw, bh = _centre_size(boxes)
    ax, ay, aw, ah = _centre_size(anchors)
    return torch.stack(
        [(bx - ax) / (variances[0] * aw), (by - ay) / (variances[0] * ah),
         torch.log(bw / aw) / variances[1], torch.log(bh / ah) / variances[1]],
        dim=-1,
    )  # fmt: skip


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor, variances=(0.1, 0.2)) -> torch.Tensor:
    """The inverse of :func:`encode_boxes`: (..., 4) deltas on (..., 4) XYXY anchors -> XYXY boxes."""
    ax, ay, aw, ah = _centre_size(anchors)
    cx = ax + variances[0] * deltas[..., 0] * aw
    cy = ay + variances[0] * deltas[..., 1] * ah
    w = aw * torch.exp(variances[1] * deltas[..., 2])
    h = ah * torch.exp(variances[1] * deltas[..., 3])
    return torch.stack([cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h], dim=-1)
