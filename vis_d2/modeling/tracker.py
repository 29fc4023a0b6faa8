"""Online multi-cue tracker shared by every vis_d2 method.

MaskTrack R-CNN (Yang et al., ICCV 2019), Eq. (2)-(3): each detection of the current frame is
assigned either to a track in memory or to a dummy "new object" entry, by the argmax of

    comp(i, n) = EMBED_WEIGHT * log p_i(n) + SCORE_WEIGHT * log(score_i) + BOX_IOU_WEIGHT * IoU(box_i, box_n)
                 + LABEL_WEIGHT * [label_i == label_n] + MASK_IOU_WEIGHT * maskIoU(i, n)

where ``p_i = softmax([0, s_i1, ..., s_iM])`` and ``s`` is an embedding similarity (a dot product in
MaskTrack R-CNN). The mask-IoU cue is TFA's "deformation factor" (Liu et al., ICCVW 2019); it is off
when its weight is 0. The rules for conflicts and memory follow the official MaskTrack R-CNN code
(``mmdet/models/detectors/two_stage.py``); the optional forgetting of stale tracks follows mmtrack's
``num_frames_retain``.
"""
import logging
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.structures import Boxes, pairwise_iou

__all__ = ["OnlineTracker", "dot_product_similarity", "pairwise_mask_iou"]

logger = logging.getLogger(__name__)

# Detection scores are clamped before the log so a zero score gives a large negative term, not -inf
# (an all -inf row would make the argmax meaningless and the conflict resolution undefined).
_MIN_SCORE = 1e-12


def dot_product_similarity(det_embeds: torch.Tensor, mem_embeds: torch.Tensor) -> torch.Tensor:
    """MaskTrack R-CNN's similarity: a plain dot product, no normalisation, no temperature.

    Args:
        det_embeds: (N, D) embeddings of the current detections.
        mem_embeds: (M, D) embeddings stored in the tracker memory.

    Returns:
        (N, M) similarity logits.
    """
    return det_embeds @ mem_embeds.t()


def pairwise_mask_iou(masks1: torch.Tensor, masks2: torch.Tensor) -> torch.Tensor:
    """IoU of every pair of binary masks, computed as one matrix product.

    Args:
        masks1: (N, h, w) bool.
        masks2: (M, h, w) bool, same resolution as ``masks1``.

    Returns:
        (N, M) float IoU; 0 where both masks are empty.
    """
    a = masks1.flatten(1).float()
    b = masks2.flatten(1).float()
    inter = a @ b.t()
    union = a.sum(1)[:, None] + b.sum(1)[None, :] - inter
    return inter / union.clamp(min=1.0)


