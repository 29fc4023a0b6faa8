"""MaskTrack R-CNN (Yang, Fan, Xu: "Video Instance Segmentation", ICCV 2019).

Mask R-CNN with a fourth, tracking branch (Fig. 2): :class:`vis_d2.modeling.TrackROIHeads` with the
:class:`vis_d2.modeling.EmbeddingTrackHead` (§3.2, Eq. 2), trained on (key, reference) frame pairs,
and at test time the online multi-cue matching of Eq. 3 (:class:`vis_d2.modeling.MultiCueTracker`,
``MODEL.TRACKER.NAME``), scored with the track head's own Eq. 2. Everything it needs is the shared
:class:`vis_d2.modeling.OnlineVideoRCNN`; this class names the method in the registry and checks that
the config gives it a tracking branch.
"""
from detectron2.modeling import META_ARCH_REGISTRY

from vis_d2.modeling import OnlineVideoRCNN

__all__ = ["MaskTrackRCNN"]


@META_ARCH_REGISTRY.register()
class MaskTrackRCNN(OnlineVideoRCNN):
    """MaskTrack R-CNN: :class:`OnlineVideoRCNN` with R-CNN heads that carry a track head.

    Training clips are one key frame and one reference frame (``INPUT.SAMPLING_FRAME_NUM 2``); the
    clip layout is the data loader's business, so more reference frames also work (their track
    losses are averaged).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for method in ("detect", "predict_masks"):
            if not hasattr(self.roi_heads, method):
                raise ValueError(
                    f"MaskTrackRCNN needs R-CNN heads with a tracking branch (MODEL.ROI_HEADS.NAME "
                    f"'TrackROIHeads'); {type(self.roi_heads).__name__} has no '{method}'"
                )
