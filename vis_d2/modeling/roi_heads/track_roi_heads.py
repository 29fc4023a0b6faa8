"""R-CNN heads with MaskTrack R-CNN's tracking branch (Yang et al., ICCV 2019, §3.2, Fig. 2)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, StandardROIHeads, select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from .track_branch import TrackBranchMixin

__all__ = ["TrackROIHeads"]

FeatureDict = Dict[str, torch.Tensor]


@ROI_HEADS_REGISTRY.register()
class TrackROIHeads(TrackBranchMixin, StandardROIHeads):
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
                ``losses(key_embeds, ref_embeds, targets)`` and ``match_scores``, e.g.
                :class:`EmbeddingTrackHead`.
            kwargs: the arguments of :class:`StandardROIHeads`.
        """
        super().__init__(**kwargs)
        self.track_head = track_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_track_head(cfg, input_shape))
        return ret

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
        self._check_ref_args(ref_features, ref_targets)
        del images
        proposals = self.label_and_sample_proposals(proposals, targets)
        del targets

        # The box and track branches share one pooling of the box RoI features.
        box_roi_features = self.track_roi_features(features, [x.proposal_boxes for x in proposals])
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
