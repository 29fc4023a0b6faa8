"""Scene plans for the synthetic VIS benchmark: what moves where, how it looks, which frames degrade.

A :class:`VideoPlan` is a complete, seed-free description of one video: the renderer
(:mod:`vis_d2.data.synthetic_render`) turns it into frames and exact masks, and the only randomness left
at render time (background, sensor noise) comes from ``VideoPlan.seed``. Keeping the plan separate from
the pixels lets tests build scenes by hand (two squares that overlap, one degraded frame) and lets the
generator check a plan's geometry (does the object really enter?) before paying for rendering.

Sizes are defined at the reference resolution 192 x 320 (H x W) and scaled by
``min(H / 192, W / 320)``: objects 20-90 px across (the diameter of the disc of radius ``r``), speeds
1-10 px per annotated frame, up to 16 for an object that must enter a short video in time (YouTube-VIS
annotates every 5th raw frame, so a "frame" here is a 5-frame step).

Only numpy and the standard library are imported, so the generator stays light.
"""
import colorsys
import math
from dataclasses import dataclass, field, replace
from typing import Dict, Sequence, Tuple

import numpy as np

REF_HEIGHT, REF_WIDTH = 192, 320
# A shape in its canonical frame fits in a disc of this radius (the square's corners reach 1.10):
# used for "fully outside the frame" tests and for the raster window.
BOUND_RADIUS = 1.12
TEXTURE_KINDS = ("stripes", "checker", "dots", "rings", "gradient")
DEGRADATION_KINDS = ("blur", "noise", "low_contrast")
# the three video scenarios, cycled by video index so that even a 3-video dataset has each of them
SCENARIOS = ("crossing", "enter_leave", "free")

# fmt: off
_RADIUS_RANGE      = (11.0, 40.0)   # sampled radius (px at reference size), log-uniform: 22-80 px across
_RADIUS_CLIP       = (10.0, 45.0)   # growth never takes an object outside 20-90 px across
_GROWTH            = 0.03           # |d log(radius) / dt| per frame
_SPIN              = 0.2            # |rotation speed| in rad per frame
_ACCEL             = 0.5            # |acceleration| in px per frame^2
MAX_INSTANCES      = 8              # per video (SceneStyle.instance_weights draws how many)
_MOTION_P          = {"stay": 0.6, "enter": 0.2, "leave": 0.2}  # tracks outside a scenario's own
_DEGRADE_LEVEL_P   = {"clean": 0.4, "light": 0.35, "heavy": 0.25}
# fmt: on


