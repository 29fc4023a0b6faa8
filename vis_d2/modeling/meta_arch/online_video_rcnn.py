"""Base online video R-CNN: trains on clips, segments and tracks whole videos one frame at a time.

Training (docs/interfaces.md §2): every frame of every clip goes through the shared backbone in one
batch; the RPN and the R-CNN heads run on the key frame (detection and mask losses on the key frame
only) and the ROI heads get the reference frames' features and ground truth for their tracking
loss (MaskTrack R-CNN §3.2). Support frames are handed to :meth:`OnlineVideoRCNN.temporal_features`,
the extension point of temporal methods (identity here).

Inference (§3 -> §4): frames are read lazily, one at a time; per frame: backbone, proposals, box
head + track embeddings (``roi_heads.detect``), the shared :class:`OnlineTracker` on boxes rescaled
to the original resolution, then masks for the kept detections only, pasted at the original
resolution and RLE-encoded into a :class:`VideoTrackAccumulator`. Nothing per frame outlives its
iteration except RLEs and the tracker's one entry per track, so memory stays bounded on long videos.

Methods built on it override the hooks: :meth:`temporal_features` (training, key frame + support
frames), :meth:`begin_video` / :meth:`frame_features` (inference, e.g. caching earlier frames),
:meth:`forward_clip` for larger changes; ``roi_heads`` must provide ``forward(..., ref_features=,
ref_targets=)``, ``detect`` and ``predict_masks`` like :class:`TrackROIHeads`.
"""
import math
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import paste_masks_in_image
from detectron2.modeling import META_ARCH_REGISTRY, build_backbone, build_proposal_generator, build_roi_heads
from detectron2.modeling.backbone import Backbone
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ..track_aggregation import VideoTrackAccumulator, paste_and_encode
from ..tracker import OnlineTracker
from .clip_frames import KEY, REF, SUPPORT, FrameBatch, clip_frame_slots, split_frame_batches

__all__ = ["OnlineVideoRCNN"]

FeatureDict = Dict[str, torch.Tensor]


