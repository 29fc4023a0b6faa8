"""The R-CNN family of online video models: MaskTrack R-CNN, TFA (cascade) and CompFeat.

Training: the RPN and the R-CNN heads run on the key frame (detection and mask losses on the key frame,
or on every annotated frame with ``MODEL.VIDEO.DETECT_ALL_FRAMES``), and the ROI heads get the reference
frames' features and ground truth for their tracking loss (MaskTrack R-CNN §3.2). Support frames reach
:meth:`OnlineVideoModel.temporal_features` (identity here; CompFeat's attention, for instance).

Inference, per frame (the loop of :class:`OnlineVideoModel`): proposals, box head + track embeddings
(``roi_heads.detect``), the tracker on boxes rescaled to the original resolution, then the mask head for
the kept detections only (``roi_heads.predict_masks``), pasted at the original resolution.

``roi_heads`` with a track branch (:class:`TrackROIHeads`, :class:`CascadeTrackROIHeads`) provide
``forward(..., ref_features=, ref_targets=)``, ``detect``, ``predict_masks`` and ``track_head``, whose
``match_scores`` the tracker uses. Plain detectron2 heads (``StandardROIHeads``) also work: frames are then
detected and segmented in one call and the tracker has no appearance cue (the detector-only baseline).
"""
from typing import Dict, List

import torch

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, build_proposal_generator, build_roi_heads
from detectron2.structures import ImageList, Instances
from torch import nn

from ..tracker import build_tracker
from .clip_frames import FrameBatch
from .online_video_model import FeatureDict, OnlineVideoModel

__all__ = ["OnlineVideoRCNN", "mean_detection_losses"]


def mean_detection_losses(frame_losses: List[Dict[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The losses of a clip from those of its detected frames (the key frame first): each detection loss
    is its mean over the frames; ``loss_track``, which only the key frame's heads compute, is kept as is."""
    losses = dict(frame_losses[0])
    for other in frame_losses[1:]:
        for name, value in other.items():
            losses[name] = losses[name] + value
    return {k: v if k == "loss_track" else v / len(frame_losses) for k, v in losses.items()}


@META_ARCH_REGISTRY.register()
class OnlineVideoRCNN(OnlineVideoModel):
    """Backbone + RPN + R-CNN heads with a track branch, and an online tracker at test time."""

    @configurable
    def __init__(
        self,
        *,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        detect_all_frames: bool = False,
        **kwargs,
    ):
        """
        Args:
            proposal_generator: as in detectron2's ``GeneralizedRCNN``.
            roi_heads: R-CNN heads, normally with a track branch (e.g. :class:`TrackROIHeads`).
            detect_all_frames: detection and mask losses on the reference frames too, averaged with
                the key frame's (``MODEL.VIDEO.DETECT_ALL_FRAMES``, ours); False trains detection on
                the key frame only, as the official MaskTrack R-CNN does.
            kwargs: the arguments of :class:`OnlineVideoModel` (backbone, tracker, pixel_mean, ...).
        """
        super().__init__(**kwargs)
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.detect_all_frames = detect_all_frames

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        shapes = ret["backbone"].output_shape()
        ret["proposal_generator"] = build_proposal_generator(cfg, shapes)
        ret["roi_heads"] = build_roi_heads(cfg, shapes)
        track_head = getattr(ret["roi_heads"], "track_head", None)
        # The tracker's appearance score is the track head's own (one definition for training and tracking).
        ret["tracker"] = build_tracker(cfg, match_scores=getattr(track_head, "match_scores", None))
        ret["detect_all_frames"] = cfg.MODEL.VIDEO.DETECT_ALL_FRAMES
        return ret

    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        """Losses of one batch of clips: detection/mask losses on the key frame, track loss vs. refs."""
        if key.targets is None:
            raise ValueError("Training clips need 'instances'")
        key_features = self.temporal_features(key.features, [s.features for s in supports])
        proposals, proposal_losses = self.proposal_generator(key.images, key_features, key.targets)
        ref_kwargs = {}
        if refs:
            ref_kwargs = {"ref_features": [r.features for r in refs], "ref_targets": [r.targets for r in refs]}
        _, detector_losses = self.roi_heads(key.images, key_features, proposals, key.targets, **ref_kwargs)
        frame_losses = [{**detector_losses, **proposal_losses}]
        if self.detect_all_frames and refs:
            # Reference frames are annotated and already through the backbone: their detection losses
            # cost only the heads.
            for ref in refs:
                ref_proposals, ref_proposal_losses = self.proposal_generator(ref.images, ref.features, ref.targets)
                _, ref_detector_losses = self.roi_heads(ref.images, ref.features, ref_proposals, ref.targets)
                frame_losses.append({**ref_detector_losses, **ref_proposal_losses})
        return mean_detection_losses(frame_losses)

    def detect_frame(self, images: ImageList, features: FeatureDict) -> Instances:
        """Proposals, then boxes, scores, classes and ``pred_track_embeds`` (no masks yet)."""
        proposals, _ = self.proposal_generator(images, features, None)
        if hasattr(self.roi_heads, "detect"):
            return self.roi_heads.detect(features, proposals)[0]
        # Heads without a track branch: detectron2's own inference, masks of every detection included.
        return self.roi_heads(images, features, proposals)[0][0]

    def predict_masks(self, features: FeatureDict, detections: Instances) -> Instances:
        """Box-relative (N, 1, M, M) mask probabilities from the mask head, for the given boxes."""
        return self.roi_heads.predict_masks(features, [detections])[0]
