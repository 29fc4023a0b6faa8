"""R-CNN heads with MaskTrack R-CNN's tracking branch (Yang et al., ICCV 2019, §3.2, Fig. 2)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from detectron2.config import configurable
from detectron2.layers import ShapeSpec
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads, select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ..track_heads import build_track_head, track_head_inference, track_pid_targets

__all__ = ["TrackROIHeads"]

FeatureDict = Dict[str, torch.Tensor]


@ROI_HEADS_REGISTRY.register()
class TrackROIHeads(StandardROIHeads):
    """detectron2's standard box + mask heads plus a track head on the same 7x7 box RoI features.

    The track head (``MODEL.TRACK_HEAD``, a :data:`TRACK_HEAD_REGISTRY` entry) reads the features
    that ``box_pooler`` extracts for the box head, as the official MaskTrack R-CNN does; it adds
    no pooler of its own.

    Training (:meth:`forward` with ``ref_features`` / ``ref_targets``): detection and mask losses
    on the key frame as in :class:`StandardROIHeads`, plus ``loss_track``: the embeddings of the
    key frame's positive RoIs are matched against those of the reference frame's ground-truth
    boxes, labels from the instance ids (``gt_ids``) of the targets.

    Inference: the output ``Instances`` carry ``pred_track_embeds`` (N, D), computed on the final
    detection boxes (the official code re-extracts the RoI features of the kept detections).

    Inside detectron2's own ``GeneralizedRCNN`` (a config naming ``TrackROIHeads``) there is no
    reference frame: ``forward(images, features, proposals, targets)`` then skips the track loss,
    so the track head gets no gradient there (under multi-process DDP, build the DDP model with
    ``find_unused_parameters=True``), and inference still adds ``pred_track_embeds``.
    """

    @configurable
    def __init__(self, *, track_head: nn.Module, **kwargs):
        """
        Args:
            track_head: maps (R, C, h, w) box RoI features to (R, D) embeddings and provides
                ``losses(key_embeds, ref_embeds, targets)``, e.g. :class:`EmbeddingTrackHead`.
            kwargs: the arguments of :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        self.track_head = track_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_track_head(cfg, input_shape))
        return ret

    @classmethod
    def _init_track_head(cls, cfg, input_shape):
        in_features = cfg.MODEL.ROI_HEADS.IN_FEATURES
        resolution = cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION
        channels = input_shape[in_features[0]].channels
        shape = ShapeSpec(channels=channels, height=resolution, width=resolution)
        return {"track_head": build_track_head(cfg, shape)}

    def forward(
        self,
        images: ImageList,
        features: FeatureDict,
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
        ref_features: Optional[Union[FeatureDict, Sequence[FeatureDict]]] = None,
        ref_targets: Optional[Union[List[Instances], Sequence[List[Instances]]]] = None,
    ):
        """
        Args:
            images, features, proposals, targets: as in :meth:`StandardROIHeads.forward`, for the
                key frames; in training the targets need ``gt_ids`` (instance ids) when reference
                frames are given.
            ref_features: optional, training only: the backbone features of the reference frames
                (same keys as ``features``, batch axis aligned with the key frames), or a list of
                such dicts for several reference frames per clip (the loss is their mean).
            ref_targets: per reference frame, the list of per-image ground truth (``gt_boxes``,
                ``gt_ids``), matching ``ref_features``.

        Returns:
            As :meth:`StandardROIHeads.forward`; in training the losses include ``loss_track``
            when reference frames are given; in inference the instances have ``pred_track_embeds``.
        """
        if not self.training:
            return super().forward(images, features, proposals)
        assert targets, "'targets' argument is required during training"
        del images
        proposals = self.label_and_sample_proposals(proposals, targets)
        del targets

        box_roi_features = self.box_pooler(
            [features[f] for f in self.box_in_features], [x.proposal_boxes for x in proposals]
        )
        # Select the positives now: the box branch may replace proposal_boxes (train_on_pred_boxes).
        fg_proposals, fg_masks = select_foreground_proposals(proposals, self.num_classes)
        fg_roi_features = box_roi_features[torch.cat(fg_masks)]

        losses = self._box_losses(box_roi_features, proposals)
        losses.update(self._forward_mask(features, proposals))
        losses.update(self._forward_keypoint(features, proposals))
        if ref_features is not None:
            losses.update(self._track_losses(fg_roi_features, fg_proposals, ref_features, ref_targets))
        return proposals, losses

    def _box_losses(self, box_roi_features: torch.Tensor, proposals: List[Instances]):
        """The training half of :meth:`StandardROIHeads._forward_box`, on already pooled features."""
        predictions = self.box_predictor(self.box_head(box_roi_features))
        losses = self.box_predictor.losses(predictions, proposals)
        if self.train_on_pred_boxes:
            with torch.no_grad():
                pred_boxes = self.box_predictor.predict_boxes_for_gt_classes(predictions, proposals)
                for proposals_per_image, boxes in zip(proposals, pred_boxes):
                    proposals_per_image.proposal_boxes = Boxes(boxes)
        return losses

    def _track_losses(self, fg_roi_features, fg_proposals, ref_features, ref_targets):
        """``loss_track`` of the positive key RoIs against each reference frame's GT objects."""
        if isinstance(ref_features, dict):
            ref_features, ref_targets = [ref_features], [ref_targets]
        assert ref_targets is not None and len(ref_targets) == len(ref_features)

        key_ids = []
        for p in fg_proposals:
            if len(p) > 0 and not p.has("gt_ids"):
                raise ValueError("TrackROIHeads needs 'gt_ids' (instance ids) in the key-frame targets")
            key_ids.append(p.gt_ids if p.has("gt_ids") else torch.zeros(0, dtype=torch.long))
        key_embeds = self.track_head(fg_roi_features).split([len(p) for p in fg_proposals])

        total = None
        for feats, targets in zip(ref_features, ref_targets):
            ref_roi_features = self.box_pooler(
                [feats[f] for f in self.box_in_features], [t.gt_boxes for t in targets]
            )
            ref_embeds = self.track_head(ref_roi_features).split([len(t) for t in targets])
            labels = [
                track_pid_targets(k.to(t.gt_ids.device), t.gt_ids) for k, t in zip(key_ids, targets)
            ]
            loss = self.track_head.losses(list(key_embeds), list(ref_embeds), labels)["loss_track"]
            total = loss if total is None else total + loss
        return {"loss_track": total / len(ref_features)}

    def _forward_track(self, features: FeatureDict, instances: List[Instances]) -> List[Instances]:
        """Inference: add ``pred_track_embeds`` (R_i, D) computed on ``pred_boxes``, in place."""
        roi_features = self.box_pooler(
            [features[f] for f in self.box_in_features], [x.pred_boxes for x in instances]
        )
        track_head_inference(self.track_head(roi_features), instances)
        return instances

    def forward_with_given_boxes(self, features: FeatureDict, instances: List[Instances]):
        """As :meth:`StandardROIHeads.forward_with_given_boxes`, plus ``pred_track_embeds``."""
        instances = super().forward_with_given_boxes(features, instances)
        return self._forward_track(features, instances)

    def detect(self, features: FeatureDict, proposals: List[Instances]) -> List[Instances]:
        """Inference without masks: boxes, scores, classes and ``pred_track_embeds``.

        Video models call this, let the tracker decide which detections to keep, and then call
        :meth:`predict_masks` on the kept ones only.
        """
        assert not self.training
        return self._forward_track(features, self._forward_box(features, proposals))

    def predict_masks(self, features: FeatureDict, instances: List[Instances]) -> List[Instances]:
        """Inference: add ``pred_masks`` (R_i, 1, M, M) probabilities for the given ``pred_boxes``."""
        assert not self.training
        if not self.mask_on:
            raise ValueError("predict_masks needs the mask head (MODEL.MASK_ON True)")
        return self._forward_mask(features, instances)
