"""The online multi-cue tracker (``MODEL.TRACKER.NAME: "MultiCueTracker"``, the default).

MaskTrack R-CNN (Yang et al., ICCV 2019), Eq. (2)-(3): each detection of the current frame is
assigned either to a track in memory or to a dummy "new object" entry, by the argmax of

    comp(i, n) = EMBED_WEIGHT * log p_i(n) + SCORE_WEIGHT * log(score_i) + BOX_IOU_WEIGHT * IoU(box_i, box_n)
                 + LABEL_WEIGHT * [label_i == label_n] + MASK_IOU_WEIGHT * maskIoU(i, n)

where ``log p_i`` comes from the track head (``match_scores``; MaskTrack R-CNN: a log-softmax over
``[0, f_i·f_1, ..., f_i·f_M]``). The mask-IoU cue is TFA's "deformation factor" (Dong et al., ICCVW 2019);
it is off when its weight is 0. The rules for conflicts and memory follow the official MaskTrack R-CNN code
(``mmdet/models/detectors/two_stage.py``); the optional forgetting of stale tracks follows mmtrack's
``num_frames_retain``.
"""
import logging
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.structures import Boxes, Instances, pairwise_iou

from ..track_heads.embedding_head import masktrack_match_scores
from .build import TRACKER_REGISTRY, BaseTracker, MatchScores
from .memory import TrackMemory

__all__ = ["MultiCueTracker", "OnlineTracker", "pairwise_mask_iou"]

logger = logging.getLogger(__name__)

# Detection scores are clamped before the log so a zero score gives a large negative term, not -inf
# (an all -inf row would make the argmax meaningless and the conflict resolution undefined).
_MIN_SCORE = 1e-12


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


