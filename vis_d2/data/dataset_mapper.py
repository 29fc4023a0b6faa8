"""Mappers from video dataset dicts to model inputs.

- :class:`YTVISClipMapper` (training): a clip of a few frames (:class:`ClipSampler`), read and augmented
  with ONE augmentation drawn on the key frame (one scale, one flip per clip), so that boxes, masks and
  track ids stay comparable across the frames; output is docs/interfaces.md section 2.
- :class:`YTVISVideoMapper` (testing): the whole video as a :class:`LazyVideoFrames` sequence that decodes
  a frame only when it is indexed, so a long video never sits in memory at once; section 3.

Both follow detectron2's ``DatasetMapper``: a callable with a ``@configurable`` constructor and one
augmentation list.
"""
import logging
import operator
from collections.abc import Sequence
from typing import Dict, List, Optional, Union

import numpy as np
import torch

from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import BitMasks, Instances, PolygonMasks
from detectron2.utils.logger import log_first_n

from .clip_sampler import ClipSampler
from ..utils import is_crowd
from .datasets.ytvis import CorruptFrameError, MissingFrameError

__all__ = ["YTVISClipMapper", "YTVISVideoMapper", "LazyVideoFrames", "read_video_frame"]

logger = logging.getLogger(__name__)


def read_video_frame(
    file_name: str, image_format: str, *, video_id=None, frame_index=None, height=None, width=None
) -> np.ndarray:
    """Read one frame as an (H, W, C) uint8 array in ``image_format``; errors name video and frame.

    Args:
        file_name: path of the frame (read through detectron2's ``PathManager``).
        image_format: INPUT.FORMAT, e.g. "BGR" or "RGB".
        video_id, frame_index: only for error messages.
        height, width: when given, the frame must have this size (the video's size in its dict).
    """
    where = f"frame {frame_index} of video {video_id} ({file_name})"
    try:
        image = utils.read_image(file_name, format=image_format)
    except FileNotFoundError as e:
        raise MissingFrameError(file_name, video_id, frame_index) from e
    except OSError as e:  # PIL could not decode it: a truncated or non-image file
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CorruptFrameError(file_name, video_id, frame_index, reason) from e
    if height is not None and width is not None and image.shape[:2] != (height, width):
        raise utils.SizeMismatchError(
            f"Size of {where} is {image.shape[1]}x{image.shape[0]} (WxH), "
            f"but the video dict says {width}x{height}"
        )
    return image


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    # (H, W, C) -> (C, H, W); a tensor, not an array, so that worker -> main process transfer uses
    # shared memory (the reason detectron2's DatasetMapper gives).
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))


class LazyVideoFrames(Sequence):
    """The frames of one video, each read and resized only when indexed.

    ``frames[t]`` returns frame t as a uint8 Tensor (3, H, W) in the mapper's image format. The
    transform is drawn on the first frame read and reused for every later frame, so all frames of a
    video come out at the same size. Slicing returns another lazy sequence. Picklable (it holds file
    names and augmentations, never pixels), so it can travel from data loader workers.
    """

    def __init__(
        self,
        file_names: List[str],
        augmentations: Union[T.AugmentationList, List[Union[T.Augmentation, T.Transform]]],
        image_format: str,
        *,
        video_id=None,
        height: Optional[int] = None,
        width: Optional[int] = None,
        frame_ids: Optional[List[int]] = None,
    ):
        """
        Args:
            file_names: paths of the frames in time order.
            augmentations: test-time augmentations (ResizeShortestEdge from MIN/MAX_SIZE_TEST).
            image_format: INPUT.FORMAT.
            video_id, height, width: the video's id and original size; frames of another size are an
                error (predictions are mapped back to this size).
            frame_ids: index of each file in the original video (for error messages after slicing).
        """
        if not isinstance(augmentations, T.AugmentationList):
            augmentations = T.AugmentationList(augmentations)
        self.file_names = list(file_names)
        self.augmentations = augmentations
        self.image_format = image_format
        self.video_id = video_id
        self.height = height
        self.width = width
        self.frame_ids = list(frame_ids) if frame_ids is not None else list(range(len(file_names)))
        self._transforms = None

    def __len__(self) -> int:
        return len(self.file_names)

    def __getitem__(self, index):
        if isinstance(index, slice):
            sub = LazyVideoFrames(
                self.file_names[index],
                self.augmentations,
                self.image_format,
                video_id=self.video_id,
                height=self.height,
                width=self.width,
                frame_ids=self.frame_ids[index],
            )
            sub._transforms = self._transforms
            return sub
        index = operator.index(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"frame {index} out of range for a video of {len(self)} frames")
        image = read_video_frame(
            self.file_names[index],
            self.image_format,
            video_id=self.video_id,
            frame_index=self.frame_ids[index],
            height=self.height,
            width=self.width,
        )
        if self._transforms is None:
            aug_input = T.AugInput(image)
            self._transforms = self.augmentations(aug_input)
            image = aug_input.image
        else:
            image = self._transforms.apply_image(image)
        return _to_tensor(image)

    def __iter__(self):
        for t in range(len(self)):
            yield self[t]

    def __repr__(self):
        return f"LazyVideoFrames(video_id={self.video_id}, length={len(self)})"


