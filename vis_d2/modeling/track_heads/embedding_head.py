"""MaskTrack R-CNN's tracking branch (Yang et al., "Video Instance Segmentation", ICCV 2019, §3.2).

The fourth branch of the R-CNN head maps the 7x7 box RoI features of each region to an embedding f.
A region i of the key frame is matched against the N reference objects j (the reference frame's
ground-truth boxes in training, the tracker memory at test time) through the logits
``[0, f_i·f_1, ..., f_i·f_N]``: the constant 0 is the "new object" entry, so a softmax over the row
is the paper's Eq. (2), ``p_i(0) = 1 / (1 + Σ_j exp(f_i·f_j))``. Training minimises the cross
entropy ``L_track = -Σ_i log p_i(y_i)`` over the positive RoIs of the key frame.

The loss and the inference step are small free functions, in the manner of detectron2's
``mask_head.py``, so other heads (e.g. a correlation head) can reuse the label computation. The same
logits give the tracker its appearance score (:meth:`EmbeddingTrackHead.match_scores`), so training and
tracking share one definition of similarity.
"""
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.structures import Instances
from detectron2.utils.events import get_event_storage
from torch import nn
from torch.nn import functional as F

from .build import TRACK_HEAD_REGISTRY

__all__ = [
    "EmbeddingTrackHead",
    "track_match_logits",
    "track_pid_targets",
    "masktrack_match_scores",
    "masktrack_track_loss",
    "track_head_inference",
    "scale_gradient",
]


class _ScaleGradient(torch.autograd.Function):
    """Identity forward; the backward pass multiplies the gradient by ``scale``."""

    @staticmethod
    def forward(ctx, x, scale):
        ctx.scale = scale
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.scale, None


