"""A tracker's memory: one row per live track, so its size depends on the tracks, never on the frames."""
from typing import Dict, Optional

import torch

__all__ = ["TrackMemory"]


def _append(old: Optional[torch.Tensor], rows: torch.Tensor) -> torch.Tensor:
    return rows.clone() if old is None else torch.cat([old, rows.to(old)])


class TrackMemory:
    """Track ids, the frame each track was last seen, and per-track state tensors of any shape.

    ``state`` maps a name to a tensor whose first dimension is the track (e.g. "embeds" (M, D), "boxes"
    (M, 4), "masks" (M, h, w), or a template (M, C, 7, 7)); every entry has one row per track, in the
    order of :attr:`track_ids`. Nothing else is kept.
    """

    def __init__(self):
        self.clear()

    def clear(self):
        self.track_ids: Optional[torch.Tensor] = None  # (M,) long; None until the first track of a video
        self.last_seen: Optional[torch.Tensor] = None  # (M,) long: frame index of the last match
        self.state: Dict[str, torch.Tensor] = {}

    def __len__(self) -> int:
        return 0 if self.track_ids is None else int(self.track_ids.numel())

    def add(self, track_ids: torch.Tensor, frame_idx: int, state: Dict[str, Optional[torch.Tensor]]):
        """Append K new tracks (``track_ids`` (K,)) seen at ``frame_idx``; None state entries are skipped."""
        k = int(track_ids.numel())
        last_seen = torch.full((k,), frame_idx, dtype=torch.long, device=track_ids.device)
        self.track_ids = _append(self.track_ids, track_ids)
        self.last_seen = _append(self.last_seen, last_seen)
        for name, rows in state.items():
            if rows is not None:
                self.state[name] = _append(self.state.get(name), rows)

    def set(self, rows: torch.Tensor, frame_idx: int, state: Dict[str, Optional[torch.Tensor]]):
        """Overwrite the state of the tracks at memory ``rows`` and mark them seen at ``frame_idx``."""
        self.last_seen[rows] = frame_idx
        for name, values in state.items():
            if values is not None and name in self.state:
                self.state[name][rows] = values.to(self.state[name].dtype)

    def keep(self, mask: torch.Tensor):
        """Keep only the tracks where ``mask`` (M,) bool is True."""
        self.track_ids = self.track_ids[mask]
        self.last_seen = self.last_seen[mask]
        self.state = {name: value[mask] for name, value in self.state.items()}
