"""Per-video aggregation of tracked detections into ``pred_tracks`` (docs/interfaces.md §4).

Follows MaskTrack R-CNN's official results writer (``mmdet/core/evaluation/coco_utils.py``): a
track's score is the mean of its per-frame detection scores, its category the majority vote of its
per-frame labels (``np.bincount(...).argmax()``, so ties go to the lowest label), and its
segmentation a list with one compressed RLE per frame where the track was output, else ``None``.

Only RLEs, scores and labels are kept, never dense masks, so memory stays small on long videos; the
masks of each frame are turned into RLEs beforehand by :mod:`vis_d2.modeling.frame_masks`.
"""
import logging
from typing import Dict, List, Sequence, Union

import numpy as np
import pycocotools.mask as mask_util
import torch

from ..utils.rle import rle_counts_to_str

__all__ = ["VideoTrackAccumulator", "encode_mask_rle", "encode_masks_rle"]

logger = logging.getLogger(__name__)


def encode_masks_rle(masks: Union[np.ndarray, torch.Tensor]) -> List[Dict]:
    """Encode binary masks as compressed RLEs.

    Args:
        masks: (N, H, W) bool (or 0/1) array or tensor, any device.

    Returns:
        N dicts ``{"size": [H, W], "counts": str}``.
    """
    if isinstance(masks, torch.Tensor):
        masks = masks.detach().cpu().numpy()
    if masks.ndim != 3:
        raise ValueError(f"masks must be (N, H, W), got shape {masks.shape}")
    if masks.shape[0] == 0:
        return []
    # pycocotools wants a Fortran-ordered (H, W, N) uint8 array.
    stacked = np.asfortranarray(masks.astype(np.uint8, copy=False).transpose(1, 2, 0))
    return [rle_counts_to_str(r) for r in mask_util.encode(stacked)]


def encode_mask_rle(mask: Union[np.ndarray, torch.Tensor]) -> Dict:
    """Encode one binary mask (H, W) as a compressed RLE ``{"size": [H, W], "counts": str}``."""
    if mask.ndim != 2:
        raise ValueError(f"mask must be (H, W), got shape {tuple(mask.shape)}")
    return encode_masks_rle(mask[None])[0]


def _to_list(values) -> list:
    if isinstance(values, torch.Tensor):
        return values.detach().cpu().tolist()
    if isinstance(values, np.ndarray):
        return values.tolist()
    return list(values)


class VideoTrackAccumulator:
    """Collects one video's tracked detections, frame by frame, and forms its ``pred_tracks``.

    Usage::

        acc = VideoTrackAccumulator(length, height, width)
        for t in range(length):
            acc.add_frame(t, track_ids, scores, labels, rles)
        output = {"video_id": ..., "height": height, "width": width, "length": length,
                  "pred_tracks": acc.tracks()}
    """

    def __init__(self, length: int, height: int, width: int):
        """
        Args:
            length: number of frames in the video.
            height, width: original resolution; every RLE must have this size.
        """
        self.length = int(length)
        self.height = int(height)
        self.width = int(width)
        # track id -> {"frames": {frame_idx: rle}, "scores": [float], "labels": [int]}
        self._tracks: Dict[int, Dict] = {}

    def __len__(self) -> int:
        """Number of tracks seen so far."""
        return len(self._tracks)

    def add_frame(
        self,
        frame_idx: int,
        track_ids: Union[torch.Tensor, Sequence[int]],
        scores: Union[torch.Tensor, Sequence[float]],
        labels: Union[torch.Tensor, Sequence[int]],
        rles: Sequence[Dict],
    ):
        """Record one frame's output.

        Args:
            frame_idx: index of the frame in [0, length).
            track_ids: (N,) track ids from the tracker; -1 entries (dropped detections) are skipped.
            scores: (N,) detection scores.
            labels: (N,) contiguous class ids.
            rles: N compressed RLE dicts at the original resolution (str or bytes counts; stored
                with str counts).
        """
        if not 0 <= frame_idx < self.length:
            raise ValueError(f"frame_idx {frame_idx} outside [0, {self.length})")
        track_ids, scores, labels = _to_list(track_ids), _to_list(scores), _to_list(labels)
        if not len(track_ids) == len(scores) == len(labels) == len(rles):
            raise ValueError(
                f"add_frame got {len(track_ids)} ids, {len(scores)} scores, {len(labels)} labels "
                f"and {len(rles)} RLEs; they must have the same length"
            )
        for track_id, score, label, rle in zip(track_ids, scores, labels, rles):
            track_id = int(track_id)
            if track_id < 0:
                continue
            if list(rle["size"]) != [self.height, self.width]:
                size = [self.height, self.width]
                raise ValueError(f"RLE of size {list(rle['size'])} in a video of size {size}")
            track = self._tracks.setdefault(track_id, {"frames": {}, "scores": [], "labels": []})
            if frame_idx in track["frames"]:
                raise ValueError(f"Track {track_id} output twice in frame {frame_idx}")
            track["frames"][frame_idx] = rle_counts_to_str(rle)
            track["scores"].append(float(score))
            track["labels"].append(int(label))

    def tracks(self) -> List[Dict]:
        """The video's tracks, by increasing track id.

        Returns:
            list of ``{"track_id": int, "score": float, "category_id": int,
            "segmentations": [RLE | None] * length}`` (docs/interfaces.md §4).
        """
        out = []
        for track_id in sorted(self._tracks):
            track = self._tracks[track_id]
            segmentations = [None] * self.length
            for frame_idx, rle in track["frames"].items():
                segmentations[frame_idx] = rle
            out.append(
                {
                    "track_id": track_id,
                    "score": float(np.mean(track["scores"])),
                    "category_id": int(np.bincount(track["labels"]).argmax()),
                    "segmentations": segmentations,
                }
            )
        return out