class OnlineTracker:
    """Assigns track ids to per-frame detections of one video, one frame at a time.

    Memory holds one entry per live track (embedding, box, label, last-seen frame and, when the
    mask-IoU cue is on, a low-resolution mask), on the device of the inputs; it never holds
    per-frame history, so it stays bounded by the number of tracks (and by MEMORY_RETAIN_FRAMES).

    Usage::

        tracker = OnlineTracker(cfg)                  # or OnlineTracker(cfg, similarity=my_fn)
        for video in videos:
            tracker.reset()
            for t in range(video_length):
                ids = tracker.update(t, embeddings=e, boxes=b, scores=s, labels=l)

    Differences from the official code, on purpose: the memory stores the detection's embedding
    (orig stores RoI features and re-embeds them with the current head, which is the same thing at
    test time when the weights are fixed); a detection that loses a conflict gets id -1 explicitly
    (orig leaves it to the output dict to overwrite it).
    """

    @configurable
    def __init__(
        self,
        *,
        embed_weight: float = 1.0,
        score_weight: float = 1.0,
        box_iou_weight: float = 2.0,
        label_weight: float = 10.0,
        mask_iou_weight: float = 0.0,
        memory_retain_frames: int = -1,
        update_label: bool = False,
        similarity: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    ):
        """
        Args:
            embed_weight: weight of the appearance term log p_i(n) (1 in MaskTrack R-CNN); 0 turns
                the embedding cue off, leaving score, box IoU, label (and mask IoU).
            score_weight: weight of log(detection score) (MaskTrack's match_coeff[0]).
            box_iou_weight: weight of the box IoU with the track's last box (match_coeff[1]).
            label_weight: weight of the same-class indicator (match_coeff[2]).
            mask_iou_weight: weight of the mask IoU with the track's last mask (TFA); 0 disables
                the cue, and then masks are neither used nor stored.
            memory_retain_frames: K >= 0 forgets a track once more than K frames have passed since
                it was last seen, i.e. a track last seen at frame t can still be matched at frame
                t + K but not at t + K + 1 (mmtrack's ``num_frames_retain=20`` is K = 20). -1 keeps
                every track for the whole video, as the official code does.
            update_label: on a match, replace the track's label by the detection's (mmtrack);
                the official code keeps the label the track was created with.
            similarity: callable ``(det_embeds (N, D), mem_embeds (M, D)) -> (N, M)`` logits;
                default :func:`dot_product_similarity`. CompFeat swaps in its correlation head.
        """
        if memory_retain_frames < -1:
            raise ValueError(f"memory_retain_frames must be >= -1, got {memory_retain_frames}")
        # fmt: off
        self.embed_weight         = float(embed_weight)
        self.score_weight         = float(score_weight)
        self.box_iou_weight       = float(box_iou_weight)
        self.label_weight         = float(label_weight)
        self.mask_iou_weight      = float(mask_iou_weight)
        self.memory_retain_frames = int(memory_retain_frames)
        self.update_label         = bool(update_label)
        self.similarity           = similarity if similarity is not None else dot_product_similarity
        # fmt: on
        self.reset()

    @classmethod
    def from_config(cls, cfg):
        t = cfg.MODEL.TRACKER
        return {
            "embed_weight": t.EMBED_WEIGHT,
            "score_weight": t.SCORE_WEIGHT,
            "box_iou_weight": t.BOX_IOU_WEIGHT,
            "label_weight": t.LABEL_WEIGHT,
            "mask_iou_weight": t.MASK_IOU_WEIGHT,
            "memory_retain_frames": t.MEMORY_RETAIN_FRAMES,
            "update_label": t.UPDATE_LABEL,
        }

    @property
    def uses_masks(self) -> bool:
        """Whether :meth:`update` uses (and the memory stores) masks."""
        return self.mask_iou_weight > 0

    def reset(self):
        """Forget every track and restart ids at 0. Call at the start of each video."""
        self._next_id = 0
        self._ids = None  # (M,) long: track id of each memory row
        self._embeds = None  # (M, D)
        self._boxes = None  # (M, 4) XYXY, original image coordinates
        self._labels = None  # (M,) long
        self._last_seen = None  # (M,) long: frame index of the last match
        self._masks = None  # (M, h, w) bool, only when uses_masks

    def __len__(self) -> int:
        """Number of tracks in memory."""
        return 0 if self._ids is None else int(self._ids.numel())

    def memory(self) -> Dict[str, torch.Tensor]:
        """A read-only view of the memory, one row per live track (for inspection and tests).

        Returns:
            dict with "track_ids" (M,) long, "embeddings" (M, D), "boxes" (M, 4), "labels" (M,)
            long, "last_seen" (M,) long and, when masks are stored, "masks" (M, h, w) bool.
            Empty dict when the memory is empty since the last reset.
        """
        if self._ids is None:
            return {}
        out = {
            "track_ids": self._ids,
            "embeddings": self._embeds,
            "boxes": self._boxes,
            "labels": self._labels,
            "last_seen": self._last_seen,
        }
        if self._masks is not None:
            out["masks"] = self._masks
        return {k: v.clone() for k, v in out.items()}

    @torch.no_grad()
    def update(
        self,
        frame_idx: int,
        *,
        embeddings: torch.Tensor,
        boxes: torch.Tensor,
        scores: torch.Tensor,
        labels: torch.Tensor,
        masks: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Assign ids to the detections of one frame and update the memory.

        Frames must come in increasing order; frame 0 starts a new video (the memory is reset, as in
        the official code's ``is_first``), so calling :meth:`reset` before it is optional.

        Args:
            frame_idx: index of the frame in its video.
            embeddings: (N, D) track embeddings of the detections.
            boxes: (N, 4) XYXY boxes in original image coordinates.
            scores: (N,) detection scores in (0, 1].
            labels: (N,) long class ids.
            masks: optional (N, h, w) bool, or float in [0, 1] (binarised at 0.5), at a low fixed
                resolution (the same for the whole video; e.g. the original size / 4). Used only
                when ``mask_iou_weight > 0``; a frame without masks stores empty masks, which give
                mask IoU 0 later.

        Returns:
            (N,) long track ids on the device of ``embeddings``: an existing id (match), a new id
            (new track; ids are 0, 1, 2, ... in creation order within the video) or -1 (dropped:
            the detection lost a conflict for an existing track to a detection with a higher comp).
        """
        if frame_idx == 0:
            self.reset()
        n = embeddings.shape[0]
        device = embeddings.device
        if not (boxes.shape == (n, 4) and scores.shape == (n,) and labels.shape == (n,)):
            raise ValueError(
                f"Inconsistent detection shapes: embeddings {tuple(embeddings.shape)}, boxes "
                f"{tuple(boxes.shape)}, scores {tuple(scores.shape)}, labels {tuple(labels.shape)}"
            )
        # Memory must not keep an autograd graph alive across frames.
        embeddings = embeddings.detach()
        boxes = boxes.detach().to(device=device, dtype=torch.float32)
        scores = scores.detach().to(device=device, dtype=torch.float32)
        labels = labels.detach().to(device=device, dtype=torch.long)
        masks = self._prepare_masks(masks, n, device)

        self._forget_stale(frame_idx)
        ids = torch.full((n,), -1, dtype=torch.long, device=device)
        if n == 0:
            return ids
        if len(self) == 0:
            all_new = torch.ones(n, dtype=torch.bool, device=device)
            self._append(all_new, ids, frame_idx, embeddings, boxes, labels, masks)
            return ids

        comp = self._comp_scores(embeddings, boxes, scores, labels, masks)  # (N, 1 + M)
        match = comp.argmax(dim=1)  # torch.argmax returns the first maximum: ties go to "new"
        is_new = match == 0
        winners = self._resolve_conflicts(comp, match)
        rows = match[winners] - 1
        ids[winners] = self._ids[rows]
        self._embeds[rows] = embeddings[winners].to(self._embeds.dtype)
        self._boxes[rows] = boxes[winners]
        self._last_seen[rows] = frame_idx
        if self.update_label:
            self._labels[rows] = labels[winners]
        if self._masks is not None:
            self._masks[rows] = masks[winners]
        self._append(is_new, ids, frame_idx, embeddings, boxes, labels, masks)
        return ids

    def _prepare_masks(self, masks, n, device):
        """Binarise masks, or stand in empty ones; returns (N, h, w) bool or None."""
        if not self.uses_masks:
            return None
        if masks is None:
            if self._masks is None:
                return None
            return torch.zeros((n,) + tuple(self._masks.shape[1:]), dtype=torch.bool, device=device)
        if masks.dim() != 3 or masks.shape[0] != n:
            raise ValueError(f"masks must be (N={n}, h, w), got {tuple(masks.shape)}")
        masks = masks.detach().to(device)
        masks = masks if masks.dtype == torch.bool else masks >= 0.5
        if self._masks is None:
            if len(self) > 0:
                # Masks appear after tracks were created without them: those tracks get empty masks.
                self._masks = torch.zeros(
                    (len(self),) + tuple(masks.shape[1:]), dtype=torch.bool, device=device
                )
        elif self._masks.shape[1:] != masks.shape[1:]:
            raise ValueError(
                f"Mask resolution must stay fixed within a video: memory has "
                f"{tuple(self._masks.shape[1:])}, got {tuple(masks.shape[1:])}"
            )
        return masks

    def _forget_stale(self, frame_idx: int):
        if self.memory_retain_frames < 0 or len(self) == 0:
            return
        keep = (frame_idx - self._last_seen) <= self.memory_retain_frames
        if bool(keep.all()):
            return
        for name in ("_ids", "_embeds", "_boxes", "_labels", "_last_seen", "_masks"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value[keep])

    def _comp_scores(self, embeddings, boxes, scores, labels, masks) -> torch.Tensor:
        """(N, 1 + M) assignment scores; column 0 is the dummy "new object" entry."""
        n = embeddings.shape[0]
        sim = self.similarity(embeddings, self._embeds.to(embeddings.dtype)).float()  # (N, M)
        logits = torch.cat([sim.new_zeros(n, 1), sim], dim=1)  # MaskTrack Eq. 2: dummy logit 0
        comp = self.embed_weight * F.log_softmax(logits, dim=1)
        comp = comp + self.score_weight * torch.log(scores.clamp(min=_MIN_SCORE))[:, None]

        if self.box_iou_weight != 0:
            box_iou = pairwise_iou(Boxes(boxes), Boxes(self._boxes))
            comp[:, 1:] += self.box_iou_weight * box_iou
        # Dummy column: IoU 0, mask IoU 0, label consistency counted as equal (official code).
        same_label = (labels[:, None] == self._labels[None, :]).float()
        comp[:, 1:] += self.label_weight * same_label
        comp[:, 0] += self.label_weight
        if masks is not None and self._masks is not None:
            comp[:, 1:] += self.mask_iou_weight * pairwise_mask_iou(masks, self._masks)
        return comp

    @staticmethod
    def _resolve_conflicts(comp: torch.Tensor, match: torch.Tensor) -> torch.Tensor:
        """Mask (N,) of detections that keep their matched track.

        When several detections pick the same track, the one with the highest comp keeps it (the
        first one on a tie, like the official code's strict ``>``); the others are dropped.
        """
        n, num_cols = comp.shape
        matched = match > 0
        chosen = comp.gather(1, match[:, None]).squeeze(1)
        cols = match[matched]
        best = torch.full((num_cols,), float("-inf"), device=comp.device)
        best = best.scatter_reduce(0, cols, chosen[matched], reduce="amax")
        candidate = matched & (chosen == best[match])
        det_idx = torch.arange(n, device=comp.device)
        first = torch.full((num_cols,), n, dtype=torch.long, device=comp.device)
        first = first.scatter_reduce(0, match[candidate], det_idx[candidate], reduce="amin")
        return candidate & (det_idx == first[match])

    def _append(self, is_new, ids, frame_idx, embeddings, boxes, labels, masks):
        """Start one track per True entry of ``is_new`` (N,); write the new ids into ``ids``."""
        k = int(is_new.sum())
        if k == 0:
            return
        device = embeddings.device
        new_ids = torch.arange(self._next_id, self._next_id + k, dtype=torch.long, device=device)
        self._next_id += k
        ids[is_new] = new_ids
        new_rows = {
            "_ids": new_ids,
            "_embeds": embeddings[is_new],
            "_boxes": boxes[is_new],
            "_labels": labels[is_new],
            "_last_seen": torch.full((k,), frame_idx, dtype=torch.long, device=device),
            "_masks": masks[is_new] if masks is not None else None,
        }
        for name, rows in new_rows.items():
            if rows is None:
                continue
            old = getattr(self, name)
            setattr(self, name, rows.clone() if old is None else torch.cat([old, rows.to(old)]))
