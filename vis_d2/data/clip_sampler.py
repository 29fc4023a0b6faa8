"""Which frames of a video form one training clip, and what each frame is for.

A clip has three kinds of frames (``frame_roles`` in the training clip dict, docs/interfaces.md section 2):

- ``"key"``: the frame whose detections are supervised; exactly one, always at position 0.
- ``"ref"``: reference frames, the targets of tracking losses. MaskTrack R-CNN (Yang et al., ICCV 2019)
  draws its reference uniformly among the *other* annotated frames of the video within a range of the key.
- ``"support"``: inputs to temporal aggregation (TFA, CompFeat, STMask, ...); no annotation needed, and
  only past frames for online (causal) methods.

``INPUT.SAMPLING_FRAME_NUM = 1 + #refs + #supports``; ``INPUT.SAMPLING_SUPPORT_NUM`` says how many of the
non-key frames are support frames, the rest are reference frames.

Short videos never make the sampler fail: when a role has fewer candidates than it needs, every candidate
is used once and the rest are drawn again with replacement; when a role has no candidate at all (a 1-frame
video, a causal support for the first frame, a video whose only annotated frame is the key), the key frame
itself fills the role, as the official MaskTrack R-CNN code does for a missing reference.
"""
import logging
import random
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np

from detectron2.config import configurable

from ..utils import is_crowd

__all__ = ["ClipSampler", "frames_with_instances"]

logger = logging.getLogger(__name__)

RNG = Union[np.random.Generator, random.Random]
_METHODS = ("random", "uniform")


def frames_with_instances(video_dict: Dict) -> List[int]:
    """Indices of the frames of a video dict that hold at least one non-crowd instance."""
    return [
        t
        for t, annos in enumerate(video_dict["annotations"])
        if any(not is_crowd(a) for a in annos)
    ]


def _randbelow(rng: RNG, n: int) -> int:
    """A uniform integer in [0, n) from either kind of generator."""
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(n))
    return rng.randrange(n)


def _sample_without_replacement(rng: RNG, items: Sequence[int], k: int) -> List[int]:
    # A partial Fisher-Yates shuffle: built on _randbelow so both generator kinds give the same law.
    pool = list(items)
    for i in range(k):
        j = i + _randbelow(rng, len(pool) - i)
        pool[i], pool[j] = pool[j], pool[i]
    return pool[:k]