class YTVISClipMapper:
    """Training mapper: video dict -> training clip dict (docs/interfaces.md section 2).

    1. :class:`ClipSampler` picks the frames (key first).
    2. The key frame draws the augmentation (resize, flip, optional crop); every frame gets the same
       transforms, so the clip has one scale and one flip.
    3. Each frame's annotations become an ``Instances`` with gt_boxes, gt_classes, gt_masks and gt_ids
       (the track id, int64), crowd instances dropped and empty ones filtered.
    """

    @configurable
    def __init__(
        self,
        *,
        clip_sampler: ClipSampler,
        augmentations: List[Union[T.Augmentation, T.Transform]],
        image_format: str,
        use_instance_mask: bool = True,
        instance_mask_format: str = "bitmask",
        recompute_boxes: bool = False,
    ):
        """
        Args:
            clip_sampler: picks the (frame_index, role) pairs of a clip.
            augmentations: augmentations drawn once per clip, on the key frame.
            image_format: INPUT.FORMAT, an image format supported by ``detection_utils.read_image``.
            use_instance_mask: keep masks (MODEL.MASK_ON).
            instance_mask_format: "bitmask" or "polygon" (INPUT.MASK_FORMAT). Our datasets give
                compressed RLE, which only BitMasks can hold: "polygon" gives PolygonMasks only for
                polygon annotations and falls back to BitMasks (with a warning) for RLE.
            recompute_boxes: boxes from the transformed masks (needed after a crop).
        """
        if recompute_boxes:
            assert use_instance_mask, "recompute_boxes requires instance masks"
        # fmt: off
        self.clip_sampler         = clip_sampler
        self.augmentations        = T.AugmentationList(augmentations)
        self.image_format         = image_format
        self.use_instance_mask    = use_instance_mask
        self.instance_mask_format = instance_mask_format
        self.recompute_boxes      = recompute_boxes
        # fmt: on
        logger.info(f"[YTVISClipMapper] {clip_sampler}; augmentations per clip: {augmentations}")

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        augs = utils.build_augmentation(cfg, is_train)
        recompute_boxes = False
        if cfg.INPUT.CROP.ENABLED and is_train:
            augs.insert(0, T.RandomCrop(cfg.INPUT.CROP.TYPE, cfg.INPUT.CROP.SIZE))
            recompute_boxes = cfg.MODEL.MASK_ON
        return {
            "clip_sampler": ClipSampler(cfg),
            "augmentations": augs,
            "image_format": cfg.INPUT.FORMAT,
            "use_instance_mask": cfg.MODEL.MASK_ON,
            "instance_mask_format": cfg.INPUT.MASK_FORMAT,
            "recompute_boxes": recompute_boxes,
        }

    def __call__(self, video_dict: Dict) -> Dict:
        """
        Args:
            video_dict: one video dataset dict (docs/interfaces.md section 1); not modified.

        Returns:
            dict: the training clip (docs/interfaces.md section 2).
        """
        video_id = video_dict.get("video_id")
        picks = self.clip_sampler(video_dict)
        frames = [t for t, _ in picks]

        # A frame picked twice (short videos) is decoded and converted once.
        images, transforms = {}, None
        for t in frames:
            if t in images:
                continue
            image = read_video_frame(
                video_dict["file_names"][t],
                self.image_format,
                video_id=video_id,
                frame_index=t,
                height=video_dict.get("height"),
                width=video_dict.get("width"),
            )
            if transforms is None:  # the key frame, first in `frames`, draws the clip's augmentation
                aug_input = T.AugInput(image)
                transforms = self.augmentations(aug_input)
                image = aug_input.image
            else:
                image = transforms.apply_image(image)
            images[t] = image

        image_shape = images[frames[0]].shape[:2]
        mask_format = self._mask_format([video_dict["annotations"][t] for t in frames])
        instances = {
            t: self._frame_instances(video_dict["annotations"][t], transforms, image_shape, mask_format)
            for t in set(frames)
        }
        tensors = {t: _to_tensor(im) for t, im in images.items()}
        return {
            "video_id": video_id,
            "height": video_dict.get("height"),
            "width": video_dict.get("width"),
            "frame_indices": frames,
            "frame_roles": [role for _, role in picks],
            "file_names": [video_dict["file_names"][t] for t in frames],
            "image": [tensors[t] for t in frames],
            # fresh Instances per position: a model that sets fields on one must not change another
            "instances": [Instances(image_shape, **instances[t].get_fields()) for t in frames],
        }

    def _mask_format(self, frame_annos: List[List[Dict]]) -> str:
        if self.instance_mask_format != "polygon":
            return self.instance_mask_format
        segms = [a.get("segmentation") for annos in frame_annos for a in annos]
        if segms and all(isinstance(s, list) for s in segms):
            return "polygon"
        if segms:
            log_first_n(
                logging.WARNING,
                "INPUT.MASK_FORMAT is 'polygon' but the annotations are RLE; using BitMasks. "
                "Set INPUT.MASK_FORMAT bitmask to silence this.",
                name=__name__,
            )
        # No mask in the clip at all: empty masks of the type the data has (RLE -> BitMasks).
        return "bitmask"

    def _frame_instances(self, annos, transforms, image_shape, mask_format) -> Instances:
        """One frame's annotations -> Instances(gt_boxes, gt_classes, gt_masks, gt_ids), crowd dropped."""
        # Shallow copies suffice: transform_instance_annotations replaces the values of "bbox" and
        # "segmentation", never edits them, so the dataset dict stays intact.
        annos = [dict(a) for a in annos if not is_crowd(a)]
        if not self.use_instance_mask:
            for a in annos:
                a.pop("segmentation", None)
        annos = [utils.transform_instance_annotations(a, transforms, image_shape) for a in annos]
        instances = utils.annotations_to_instances(annos, image_shape, mask_format=mask_format)
        instances.gt_ids = torch.tensor([int(a["id"]) for a in annos], dtype=torch.int64)
        if self.use_instance_mask and not instances.has("gt_masks"):
            # Frames without instances still carry gt_masks, so every frame has the same fields.
            if mask_format == "polygon":
                instances.gt_masks = PolygonMasks([])
            else:
                instances.gt_masks = BitMasks(torch.zeros((0, *image_shape), dtype=torch.bool))
        if self.recompute_boxes:
            instances.gt_boxes = instances.gt_masks.get_bounding_boxes()
        # Indexing an Instances indexes every field, so gt_ids stay aligned with the kept instances.
        return utils.filter_empty_instances(instances)


