"""The base of every vis_d2 video model: clip training, and the one online inference loop.

Training (docs/interfaces.md §2): every frame of every clip goes through the shared backbone in one batch
(frame-major, :mod:`clip_frames`), is cut back into one :class:`FrameBatch` per frame slot, and handed to
:meth:`OnlineVideoModel.forward_clip` as the key frame, the reference frames (targets of tracking losses)
and the support frames (temporal context).

Inference (§3 -> §4), one frame at a time, frames read lazily::

    features   = backbone(frame t)
    features   = temporal_features(features, context)   # context: the FrameCache of earlier frames
    detections = detect_frame(images, features)         # Instances at the network input size (§5)
    ids        = tracker.update(t, detections at the original size)
    kept       = predict_masks(features, detections[ids >= 0])    # masks of the kept detections only
    RLEs of kept.pred_masks at the original size -> VideoTrackAccumulator

Nothing per frame outlives its iteration except the RLEs, the tracker's bounded memory and the bounded
:class:`FrameCache`, so memory stays bounded on long videos.

The one temporal hook, :meth:`temporal_features`, serves training and inference alike: in training its
context is the support frames' backbone features, at inference the cache entries of the last
``context_frames`` frames (by default their backbone features too; :meth:`context_entry` chooses what is
cached). Three families build on this class:

- :class:`OnlineVideoRCNN`: RPN + R-CNN heads with a track branch (MaskTrack R-CNN, TFA, CompFeat);
- :class:`OnlineDenseVideoModel`: a dense one-stage head, in the manner of detectron2's ``DenseDetector``
  (STMask);
- :class:`OnlineSlotVideoModel`: a fixed set of slots (queries) whose index is the identity (HITF).
"""
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import build_backbone
from detectron2.modeling.backbone import Backbone
from detectron2.structures import Boxes, ImageList, Instances
from torch import nn

from ..frame_masks import encode_frame_masks, frame_masks_at_stride
from ..track_aggregation import VideoTrackAccumulator
from ..tracker import BaseTracker, build_tracker
from .clip_frames import KEY, REF, SUPPORT, FrameBatch, clip_frame_slots, split_frame_batches
from .frame_cache import FrameCache

__all__ = ["OnlineVideoModel", "rescale_boxes"]

FeatureDict = Dict[str, torch.Tensor]


def rescale_boxes(boxes: Boxes, image_size: Tuple[int, int], orig_size: Tuple[int, int]) -> Boxes:
    """Boxes at the network input size (h, w) -> boxes at the original size (H, W), clipped."""
    out = boxes.clone()
    out.scale(orig_size[1] / image_size[1], orig_size[0] / image_size[0])
    out.clip(orig_size)
    return out


def context_frames_from_config(cfg) -> int:
    """``MODEL.VIDEO.CONTEXT_FRAMES``, where -1 means as many as the training clips' support frames."""
    n = cfg.MODEL.VIDEO.CONTEXT_FRAMES
    return cfg.INPUT.SAMPLING_SUPPORT_NUM if n < 0 else n


