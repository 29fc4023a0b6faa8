"""MaskTrack R-CNN's tracking branch as a mixin for any detectron2 ROI heads with a box pooler.

Yang et al., ICCV 2019, §3.2, Fig. 2: a fourth branch embeds the 7x7 box RoI features of each region, and
is trained to match the key frame's positive RoIs to the reference frame's ground-truth objects. Mixed into
``StandardROIHeads`` it gives :class:`TrackROIHeads`, into ``CascadeROIHeads`` :class:`CascadeTrackROIHeads`.
The host provides ``box_pooler``, ``box_in_features`` and ``_forward_box`` / ``_forward_mask`` (both of
detectron2's heads do); the mixin adds the ``track_head`` attribute (so checkpoints name its weights
``roi_heads.track_head.*``) and the methods below.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, Instances

from ..track_heads import build_track_head, track_head_inference, track_pid_targets

__all__ = ["TrackBranchMixin"]

FeatureDict = Dict[str, torch.Tensor]


class TrackBranchMixin:
    """A track head on the box RoI features: its training loss, and ``pred_track_embeds`` at inference.

    :meth:`track_roi_features` says which RoI features the track head reads (the box pooler's here; a
    cascade uses its final stage's). Video models call :meth:`detect` (boxes + embeddings, no masks), let
    the tracker choose, then :meth:`predict_masks` for the kept detections only.
    """

    track_head: torch.nn.Module

    @classmethod
    def _init_track_head(cls, cfg, input_shape) -> Dict[str, torch.nn.Module]:
        """``{"track_head": ...}`` for ``from_config``: a ``TRACK_HEAD_REGISTRY`` head on 7x7 box RoIs."""
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[in_features[0]].channels
        shape = ShapeSpec(channels=channels, height=resolution, width=resolution)
        return {"track_head": build_track_head(cfg, shape)}

    def track_roi_features(self, features: FeatureDict, boxes: List[Boxes]) -> torch.Tensor:
        """(R, C, 7, 7) RoI features of the given boxes (per image) that the track head reads."""
        return self.box_pooler([features[f] for f in self.box_in_features], boxes)

    def _track_losses(
        self,
        fg_roi_features: torch.Tensor,
        fg_proposals: List[Instances],
        ref_features: Union[FeatureDict, Sequence[FeatureDict]],
        ref_targets: Union[List[Instances], Sequence[List[Instances]]],
    ) -> Dict[str, torch.Tensor]:
        """``loss_track`` of the positive key RoIs against each reference frame's GT objects.

        Args:
            fg_roi_features: (R, C, 7, 7) track RoI features of the key frames' positive proposals.
            fg_proposals: per image, those proposals, with ``gt_ids`` (instance ids).
            ref_features: the reference frames' features (one dict, or a list of dicts for several
                reference frames per clip: the loss is their mean).
            ref_targets: per reference frame, the per-image ground truth (``gt_boxes``, ``gt_ids``).
        """
        if isinstance(ref_features, dict):
            ref_features, ref_targets = [ref_features], [ref_targets]
        assert ref_targets is not None and len(ref_targets) == len(ref_features)

        key_ids = []
        for p in fg_proposals:
            if len(p) > 0 and not p.has("gt_ids"):
                raise ValueError(f"{type(self).__name__} needs 'gt_ids' (instance ids) in the key-frame targets")
            key_ids.append(p.gt_ids if p.has("gt_ids") else torch.zeros(0, dtype=torch.long))
        key_embeds = self.track_head(fg_roi_features).split([len(p) for p in fg_proposals])

        total = None
        for feats, targets in zip(ref_features, ref_targets):
            ref_roi_features = self.track_roi_features(feats, [t.gt_boxes for t in targets])
            ref_embeds = self.track_head(ref_roi_features).split([len(t) for t in targets])
            labels = [track_pid_targets(k.to(t.gt_ids.device), t.gt_ids) for k, t in zip(key_ids, targets)]
            loss = self.track_head.losses(list(key_embeds), list(ref_embeds), labels)["loss_track"]
            total = loss if total is None else total + loss
        return {"loss_track": total / len(ref_features)}

    def _forward_track(self, features: FeatureDict, instances: List[Instances]) -> List[Instances]:
        """Inference: add ``pred_track_embeds`` (R_i, D) computed on ``pred_boxes``, in place."""
        roi_features = self.track_roi_features(features, [x.pred_boxes for x in instances])
        track_head_inference(self.track_head(roi_features), instances)
        return instances

    def forward_with_given_boxes(self, features: FeatureDict, instances: List[Instances]):
        """As the host's ``forward_with_given_boxes`` (masks, keypoints), plus ``pred_track_embeds``."""
        instances = super().forward_with_given_boxes(features, instances)
        return self._forward_track(features, instances)

    def detect(self, features: FeatureDict, proposals: List[Instances]) -> List[Instances]:
        """Inference without masks: boxes, scores, classes and ``pred_track_embeds``."""
        assert not self.training
        return self._forward_track(features, self._forward_box(features, proposals))

    def predict_masks(self, features: FeatureDict, instances: List[Instances]) -> List[Instances]:
        """Inference: add ``pred_masks`` (R_i, 1, M, M) probabilities for the given ``pred_boxes``."""
        assert not self.training
        if not self.mask_on:
            raise ValueError("predict_masks needs the mask head (MODEL.MASK_ON True)")
        return self._forward_mask(features, instances)

    @staticmethod
    def _check_ref_args(ref_features: Optional[object], ref_targets: Optional[object]):
        if (ref_features is None) != (ref_targets is None):
            raise ValueError("ref_features and ref_targets must be given together")
