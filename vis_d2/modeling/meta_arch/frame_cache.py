"""A bounded per-video cache of what earlier frames left behind (features, proposals, codes, ...)."""
from collections import deque
from typing import Any, List

__all__ = ["FrameCache"]


class FrameCache:
    """The entries of the last ``maxlen`` frames of the current video, oldest first.

    Online temporal methods read earlier frames from here instead of recomputing them (TFA: RoI
    features of the previous frames' top proposals; CompFeat: their feature maps; HITF: their codes
    and pixel features). The cache never holds more than ``maxlen`` entries, so memory stays bounded
    on long videos; ``maxlen`` 0 keeps nothing.

    Usage::

        cache = FrameCache(2)
        cache.begin_video()                  # at the start of each video
        context = cache.entries()            # [] at frame 0, then up to 2 entries
        cache.append(entry_of_this_frame)
    """

    def __init__(self, maxlen: int):
        if maxlen < 0:
            raise ValueError(f"FrameCache maxlen must be >= 0, got {maxlen}")
        self.maxlen = int(maxlen)
        self._entries = deque(maxlen=self.maxlen)

    def begin_video(self):
        """Forget the previous video's frames."""
        self._entries.clear()

    def append(self, entry: Any):
        """Add the current frame's entry; the oldest one is dropped once ``maxlen`` are held."""
        if self.maxlen > 0:
            self._entries.append(entry)

    def entries(self) -> List[Any]:
        """The held entries, oldest first (a new list; the cache itself is not exposed)."""
        return list(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
