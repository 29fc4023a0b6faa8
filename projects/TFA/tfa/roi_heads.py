"""Cascade track heads whose RoI features are augmented with a support pool (TFA, §2.2)."""
import logging
from contextlib import contextmanager
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances

from vis_d2.modeling import CascadeTrackROIHeads

from .augmentation import SupportRoIs, TemporalFeatureAugmentation

__all__ = ["TFAROIHeads"]

logger = logging.getLogger(__name__)

FeatureDict = Dict[str, torch.Tensor]


@ROI_HEADS_REGISTRY.register()
class TFAROIHeads(CascadeTrackROIHeads):
    """:class:`CascadeTrackROIHeads` whose stages read temporally augmented RoI features.

    Every entry point takes ``support``: one :class:`SupportRoIs` pool per image (built by
    :meth:`clip_support` in training, :meth:`frame_support` + ``merge_support_rois`` at inference). With a
    pool, the box RoI features of the cascade stages in ``stages`` are replaced by (or summed with) their
    Eq. 2 weighted sums of the pool's features before the stage's box head; the final stage's features
    also feed the track head (the paper: all four branches). The mask branch's 14x14 RoI features are
    augmented with the weights computed from the same boxes' 7x7 embeddings (``augment_masks``), so no
    second embedding is needed. Without a pool (``support=None``) or with ``MODEL.TFA.ENABLED False``,
    these heads compute exactly what :class:`CascadeTrackROIHeads` computes.
    """

    @configurable
    def __init__(
        self,
        *,
        augmentation: Optional[TemporalFeatureAugmentation],
        stages: Sequence[int] = (0, 1, 2),
        top_k: int = 100,
        augment_masks: bool = True,
        detach_support: bool = False,
        **kwargs,
    ):
        """
        Args:
            augmentation: the Eq. 1-2 module, or None to turn TFA off.
            stages: the cascade stages (0-based) whose box RoI features are augmented.
            top_k: t, the size of a support pool: the top proposals by RPN objectness.
            augment_masks: also augment the mask branch's RoI features.
            detach_support: stop gradients at the support RoI features (training memory); the default
                trains end to end through them.
            kwargs: the arguments of :class:`CascadeTrackROIHeads`.
        """
        super().__init__(**kwargs)
        self.augmentation = augmentation
        self.stages = tuple(int(s) for s in stages)
        bad = [s for s in self.stages if not 0 <= s < self.num_cascade_stages]
        if bad:
            raise ValueError(f"MODEL.TFA.STAGES {list(stages)}: stages must be in [0, {self.num_cascade_stages})")
        if top_k < 1:
            raise ValueError(f"MODEL.TFA.TOP_K must be >= 1, got {top_k}")
        self.top_k = int(top_k)
        self.augment_masks = bool(augment_masks) and self.mask_on
        if self.augment_masks and self.mask_pooler is None:
            raise ValueError("TFA's mask augmentation needs a pooled mask head (MODEL.ROI_MASK_HEAD.POOLER_TYPE)")
        self.detach_support = detach_support
        if augmentation is not None and augmentation.fusion == "replace" and detach_support and self.stages:
            # r <- sum_j s_ij r_j with r_j detached: the box, class and mask losses then reach the backbone only
            # through the similarity weights, never through the RoI features themselves.
            logger.warning(
                "MODEL.TFA.FUSION 'replace' with DETACH_SUPPORT True: the detection losses reach the backbone only "
                "through the similarity weights (measured: the tiny model does not learn); use 'residual' or "
                "train end to end"
            )
        self._support: Optional[List[SupportRoIs]] = None

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        t = cfg.MODEL.TFA
        augmentation = None
        if t.ENABLED:
            channels = input_shape[cfg.MODEL.ROI_HEADS.IN_FEATURES[0]].channels
            resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
            augmentation = TemporalFeatureAugmentation(cfg, ShapeSpec(channels=channels, height=resolution, width=resolution))
        ret.update(
            augmentation=augmentation,
            stages=t.STAGES,
            top_k=t.TOP_K,
            augment_masks=t.AUGMENT_MASKS,
            detach_support=t.DETACH_SUPPORT,
        )
        return ret

    @property
    def tfa_enabled(self) -> bool:
        return self.augmentation is not None

    # ------------------------------------------------------------------------------ support pools
    def frame_support(self, features: FeatureDict, proposals: List[Instances]) -> List[SupportRoIs]:
        """Each image's own pool: the RoI features of its ``top_k`` proposals by objectness (inference:
        one frame's entry of the cache)."""
        top = []
        for p in proposals:
            k = min(self.top_k, len(p))
            top.append(p[p.objectness_logits.topk(k).indices])
        return self._pool_support(features, [p.proposal_boxes for p in top], [p.objectness_logits for p in top])

    def clip_support(self, frame_features: List[FeatureDict], frame_proposals: List[List[Instances]]) -> List[SupportRoIs]:
        """Training: per clip, the ``top_k`` proposals by objectness among all its frames' proposals.

        Args:
            frame_features: per frame slot of the clips, the backbone features (B, C, H, W).
            frame_proposals: per frame slot, the B clips' RPN proposals.

        Returns:
            B pools. Only the selected proposals are pooled, each from its own frame's features.
        """
        num_clips = len(frame_proposals[0])
        chosen = [[None] * num_clips for _ in frame_proposals]  # [frame][clip] -> selected Instances
        for b in range(num_clips):
            scores = torch.cat([props[b].objectness_logits for props in frame_proposals])
            frame_of = torch.cat([torch.full((len(props[b]),), f, dtype=torch.long) for f, props in enumerate(frame_proposals)])
            keep = scores.topk(min(self.top_k, len(scores))).indices
            for f, props in enumerate(frame_proposals):
                offset = sum(len(p[b]) for p in frame_proposals[:f])
                chosen[f][b] = props[b][keep[frame_of[keep] == f] - offset]
        per_frame = [
            self._pool_support(feats, [c.proposal_boxes for c in chosen_f], [c.objectness_logits for c in chosen_f])
            for feats, chosen_f in zip(frame_features, chosen)
        ]
        return [
            SupportRoIs(
                torch.cat([frames[b].box_features for frames in per_frame]),
                torch.cat([frames[b].embeds for frames in per_frame]),
                torch.cat([frames[b].objectness for frames in per_frame]),
                torch.cat([frames[b].mask_features for frames in per_frame]) if self.augment_masks else None,
            )
            for b in range(num_clips)
        ]

    def _pool_support(self, features: FeatureDict, boxes: List[Boxes], objectness: List[torch.Tensor]) -> List[SupportRoIs]:
        """Pool (and embed) the RoI features of the given boxes, one pool per image."""
        counts = [len(b) for b in boxes]
        box_features = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        mask_features = None
        if self.augment_masks:
            mask_features = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
        if self.detach_support:
            box_features = box_features.detach()
            mask_features = None if mask_features is None else mask_features.detach()
        embeds = self.augmentation.embed(box_features)
        masks = mask_features.split(counts) if mask_features is not None else [None] * len(counts)
        return [
            SupportRoIs(bf, e, o.detach(), m)
            for bf, e, o, m in zip(box_features.split(counts), embeds.split(counts), objectness, masks)
        ]

    @contextmanager
    def _using_support(self, support: Optional[List[SupportRoIs]], num_images: int):
        """Make ``support`` the pools the stages and the mask branch read during one call."""
        if support is not None:
            if not self.tfa_enabled:
                raise ValueError("A TFA support pool was given but MODEL.TFA.ENABLED is False")
            if len(support) != num_images:
                raise ValueError(f"{len(support)} support pools for {num_images} images")
        previous, self._support = self._support, support
        try:
            yield
        finally:
            self._support = previous

    # ------------------------------------------------------------------------------ augmented features
    def stage_roi_features(self, stage: int, features: List[torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        roi_features = self.box_pooler(features, boxes)
        if self._support is None or stage not in self.stages:
            return roi_features
        parts = roi_features.split([len(b) for b in boxes])
        return torch.cat([self.augmentation(part, pool) for part, pool in zip(parts, self._support)])

    def _forward_mask(self, features: FeatureDict, instances: List[Instances]):
        if self._support is None or not self.augment_masks:
            return super()._forward_mask(features, instances)
        if self.training:
            instances, _ = select_foreground_proposals(instances, self.num_classes)
        boxes = [x.proposal_boxes if self.training else x.pred_boxes for x in instances]
        counts = [len(b) for b in boxes]
        mask_features = self.mask_pooler([features[f] for f in self.mask_in_features], boxes)
        box_features = self.box_pooler([features[f] for f in self.box_in_features], boxes)
        augmented = []
        for masks, boxes_f, pool in zip(mask_features.split(counts), box_features.split(counts), self._support):
            if len(pool) == 0 or len(masks) == 0:
                augmented.append(masks)
                continue
            weights = self.augmentation.weights(self.augmentation.embed(boxes_f), pool.embeds)
            augmented.append(self.augmentation.fuse(masks, weights, pool.mask_features))
        return self.mask_head(torch.cat(augmented), instances)

    # ------------------------------------------------------------------------------ entry points
    def forward(
        self,
        images: ImageList,
        features: FeatureDict,
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
        ref_features=None,
        ref_targets=None,
        support: Optional[List[SupportRoIs]] = None,
    ):
        """As :meth:`CascadeTrackROIHeads.forward`, with the per-image ``support`` pools (None: no TFA).

        In training the reference frames' ground-truth RoIs of the track loss are augmented with the same
        pools: they come from the same clip, as at inference every frame's embeddings are augmented.
        """
        with self._using_support(support, len(proposals)):
            return super().forward(images, features, proposals, targets, ref_features, ref_targets)

    def detect(self, features: FeatureDict, proposals: List[Instances], support: Optional[List[SupportRoIs]] = None):
        with self._using_support(support, len(proposals)):
            return super().detect(features, proposals)

    def predict_masks(self, features: FeatureDict, instances: List[Instances], support: Optional[List[SupportRoIs]] = None):
        with self._using_support(support, len(instances)):
            return super().predict_masks(features, instances)