def scale_gradient(x: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` in the forward pass (exactly); its gradient multiplied by ``scale`` in the backward pass.

    ``scale`` 1 returns ``x`` itself, 0 a detached copy: the loss computed from the result then trains only
    what comes after this point, not the features it was computed from.
    """
    if scale == 1.0:
        return x
    if scale == 0.0:
        return x.detach()
    return _ScaleGradient.apply(x, float(scale))


def track_match_logits(key_embeds: torch.Tensor, ref_embeds: torch.Tensor) -> torch.Tensor:
    """Matching logits of Eq. (2): a constant 0 "new object" column, then dot products.

    Args:
        key_embeds: (N, D) embeddings of the key-frame regions.
        ref_embeds: (M, D) embeddings of the reference objects.

    Returns:
        (N, 1 + M) logits; column 0 is the dummy entry, column j + 1 is ``key_i · ref_j``
        (no normalisation, no temperature, as in the official code).
    """
    sim = key_embeds @ ref_embeds.t()
    return torch.cat([sim.new_zeros(sim.shape[0], 1), sim], dim=1)


def masktrack_match_scores(det_embeds: torch.Tensor, mem_embeds: torch.Tensor) -> torch.Tensor:
    """The tracker's appearance term: log p_i(n) of Eq. (2), a log-softmax over the match logits.

    Args:
        det_embeds: (N, D) embeddings of the current frame's detections.
        mem_embeds: (M, D) embeddings of the tracks in memory.

    Returns:
        (N, 1 + M) float log-probabilities; column 0 is "new object", column j + 1 track j.
    """
    return F.log_softmax(track_match_logits(det_embeds, mem_embeds).float(), dim=1)


def track_pid_targets(key_gt_ids: torch.Tensor, ref_gt_ids: torch.Tensor) -> torch.Tensor:
    """Track labels of key-frame regions: the column of their instance among the reference objects.

    Args:
        key_gt_ids: (N,) instance (track) ids of the ground truth each key-frame region is assigned to.
        ref_gt_ids: (M,) instance ids of the reference frame's ground-truth objects, in the order
            their embeddings are given to :func:`track_match_logits`.

    Returns:
        (N,) long: ``1 + (index of the same id in ref_gt_ids)``, or 0 ("new object") when the
        instance is absent from the reference frame.
    """
    same = key_gt_ids[:, None] == ref_gt_ids[None, :]  # (N, M)
    present = same.any(dim=1)
    # argmax over a bool->long row gives the first match; ids are unique within a frame anyway.
    first = same.long().argmax(dim=1) if same.shape[1] > 0 else torch.zeros_like(key_gt_ids)
    return torch.where(present, first + 1, torch.zeros_like(first)).long()


def masktrack_track_loss(logits: List[torch.Tensor], targets: List[torch.Tensor]) -> torch.Tensor:
    """Cross entropy of Eq. (2) over positive RoIs, averaged per image, then over images.

    Follows the official code: each image's loss is the mean over its positive RoIs, and the sum
    over images is divided by the number of images (an image without positives adds 0).

    Args:
        logits: per image, (N_i, 1 + M_i) logits from :func:`track_match_logits` for its N_i
            positive RoIs.
        targets: per image, (N_i,) long labels from :func:`track_pid_targets`.

    Returns:
        Scalar loss (0 with a graph attached when no image has a positive RoI).
    """
    assert len(logits) == len(targets) and len(logits) > 0
    total = sum(l.sum() for l in logits) * 0.0  # keeps the graph when nothing below contributes
    for logits_i, targets_i in zip(logits, targets):
        if targets_i.numel() > 0:
            total = total + F.cross_entropy(logits_i, targets_i, reduction="mean")
    return total / len(logits)


def track_head_inference(embeds: torch.Tensor, pred_instances: List[Instances]) -> None:
    """Attach the embeddings to the predicted instances as ``pred_track_embeds`` (R_i, D), in place.

    Args:
        embeds: (R, D) embeddings of all predicted instances of the batch, in image order.
        pred_instances: per image, the instances the embeddings were computed for (R = Σ R_i).
    """
    num_per_image = [len(x) for x in pred_instances]
    for embeds_i, instances in zip(embeds.split(num_per_image, dim=0), pred_instances):
        instances.pred_track_embeds = embeds_i


@TRACK_HEAD_REGISTRY.register()
class EmbeddingTrackHead(nn.Module):
    """Fully connected embedding head of MaskTrack R-CNN.

    Flattens the (C, h, w) RoI features and applies ``NUM_FC`` fully connected layers of
    ``FC_DIM`` channels with ReLU between them (official: 12544 -> 1024, ReLU, 1024, no ReLU after
    the last layer; mmtrack also puts a ReLU after the last one: ``RELU_AFTER_LAST``). Weights are
    initialised N(0, 0.01), biases 0, as in the official code.
    """

    @configurable
    def __init__(
        self,
        input_shape: ShapeSpec,
        *,
        fc_dims: List[int],
        relu_after_last: bool = False,
        loss_weight: float = 1.0,
        feature_grad_scale: float = 1.0,
    ):
        """
        Args:
            input_shape: shape of one pooled RoI feature (channels, height, width).
            fc_dims: output size of each fully connected layer; the last is the embedding size D.
            relu_after_last: apply a ReLU to the embedding too.
            loss_weight: multiplier of the tracking loss.
            feature_grad_scale: multiplier of the tracking loss's gradient where it leaves this head
                for the RoI features it reads, i.e. for the shared backbone and FPN (training only). 1
                (the paper) trains them for tracking too; 0 trains the head alone on the detector's
                features. The head's own weights get the full gradient either way.
        """
        super().__init__()
        if len(fc_dims) == 0:
            raise ValueError("EmbeddingTrackHead needs at least one fully connected layer")
        in_dim = input_shape.channels * (input_shape.height or 1) * (input_shape.width or 1)
        layers = []
        for k, out_dim in enumerate(fc_dims):
            fc = nn.Linear(in_dim, out_dim)
            nn.init.normal_(fc.weight, mean=0.0, std=0.01)
            nn.init.constant_(fc.bias, 0.0)
            layers.append(fc)
            if k < len(fc_dims) - 1 or relu_after_last:
                layers.append(nn.ReLU(inplace=True))
            in_dim = out_dim
        self.fcs = nn.Sequential(*layers)
        self.embed_dim = in_dim
        self.loss_weight = loss_weight
        if feature_grad_scale < 0:
            raise ValueError(f"feature_grad_scale must be >= 0, got {feature_grad_scale}")
        self.feature_grad_scale = feature_grad_scale

    @classmethod
    def from_config(cls, cfg, input_shape):
        head = cfg.MODEL.TRACK_HEAD
        return {
            "input_shape": input_shape,
            "fc_dims": [head.FC_DIM] * head.NUM_FC,
            "relu_after_last": head.RELU_AFTER_LAST,
            "loss_weight": head.LOSS_WEIGHT,
            "feature_grad_scale": head.FEATURE_GRAD_SCALE,
        }

    def forward(self, roi_features: torch.Tensor) -> torch.Tensor:
        """
        Args:
            roi_features: (R, C, h, w) pooled RoI features (the box head's 7x7 features).

        Returns:
            (R, D) track embeddings.
        """
        if self.training:
            roi_features = scale_gradient(roi_features, self.feature_grad_scale)
        return self.fcs(roi_features.flatten(1))

    def match_scores(self, det_embeds: torch.Tensor, mem_embeds: torch.Tensor) -> torch.Tensor:
        """What the tracker calls: (N, D), (M, D) -> (N, 1 + M) log p_i(n); see :func:`masktrack_match_scores`."""
        return masktrack_match_scores(det_embeds, mem_embeds)

    def losses(
        self,
        key_embeds: List[torch.Tensor],
        ref_embeds: List[torch.Tensor],
        targets: List[torch.Tensor],
    ) -> Dict[str, torch.Tensor]:
        """Tracking loss of one batch against one reference frame per image.

        Args:
            key_embeds: per image, (N_i, D) embeddings of the key frame's positive RoIs.
            ref_embeds: per image, (M_i, D) embeddings of the reference frame's GT objects.
            targets: per image, (N_i,) labels from :func:`track_pid_targets`.

        Returns:
            ``{"loss_track": scalar}``. Also logs ``track_head/accuracy`` (argmax == label over
            positive RoIs) to the event storage.
        """
        logits = [track_match_logits(k, r) for k, r in zip(key_embeds, ref_embeds)]
        loss = masktrack_track_loss(logits, targets)
        num = sum(t.numel() for t in targets)
        if num > 0:
            with torch.no_grad():
                correct = sum((l.argmax(dim=1) == t).sum() for l, t in zip(logits, targets))
            get_event_storage().put_scalar("track_head/accuracy", float(correct) / num)
        return {"loss_track": loss * self.loss_weight}
