"""Registry of online trackers and the protocol they follow (docs/interfaces.md §5)."""
from typing import Callable, Optional

import torch
from detectron2.structures import Instances
from detectron2.utils.registry import Registry

__all__ = ["TRACKER_REGISTRY", "BaseTracker", "MatchScores", "build_tracker"]

# (det_embeds (N, D), mem_embeds (M, D)) -> (N, 1 + M) log-probabilities, column 0 = "new object".
MatchScores = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

TRACKER_REGISTRY = Registry("TRACKER")
TRACKER_REGISTRY.__doc__ = """
Registry for online trackers: they assign track ids to the detections of one frame at a time.

The registered object is called with `obj(cfg, match_scores=...)`, where `match_scores` is the model's
track head's appearance score (a :data:`MatchScores` callable) or None when the model has no track head.
It must follow :class:`BaseTracker`.
"""


def build_tracker(cfg, match_scores: Optional[MatchScores] = None) -> "BaseTracker":
    """Build the tracker named by ``cfg.MODEL.TRACKER.NAME``.

    Args:
        match_scores: the track head's appearance score, e.g.
            :meth:`vis_d2.modeling.EmbeddingTrackHead.match_scores`; the tracker calls nothing else of
            the model, so training and tracking share one definition of similarity.
    """
    return TRACKER_REGISTRY.get(cfg.MODEL.TRACKER.NAME)(cfg, match_scores=match_scores)


class BaseTracker:
    """What the online video models call, frame by frame.

    Usage::

        tracker.reset()                                  # start of a video
        for t in range(length):
            ids = tracker.update(t, detections)          # (N,) long

    ``detections`` is an :class:`Instances` at the original video resolution with ``scores`` (N,) and
    ``pred_classes`` (N,) and, when the model predicts them, any of ``pred_boxes`` (``Boxes``, original
    coordinates), ``pred_track_embeds`` (N, D), ``track_masks`` (N, h, w) bool at a resolution fixed for the
    video (only given when :attr:`uses_masks`), ``pred_ids`` (N,) long identities the model assigned itself,
    or other fields a tracker documents. The returned ids are >= 0 for the track a detection belongs to and
    -1 for a dropped detection (not output). A tracker's memory must stay bounded on long videos: at most a
    fixed amount of state per live track, never per-frame history.
    """

    #: Whether :meth:`update` needs ``track_masks``; the model then predicts every detection's mask before
    #: tracking, instead of only the kept detections' masks after it.
    uses_masks: bool = False

    def reset(self):
        """Forget everything; the next :meth:`update` starts a new video."""
        raise NotImplementedError

    def update(self, frame_idx: int, detections: Instances) -> torch.Tensor:
        """Assign ids to one frame's detections; frames come in increasing order.

        Returns:
            (N,) long track ids; -1 marks a dropped detection.
        """
        raise NotImplementedError