def _scores_from_similarity(similarity: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> MatchScores:
    """(N, M) similarity logits -> :data:`MatchScores`, with MaskTrack's constant-0 "new object" logit."""

    def match_scores(det_embeds, mem_embeds):
        sim = similarity(det_embeds, mem_embeds).float()
        return F.log_softmax(torch.cat([sim.new_zeros(sim.shape[0], 1), sim], dim=1), dim=1)

    return match_scores


@TRACKER_REGISTRY.register()
class MultiCueTracker(BaseTracker):
    """Assigns track ids to per-frame detections of one video, one frame at a time.

    Reads ``scores``, ``pred_classes`` and, when present, ``pred_track_embeds`` (appearance),
    ``pred_boxes`` (box IoU) and ``track_masks`` (mask IoU); a missing cue contributes nothing. The
    embeddings may have any shape (N, ...): only ``match_scores`` reads them (a correlation head can take
    RoI feature templates (N, C, 7, 7), for instance). The memory
    (:class:`TrackMemory`) holds one row per live track: the state of :meth:`detection_state` (embedding,
    box, label and, with the mask-IoU cue, a low-resolution mask) plus the last-seen frame, on the device
    of the inputs; it never holds per-frame history, so it stays bounded by the number of tracks (and by
    MEMORY_RETAIN_FRAMES). A subclass that keeps more per track (e.g. a template) extends
    :meth:`detection_state` and :meth:`comp_scores`.

    Usage::

        tracker = MultiCueTracker(cfg, match_scores=track_head.match_scores)
        for video in videos:
            tracker.reset()
            for t in range(video_length):
                ids = tracker.update(t, detections)            # an Instances, see BaseTracker
                # or, the same with the fields spelled out:
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
        min_match_iou: float = 0.0,
        min_match_iou_frames: int = -1,
        match_scores: Optional[MatchScores] = None,
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
            min_match_iou: g > 0 lets a detection match only tracks whose last box it overlaps with
                IoU >= g (the others are out of reach, whatever the other cues say); 0, the official
                code, lets every track compete.
            min_match_iou_frames: K >= 0 applies the ``min_match_iou`` gate only to tracks last seen at
                most K frames ago, so that a track unseen for longer (occluded, or out of the frame) can
                still be re-identified anywhere by the other cues; -1 applies it to every track.
            match_scores: the track head's appearance score, ``(det_embeds (N, D), mem_embeds (M, D))
                -> (N, 1 + M)`` log-probabilities with column 0 the "new object" entry; default
                MaskTrack R-CNN's (:func:`masktrack_match_scores`). Models pass their track head's.
            similarity: instead of ``match_scores``, a plain ``(N, D), (M, D) -> (N, M)`` similarity;
                MaskTrack's constant-0 "new object" logit and the log-softmax are added around it.
        """
        if not 0.0 <= min_match_iou <= 1.0:
            raise ValueError(f"min_match_iou must be in [0, 1], got {min_match_iou}")
        if min_match_iou_frames < -1:
            raise ValueError(f"min_match_iou_frames must be >= -1, got {min_match_iou_frames}")
        if memory_retain_frames < -1:
            raise ValueError(f"memory_retain_frames must be >= -1, got {memory_retain_frames}")
        if match_scores is not None and similarity is not None:
            raise ValueError("Give the tracker either match_scores or similarity, not both")
        # fmt: off
        self.embed_weight         = float(embed_weight)
        self.score_weight         = float(score_weight)
        self.box_iou_weight       = float(box_iou_weight)
        self.label_weight         = float(label_weight)
        self.mask_iou_weight      = float(mask_iou_weight)
        self.memory_retain_frames = int(memory_retain_frames)
        self.update_label         = bool(update_label)
        self.min_match_iou        = float(min_match_iou)
        self.min_match_iou_frames = int(min_match_iou_frames)
        self.similarity           = similarity
        # fmt: on
        if similarity is not None:
            match_scores = _scores_from_similarity(similarity)
        self.match_scores = match_scores if match_scores is not None else masktrack_match_scores
        self._memory = TrackMemory()
        self._frame_idx = 0  # the frame being matched (read by comp_scores)
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
            "min_match_iou": t.MIN_MATCH_IOU,
            "min_match_iou_frames": t.MIN_MATCH_IOU_FRAMES,
        }

    @property
    def uses_masks(self) -> bool:
        """Whether :meth:`update` uses (and the memory stores) masks."""
        return self.mask_iou_weight > 0

    def reset(self):
        """Forget every track and restart ids at 0. Call at the start of each video."""
        self._next_id = 0
        self._memory.clear()

    def __len__(self) -> int:
        """Number of tracks in memory."""
        return len(self._memory)

    def memory(self) -> Dict[str, torch.Tensor]:
        """A read-only view of the memory, one row per live track (for inspection and tests).

        Returns:
            dict with "track_ids" (M,) long, "last_seen" (M,) long and the stored state: "embeddings"
            (M, D), "boxes" (M, 4), "labels" (M,) long, "masks" (M, h, w) bool (those that are stored),
            plus any state a subclass adds, under its own name. Empty dict when no track was created
            since the last reset.
        """
        mem = self._memory
        if mem.track_ids is None:
            return {}
        names = {"embeds": "embeddings"}
        out = {"track_ids": mem.track_ids, "last_seen": mem.last_seen}
        out.update({names.get(k, k): v for k, v in mem.state.items()})
        return {k: v.clone() for k, v in out.items()}

    # ------------------------------------------------------------------------------------ update
    @torch.no_grad()
    def update(
        self,
        frame_idx: int,
        detections: Optional[Instances] = None,
        *,
        embeddings: Optional[torch.Tensor] = None,
        boxes: Optional[torch.Tensor] = None,
        scores: Optional[torch.Tensor] = None,
        labels: Optional[torch.Tensor] = None,
        masks: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Assign ids to the detections of one frame and update the memory.

        Frames must come in increasing order; frame 0 starts a new video (the memory is reset, as in
        the official code's ``is_first``), so calling :meth:`reset` before it is optional.

        Args:
            frame_idx: index of the frame in its video.
            detections: the frame's detections (see :class:`BaseTracker`); or leave it None and give:
            embeddings: (N, D) track embeddings of the detections (``pred_track_embeds``).
            boxes: (N, 4) XYXY boxes in original image coordinates (``pred_boxes``).
            scores: (N,) detection scores in (0, 1].
            labels: (N,) long class ids (``pred_classes``).
            masks: optional (N, h, w) bool, or float in [0, 1] (binarised at 0.5), at a low fixed
                resolution (the same for the whole video; e.g. the original size / 4) (``track_masks``).
                Used only when ``mask_iou_weight > 0``; a frame without masks stores empty masks, which
                give mask IoU 0 later.

        Returns:
            (N,) long track ids on the device of the scores: an existing id (match), a new id
            (new track; ids are 0, 1, 2, ... in creation order within the video) or -1 (dropped:
            the detection lost a conflict for an existing track to a detection with a higher comp).
        """
        if detections is not None:
            embeddings = detections.pred_track_embeds if detections.has("pred_track_embeds") else None
            boxes = detections.pred_boxes.tensor if detections.has("pred_boxes") else None
            scores, labels = detections.scores, detections.pred_classes
            masks = detections.track_masks if detections.has("track_masks") else None
        if frame_idx == 0:
            self.reset()
        if scores is None or labels is None:
            raise ValueError("The tracker needs the detections' scores and labels")
        n = scores.shape[0]
        device = embeddings.device if embeddings is not None else scores.device
        shapes_ok = labels.shape == (n,) and (boxes is None or boxes.shape == (n, 4))
        if scores.dim() != 1 or not shapes_ok or (embeddings is not None and embeddings.shape[0] != n):
            shape = lambda x: None if x is None else tuple(x.shape)  # noqa: E731
            raise ValueError(
                f"Inconsistent detection shapes: embeddings {shape(embeddings)}, boxes {shape(boxes)}, "
                f"scores {shape(scores)}, labels {shape(labels)}"
            )
        # Memory must not keep an autograd graph alive across frames.
        state = {
            "embeds": None if embeddings is None else embeddings.detach(),
            "boxes": None if boxes is None else boxes.detach().to(device=device, dtype=torch.float32),
            "labels": labels.detach().to(device=device, dtype=torch.long),
            "masks": self._prepare_masks(masks, n, device),
        }
        state.update(self.detection_state(detections))
        scores = scores.detach().to(device=device, dtype=torch.float32)

        self._forget_stale(frame_idx)
        ids = torch.full((n,), -1, dtype=torch.long, device=device)
        if n == 0:
            return ids
        if len(self) == 0:
            self._add_tracks(torch.ones(n, dtype=torch.bool, device=device), ids, frame_idx, state)
            return ids

        self._frame_idx = frame_idx
        comp = self.comp_scores(state, scores)  # (N, 1 + M)
        match = comp.argmax(dim=1)  # torch.argmax returns the first maximum: ties go to "new"
        is_new = match == 0
        winners = self._resolve_conflicts(comp, match)
        rows = match[winners] - 1
        ids[winners] = self._memory.track_ids[rows]
        matched_state = {k: v[winners] for k, v in state.items() if v is not None}
        if not self.update_label:
            del matched_state["labels"]
        self._memory.set(rows, frame_idx, matched_state)
        self._add_tracks(is_new, ids, frame_idx, state)
        return ids

    def detection_state(self, detections: Optional[Instances]) -> Dict[str, torch.Tensor]:
        """Extension point: extra per-detection state to store per track (name -> (N, ...)); none here.

        Stored like the built-in state: appended for new tracks, overwritten on a match.
        """
        return {}

    def comp_scores(self, state: Dict[str, Optional[torch.Tensor]], scores: torch.Tensor) -> torch.Tensor:
        """(N, 1 + M) assignment scores of the detections against the memory; column 0 is "new object".

        Args:
            state: the detections' state (the keys of the memory's state, None where absent).
            scores: (N,) float detection scores.
        """
        mem = self._memory.state
        n = scores.shape[0]
        embeddings = state["embeds"]
        if embeddings is not None and "embeds" in mem:
            comp = self.embed_weight * self.match_scores(embeddings, mem["embeds"].to(embeddings.dtype)).float()
        else:
            comp = scores.new_zeros(n, 1 + len(self))
        comp = comp + self.score_weight * torch.log(scores.clamp(min=_MIN_SCORE))[:, None]

        has_boxes = state["boxes"] is not None and "boxes" in mem
        if has_boxes and (self.box_iou_weight != 0 or self.min_match_iou > 0):
            box_iou = pairwise_iou(Boxes(state["boxes"]), Boxes(mem["boxes"]))
            comp[:, 1:] += self.box_iou_weight * box_iou
            if self.min_match_iou > 0:
                out_of_reach = box_iou < self.min_match_iou
                if self.min_match_iou_frames >= 0:
                    recent = (self._frame_idx - self._memory.last_seen) <= self.min_match_iou_frames
                    out_of_reach &= recent[None, :]
                comp[:, 1:].masked_fill_(out_of_reach, float("-inf"))
        # Dummy column: IoU 0, mask IoU 0, label consistency counted as equal (official code).
        same_label = (state["labels"][:, None] == mem["labels"][None, :]).float()
        comp[:, 1:] += self.label_weight * same_label
        comp[:, 0] += self.label_weight
        if state["masks"] is not None and "masks" in mem:
            comp[:, 1:] += self.mask_iou_weight * pairwise_mask_iou(state["masks"], mem["masks"])
        return comp

    # ------------------------------------------------------------------------------------ internals
    def _prepare_masks(self, masks, n, device):
        """Binarise masks, or stand in empty ones; returns (N, h, w) bool or None."""
        if not self.uses_masks:
            return None
        stored = self._memory.state.get("masks")
        if masks is None:
            if stored is None:
                return None
            return torch.zeros((n,) + tuple(stored.shape[1:]), dtype=torch.bool, device=device)
        if masks.dim() != 3 or masks.shape[0] != n:
            raise ValueError(f"masks must be (N={n}, h, w), got {tuple(masks.shape)}")
        masks = masks.detach().to(device)
        masks = masks if masks.dtype == torch.bool else masks >= 0.5
        if stored is None:
            if len(self) > 0:
                # Masks appear after tracks were created without them: those tracks get empty masks.
                shape = (len(self),) + tuple(masks.shape[1:])
                self._memory.state["masks"] = torch.zeros(shape, dtype=torch.bool, device=device)
        elif stored.shape[1:] != masks.shape[1:]:
            raise ValueError(
                f"Mask resolution must stay fixed within a video: memory has "
                f"{tuple(stored.shape[1:])}, got {tuple(masks.shape[1:])}"
            )
        return masks

    def _forget_stale(self, frame_idx: int):
        if self.memory_retain_frames < 0 or len(self) == 0:
            return
        keep = (frame_idx - self._memory.last_seen) <= self.memory_retain_frames
        if not bool(keep.all()):
            self._memory.keep(keep)

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

    def _add_tracks(self, is_new: torch.Tensor, ids: torch.Tensor, frame_idx: int, state: Dict):
        """Start one track per True entry of ``is_new`` (N,); write the new ids into ``ids``."""
        k = int(is_new.sum())
        if k == 0:
            return
        new_ids = torch.arange(self._next_id, self._next_id + k, dtype=torch.long, device=ids.device)
        self._next_id += k
        ids[is_new] = new_ids
        self._memory.add(new_ids, frame_idx, {k: v[is_new] for k, v in state.items() if v is not None})


#: The name this tracker had before the registry; kept so that existing imports keep working.
OnlineTracker = MultiCueTracker
