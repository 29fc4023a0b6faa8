"""The dense one-stage family of online video models (STMask).

A fully convolutional ``head`` predicts at every location of some feature levels, as in detectron2's
``DenseDetector`` (RetinaNet, FCOS): no proposals and no RoI pooling. The model learnt from it is
detectron2's split of the work: the base runs the backbone and the head, and subclasses implement
:meth:`forward_training` (losses from the predictions) and :meth:`forward_inference` (decoding one frame's
predictions into detections). Masks are typically image-covering: STMask assembles them from prototypes
(N, h, w) at stride 4 of the padded input, for the kept detections only (:meth:`predict_masks`).
"""
from typing import Dict, List, Optional

import torch
from detectron2.structures import ImageList, Instances
from torch import nn

from .clip_frames import FrameBatch
from .online_video_model import FeatureDict, OnlineVideoModel

__all__ = ["OnlineDenseVideoModel"]


class OnlineDenseVideoModel(OnlineVideoModel):
    """Backbone + a dense head over ``head_in_features``, trained on clips, tracked online.

    Subclasses (STMask) give the head, the losses and the decoding; everything else (clip batching, the
    temporal hook, the tracker, mask encoding and aggregation) is the base's.
    """

    def __init__(self, *, head: nn.Module, head_in_features: Optional[List[str]] = None, **kwargs):
        """
        Args:
            head: called with the list of feature maps [(B, C_l, H_l, W_l)] of ``head_in_features``;
                returns whatever :meth:`forward_training` / :meth:`forward_inference` read.
            head_in_features: backbone feature names given to the head, by default all of them, sorted
                by stride (as ``DenseDetector``).
            kwargs: the arguments of :class:`OnlineVideoModel`.
        """
        super().__init__(**kwargs)
        self.head = head
        if head_in_features is None:
            shapes = self.backbone.output_shape()
            head_in_features = sorted(shapes, key=lambda name: shapes[name].stride)
        self.head_in_features = list(head_in_features)

    def run_head(self, features: FeatureDict):
        """The head on the ``head_in_features`` levels of ``features``."""
        return self.head([features[f] for f in self.head_in_features])

    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        """The head on the key frames' features (after the temporal hook), then :meth:`forward_training`."""
        if key.targets is None:
            raise ValueError("Training clips need 'instances'")
        features = self.temporal_features(key.features, [s.features for s in supports])
        return self.forward_training(key, features, self.run_head(features), refs)

    def forward_training(
        self, key: FrameBatch, features: FeatureDict, predictions, refs: List[FrameBatch]
    ) -> Dict[str, torch.Tensor]:
        """Losses of the key frames' ``predictions`` against ``key.targets``; ``refs`` give the
        reference frames (features and targets) for tracking losses (e.g. ``self.run_head(r.features)``)."""
        raise NotImplementedError

    def detect_frame(self, images: ImageList, features: FeatureDict) -> Instances:
        return self.forward_inference(images, features, self.run_head(features))

    def forward_inference(self, images: ImageList, features: FeatureDict, predictions) -> Instances:
        """One frame's detections from the head's ``predictions`` (see :meth:`OnlineVideoModel.detect_frame`);
        typically without masks, which :meth:`predict_masks` adds for the kept detections."""
        raise NotImplementedError