@META_ARCH_REGISTRY.register()
class OnlineVideoRCNN(nn.Module):
    """Backbone + RPN + R-CNN heads with a track branch, and an online tracker at test time."""

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        proposal_generator: nn.Module,
        roi_heads: nn.Module,
        tracker: OnlineTracker,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
        input_format: Optional[str] = None,
        mask_threshold: float = 0.5,
        tracker_mask_stride: int = 4,
        detect_all_frames: bool = False,
    ):
        """
        Args:
            backbone, proposal_generator, pixel_mean, pixel_std, input_format: as in detectron2's
                ``GeneralizedRCNN``.
            roi_heads: R-CNN heads with a track branch (e.g. :class:`TrackROIHeads`).
            tracker: assigns track ids frame by frame (reset at the start of each video).
            mask_threshold: binarisation threshold of the pasted mask probabilities (MaskTrack: 0.5).
            tracker_mask_stride: when the tracker uses the mask-IoU cue, masks are given to it at
                the original resolution divided by this (a fixed size for the whole video).
            detect_all_frames: detection and mask losses on the reference frames too, averaged with
                the key frame's (``MODEL.VIDEO.DETECT_ALL_FRAMES``, ours); False trains detection on
                the key frame only, as the official MaskTrack R-CNN does.
        """
        super().__init__()
        self.backbone = backbone
        self.proposal_generator = proposal_generator
        self.roi_heads = roi_heads
        self.tracker = tracker
        self.input_format = input_format
        self.mask_threshold = mask_threshold
        self.tracker_mask_stride = tracker_mask_stride
        self.detect_all_frames = detect_all_frames
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        backbone = build_backbone(cfg)
        return {
            "backbone": backbone,
            "proposal_generator": build_proposal_generator(cfg, backbone.output_shape()),
            "roi_heads": build_roi_heads(cfg, backbone.output_shape()),
            "tracker": OnlineTracker(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "detect_all_frames": cfg.MODEL.VIDEO.DETECT_ALL_FRAMES,
        }

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device

    def preprocess_image(self, images: Sequence[torch.Tensor]) -> ImageList:
        """Normalise uint8 (3, H, W) frames (``INPUT.FORMAT`` order) and pad them into a batch."""
        images = [(x.to(self.device) - self.pixel_mean) / self.pixel_std for x in images]
        return ImageList.from_tensors(images, self.backbone.size_divisibility)

    def forward(self, batched_inputs: List[dict]):
        """
        Args:
            batched_inputs: in training, clips (docs/interfaces.md §2); in eval mode, test videos
                (§3), normally one per call.

        Returns:
            In training, a dict of losses. In eval mode, one dict per video (§4):
            ``{"video_id", "height", "width", "length", "pred_tracks"}``.
        """
        if not self.training:
            return self.inference(batched_inputs)
        slots = clip_frame_slots(batched_inputs)
        num_frames = len(batched_inputs[0]["image"])
        # One backbone call on all F*B frames (shared weights), frame-major so each slot is a slice.
        frames = [clip["image"][s] for s in range(num_frames) for clip in batched_inputs]
        images = self.preprocess_image(frames)
        features = self.backbone(images.tensor)
        batches = split_frame_batches(images, features, batched_inputs, self.device)
        return self.forward_clip(
            key=batches[slots[KEY][0]],
            refs=[batches[s] for s in slots[REF]],
            supports=[batches[s] for s in slots[SUPPORT]],
        )

    def temporal_features(self, key_features: FeatureDict, support_features: List[FeatureDict]) -> FeatureDict:
        """Extension point: the key frame's features given its support frames' (identity here).

        Args:
            key_features: name -> (B, C, h, w) backbone features of the key frames.
            support_features: one such dict per support frame slot (may be empty).

        Returns:
            The features the RPN and ROI heads see for the key frames.
        """
        return key_features

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
        losses = dict(detector_losses)
        losses.update(proposal_losses)
        if self.detect_all_frames and refs:
            # Reference frames are annotated and already through the backbone: their detection losses
            # cost only the heads. Each loss becomes its mean over the clip's annotated frames.
            for ref in refs:
                ref_proposals, ref_proposal_losses = self.proposal_generator(ref.images, ref.features, ref.targets)
                _, ref_detector_losses = self.roi_heads(ref.images, ref.features, ref_proposals, ref.targets)
                for name, value in {**ref_detector_losses, **ref_proposal_losses}.items():
                    losses[name] = losses[name] + value
            for name in list(losses):
                if name != "loss_track":
                    losses[name] = losses[name] / (1 + len(refs))
        return losses

    # ------------------------------------------------------------------------------ inference
    def inference(self, batched_inputs: List[dict]) -> List[dict]:
        """Segment and track each input video; see :meth:`inference_video`."""
        assert not self.training
        return [self.inference_video(video) for video in batched_inputs]

    def begin_video(self, video: dict):
        """Extension point: reset per-video state before the first frame (here: the tracker)."""
        self.tracker.reset()

    def frame_features(self, images: ImageList, frame_idx: int, video: dict) -> FeatureDict:
        """Extension point: the features of frame ``frame_idx`` (here: the backbone's alone).

        Temporal methods add context from earlier frames they cache, or from support frames they
        read from ``video["image"]`` (lazy: indexing decodes one frame).
        """
        return self.backbone(images.tensor)

    @torch.no_grad()
    def inference_video(self, video: dict) -> dict:
        """Online inference on one test video (docs/interfaces.md §3 in, §4 out)."""
        frames = video["image"]
        length = len(frames)
        height, width = int(video["height"]), int(video["width"])
        accumulator = VideoTrackAccumulator(length, height, width)
        self.begin_video(video)
        for t in range(length):
            images = self.preprocess_image([frames[t]])
            features = self.frame_features(images, t, video)
            proposals, _ = self.proposal_generator(images, features, None)
            detections = self.roi_heads.detect(features, proposals)[0]
            ids, kept, rles = self._track_and_segment(t, features, detections, images.image_sizes[0], (height, width))
            accumulator.add_frame(t, ids, kept.scores, kept.pred_classes, rles)
            del images, features, proposals, detections
        return {
            "video_id": video["video_id"],
            "height": height,
            "width": width,
            "length": length,
            "pred_tracks": accumulator.tracks(),
        }

    def _track_and_segment(
        self,
        frame_idx: int,
        features: FeatureDict,
        detections: Instances,
        image_size: Tuple[int, int],
        orig_size: Tuple[int, int],
    ) -> Tuple[torch.Tensor, Instances, List[dict]]:
        """Assign track ids to one frame's detections and encode the masks of the kept ones.

        Args:
            detections: the frame's detections at the network input resolution ``image_size``,
                with ``pred_boxes``, ``scores``, ``pred_classes`` and ``pred_track_embeds``.
            orig_size: (height, width) of the original video.

        Returns:
            The kept detections' track ids (K,), the kept detections, and their K RLEs at
            ``orig_size``.
        """
        orig_boxes = _rescale_boxes(detections.pred_boxes, image_size, orig_size)
        small_masks = None
        if self.tracker.uses_masks:
            # The mask-IoU cue needs every detection's mask before the tracker decides.
            detections = self.roi_heads.predict_masks(features, [detections])[0]
            small_masks = self._small_masks(detections.pred_masks, orig_boxes, orig_size)
        ids = self.tracker.update(
            frame_idx,
            embeddings=detections.pred_track_embeds,
            boxes=orig_boxes.tensor,
            scores=detections.scores,
            labels=detections.pred_classes,
            masks=small_masks,
        )
        keep = ids >= 0
        kept = detections[keep]
        if len(kept) == 0:
            return ids[keep], kept, []
        if not kept.has("pred_masks"):
            kept = self.roi_heads.predict_masks(features, [kept])[0]
        rles = paste_and_encode(kept.pred_masks, orig_boxes.tensor[keep], orig_size, threshold=self.mask_threshold)
        return ids[keep], kept, rles

    def _small_masks(self, mask_probs: torch.Tensor, orig_boxes: Boxes, orig_size: Tuple[int, int]) -> torch.Tensor:
        """(N, 1, M, M) mask probabilities -> (N, h, w) bool at the original size / stride."""
        s = self.tracker_mask_stride
        size = (math.ceil(orig_size[0] / s), math.ceil(orig_size[1] / s))
        if len(mask_probs) == 0:
            return torch.zeros((0,) + size, dtype=torch.bool, device=mask_probs.device)
        return paste_masks_in_image(mask_probs[:, 0], orig_boxes.tensor / s, size, threshold=self.mask_threshold)


def _rescale_boxes(boxes: Boxes, image_size: Tuple[int, int], orig_size: Tuple[int, int]) -> Boxes:
    """Boxes at the network input size (h, w) -> boxes at the original size (H, W), clipped."""
    out = boxes.clone()
    out.scale(orig_size[1] / image_size[1], orig_size[0] / image_size[0])
    out.clip(orig_size)
    return out
