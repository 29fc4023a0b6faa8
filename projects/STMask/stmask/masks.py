"""YOLACT's linear-combination masks, as STMask assembles them (Li et al., CVPR 2021, Eq. 9).

    M = crop(sigmoid(P @ tanh(c)), box)

P: the (h, w, K) prototypes of the frame at stride 4; c: an instance's K raw mask coefficients; crop zeroes
everything outside the box (scaled to the prototypes' resolution).
"""
import torch
import torch.nn.functional as F

__all__ = ["assemble_masks", "crop_to_boxes", "expand_boxes", "mask_loss"]


def crop_to_boxes(masks: torch.Tensor, boxes: torch.Tensor, stride: float) -> torch.Tensor:
    """Zero (N, h, w) masks outside their (N, 4) XYXY boxes given in input pixels (mask pixel = ``stride``)."""
    n, h, w = masks.shape
    ys = (torch.arange(h, device=masks.device, dtype=masks.dtype) + 0.5) * stride
    xs = (torch.arange(w, device=masks.device, dtype=masks.dtype) + 0.5) * stride
    inside_x = (xs[None] >= boxes[:, 0:1]) & (xs[None] < boxes[:, 2:3])  # (N, w)
    inside_y = (ys[None] >= boxes[:, 1:2]) & (ys[None] < boxes[:, 3:4])  # (N, h)
    return masks * (inside_y[:, :, None] & inside_x[:, None, :]).to(masks.dtype)


def expand_boxes(boxes: torch.Tensor, factor: float) -> torch.Tensor:
    """(N, 4) XYXY boxes scaled by ``factor`` about their centres."""
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    half = (boxes[:, 2:] - boxes[:, :2]) / 2 * factor
    return torch.cat([centres - half, centres + half], dim=1)


def assemble_masks(prototypes: torch.Tensor, coefs: torch.Tensor, boxes=None, stride: float = 4.0) -> torch.Tensor:
    """Eq. 9 for one frame.

    Args:
        prototypes: (K, h, w) prototypes.
        coefs: (N, K) raw mask coefficients (tanh is applied here).
        boxes: (N, 4) XYXY crop boxes in input pixels, or None for no crop (training: the loss is cropped).
        stride: input pixels per prototype pixel.

    Returns:
        (N, h, w) mask probabilities, zero outside the boxes.
    """
    probs = torch.sigmoid(torch.einsum("nk,khw->nhw", torch.tanh(coefs), prototypes))
    return probs if boxes is None else crop_to_boxes(probs, boxes, stride)


def mask_loss(pred: torch.Tensor, gt: torch.Tensor, boxes: torch.Tensor, stride: float = 4.0) -> torch.Tensor:
    """Per-instance BCE inside the crop box, normalised by the box's area: (N,) losses.

    The loss map is cropped, not the prediction (YOLACT's way): a crop box smaller than the object leaves the
    rest of the object out of the loss rather than as a certain miss.

    Args:
        pred: (N, h, w) mask probabilities, not cropped.
        gt: (N, H, W) ground-truth masks at the input resolution (resized here to (h, w)).
        boxes: (N, 4) the boxes whose area normalises the loss (in input pixels).
    """
    if len(pred) == 0:
        return pred.sum((1, 2))
    target = F.interpolate(gt[:, None].float(), size=pred.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
    target = (target > 0.5).to(pred.dtype)
    bce = F.binary_cross_entropy(pred.clamp(1e-6, 1 - 1e-6), target, reduction="none")
    bce = crop_to_boxes(bce, boxes, stride).sum((1, 2))
    area = ((boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1]) / stride**2).clamp(min=1.0)
    return bce / area