@dataclass(frozen=True)
class SceneStyle:
    """How hard the benchmark looks: the generator's calibration knobs (``python -m vis_d2.data.synthetic
    --help``). The defaults are the benchmark's, calibrated so that a tiny detector trained from scratch for
    8 CPU minutes learns the shapes (docs/synthetic_benchmark.md has the measurements): faint textures, few
    distractors and 3-6 instances per video, with the degraded share kept, since degraded frames are what
    temporal methods must win on. ``--instance-weights 0.2 0.35 0.3 0.15`` gives the videos of before
    2026-12-04 (with 0.1 / 0.25 / 0.5 / 0.6 for the other four); 0.5 / 1.0 / 0.5 / 0.6 were the defaults until
    2026-12 and 1.0 / 1.0 / 0.5 / 0.6 reproduce the first release's draws (each with the old instance weights).

    Attributes:
        texture_contrast: how far an object's second texture color is from its first (0: a flat color,
            1: the full two-tone palette). Silhouettes get harder to see as it grows; look-alikes still
            differ in hue or pattern at any value above 0.
        distractor_scale: multiplies the number of distractor lines and blobs in the background.
        textured_distractor_share: share of the distractor blobs painted with an object texture.
        degraded_video_share: share of videos with degraded frames (split 7:5 between lightly and heavily
            degraded ones, as in the first release).
        instance_weights: relative weights of 1, 2, 3, ... instances per video (a scenario's own tracks come
            first: a crossing video has at least 2). The default draws 3-6 uniformly; the first release drew
            1-4 with weights 0.2 / 0.35 / 0.3 / 0.15. More instances per frame give the detector more positive
            RoIs of every class per iteration at little extra cost, and the tracker more same-class pairs to
            tell apart by appearance (docs/synthetic_benchmark.md has the runs).
    """

    texture_contrast: float = 0.1
    distractor_scale: float = 0.25
    textured_distractor_share: float = 0.5
    degraded_video_share: float = 0.6
    instance_weights: Tuple[float, ...] = (0.0, 0.0, 1.0, 1.0, 1.0, 1.0)

    def __post_init__(self):
        for name in ("texture_contrast", "textured_distractor_share", "degraded_video_share"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.distractor_scale < 0:
            raise ValueError(f"distractor_scale must be >= 0, got {self.distractor_scale}")
        weights = tuple(float(w) for w in self.instance_weights)
        if not 1 <= len(weights) <= MAX_INSTANCES or min(weights) < 0 or sum(weights) <= 0:
            raise ValueError(
                f"instance_weights must be 1-{MAX_INSTANCES} non-negative weights with a positive sum, got {self.instance_weights}"
            )
        object.__setattr__(self, "instance_weights", weights)

    def num_instances(self, rng: np.random.Generator) -> int:
        p = np.asarray(self.instance_weights) / sum(self.instance_weights)
        return int(rng.choice(len(p), p=p)) + 1

    def degrade_level_p(self) -> Dict[str, float]:
        light, heavy = _DEGRADE_LEVEL_P["light"], _DEGRADE_LEVEL_P["heavy"]
        share = self.degraded_video_share
        return {"clean": 1.0 - share, "light": share * light / (light + heavy), "heavy": share * heavy / (light + heavy)}


@dataclass(frozen=True)
class Texture:
    """Two-tone pattern painted in the object's own frame, so it moves, scales and rotates with it.

    Attributes:
        kind: one of :data:`TEXTURE_KINDS`.
        colors: two RGB colors in [0, 255].
        freq: pattern periods per unit of object radius.
        angle: pattern orientation in the object frame (rad).
        phase: pattern offset in periods.
    """

    kind: str
    colors: Tuple[Tuple[float, float, float], Tuple[float, float, float]]
    freq: float = 2.0
    angle: float = 0.0
    phase: float = 0.0


@dataclass(frozen=True)
class TrackPlan:
    """One object instance: a shape with a texture on a quadratic path.

    Position ``p(t) = p0 + v t + a t^2 / 2``, radius ``clip(r0 exp(growth t), *radius_clip)``,
    rotation ``angle0 + spin t``, with ``t`` the frame index.

    Attributes:
        shape: shape (class) name, a key of ``synthetic_render.SHAPES``.
        texture: the instance's appearance; two instances of one class differ here.
        motion: how the track was planned ("stay", "enter", "leave", "cross"); informative only.
    """

    shape: str
    texture: Texture
    p0: Tuple[float, float]
    v: Tuple[float, float] = (0.0, 0.0)
    a: Tuple[float, float] = (0.0, 0.0)
    r0: float = 20.0
    growth: float = 0.0
    radius_clip: Tuple[float, float] = (1.0, 1e9)
    angle0: float = 0.0
    spin: float = 0.0
    motion: str = "stay"

    def state(self, t: float) -> Tuple[float, float, float, float]:
        """Returns ``(cx, cy, radius, angle)`` at frame ``t`` (pixels, pixel-center coordinates)."""
        cx = self.p0[0] + self.v[0] * t + 0.5 * self.a[0] * t * t
        cy = self.p0[1] + self.v[1] * t + 0.5 * self.a[1] * t * t
        r = min(max(self.r0 * math.exp(self.growth * t), self.radius_clip[0]), self.radius_clip[1])
        return cx, cy, r, self.angle0 + self.spin * t

    def time_reversed(self, length: int) -> "TrackPlan":
        """The same path played backwards over ``length`` frames (an entering track becomes a leaving one)."""
        end = length - 1
        cx, cy, _, angle = self.state(end)
        return replace(
            self,
            p0=(cx, cy),
            v=(-(self.v[0] + self.a[0] * end), -(self.v[1] + self.a[1] * end)),
            r0=self.r0 * math.exp(self.growth * end),  # unclipped, so the clipped values mirror exactly
            growth=-self.growth,
            angle0=angle,
            spin=-self.spin,
        )


@dataclass(frozen=True)
class Degradation:
    """A whole-frame degradation. ``amount``: blur length (px), noise sigma (gray levels) or contrast factor."""

    kind: str
    amount: float
    angle: float = 0.0  # blur direction (rad)


@dataclass(frozen=True)
class VideoPlan:
    """Everything needed to render one video deterministically.

    Attributes:
        tracks: instances in depth order, back to front (later ones occlude earlier ones).
        degradations: frame index -> degradation, for the degraded ("hard") frames.
        pan: camera pan of the background in px per frame (x, y).
        noise_sigma: std of the per-frame sensor noise (gray levels).
        seed: seeds the background and the per-frame noise; independent of everything above, so
            changing the degradations does not change the other frames.
        style: the calibration the renderer reads too (texture contrast, distractors).
    """

    height: int
    width: int
    length: int
    tracks: Tuple[TrackPlan, ...]
    degradations: Dict[int, Degradation] = field(default_factory=dict)
    pan: Tuple[float, float] = (0.0, 0.0)
    noise_sigma: float = 4.0
    seed: int = 0
    scenario: str = "free"
    style: SceneStyle = SceneStyle()

    @property
    def scale(self) -> float:
        return reference_scale(self.height, self.width)


def reference_scale(height: int, width: int) -> float:
    """Factor from the 192 x 320 reference resolution to ``height x width``."""
    return min(height / REF_HEIGHT, width / REF_WIDTH)


# ------------------------------------------------------------------------------------------- appearance
def _hsv(h: float, s: float, v: float) -> Tuple[float, float, float]:
    r, g, b = colorsys.hsv_to_rgb(h % 1.0, s, v)
    return (round(255 * r, 1), round(255 * g, 1), round(255 * b, 1))


def sample_palette(rng: np.random.Generator, hue: float = None) -> Tuple[tuple, tuple]:
    """Two clearly different, saturated colors: a hue with either a far hue or a dark shade of itself."""
    h = rng.uniform() if hue is None else hue
    s, v = rng.uniform(0.55, 1.0), rng.uniform(0.6, 1.0)
    c0 = _hsv(h, s, v)
    if rng.uniform() < 0.5:
        c1 = _hsv(h + rng.uniform(0.3, 0.7), rng.uniform(0.5, 1.0), rng.uniform(0.5, 1.0))
    else:
        c1 = _hsv(h + rng.uniform(-0.05, 0.05), s, v * rng.uniform(0.25, 0.5))
    return (c0, c1)


def sample_texture(rng: np.random.Generator, kind: str = None, colors=None) -> Texture:
    kind = TEXTURE_KINDS[rng.integers(len(TEXTURE_KINDS))] if kind is None else kind
    colors = sample_palette(rng) if colors is None else colors
    return Texture(
        kind=kind,
        colors=colors,
        freq=float(rng.uniform(1.2, 2.5)),
        angle=float(rng.uniform(0, math.pi)),
        phase=float(rng.uniform(0, 1)),
    )


def sample_lookalike_texture(rng: np.random.Generator, other: Texture) -> Texture:
    """A texture for a same-class look-alike of ``other``: same pattern, other hues, or same hues, other pattern.

    Either way the pair differs only in appearance, which is what a tracker must use when they cross.
    """
    if rng.uniform() < 0.5:
        base_hue = colorsys.rgb_to_hsv(*[c / 255.0 for c in other.colors[0]])[0]
        colors = sample_palette(rng, hue=base_hue + rng.uniform(0.25, 0.75))
        return replace(other, colors=colors, phase=float(rng.uniform(0, 1)))
    kinds = [k for k in TEXTURE_KINDS if k != other.kind]
    return sample_texture(rng, kind=kinds[rng.integers(len(kinds))], colors=other.colors)


# ------------------------------------------------------------------------------------------- motion
def _common(rng: np.random.Generator, s: float) -> dict:
    """Per-track size, growth, rotation and acceleration, at scale ``s``."""
    accel = rng.uniform(0, _ACCEL) * s
    accel_dir = rng.uniform(0, 2 * math.pi)
    return dict(
        r0=float(math.exp(rng.uniform(*np.log(_RADIUS_RANGE))) * s),
        growth=float(rng.uniform(-_GROWTH, _GROWTH)),
        radius_clip=(_RADIUS_CLIP[0] * s, _RADIUS_CLIP[1] * s),
        angle0=float(rng.uniform(0, 2 * math.pi)),
        spin=float(rng.uniform(-_SPIN, _SPIN)),
        a=(accel * math.cos(accel_dir), accel * math.sin(accel_dir)),
    )


def outside_frame(track: TrackPlan, t: int, height: int, width: int) -> bool:
    """True when the track's bounding disc misses the ``height x width`` frame at ``t`` (so it is surely absent)."""
    cx, cy, r, _ = track.state(t)
    nx, ny = min(max(cx, 0.0), width), min(max(cy, 0.0), height)
    return math.hypot(cx - nx, cy - ny) > BOUND_RADIUS * r + 1.0


def center_inside(track: TrackPlan, t: int, height: int, width: int, margin: float = 0.0) -> bool:
    cx, cy, r, _ = track.state(t)
    m = margin * r
    return m <= cx <= width - m and m <= cy <= height - m


def plan_stay(rng, shape, texture, height, width, length, tries: int = 30) -> TrackPlan:
    """A track that stays (mostly) inside the frame: its center keeps 20% of its radius from the border."""
    s = reference_scale(height, width)
    track = None
    for _ in range(tries):
        c = _common(rng, s)
        r = c["r0"]
        x = rng.uniform(min(r, width / 2), max(width - r, width / 2))
        y = rng.uniform(min(r, height / 2), max(height - r, height / 2))
        speed, d = rng.uniform(1.0, 6.0) * s, rng.uniform(0, 2 * math.pi)
        track = TrackPlan(shape, texture, (x, y), (speed * math.cos(d), speed * math.sin(d)), motion="stay", **c)
        if all(center_inside(track, t, height, width, 0.2) for t in range(length)):
            return track
    # no moving path fitted (a tiny frame or a huge object): keep the last one, standing still
    return replace(track, v=(0.0, 0.0), a=(0.0, 0.0))


def plan_enter(rng, shape, texture, height, width, length, tries: int = 50):
    """A track that is fully outside at frame 0 and has its center inside for its last ~third of frames.

    Returns None when no such path fits (e.g. a 2-frame video).
    """
    s = reference_scale(height, width)
    need_inside = max(2, -(-length // 3))  # ceil(length / 3)
    travel_frames = length - need_inside  # frames available to get from outside to the center inside
    if travel_frames < 1:
        return None
    for _ in range(tries):
        c = _common(rng, s)
        side = rng.integers(4)
        dev = rng.uniform(-math.pi / 4, math.pi / 4)
        # the smallest speed that brings the center inside in time: bound disc + 1 px of margin
        need = (BOUND_RADIUS * c["r0"] + 2.0) / (math.cos(dev) * travel_frames)
        speed = max(rng.uniform(3.0, 10.0) * s, need)
        if speed > 16.0 * s:
            continue
        slack = speed * math.cos(dev) * travel_frames - BOUND_RADIUS * c["r0"] - 2.0
        depth = BOUND_RADIUS * c["r0"] + 1.5 + rng.uniform(0, 1) * max(slack, 0.0)  # start distance outside
        along = rng.uniform(0.15, 0.85)
        inward = [(1, 0), (-1, 0), (0, 1), (0, -1)][side]  # from left, right, top, bottom
        if side == 0:
            p0 = (-depth, along * height)
        elif side == 1:
            p0 = (width + depth, along * height)
        elif side == 2:
            p0 = (along * width, -depth)
        else:
            p0 = (along * width, height + depth)
        base = math.atan2(inward[1], inward[0]) + dev
        c["a"] = (0.0, 0.0) if rng.uniform() < 0.5 else (0.3 * c["a"][0], 0.3 * c["a"][1])
        track = TrackPlan(shape, texture, p0, (speed * math.cos(base), speed * math.sin(base)), motion="enter", **c)
        inside = [center_inside(track, t, height, width) for t in range(length)]
        if outside_frame(track, 0, height, width) and all(inside[-need_inside:]):
            return track
    return None


def plan_leave(rng, shape, texture, height, width, length):
    """An entering track played backwards: inside at the start, fully outside at the last frame."""
    track = plan_enter(rng, shape, texture, height, width, length)
    return None if track is None else replace(track.time_reversed(length), motion="leave")


def plan_crossing_pair(rng, shape, height, width, length) -> Tuple[TrackPlan, TrackPlan]:
    """Two look-alikes (same class, similar size, different texture) whose paths cross mid-video.

    Both centers pass within 0.3 radius of one crossing point at the same frame, coming from directions
    at least 70 degrees apart, so they overlap (one occludes the other) and then separate. Their speed
    (at most 10 px per frame at the reference size) is raised, when needed, so that they start and end
    about 2.2 radii apart.
    """
    s = reference_scale(height, width)
    tc = rng.uniform(0.35, 0.65) * (length - 1)
    cx, cy = rng.uniform(0.3, 0.7) * width, rng.uniform(0.3, 0.7) * height
    common = _common(rng, s)
    d0 = rng.uniform(0, 2 * math.pi)
    dirs = (d0, d0 + rng.choice([-1, 1]) * rng.uniform(math.radians(70), math.pi))
    tex0 = sample_texture(rng)
    textures = (tex0, sample_lookalike_texture(rng, tex0))
    # a speed that puts the two centers ~2.2 radii apart at both ends (when the cap allows), so the
    # pair starts apart, overlaps and separates again instead of overlapping the whole video
    closing = math.hypot(math.cos(dirs[0]) - math.cos(dirs[1]), math.sin(dirs[0]) - math.sin(dirs[1]))
    need = 2.2 * common["r0"] / (closing * max(min(tc, length - 1 - tc), 0.5))
    base_speed = min(max(rng.uniform(2.5, 7.0) * s, need), 10.0 * s)
    pair = []
    for k in range(2):
        c = dict(common) if k == 0 else _common(rng, s)
        c["r0"] = common["r0"] * (1.0 if k == 0 else rng.uniform(0.85, 1.15))
        c["growth"] = common["growth"]
        c["a"] = (0.3 * c["a"][0], 0.3 * c["a"][1])
        speed = base_speed * rng.uniform(0.9, 1.1)
        v = (speed * math.cos(dirs[k]), speed * math.sin(dirs[k]))
        off = rng.uniform(-0.3, 0.3, size=2) * c["r0"]
        px = cx + off[0] - v[0] * tc - 0.5 * c["a"][0] * tc * tc
        py = cy + off[1] - v[1] * tc - 0.5 * c["a"][1] * tc * tc
        pair.append(TrackPlan(shape, textures[k], (float(px), float(py)), v, motion="cross", **c))
    return pair[0], pair[1]


# ------------------------------------------------------------------------------------------- video
def sample_degradations(rng, length: int, scale: float, style: SceneStyle = SceneStyle()) -> Dict[int, Degradation]:
    """Pick degraded frames, never two in a row, so every degraded frame has clear neighbours.

    A video is clean, lightly degraded (8-20% of its frames, at least one) or heavily degraded (25-40%):
    with the default style 40%, 35% and 25% of the videos.
    """
    level_p = style.degrade_level_p()
    level = rng.choice(list(level_p), p=list(level_p.values()))
    if level == "clean" or length < 2:
        return {}
    frac = rng.uniform(0.08, 0.2) if level == "light" else rng.uniform(0.25, 0.4)
    k = min(max(1, math.ceil(frac * length)), (length + 1) // 2)
    # k non-adjacent frames out of `length`: choose k of (length - k + 1) slots, then spread them apart
    slots = np.sort(rng.choice(length - k + 1, size=k, replace=False))
    frames = [int(c) + j for j, c in enumerate(slots)]
    out = {}
    for t in frames:
        kind = DEGRADATION_KINDS[rng.integers(len(DEGRADATION_KINDS))]
        if kind == "blur":
            deg = Degradation(kind, float(max(3.0, rng.uniform(9, 17) * scale)), float(rng.uniform(0, math.pi)))
        elif kind == "noise":
            deg = Degradation(kind, float(rng.uniform(45, 65)))
        else:
            deg = Degradation(kind, float(rng.uniform(0.1, 0.2)))
        out[t] = deg
    return out


def plan_video(
    rng: np.random.Generator,
    shapes: Sequence[str],
    height: int,
    width: int,
    length: int,
    scenario: str,
    style: SceneStyle = SceneStyle(),
) -> VideoPlan:
    """Sample a video plan: ``style.instance_weights`` instances (at least 2 with a crossing pair), motions,
    depth order, degradations.

    Args:
        shapes: the class (shape) names to draw from.
        scenario: one of :data:`SCENARIOS`: "crossing" includes a look-alike pair crossing paths,
            "enter_leave" one instance entering or leaving the frame (when the length allows it),
            "free" only the random mix.
        style: the benchmark's calibration (:class:`SceneStyle`).
    """
    s = reference_scale(height, width)
    n = style.num_instances(rng)
    tracks = []
    if scenario == "crossing":
        shape = shapes[rng.integers(len(shapes))]
        tracks.extend(plan_crossing_pair(rng, shape, height, width, length))
    elif scenario == "enter_leave":
        planner = plan_enter if rng.uniform() < 0.5 else plan_leave
        track = planner(rng, shapes[rng.integers(len(shapes))], sample_texture(rng), height, width, length)
        if track is not None:
            tracks.append(track)
    while len(tracks) < n:
        shape, texture = shapes[rng.integers(len(shapes))], sample_texture(rng)
        motion = rng.choice(list(_MOTION_P), p=list(_MOTION_P.values()))
        track = None
        if motion == "enter":
            track = plan_enter(rng, shape, texture, height, width, length)
        elif motion == "leave":
            track = plan_leave(rng, shape, texture, height, width, length)
        if track is None:
            track = plan_stay(rng, shape, texture, height, width, length)
        tracks.append(track)
    order = rng.permutation(len(tracks))  # depth order, independent of how tracks were planned
    return VideoPlan(
        height=height,
        width=width,
        length=length,
        tracks=tuple(tracks[i] for i in order),
        degradations=sample_degradations(rng, length, s, style),
        pan=(float(rng.uniform(-1.5, 1.5) * s), float(rng.uniform(-1.5, 1.5) * s)),
        noise_sigma=float(rng.uniform(3.0, 8.0)),
        seed=int(rng.integers(2**62)),
        scenario=scenario,
        style=style,
    )
