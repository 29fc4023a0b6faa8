"""The multi-cue tracker with the state STMask's temporal fusion moves from frame to frame."""
from typing import Dict, Optional

import torch
from detectron2.structures import Instances

from vis_d2.modeling.tracker import TRACKER_REGISTRY, MultiCueTracker

__all__ = ["STMaskTracker"]


@TRACKER_REGISTRY.register()
class STMaskTracker(MultiCueTracker):
    """:class:`MultiCueTracker` that also keeps each track's raw mask coefficients and score, and lets the
    model move every track to the current frame before matching (:meth:`move_tracks`).

    STMask matches the current frame's detections against its tracks *shifted* into the current frame by the
    temporal fusion (box, mask coefficients and mask), not against where they were last seen.
    """

    def detection_state(self, detections: Optional[Instances]) -> Dict[str, torch.Tensor]:
        if detections is None or not detections.has("pred_coefs"):
            return {}
        return {"coefs": detections.pred_coefs.detach().float(), "scores": detections.scores.detach().float()}

    def move_tracks(self, *, boxes: torch.Tensor, coefs: torch.Tensor, scores: torch.Tensor, masks: Optional[torch.Tensor] = None):
        """Overwrite every track's box (M, 4), coefficients (M, K), score (M,) and, with the mask cue, its
        low-resolution mask (M, h, w); when each track was last seen is left as it is."""
        state = self._memory.state
        if len(self) == 0:
            return
        if boxes.shape[0] != len(self) or coefs.shape[0] != len(self):
            raise ValueError(f"move_tracks got {boxes.shape[0]} boxes and {coefs.shape[0]} coefficient rows for {len(self)} tracks")
        state["boxes"] = boxes.detach().float()
        state["coefs"] = coefs.detach().float()
        state["scores"] = scores.detach().float()
        if masks is not None and "masks" in state:
            state["masks"] = masks.detach() if masks.dtype == torch.bool else masks.detach() >= 0.5
