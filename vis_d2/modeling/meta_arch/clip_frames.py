"""Batching the frames of training clips by role (docs/interfaces.md §2).

A batch is a list of B clips of F frames each; frame 0 is the key frame, the others are "ref"
(targets of tracking losses) or "support" (inputs to temporal modules) frames. All clips of a
batch come from the same sampler, so they share one role layout; the F frames of the B clips are
run through the backbone as one batch of F*B images (frame-major), then cut back into one
:class:`FrameBatch` per frame slot, each batched over the B clips.
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import torch
from detectron2.structures import ImageList, Instances

__all__ = ["FrameBatch", "clip_frame_slots", "split_frame_batches"]

KEY, REF, SUPPORT = "key", "ref", "support"


@dataclass
class FrameBatch:
    """One frame slot of a batch of clips.

    Attributes:
        images: the slot's frames of the B clips, normalised and padded, (B, 3, H, W).
        features: backbone features, name -> (B, C, h, w).
        targets: per clip, the slot's ground truth (``gt_boxes``, ``gt_classes``, ``gt_masks``,
            ``gt_ids``), or None when the inputs carry no ``instances``.
        frame_indices: per clip, the slot's frame index in its video (``frame_indices`` of the clip), or
            None when the inputs do not say; methods that need the frames' order in time read it.
    """

    images: ImageList
    features: Dict[str, torch.Tensor]
    targets: Optional[List[Instances]]
    frame_indices: Optional[List[int]] = None


def clip_frame_slots(batched_inputs: Sequence[dict]) -> Dict[str, List[int]]:
    """Positions of the key, reference and support frames in the batch's clips.

    Clips without ``frame_roles`` are read as one key frame followed by reference frames.

    Returns:
        ``{"key": [0], "ref": [...], "support": [...]}``.

    Raises:
        ValueError: when the clips disagree on their role layout or frame 0 is not the key frame.
    """
    layouts = []
    for clip in batched_inputs:
        num_frames = len(clip["image"])
        roles = clip.get("frame_roles") or [KEY] + [REF] * (num_frames - 1)
        if len(roles) != num_frames:
            raise ValueError(f"Clip of video {clip.get('video_id')}: {len(roles)} roles for {num_frames} frames")
        layouts.append(tuple(roles))
    if len(set(layouts)) != 1:
        raise ValueError(f"All clips of a batch must share one frame-role layout, got {sorted(set(layouts))}")
    roles = layouts[0]
    if roles[0] != KEY or roles.count(KEY) != 1:
        raise ValueError(f"Frame 0 of a clip must be the only key frame, got roles {list(roles)}")
    unknown = set(roles) - {KEY, REF, SUPPORT}
    if unknown:
        raise ValueError(f"Unknown frame roles {sorted(unknown)}")
    return {role: [i for i, r in enumerate(roles) if r == role] for role in (KEY, REF, SUPPORT)}


def split_frame_batches(
    images: ImageList,
    features: Dict[str, torch.Tensor],
    batched_inputs: Sequence[dict],
    device: torch.device,
) -> List[FrameBatch]:
    """Cut frame-major batched images and features back into one :class:`FrameBatch` per slot.

    Args:
        images: F*B images ordered slot by slot: ``[clip 0 frame 0, clip 1 frame 0, ..., clip 0
            frame 1, ...]``.
        features: backbone outputs of ``images``, name -> (F*B, C, h, w).
        batched_inputs: the B clips.
        device: where the targets go.

    Returns:
        F frame batches, by slot.
    """
    num_clips = len(batched_inputs)
    num_frames = len(batched_inputs[0]["image"])
    has_targets = "instances" in batched_inputs[0]
    has_indices = all("frame_indices" in clip for clip in batched_inputs)
    out = []
    for slot in range(num_frames):
        sl = slice(slot * num_clips, (slot + 1) * num_clips)
        targets = [clip["instances"][slot].to(device) for clip in batched_inputs] if has_targets else None
        out.append(
            FrameBatch(
                images=ImageList(images.tensor[sl], images.image_sizes[sl]),
                features={k: v[sl] for k, v in features.items()},
                targets=targets,
                frame_indices=[int(clip["frame_indices"][slot]) for clip in batched_inputs] if has_indices else None,
            )
        )
    return out
