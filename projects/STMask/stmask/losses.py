"""STMask's frame-level training losses (the official code's choices; weights in ``MODEL.STMASK.LOSS``).

- anchors matched to ground truth by IoU: positive > 0.5, negative < 0.4, in between ignored, and each
  object's best anchor positive (YOLACT's rule; the code's extra class-agreement term and its neutral zone for
  anchors covering two objects are left out [ours]);
- class: softmax cross-entropy with online hard negative mining (3 negatives per positive);
- box: DIoU loss on the decoded boxes; centerness: smooth-L1 from tanh(centerness) to the decoded box's DIoU;
- mask: :func:`mask_loss` on the linear-combination masks;
- track: a pairwise loss on the cosine similarity of the positive anchors' embeddings over all images of the
  batch (same instance id: -log s, different: -log(1 - s), s = (cos + 1) / 2).

Every loss is a mean over the batch's positive anchors (pairs for the track loss).
"""
import torch
import torch.nn.functional as F
from detectron2.layers.losses import diou_loss

__all__ = ["box_and_centerness_losses", "hard_negative_class_loss", "pairwise_track_loss"]


def hard_negative_class_loss(logits: torch.Tensor, labels: torch.Tensor, neg_pos_ratio: int = 3) -> torch.Tensor:
    """Softmax CE over the positives and the hardest negatives, per positive.

    Args:
        logits: (A, K + 1) class logits, background last.
        labels: (A,) class in [0, K) for positives, K for negatives, -1 for ignored anchors.
    """
    background = logits.shape[1] - 1
    ce = F.cross_entropy(logits, labels.clamp(min=0), reduction="none")
    positive = (labels >= 0) & (labels < background)
    negative = labels == background
    num_pos = int(positive.sum())
    num_neg = min(int(negative.sum()), neg_pos_ratio * max(num_pos, 1))
    hardest = ce.detach().masked_fill(~negative, -1.0).topk(num_neg).indices
    return (ce[positive].sum() + ce[hardest].sum()) / max(num_pos, 1)


def box_and_centerness_losses(pred_boxes: torch.Tensor, gt_boxes: torch.Tensor, centerness: torch.Tensor):
    """(P, 4) decoded boxes of the positives, their (P, 4) targets and (P,) tanh centerness ->
    (DIoU loss, centerness loss), each a mean over the positives."""
    if len(pred_boxes) == 0:
        zero = pred_boxes.sum() + centerness.sum()
        return zero, zero
    losses = diou_loss(pred_boxes, gt_boxes, reduction="none")
    diou = (1.0 - losses).detach()
    return losses.mean(), F.smooth_l1_loss(centerness, diou, reduction="mean")


def pairwise_track_loss(embeds: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """The track loss over all pairs (i < j) of the (P, E) L2-normalised embeddings with instance ``ids``."""
    if len(embeds) < 2:
        return embeds.sum() * 0.0
    similarity = ((embeds @ embeds.t() + 1.0) / 2.0).clamp(1e-6, 1 - 1e-6)
    same = (ids[:, None] == ids[None, :]).to(similarity.dtype)
    loss = -(same * similarity.log() + (1 - same) * (1 - similarity).log())
    upper = torch.triu(torch.ones_like(similarity, dtype=torch.bool), diagonal=1)
    return loss[upper].mean()
