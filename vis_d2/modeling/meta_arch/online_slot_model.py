"""The query / slot family of online video models (HITF).

The model keeps L slots (instance codes, queries); each frame, every slot predicts a class distribution
over C classes + "no object" and a mask over the whole image. Slot i holds the same instance in every frame
of a video, so identity is the slot index: detections carry ``pred_ids`` and the ``IdentityTracker``
(``MODEL.TRACKER.NAME: "IdentityTracker"``) turns them into track ids without any matching. There are no
boxes: masks are image-covering (N, h, w), resized to the original resolution by the shared loop.
"""
from typing import Dict, List, Tuple

import torch
from detectron2.structures import ImageList, Instances

from .clip_frames import FrameBatch
from .online_video_model import FeatureDict, OnlineVideoModel

__all__ = ["OnlineSlotVideoModel", "slots_to_detections"]


def slots_to_detections(
    class_probs: torch.Tensor, mask_probs: torch.Tensor, image_size: Tuple[int, int], score_threshold: float
) -> Instances:
    """One frame's slot outputs -> the detections of the slots that hold an object.

    Args:
        class_probs: (L, C + 1) probabilities per slot, the last column "no object".
        mask_probs: (L, h, w) mask probabilities covering the padded network input.
        image_size: the network input size of the frame.
        score_threshold: a slot is a detection when its best object-class probability is above this.

    Returns:
        ``Instances`` with ``scores``, ``pred_classes`` (the best object class), ``pred_ids`` (the slot
        index) and ``pred_masks`` (K, h, w), for the K slots above the threshold, in slot order.
    """
    scores, classes = class_probs[:, :-1].max(dim=1)
    keep = scores > score_threshold
    out = Instances(image_size)
    out.scores = scores[keep]
    out.pred_classes = classes[keep]
    out.pred_ids = torch.nonzero(keep).flatten()
    out.pred_masks = mask_probs[keep]
    return out


class OnlineSlotVideoModel(OnlineVideoModel):
    """Backbone + slots; subclasses (HITF) implement :meth:`predict_slots` and :meth:`slot_losses`.

    Temporal fusion between frames (HITF's inter-frame attention on the codes and features of the
    previous frames) goes through the base's one hook and cache: :meth:`temporal_features` with
    :meth:`context_entry` choosing what a frame leaves for the next ones.
    """

    def __init__(self, *, num_slots: int, score_threshold: float = 0.05, **kwargs):
        """
        Args:
            num_slots: L, the number of slots (HITF: 10).
            score_threshold: minimum object-class probability for a slot to be output.
            kwargs: the arguments of :class:`OnlineVideoModel`; its ``tracker`` is normally an
                :class:`IdentityTracker`.
        """
        super().__init__(**kwargs)
        self.num_slots = int(num_slots)
        self.score_threshold = float(score_threshold)

    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        if key.targets is None:
            raise ValueError("Training clips need 'instances'")
        features = self.temporal_features(key.features, [s.features for s in supports])
        return self.slot_losses(key, features, refs)

    def slot_losses(self, key: FrameBatch, features: FeatureDict, refs: List[FrameBatch]) -> Dict[str, torch.Tensor]:
        """Training: losses of the slots' predictions on the key frames (HITF: a matching of slots to the
        instances of the key and reference frames jointly, so a slot keeps its instance across frames)."""
        raise NotImplementedError

    def predict_slots(self, images: ImageList, features: FeatureDict) -> Tuple[torch.Tensor, torch.Tensor]:
        """Inference on one frame: ``(class_probs (L, C + 1), mask_probs (L, h, w))``, the masks covering
        the padded input ``images.tensor``."""
        raise NotImplementedError

    def detect_frame(self, images: ImageList, features: FeatureDict) -> Instances:
        class_probs, mask_probs = self.predict_slots(images, features)
        if class_probs.shape[0] != self.num_slots or mask_probs.shape[0] != self.num_slots:
            raise ValueError(
                f"predict_slots must give one row per slot ({self.num_slots}), got class probabilities "
                f"{tuple(class_probs.shape)} and masks {tuple(mask_probs.shape)}"
            )
        return slots_to_detections(class_probs, mask_probs, images.image_sizes[0], self.score_threshold)

    def predict_masks(self, features: FeatureDict, detections: Instances) -> Instances:
        return detections  # the slots' masks come with their detections