class ClipSampler:
    """Pick the key, reference and support frames of a training clip.

    Usable alone: ``ClipSampler(cfg)(video_dict, rng)`` or ``ClipSampler(num_frames=3, frame_range=5)``.
    """

    @configurable
    def __init__(
        self,
        *,
        num_frames: int,
        frame_range: int,
        support_num: int = 0,
        support_range: int = -1,
        method: str = "random",
        causal: bool = False,
        shuffle: bool = False,
        key_require_annotations: bool = True,
        ref_require_annotations: bool = True,
    ):
        """
        Args:
            num_frames: frames per clip, key frame included (INPUT.SAMPLING_FRAME_NUM), >= 1.
            frame_range: largest |t - t_key| of a reference frame (INPUT.SAMPLING_FRAME_RANGE), >= 0.
            support_num: how many of the ``num_frames - 1`` non-key frames are support frames.
            support_range: largest |t - t_key| of a support frame; -1 means ``frame_range``.
            method: "random" (uniform draw, without replacement while there are enough candidates) or
                "uniform" (evenly spaced over the time-ordered candidates, with a random phase).
            causal: support frames only from t < t_key (online methods see no future).
            shuffle: shuffle the order of the reference frames among themselves, and of the support frames
                among themselves (the key frame stays at position 0, the role layout stays fixed).
            key_require_annotations: key frames need >= 1 non-crowd instance.
            ref_require_annotations: reference frames need >= 1 non-crowd instance.
        """
        if num_frames < 1:
            raise ValueError(f"INPUT.SAMPLING_FRAME_NUM must be >= 1, got {num_frames}")
        if not 0 <= support_num <= num_frames - 1:
            raise ValueError(
                f"INPUT.SAMPLING_SUPPORT_NUM must be in [0, SAMPLING_FRAME_NUM - 1 = {num_frames - 1}]"
                f" (the key frame is one of the SAMPLING_FRAME_NUM frames), got {support_num}"
            )
        if frame_range < 0:
            raise ValueError(f"INPUT.SAMPLING_FRAME_RANGE must be >= 0, got {frame_range}")
        if method not in _METHODS:
            raise ValueError(f"INPUT.SAMPLING_METHOD must be one of {_METHODS}, got {method!r}")
        # fmt: off
        self.num_frames              = num_frames
        self.num_refs                = num_frames - 1 - support_num
        self.num_supports            = support_num
        self.frame_range             = frame_range
        self.support_range           = frame_range if support_range < 0 else support_range
        self.method                  = method
        self.causal                  = causal
        self.shuffle                 = shuffle
        self.key_require_annotations = key_require_annotations
        self.ref_require_annotations = ref_require_annotations
        # fmt: on

    @classmethod
    def from_config(cls, cfg):
        return {
            "num_frames": cfg.INPUT.SAMPLING_FRAME_NUM,
            "frame_range": cfg.INPUT.SAMPLING_FRAME_RANGE,
            "support_num": cfg.INPUT.SAMPLING_SUPPORT_NUM,
            "support_range": cfg.INPUT.SAMPLING_SUPPORT_RANGE,
            "method": cfg.INPUT.SAMPLING_METHOD,
            "causal": cfg.INPUT.SAMPLING_CAUSAL,
            "shuffle": cfg.INPUT.SAMPLING_FRAME_SHUFFLE,
            "key_require_annotations": cfg.INPUT.SAMPLING_KEY_REQUIRE_ANNOTATIONS,
            "ref_require_annotations": cfg.INPUT.SAMPLING_REF_REQUIRE_ANNOTATIONS,
        }

    def __repr__(self):
        return (
            f"ClipSampler(num_frames={self.num_frames}, refs={self.num_refs}, "
            f"supports={self.num_supports}, frame_range={self.frame_range}, "
            f"support_range={self.support_range}, method={self.method!r}, causal={self.causal}, "
            f"shuffle={self.shuffle})"
        )

    def __call__(self, video_dict: Dict, rng: RNG = None) -> List[Tuple[int, str]]:
        """
        Args:
            video_dict: a video dataset dict (docs/interfaces.md section 1); uses "length" (or the
                number of "file_names") and "annotations".
            rng: a ``np.random.Generator`` or ``random.Random``. None draws a seed from numpy's global
                generator, which detectron2 seeds in every data loader worker (``seed_all_rng``).

        Returns:
            list of ``num_frames`` ``(frame_index, role)``: the key first, then the reference frames,
            then the support frames, each group in time order (in random order with ``shuffle``).
        """
        if rng is None:
            rng = np.random.default_rng(np.random.randint(2**31))
        length = int(video_dict.get("length", len(video_dict["file_names"])))
        if length < 1:
            raise ValueError(f"Video {video_dict.get('video_id')} has no frames")
        annotated = frames_with_instances(video_dict) if "annotations" in video_dict else []

        key_candidates = annotated if (self.key_require_annotations and annotated) else range(length)
        key = key_candidates[_randbelow(rng, len(key_candidates))]

        ref_pool = annotated if self.ref_require_annotations else range(length)
        ref_candidates = [t for t in ref_pool if t != key and abs(t - key) <= self.frame_range]
        refs = self._pick(ref_candidates, self.num_refs, key, rng)

        support_candidates = [
            t
            for t in range(length)
            if t != key and abs(t - key) <= self.support_range and (t < key or not self.causal)
        ]
        # Prefer frames that are not references already, so the clip covers more distinct frames.
        ref_set = set(refs)
        not_refs = [t for t in support_candidates if t not in ref_set]
        if len(not_refs) >= self.num_supports:
            support_candidates = not_refs
        supports = self._pick(support_candidates, self.num_supports, key, rng)

        if self.shuffle:
            # Within each role only: every clip keeps the layout key, refs, supports, which is what a
            # batch of clips needs to share (vis_d2.modeling.meta_arch.clip_frames.clip_frame_slots).
            refs = _sample_without_replacement(rng, refs, len(refs))
            supports = _sample_without_replacement(rng, supports, len(supports))
        return [(key, "key")] + [(t, "ref") for t in refs] + [(t, "support") for t in supports]

    def _pick(self, candidates: List[int], k: int, key: int, rng: RNG) -> List[int]:
        """k frames from the time-ordered ``candidates``, returned in time order.

        No candidate: the key frame, k times. Fewer than k: every candidate once, the rest again with
        replacement ("random") or by the evenly spaced rule, which then repeats frames ("uniform").
        """
        if k == 0:
            return []
        n = len(candidates)
        if n == 0:
            return [key] * k
        if self.method == "uniform":
            # Positions i * n / k + phase: constant spacing n / k, distinct whenever k <= n, and every
            # candidate is hit when k > n. The random phase keeps clips of the same key varied.
            phase = float(rng.random())
            picks = [candidates[min(n - 1, int((i + phase) * n / k))] for i in range(k)]
        elif k <= n:
            picks = _sample_without_replacement(rng, candidates, k)
        else:
            picks = list(candidates) + [candidates[_randbelow(rng, n)] for _ in range(k - n)]
        return sorted(picks)
