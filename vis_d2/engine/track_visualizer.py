"""Draw a video model's tracks on its frames: one stable color per track id, class name and score.

Follows detectron2's ``Visualizer`` conventions: masks blended at alpha 0.5 in the instance color with a
darker outline, labels ``"<class> <score>%"`` on a dark box at the instance's top-left, and colors from
detectron2's ``colormap``. Unlike ``VideoVisualizer``, which has to match instances between frames to keep
colors stable, a video model already names its tracks, so the color is a function of the track id alone.
"""
from typing import Dict, List, Optional, Sequence

import numpy as np
import pycocotools.mask as mask_util
from detectron2.utils.colormap import colormap
from PIL import Image, ImageDraw

__all__ = ["TrackVisualizer", "track_color"]

_PALETTE = colormap(rgb=True, maximum=255).astype(np.uint8)  # (74, 3) distinct colors


def track_color(track_id: int) -> np.ndarray:
    """The RGB color of a track: the same for the same id, every frame, every run."""
    return _PALETTE[int(track_id) % len(_PALETTE)]


def _outline(mask: np.ndarray) -> np.ndarray:
    """Pixels of ``mask`` (H, W) bool with a 4-neighbour outside the mask."""
    inner = mask.copy()
    inner[1:, :] &= mask[:-1, :]
    inner[:-1, :] &= mask[1:, :]
    inner[:, 1:] &= mask[:, :-1]
    inner[:, :-1] &= mask[:, 1:]
    return mask & ~inner


class TrackVisualizer:
    """Renders one frame at a time from a video model's per-video output (docs/interfaces.md §4).

    Args:
        tracks: the output's ``pred_tracks``: ``{"track_id", "score", "category_id" (contiguous),
            "segmentations": [RLE | None] * length}``.
        class_names: contiguous category id -> name.
        score_threshold: tracks with a lower score are not drawn.
        alpha: mask opacity.
    """

    def __init__(self, tracks: List[dict], class_names: Sequence[str], score_threshold: float = 0.5, alpha: float = 0.5):
        self.tracks = sorted((t for t in tracks if float(t["score"]) >= score_threshold), key=lambda t: float(t["score"]))
        self.class_names = list(class_names)
        self.alpha = alpha

    def label(self, track: dict) -> str:
        cls = int(track["category_id"])
        name = self.class_names[cls] if 0 <= cls < len(self.class_names) else f"class {cls}"
        return f"{name} {100 * float(track['score']):.0f}% #{track['track_id']}"

    def draw(self, rgb: np.ndarray, frame_index: int, frame_text: Optional[str] = None) -> np.ndarray:
        """Frame ``frame_index`` (H, W, 3) uint8 RGB with its tracks drawn; returns a new array."""
        canvas = rgb.astype(np.float32)
        labels: Dict[int, tuple] = {}
        for track in self.tracks:  # low scores first, so the best tracks end on top
            segm = track["segmentations"][frame_index]
            if segm is None:
                continue
            mask = mask_util.decode(segm).astype(bool)
            if mask.shape != rgb.shape[:2] or not mask.any():
                continue
            color = track_color(track["track_id"]).astype(np.float32)
            canvas[mask] = (1 - self.alpha) * canvas[mask] + self.alpha * color
            canvas[_outline(mask)] = color * 0.3  # detectron2 darkens the edge color by 70 %
            ys, xs = np.nonzero(mask)
            labels[int(track["track_id"])] = (int(xs.min()), int(ys.min()), self.label(track), color)
        image = Image.fromarray(canvas.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for x, y, text, color in labels.values():
            tw, th = draw.textbbox((0, 0), text)[2:] if hasattr(draw, "textbbox") else draw.textsize(text)
            y = max(0, y - th - 3)
            draw.rectangle([x, y, x + tw + 3, y + th + 2], fill=(0, 0, 0))
            draw.text((x + 2, y + 1), text, fill=tuple(int(c) for c in np.maximum(color, 96)))
        if frame_text:
            draw.text((3, image.height - 13), frame_text, fill=(255, 255, 255))
        return np.asarray(image)
