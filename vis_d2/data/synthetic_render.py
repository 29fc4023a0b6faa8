"""Rasteriser for the synthetic VIS benchmark: shapes, textures, background, degradations.

Every object is drawn by inverse mapping: each pixel of its window is taken into the object's own
frame (translate, rotate, divide by the radius), where a shape test and a texture function are
evaluated. A pixel belongs to an object exactly when the shape test says so (no anti-aliasing), and
objects are painted back to front into an owner map, so the visible masks are exact and disjoint.

Only numpy and PIL are imported.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

from .synthetic_scene import BOUND_RADIUS, Degradation, SceneStyle, Texture, TrackPlan, VideoPlan, sample_texture


# ------------------------------------------------------------------------------------------- shapes
def _star_polygon(u: np.ndarray, v: np.ndarray, points: int, inner: float) -> np.ndarray:
    """Inside test for a star polygon: ``points`` tips at radius 1, notches at radius ``inner``.

    A regular n-gon is the case ``inner = cos(pi / n)`` (the notch lies on the straight edge). The angle
    is folded into half a sector, where the boundary is the single segment tip (1, 0) -> notch.
    """
    half = math.pi / points
    r = np.hypot(u, v)
    phi = np.mod(np.arctan2(v, u) + math.pi / 2, 2 * half)  # + pi/2: a tip points up (image y is down)
    phi = np.minimum(phi, 2 * half - phi)
    bx, by = inner * math.cos(half), inner * math.sin(half)
    # normal of the segment (1, 0) -> (bx, by), oriented so that the origin is inside
    nx, ny = by, 1.0 - bx
    return r * (nx * np.cos(phi) + ny * np.sin(phi)) <= by


def _circle(u, v):
    return u * u + v * v <= 1.0


def _square(u, v):
    return np.maximum(np.abs(u), np.abs(v)) <= 0.78


def _triangle(u, v):
    return _star_polygon(u, v, 3, 0.5)


def _cross(u, v):
    au, av = np.abs(u), np.abs(v)
    return ((au <= 0.3) & (av <= 0.95)) | ((av <= 0.3) & (au <= 0.95))


def _ring(u, v):
    rr = u * u + v * v
    return (rr <= 1.0) & (rr >= 0.55**2)


def _star(u, v):
    return _star_polygon(u, v, 5, 0.45)


# shape name -> inside test on object-frame coordinates (u, v), all fitting in the disc of BOUND_RADIUS
SHAPES: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "circle": _circle,
    "square": _square,
    "triangle": _triangle,
    "cross": _cross,
    "ring": _ring,
    "star": _star,
}


# ------------------------------------------------------------------------------------------- textures
def texture_rgb(texture: Texture, u: np.ndarray, v: np.ndarray, contrast: float = 1.0) -> np.ndarray:
    """Colors of ``texture`` at object-frame points.

    Args:
        u, v: (M,) object-frame coordinates (1 = the object's radius).
        contrast: the second color is moved this far from the first towards its own value (0: flat).

    Returns:
        (M, 3) float32 RGB in [0, 255].
    """
    ca, sa = math.cos(texture.angle), math.sin(texture.angle)
    s = (u * ca + v * sa) * texture.freq + texture.phase
    t = (v * ca - u * sa) * texture.freq
    kind = texture.kind
    if kind == "stripes":
        w = np.floor(2 * s) % 2
    elif kind == "checker":
        w = (np.floor(1.5 * s) + np.floor(1.5 * t)) % 2
    elif kind == "dots":
        ds, dt = np.mod(1.5 * s, 1.0) - 0.5, np.mod(1.5 * t, 1.0) - 0.5
        w = (ds * ds + dt * dt < 0.09).astype(np.float32)
    elif kind == "rings":
        w = np.floor(2 * np.hypot(u, v) * texture.freq + texture.phase) % 2
    elif kind == "gradient":
        w = np.clip(0.5 + 0.5 * (u * ca + v * sa), 0.0, 1.0)
    else:
        raise ValueError(f"unknown texture kind {kind!r}")
    c0, c1 = np.asarray(texture.colors, dtype=np.float32)
    return c0 + w.astype(np.float32)[:, None] * (np.float32(contrast) * (c1 - c0))


# ------------------------------------------------------------------------------------------- objects
def rasterize(track: TrackPlan, t: int, height: int, width: int):
    """Rasterise ``track`` at frame ``t``, clipped to the frame.

    Returns:
        None when nothing of it falls in the frame, else ``(window, mask, u, v)``: ``window`` the
        (row slice, column slice) it covers, ``mask`` (h, w) bool inside test there, and ``u, v`` the
        object-frame coordinates of the mask's pixels, (M,) each.
    """
    cx, cy, r, angle = track.state(t)
    ext = BOUND_RADIUS * r + 1.0
    x0, x1 = max(int(math.floor(cx - ext)), 0), min(int(math.ceil(cx + ext)), width)
    y0, y1 = max(int(math.floor(cy - ext)), 0), min(int(math.ceil(cy + ext)), height)
    if x0 >= x1 or y0 >= y1:
        return None
    # pixel (i, j) covers [j, j+1) x [i, i+1): test its center
    dx = (np.arange(x0, x1, dtype=np.float32) + 0.5 - cx)[None, :]
    dy = (np.arange(y0, y1, dtype=np.float32) + 0.5 - cy)[:, None]
    c, s = math.cos(angle) / r, math.sin(angle) / r
    u = c * dx + s * dy
    v = c * dy - s * dx
    mask = SHAPES[track.shape](u, v)
    if not mask.any():
        return None
    return (slice(y0, y1), slice(x0, x1)), mask, u[mask], v[mask]


# ------------------------------------------------------------------------------------------- background
def _smooth_noise(rng, height: int, width: int, cells: Tuple[int, int], amplitude: float, offset: float):
    """(height, width, 3) float32 color noise: a random ``cells`` grid upsampled bicubically."""
    grid = np.clip(rng.uniform(-amplitude, amplitude, size=cells + (3,)) + offset, 0, 255).astype(np.uint8)
    return np.asarray(Image.fromarray(grid).resize((width, height), Image.BICUBIC), dtype=np.float32)


def _blob_polygon(rng, cx: float, cy: float, radius: float, n: int = 24) -> List[Tuple[float, float]]:
    """An irregular closed outline: a radius modulated by two low harmonics, stretched and rotated."""
    th = np.linspace(0, 2 * math.pi, n, endpoint=False)
    rad = radius * (1 + 0.3 * np.sin(2 * th + rng.uniform(0, 6.3)) + 0.2 * np.sin(3 * th + rng.uniform(0, 6.3)))
    stretch, rot = rng.uniform(0.4, 1.0), rng.uniform(0, math.pi)
    x, y = rad * np.cos(th), rad * np.sin(th) * stretch
    xr, yr = x * math.cos(rot) - y * math.sin(rot), x * math.sin(rot) + y * math.cos(rot)
    return [(float(cx + a), float(cy + b)) for a, b in zip(xr, yr)]


def render_background(
    rng: np.random.Generator, height: int, width: int, scale: float, style: SceneStyle = SceneStyle()
) -> np.ndarray:
    """A muted, smooth color field with distractor lines and blobs, none of which is an instance.

    A share of the blobs (``style.textured_distractor_share``) carries an object-like texture, so
    "textured" alone never means "object": a detector has to learn the silhouettes.

    Returns:
        (height, width, 3) float32 RGB in [0, 255].
    """
    coarse = (int(rng.integers(3, 6)), int(rng.integers(4, 8)))
    bg = _smooth_noise(rng, height, width, coarse, 80.0, rng.uniform(90, 150))
    gray = bg.mean(axis=2, keepdims=True)
    bg = gray + (bg - gray) * rng.uniform(0.3, 0.8)  # muted: objects are the saturated things
    fine = (coarse[0] * 4, coarse[1] * 4)
    bg += _smooth_noise(rng, height, width, fine, 25.0, 128.0) - 128.0
    img = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(int(round(int(rng.integers(2, 7)) * style.distractor_scale))):
        pts = [(float(rng.uniform(-0.1, 1.1) * width), float(rng.uniform(-0.1, 1.1) * height)) for _ in range(3)]
        color = tuple(int(c) for c in rng.integers(0, 256, size=3))
        draw.line(pts, fill=color, width=max(1, int(round(rng.uniform(1, 4) * scale))))
    out = np.asarray(img, dtype=np.float32).copy()
    for _ in range(int(round(int(rng.integers(1, 4)) * style.distractor_scale))):
        radius = rng.uniform(8, 30) * scale
        poly = _blob_polygon(rng, rng.uniform(0, width), rng.uniform(0, height), radius)
        mask_img = Image.new("L", (width, height), 0)
        ImageDraw.Draw(mask_img).polygon(poly, fill=1)
        mask = np.asarray(mask_img, dtype=bool)
        if not mask.any():
            continue
        if rng.uniform() < style.textured_distractor_share:
            ys, xs = np.nonzero(mask)
            u = (xs - xs.mean()).astype(np.float32) / radius
            v = (ys - ys.mean()).astype(np.float32) / radius
            out[mask] = texture_rgb(sample_texture(rng), u, v, style.texture_contrast)
        else:
            out[mask] = rng.uniform(30, 225, size=3)
    return out


# ------------------------------------------------------------------------------------------- degradations
def motion_blur(img: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Linear motion blur: the mean of ``round(length)`` copies shifted along ``angle`` (edges replicated)."""
    n = max(2, int(round(length)))
    offs = [(k - (n - 1) / 2.0) for k in range(n)]
    dx = [int(round(o * math.cos(angle))) for o in offs]
    dy = [int(round(o * math.sin(angle))) for o in offs]
    pad = max(max(abs(d) for d in dx), max(abs(d) for d in dy))
    h, w = img.shape[:2]
    padded = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    acc = np.zeros_like(img)
    for ox, oy in zip(dx, dy):
        acc += padded[pad + oy : pad + oy + h, pad + ox : pad + ox + w]
    return acc / n


def apply_degradation(img: np.ndarray, deg: Degradation) -> Tuple[np.ndarray, float]:
    """Degrade a clean frame.

    Returns:
        the degraded (H, W, 3) float32 frame and the sensor noise sigma to use for it (the "noise"
        degradation is a much stronger sensor noise, added with the frame's own noise draw).
    """
    if deg.kind == "blur":
        return motion_blur(img, deg.amount, deg.angle), 0.0
    if deg.kind == "noise":
        return img, deg.amount
    if deg.kind == "low_contrast":
        mean = img.mean(axis=(0, 1), keepdims=True)
        return mean + (img - mean) * deg.amount, 0.0
    raise ValueError(f"unknown degradation {deg.kind!r}")


# ------------------------------------------------------------------------------------------- video
@dataclass
class RenderedVideo:
    """Pixels and exact masks of a rendered :class:`VideoPlan`.

    Attributes:
        frames: (T, H, W, 3) uint8 RGB.
        visible: (N, T, H, W) bool, the visible part of each track (disjoint across tracks).
        full: (N, T, H, W) bool, each track's whole in-frame silhouette, occluded parts included.
    """

    frames: np.ndarray
    visible: np.ndarray
    full: np.ndarray


def render_video(plan: VideoPlan) -> RenderedVideo:
    """Render ``plan``: background (panned crop), objects back to front, degradation, sensor noise."""
    H, W, T, N = plan.height, plan.width, plan.length, len(plan.tracks)
    # the background is one large canvas; the camera pans across it
    margin_x = int(math.ceil(abs(plan.pan[0]) * (T - 1) / 2.0)) + 1
    margin_y = int(math.ceil(abs(plan.pan[1]) * (T - 1) / 2.0)) + 1
    canvas = render_background(
        np.random.default_rng([plan.seed, 0]), H + 2 * margin_y, W + 2 * margin_x, plan.scale, plan.style
    )
    frames = np.empty((T, H, W, 3), dtype=np.uint8)
    visible = np.zeros((N, T, H, W), dtype=bool)
    full = np.zeros((N, T, H, W), dtype=bool)
    for t in range(T):
        ox = margin_x + int(round(plan.pan[0] * (t - (T - 1) / 2.0)))
        oy = margin_y + int(round(plan.pan[1] * (t - (T - 1) / 2.0)))
        img = canvas[oy : oy + H, ox : ox + W].copy()
        owner = np.full((H, W), -1, dtype=np.int16)
        for k, track in enumerate(plan.tracks):
            raster = rasterize(track, t, H, W)
            if raster is None:
                continue
            window, mask, u, v = raster
            img[window][mask] = texture_rgb(track.texture, u, v, plan.style.texture_contrast)
            owner[window][mask] = k
            full[k, t][window] = mask
        visible[:, t] = owner[None] == np.arange(N, dtype=np.int16)[:, None, None]
        # frame noise comes from its own stream: degrading frame t changes no other frame
        rng = np.random.default_rng([plan.seed, 1, t])
        gain = rng.uniform(0.95, 1.05)  # mild exposure flicker
        noise = rng.standard_normal((H, W, 3), dtype=np.float32)
        sigma = plan.noise_sigma
        if t in plan.degradations:
            img, heavy_sigma = apply_degradation(img, plan.degradations[t])
            sigma = max(sigma, heavy_sigma)
        frames[t] = np.clip(img * gain + noise * sigma + 0.5, 0, 255).astype(np.uint8)
    return RenderedVideo(frames=frames, visible=visible, full=full)
