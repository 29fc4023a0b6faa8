"""One frame's mask predictions -> binary masks / RLEs at the original video resolution.

Models predict masks in one of two kinds (``pred_masks`` of the per-frame detections, docs/interfaces.md §5):

- **box-relative**, (N, 1, M, M) or (N, M, M) probabilities inside each detection's box (R-CNN mask heads:
  MaskTrack R-CNN, TFA, CompFeat): pasted into the image at the box (detectron2's ``paste_masks_in_image``);
- **image-covering**, (N, h, w) probabilities over the whole padded network input, at that resolution or a
  coarser one (prototype or pixel-embedding heads: STMask, HITF): resampled bilinearly (align_corners=False)
  at the centres of the original pixels, which resizes and crops away the padding in one step.

Both are thresholded (``>= threshold``) and encoded ``chunk_size`` masks at a time, so at most that many
full-resolution masks exist at once and nothing dense outlives the frame.
"""
import math
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from detectron2.layers import paste_masks_in_image
from detectron2.structures import Boxes

from .track_aggregation import encode_masks_rle

__all__ = ["encode_frame_masks", "frame_masks_at_stride", "paste_and_encode", "resample_image_masks", "resize_and_encode"]

Size = Tuple[int, int]


def paste_and_encode(
    mask_probs: torch.Tensor,
    boxes: Union[torch.Tensor, Boxes],
    image_size: Size,
    threshold: float = 0.5,
    chunk_size: int = 16,
) -> List[Dict]:
    """Paste box-relative mask predictions into the original image and encode them as RLEs.

    Args:
        mask_probs: (N, M, M) or (N, 1, M, M) mask probabilities in [0, 1] (e.g. M = 28).
        boxes: (N, 4) XYXY boxes in original image coordinates (Tensor or ``Boxes``).
        image_size: (height, width) of the original image.
        threshold: binarisation threshold (MaskTrack R-CNN: 0.5).
        chunk_size: how many masks to paste at once.

    Returns:
        N compressed RLE dicts with str counts, at ``image_size``.
    """
    if mask_probs.dim() == 4:
        mask_probs = mask_probs[:, 0]
    if isinstance(boxes, Boxes):
        boxes = boxes.tensor
    height, width = int(image_size[0]), int(image_size[1])
    rles = []
    for start in range(0, mask_probs.shape[0], chunk_size):
        pasted = paste_masks_in_image(
            mask_probs[start : start + chunk_size],
            boxes[start : start + chunk_size],
            (height, width),
            threshold=threshold,
        )
        rles.extend(encode_masks_rle(pasted))
    return rles


def resample_image_masks(
    mask_probs: torch.Tensor, covered_size: Size, input_size: Size, orig_size: Size, stride: int = 1
) -> torch.Tensor:
    """Image-covering mask probabilities -> probabilities at the original resolution (divided by ``stride``).

    Args:
        mask_probs: (N, h, w) probabilities covering ``covered_size`` pixels of the network input.
        covered_size: (Hp, Wp), the padded network input the masks span (``images.tensor.shape[-2:]``).
        input_size: (h_in, w_in), the frame inside it (``images.image_sizes[0]``), at the top left.
        orig_size: (H, W) of the original video.
        stride: output pixel size in original pixels (1: full resolution).

    Returns:
        (N, ceil(H / stride), ceil(W / stride)) float probabilities: output pixel (y, x) is the bilinear
        sample at original coordinates ((y + 0.5) * stride, (x + 0.5) * stride).
    """
    n, h, w = mask_probs.shape
    out_h, out_w = math.ceil(orig_size[0] / stride), math.ceil(orig_size[1] / stride)
    if n == 0:
        return mask_probs.new_zeros((0, out_h, out_w))
    # original coordinate -> network-input coordinate (x * h_in / H) -> grid_sample's [-1, 1] over the
    # covered span (align_corners=False: -1 and 1 are the outer edges of the first and last cell).
    dev, dt = mask_probs.device, torch.float32
    ys = (torch.arange(out_h, device=dev, dtype=dt) + 0.5) * (stride * input_size[0] / orig_size[0])
    xs = (torch.arange(out_w, device=dev, dtype=dt) + 0.5) * (stride * input_size[1] / orig_size[1])
    gy = (2 * ys / covered_size[0] - 1).view(out_h, 1).expand(out_h, out_w)
    gx = (2 * xs / covered_size[1] - 1).view(1, out_w).expand(out_h, out_w)
    grid = torch.stack([gx, gy], dim=-1)[None].expand(n, out_h, out_w, 2)
    # "border" repeats the edge cells, as F.interpolate does at the image borders.
    out = F.grid_sample(mask_probs[:, None].float(), grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, 0]


