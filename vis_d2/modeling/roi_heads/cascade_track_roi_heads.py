"""Cascade R-CNN heads with MaskTrack R-CNN's tracking branch: the base of TFA (Dong et al., ICCVW 2019)."""
from typing import Dict, List, Optional, Sequence, Union

import torch
from detectron2.config import configurable
from detectron2.modeling.roi_heads import ROI_HEADS_REGISTRY, CascadeROIHeads, select_foreground_proposals
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ..track_heads import scale_gradient
from .track_branch import TrackBranchMixin

__all__ = ["CascadeTrackROIHeads"]

FeatureDict = Dict[str, torch.Tensor]


@ROI_HEADS_REGISTRY.register()
class CascadeTrackROIHeads(TrackBranchMixin, CascadeROIHeads):
    """detectron2's Cascade R-CNN heads (``MODEL.ROI_BOX_CASCADE_HEAD``) plus one track head.

    The track head is attached once, to the final stage's 7x7 RoI features (TFA's default):

    - training: on the key frame's positive RoIs of the first stage's sampling, against the reference
      frames' ground-truth boxes (``loss_track``, as :class:`TrackROIHeads`);
    - inference: on the final detections (``pred_track_embeds``).

    Extension point for TFA: :meth:`stage_roi_features` returns the RoI features a stage's box head reads
    (and, for the final stage, the track head too); TFA overrides it to fuse them with the support frames'
    RoI features before the second and later stages.

    Like :class:`TrackROIHeads` it also works inside detectron2's own ``GeneralizedRCNN``, where there is no
    reference frame: the track loss is skipped and inference still adds ``pred_track_embeds``.
    """

    @configurable
    def __init__(self, *, track_head: nn.Module, **kwargs):
        """
        Args:
            track_head: as in :class:`TrackROIHeads`.
            kwargs: the arguments of :class:`CascadeROIHeads`.
        """
        super().__init__(**kwargs)
        self.track_head = track_head

    @classmethod
    def from_config(cls, cfg, input_shape):
        ret = super().from_config(cfg, input_shape)
        ret.update(cls._init_track_head(cfg, input_shape))
        return ret

    def stage_roi_features(self, stage: int, features: List[torch.Tensor], boxes: List[Boxes]) -> torch.Tensor:
        """The RoI features of cascade stage ``stage`` (0-based) for the given boxes, before its box head.

        Args:
            features: the ``box_in_features`` levels, [(B, C, H_l, W_l)].
            boxes: per image, the stage's input boxes.

        Returns:
            (R, C, 7, 7); here the box pooler's output, the same for every stage.
        """
        return self.box_pooler(features, boxes)

    def track_roi_features(self, features: FeatureDict, boxes: List[Boxes]) -> torch.Tensor:
        """The final stage's RoI features of ``boxes``: what the track head reads."""
        levels = [features[f] for f in self.box_in_features]
        return self.stage_roi_features(self.num_cascade_stages - 1, levels, boxes)

    def _run_stage(self, features: List[torch.Tensor], proposals: List[Instances], stage: int):
        """One cascade stage on the proposals, with its RoI features from :meth:`stage_roi_features`."""
        box_features = self.stage_roi_features(stage, features, [x.proposal_boxes for x in proposals])
        if self.training:
            # As detectron2's cascade: the stages' losses are summed, so each stage's gradient into the shared
            # features is scaled down by the number of stages (the official averaging, in effect).
            box_features = scale_gradient(box_features, 1.0 / self.num_cascade_stages)
        box_features = self.box_head[stage](box_features)
        return self.box_predictor[stage](box_features)

    def forward(
        self,
        images: ImageList,
        features: FeatureDict,
        proposals: List[Instances],
        targets: Optional[List[Instances]] = None,
        ref_features: Optional[Union[FeatureDict, Sequence[FeatureDict]]] = None,
        ref_targets: Optional[Union[List[Instances], Sequence[List[Instances]]]] = None,
    ):
        """As :meth:`CascadeROIHeads.forward`, plus ``loss_track`` in training when reference frames are
        given (``ref_features`` / ``ref_targets`` as in :meth:`TrackROIHeads.forward`)."""
        if not self.training:
            return super().forward(images, features, proposals)
        assert targets, "'targets' argument is required during training"
        self._check_ref_args(ref_features, ref_targets)
        proposals = self.label_and_sample_proposals(proposals, targets)
        # The first stage's sampled positives; later stages build new proposals and leave these alone.
        fg_proposals, _ = select_foreground_proposals(proposals, self.num_classes)
        losses = self._forward_box(features, proposals, targets)
        losses.update(self._forward_mask(features, proposals))
        losses.update(self._forward_keypoint(features, proposals))
        if ref_features is not None:
            fg_roi_features = self.track_roi_features(features, [p.proposal_boxes for p in fg_proposals])
            losses.update(self._track_losses(fg_roi_features, fg_proposals, ref_features, ref_targets))
        return proposals, losses