class OnlineVideoModel(nn.Module):
    """Backbone, preprocessing, clip batching and the online inference loop; subclasses add the heads.

    Hooks for subclasses, in the manner of detectron2's ``DenseDetector.forward_training`` /
    ``forward_inference``:

    - :meth:`forward_clip` (training): the losses of a batch of clips;
    - :meth:`detect_frame` (inference): one frame's detections, before tracking;
    - :meth:`predict_masks` (inference): masks for given detections, when :meth:`detect_frame` leaves
      them out (so that only the detections the tracker keeps are segmented);
    - :meth:`temporal_features`, :meth:`context_entry`, :meth:`begin_video`: temporal context.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        tracker: BaseTracker,
        pixel_mean: Tuple[float, ...],
        pixel_std: Tuple[float, ...],
        input_format: Optional[str] = None,
        mask_threshold: float = 0.5,
        tracker_mask_stride: int = 4,
        context_frames: int = 0,
    ):
        """
        Args:
            backbone, pixel_mean, pixel_std, input_format: as in detectron2's ``GeneralizedRCNN``.
            tracker: assigns track ids frame by frame (a :data:`TRACKER_REGISTRY` entry; reset at the
                start of each video).
            mask_threshold: binarisation threshold of the mask probabilities (MaskTrack: 0.5).
            tracker_mask_stride: when the tracker uses masks (mask-IoU cue), they are given to it at the
                original resolution divided by this (a fixed size for the whole video).
            context_frames: how many earlier frames the inference cache keeps for
                :meth:`temporal_features` (0: none).
        """
        super().__init__()
        self.backbone = backbone
        self.tracker = tracker
        self.input_format = input_format
        self.mask_threshold = mask_threshold
        self.tracker_mask_stride = tracker_mask_stride
        self.frame_cache = FrameCache(context_frames)
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @classmethod
    def from_config(cls, cfg):
        return {
            "backbone": build_backbone(cfg),
            "tracker": build_tracker(cfg),
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "input_format": cfg.INPUT.FORMAT,
            "context_frames": context_frames_from_config(cfg),
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

    # ------------------------------------------------------------------------------ hooks
    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        """Training: the losses of one batch of clips, each argument batched over the B clips.

        Temporal methods call ``self.temporal_features(key.features, [s.features for s in supports])``.
        """
        raise NotImplementedError

    def temporal_features(self, features: FeatureDict, context: List[Any]) -> FeatureDict:
        """The one temporal hook: a frame's features given its temporal context (identity here).

        Args:
            features: name -> (B, C, h, w) backbone features of the current (key) frames.
            context: in training, the support frames' backbone features (one dict like ``features``
                per support slot); at inference, the :class:`FrameCache` entries of the earlier frames,
                oldest first (by default also backbone feature dicts, see :meth:`context_entry`). Empty
                when there is no context (no support frames, or the first frame of a video).

        Returns:
            The features the heads see, same keys and shapes as ``features``.
        """
        return features

    def context_entry(self, features: FeatureDict, detections: Instances) -> Any:
        """What the inference cache keeps of a frame for later frames' :meth:`temporal_features`.

        Here the frame's backbone features (what training gives as the support frames' context); a
        method that needs less or more (RoI features of top proposals, codes) overrides it. Only called
        when ``context_frames > 0``.
        """
        return features

    def begin_video(self, video: dict):
        """Reset per-video state before the first frame: the tracker and the frame cache."""
        self.tracker.reset()
        self.frame_cache.begin_video()

    def detect_frame(self, images: ImageList, features: FeatureDict) -> Instances:
        """Inference: the detections of one frame (docs/interfaces.md §5), before tracking.

        Args:
            images: the frame, normalised and padded (batch of 1).
            features: the frame's features after :meth:`temporal_features`.

        Returns:
            ``Instances`` at the network input size ``images.image_sizes[0]`` with ``scores`` (N,) and
            ``pred_classes`` (N,), optionally ``pred_boxes`` (input coordinates), ``pred_track_embeds``,
            ``pred_ids`` and ``pred_masks``, and whatever the tracker reads.
        """
        raise NotImplementedError

    def predict_masks(self, features: FeatureDict, detections: Instances) -> Instances:
        """Inference: the ``detections`` with ``pred_masks`` added: (N, 1, M, M) box-relative or (N, h, w)
        probabilities covering the padded input (docs/interfaces.md §5). Called only when
        :meth:`detect_frame` did not predict masks already."""
        raise NotImplementedError

    def untracked_outputs(
        self, frame_idx: int, images: ImageList, track_ids: torch.Tensor, orig_size: Tuple[int, int]
    ) -> Optional[Tuple[torch.Tensor, torch.Tensor, torch.Tensor, List[dict]]]:
        """Inference: outputs of this frame for tracks that none of its detections continued, or None.

        A method that propagates its tracks through frames where the detector misses them (STMask's
        cross-frame masks) returns ``(track ids, scores, labels, RLEs at orig_size)`` for them; none here.

        Args:
            track_ids: the ids the tracker gave this frame's detections (-1: dropped).
        """
        return None

    # ------------------------------------------------------------------------------ inference
    def inference(self, batched_inputs: List[dict]) -> List[dict]:
        """Segment and track each input video; see :meth:`inference_video`."""
        assert not self.training
        return [self.inference_video(video) for video in batched_inputs]

    def detect_video_frames(self, video: dict) -> Iterator[Tuple[ImageList, FeatureDict, Instances]]:
        """The online detection loop, before tracking: :meth:`begin_video`, then for each frame in order
        its ``(images, features, detections)`` (features after :meth:`temporal_features`, detections from
        :meth:`detect_frame`), the frame cache updated as inference needs it. Nothing of a frame is kept
        once the next one is requested. Call under ``torch.no_grad()``."""
        self.begin_video(video)
        frames = video["image"]  # a lazy sequence: indexed, one frame at a time
        for t in range(len(frames)):
            images = self.preprocess_image([frames[t]])
            backbone_features = self.backbone(images.tensor)
            features = self.temporal_features(backbone_features, self.frame_cache.entries())
            detections = self.detect_frame(images, features)
            if self.frame_cache.maxlen > 0:
                self.frame_cache.append(self.context_entry(backbone_features, detections))
            yield images, features, detections
            del images, backbone_features, features, detections

    @torch.no_grad()
    def inference_video(self, video: dict) -> dict:
        """Online inference on one test video (docs/interfaces.md §3 in, §4 out)."""
        length = len(video["image"])
        height, width = int(video["height"]), int(video["width"])
        accumulator = VideoTrackAccumulator(length, height, width)
        for t, (images, features, detections) in enumerate(self.detect_video_frames(video)):
            ids, kept, rles = self._track_and_segment(t, images, features, detections, (height, width))
            accumulator.add_frame(t, ids, kept.scores, kept.pred_classes, rles)
            extra = self.untracked_outputs(t, images, ids, (height, width))
            if extra is not None:
                accumulator.add_frame(t, *extra)
            del images, features, detections
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
        images: ImageList,
        features: FeatureDict,
        detections: Instances,
        orig_size: Tuple[int, int],
    ) -> Tuple[torch.Tensor, Instances, List[dict]]:
        """Assign track ids to one frame's detections and encode the masks of the kept ones.

        Returns:
            The kept detections' track ids (K,), the kept detections, and their K RLEs at ``orig_size``.
        """
        image_size = images.image_sizes[0]
        covered_size = tuple(images.tensor.shape[-2:])
        orig_boxes = None
        if detections.has("pred_boxes"):
            orig_boxes = rescale_boxes(detections.pred_boxes, image_size, orig_size).tensor
        track_masks = None
        if self.tracker.uses_masks:
            # The mask cue needs every detection's mask before the tracker decides.
            if not detections.has("pred_masks"):
                detections = self.predict_masks(features, detections)
            track_masks = frame_masks_at_stride(
                detections.pred_masks, orig_boxes, covered_size, image_size, orig_size,
                self.tracker_mask_stride, threshold=self.mask_threshold,
            )  # fmt: skip
        ids = self.tracker.update(frame_idx, self._tracker_input(detections, orig_boxes, track_masks, orig_size))
        keep = ids >= 0
        kept = detections[keep]
        if len(kept) == 0:
            return ids[keep], kept, []
        if not kept.has("pred_masks"):
            kept = self.predict_masks(features, kept)
        rles = encode_frame_masks(
            kept.pred_masks, None if orig_boxes is None else orig_boxes[keep], covered_size, image_size, orig_size,
            threshold=self.mask_threshold,
        )  # fmt: skip
        return ids[keep], kept, rles

    @staticmethod
    def _tracker_input(detections: Instances, orig_boxes, track_masks, orig_size) -> Instances:
        """The detections as the tracker sees them: at the original size, low-resolution masks only."""
        fields = {k: v for k, v in detections.get_fields().items() if k not in ("pred_boxes", "pred_masks")}
        out = Instances(orig_size, **fields)
        if orig_boxes is not None:
            out.pred_boxes = Boxes(orig_boxes)
        if track_masks is not None:
            out.track_masks = track_masks
        return out
