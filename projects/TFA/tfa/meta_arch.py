"""TFA (Dong et al., "Temporal Feature Augmented Network for Video Instance Segmentation", ICCV 2019
Workshops): Cascade Mask R-CNN + MaskTrack R-CNN's track
head, RoI features augmented with proposals of other frames (§2.2), a mask-IoU tracking cue (§2.3).

Training clips are N frames (``INPUT.SAMPLING_FRAME_NUM``): the key frame, MaskTrack R-CNN's reference
frame(s) of the track loss, and ``INPUT.SAMPLING_SUPPORT_NUM`` support frames. Every frame goes through
backbone and RPN; the top-t proposals of all N frames by objectness form the clip's support pool; the key
frame (and, with ``MODEL.VIDEO.DETECT_ALL_FRAMES``, the reference frames) are detected with that pool.

Inference is online: each frame's own top-t RoI features go into the :class:`FrameCache` (its
``context_entry``), and a frame's pool is the top-t of its own and the last N-1 frames' entries: nothing is
recomputed. ``MODEL.TFA.TEST_SUPPORT "uniform"`` uses N-1 frames spread over the whole video instead
(offline: computed once per video, before the first frame).
"""
from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, ImageList, Instances

from vis_d2.modeling import OnlineVideoRCNN
from vis_d2.modeling.meta_arch.clip_frames import FrameBatch
from vis_d2.modeling.meta_arch.online_video_rcnn import mean_detection_losses

from .augmentation import SupportRoIs, merge_support_rois

__all__ = ["TFA"]

TEST_SUPPORTS = ("causal", "uniform")


@META_ARCH_REGISTRY.register()
class TFA(OnlineVideoRCNN):
    """:class:`OnlineVideoRCNN` with :class:`TFAROIHeads`: support pools in training and at inference.

    With ``MODEL.TFA.ENABLED False`` it is a Cascade Mask R-CNN with MaskTrack R-CNN's track head (the
    ablation "TFA off"): no pool is built and no support frame is cached.
    """

    @configurable
    def __init__(self, *, test_support: str = "causal", num_support_frames: int = 2, **kwargs):
        """
        Args:
            test_support: "causal" (the previous N-1 frames, from the cache) or "uniform" (N-1 frames
                spread over the whole video; offline).
            num_support_frames: N-1, the frames besides the current one whose proposals join the pool at
                inference.
            kwargs: the arguments of :class:`OnlineVideoRCNN`; ``roi_heads`` must be :class:`TFAROIHeads`.
        """
        if test_support not in TEST_SUPPORTS:
            raise ValueError(f"MODEL.TFA.TEST_SUPPORT must be one of {TEST_SUPPORTS}, got {test_support!r}")
        super().__init__(**kwargs)
        if not hasattr(self.roi_heads, "clip_support"):
            raise ValueError(f"TFA needs MODEL.ROI_HEADS.NAME 'TFAROIHeads', got {type(self.roi_heads).__name__}")
        self.test_support = test_support
        self.num_support_frames = int(num_support_frames)
        self._video_support: List[SupportRoIs] = []  # the "uniform" frames' pools of the current video
        self._frame_pools: Optional[tuple] = None  # (own pool, merged pool) of the frame being processed

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        t = cfg.MODEL.TFA
        n = cfg.MODEL.VIDEO.CONTEXT_FRAMES
        num_support = cfg.INPUT.SAMPLING_FRAME_NUM - 1 if n < 0 else n
        ret["num_support_frames"] = num_support
        ret["test_support"] = t.TEST_SUPPORT
        # The cache holds the previous frames' pools only when they are what inference reads.
        ret["context_frames"] = num_support if t.ENABLED and t.TEST_SUPPORT == "causal" else 0
        return ret

    @property
    def tfa_enabled(self) -> bool:
        return self.roi_heads.tfa_enabled

    # ------------------------------------------------------------------------------ training
    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        """Detection losses of the key frame (and the reference frames with ``detect_all_frames``) with the
        clip's support pool, and the track loss against the reference frames."""
        if not self.tfa_enabled:
            return super().forward_clip(key, refs, supports)
        if key.targets is None:
            raise ValueError("Training clips need 'instances'")
        detected = [key] + (list(refs) if self.detect_all_frames else [])
        context_only = [r for r in refs if not self.detect_all_frames] + list(supports)
        rpn_outputs = [self.proposal_generator(f.images, f.features, f.targets) for f in detected]
        with torch.no_grad():
            # Only the ranking of these frames' proposals matters: no RPN loss, no gradient.
            context_proposals = [self.proposal_generator(f.images, f.features, _targets_of(f))[0] for f in context_only]
        support = self.roi_heads.clip_support(
            [f.features for f in detected + context_only], [p for p, _ in rpn_outputs] + context_proposals
        )
        frame_losses = []
        for i, (frame, (proposals, rpn_losses)) in enumerate(zip(detected, rpn_outputs)):
            ref_kwargs = {}
            if i == 0 and refs:
                ref_kwargs = {"ref_features": [r.features for r in refs], "ref_targets": [r.targets for r in refs]}
            _, det_losses = self.roi_heads(frame.images, frame.features, proposals, frame.targets, support=support, **ref_kwargs)
            frame_losses.append({**det_losses, **rpn_losses})
        return mean_detection_losses(frame_losses)

    # ------------------------------------------------------------------------------ inference
    def begin_video(self, video: dict):
        super().begin_video(video)
        self._video_support = []
        self._frame_pools = None
        if self.tfa_enabled and self.test_support == "uniform" and self.num_support_frames > 0:
            frames = video["image"]
            steps = torch.linspace(0, len(frames) - 1, self.num_support_frames).round().long().unique()
            with torch.no_grad():
                for t in steps.tolist():
                    images = self.preprocess_image([frames[t]])
                    features = self.backbone(images.tensor)
                    proposals, _ = self.proposal_generator(images, features, None)
                    self._video_support.append(self.roi_heads.frame_support(features, proposals)[0])

    def detect_frame(self, images: ImageList, features: Dict[str, torch.Tensor]) -> Instances:
        if not self.tfa_enabled:
            return super().detect_frame(images, features)
        proposals, _ = self.proposal_generator(images, features, None)
        own = self.roi_heads.frame_support(features, proposals)[0]
        context = self._video_support if self.test_support == "uniform" else self.frame_cache.entries()
        pool = merge_support_rois(context + [own], self.roi_heads.top_k)
        self._frame_pools = (own, pool)
        return self.roi_heads.detect(features, proposals, support=[pool])[0]

    def context_entry(self, features, detections: Instances) -> SupportRoIs:
        """A frame leaves its own top-t RoI features (and their embeddings) to the next frames."""
        return self._frame_pools[0]

    def predict_masks(self, features, detections: Instances) -> Instances:
        if not self.tfa_enabled:
            return super().predict_masks(features, detections)
        return self.roi_heads.predict_masks(features, [detections], support=[self._frame_pools[1]])[0]


def _targets_of(frame: FrameBatch) -> List[Instances]:
    """A frame's targets, or empty ones (the RPN asks for targets in training mode even when unused)."""
    if frame.targets is not None:
        return frame.targets
    return [Instances(size, gt_boxes=Boxes(torch.zeros(0, 4))) for size in frame.images.image_sizes]