def resize_and_encode(
    mask_probs: torch.Tensor,
    covered_size: Size,
    input_size: Size,
    orig_size: Size,
    threshold: float = 0.5,
    chunk_size: int = 16,
) -> List[Dict]:
    """Image-covering mask probabilities (N, h, w) -> N RLEs at ``orig_size``; see :func:`resample_image_masks`."""
    rles = []
    for start in range(0, mask_probs.shape[0], chunk_size):
        probs = resample_image_masks(mask_probs[start : start + chunk_size], covered_size, input_size, orig_size)
        rles.extend(encode_masks_rle(probs >= threshold))
    return rles


def _is_box_relative(mask_probs: torch.Tensor) -> bool:
    if mask_probs.dim() == 4 and mask_probs.shape[1] == 1:
        return True
    if mask_probs.dim() == 3:
        return False
    raise ValueError(f"pred_masks must be (N, 1, M, M) box-relative or (N, h, w) image-covering, got {tuple(mask_probs.shape)}")


def encode_frame_masks(
    mask_probs: torch.Tensor,
    orig_boxes: Optional[torch.Tensor],
    covered_size: Size,
    input_size: Size,
    orig_size: Size,
    threshold: float = 0.5,
    chunk_size: int = 16,
) -> List[Dict]:
    """RLEs at ``orig_size`` of either kind of ``pred_masks``.

    Args:
        mask_probs: (N, 1, M, M) box-relative or (N, h, w) image-covering probabilities.
        orig_boxes: (N, 4) XYXY boxes in original coordinates; needed for box-relative masks only.
        covered_size, input_size: see :func:`resample_image_masks` (used by image-covering masks).

    Returns:
        N compressed RLE dicts with str counts.
    """
    if _is_box_relative(mask_probs):
        if orig_boxes is None:
            raise ValueError("Box-relative masks (N, 1, M, M) need the detections' pred_boxes")
        return paste_and_encode(mask_probs, orig_boxes, orig_size, threshold=threshold, chunk_size=chunk_size)
    return resize_and_encode(mask_probs, covered_size, input_size, orig_size, threshold, chunk_size)


def frame_masks_at_stride(
    mask_probs: torch.Tensor,
    orig_boxes: Optional[torch.Tensor],
    covered_size: Size,
    input_size: Size,
    orig_size: Size,
    stride: int,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Binary masks of either kind at the original resolution divided by ``stride`` (the tracker's mask cue).

    Returns:
        (N, ceil(H / stride), ceil(W / stride)) bool.
    """
    size = (math.ceil(orig_size[0] / stride), math.ceil(orig_size[1] / stride))
    if len(mask_probs) == 0:
        return torch.zeros((0,) + size, dtype=torch.bool, device=mask_probs.device)
    if _is_box_relative(mask_probs):
        if orig_boxes is None:
            raise ValueError("Box-relative masks (N, 1, M, M) need the detections' pred_boxes")
        return paste_masks_in_image(mask_probs[:, 0], orig_boxes / stride, size, threshold=threshold)
    return resample_image_masks(mask_probs, covered_size, input_size, orig_size, stride) >= threshold
