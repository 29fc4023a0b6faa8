"""Trackers that need no matching: identities given by the model, or no association at all."""
from typing import Optional

import torch
from detectron2.config import configurable
from detectron2.structures import Instances

from .build import TRACKER_REGISTRY, BaseTracker, MatchScores

__all__ = ["IdentityTracker", "PerFrameTracker"]


def _one_per_id(ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Keep, for each id, its highest-scoring detection (the first one on a tie); -1 for the others."""
    order = torch.argsort(scores, descending=True, stable=True)
    seen = set()
    out = torch.full_like(ids, -1)
    for i in order.tolist():
        track_id = int(ids[i])
        if track_id not in seen:
            seen.add(track_id)
            out[i] = track_id
    return out


@TRACKER_REGISTRY.register()
class IdentityTracker(BaseTracker):
    """Track id = the id the model gave the detection (``pred_ids``), for models whose outputs carry identities.

    The query / slot models (HITF: slot i holds the same instance in every frame of a video) assign
    identities themselves, so there is nothing to match and nothing to remember: this tracker keeps no
    memory at all. Within one frame, a video output holds one mask per track, so when several detections
    carry the same id the highest-scoring one keeps it and the others get -1 (dropped).
    """

    @configurable
    def __init__(self, *, match_scores: Optional[MatchScores] = None):
        """
        Args:
            match_scores: ignored (identities come with the detections); accepted so that every
                registered tracker builds with the same arguments.
        """
        del match_scores

    @classmethod
    def from_config(cls, cfg):
        return {}

    def reset(self):
        pass

    @torch.no_grad()
    def update(self, frame_idx: int, detections: Instances) -> torch.Tensor:
        """
        Args:
            detections: with ``pred_ids`` (N,) non-negative integers and ``scores`` (N,).

        Returns:
            (N,) long: ``pred_ids``, with -1 for the lower-scoring duplicates of an id.
        """
        if not detections.has("pred_ids"):
            raise ValueError("IdentityTracker needs detections with 'pred_ids' (identities assigned by the model)")
        ids = detections.pred_ids.long()
        if bool((ids < 0).any()):
            raise ValueError(f"pred_ids must be >= 0, got {ids.tolist()}")
        return _one_per_id(ids, detections.scores)


@TRACKER_REGISTRY.register()
class PerFrameTracker(BaseTracker):
    """No association: every detection starts a track of its own (ids 0, 1, 2, ... per video).

    The detector-only baseline: what video AP a model reaches without any tracking, and the reference
    that ``tools/benchmark_tracking.py overhead`` times the tracking against.
    """

    @configurable
    def __init__(self, *, match_scores: Optional[MatchScores] = None):
        """
        Args:
            match_scores: ignored; accepted so that every registered tracker builds the same way.
        """
        del match_scores
        self.reset()

    @classmethod
    def from_config(cls, cfg):
        return {}

    def reset(self):
        self._next_id = 0

    @torch.no_grad()
    def update(self, frame_idx: int, detections: Instances) -> torch.Tensor:
        if frame_idx == 0:
            self.reset()
        n = len(detections)
        ids = torch.arange(self._next_id, self._next_id + n, dtype=torch.long, device=detections.scores.device)
        self._next_id += n
        return ids