class YTVISVideoMapper:
    """Test mapper: video dict -> test video dict (docs/interfaces.md section 3), frames lazily read."""

    @configurable
    def __init__(self, *, augmentations: List[Union[T.Augmentation, T.Transform]], image_format: str):
        """
        Args:
            augmentations: test-time augmentations, applied to every frame (the same transform).
            image_format: INPUT.FORMAT.
        """
        self.augmentations = T.AugmentationList(augmentations)
        self.image_format = image_format
        logger.info(f"[YTVISVideoMapper] augmentations: {augmentations}")

    @classmethod
    def from_config(cls, cfg):
        # ResizeShortestEdge(MIN_SIZE_TEST, MAX_SIZE_TEST), as detectron2 builds it for testing.
        return {
            "augmentations": utils.build_augmentation(cfg, is_train=False),
            "image_format": cfg.INPUT.FORMAT,
        }

    def __call__(self, video_dict: Dict) -> Dict:
        file_names = list(video_dict["file_names"])
        return {
            "video_id": video_dict.get("video_id"),
            "height": video_dict.get("height"),
            "width": video_dict.get("width"),
            "length": int(video_dict.get("length", len(file_names))),
            "file_names": file_names,
            "image": LazyVideoFrames(
                file_names,
                self.augmentations,
                self.image_format,
                video_id=video_dict.get("video_id"),
                height=video_dict.get("height"),
                width=video_dict.get("width"),
            ),
        }
