"""The synthetic VIS benchmark generator: determinism, YouTube-VIS validity, exact masks, scene content."""
import json
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_util

from vis_d2.data.synthetic import (
    SYNTH_CLASSES,
    differences_from_defaults,
    generate_dataset,
    main,
    plan_for,
    uncompressed_rle,
)
from vis_d2.data.synthetic_render import render_video
from vis_d2.data.synthetic_scene import (
    Degradation,
    Texture,
    TrackPlan,
    VideoPlan,
    plan_enter,
    plan_leave,
    sample_texture,
)

# pycocotools' decode warns on numpy 2 (an upstream matter, not a behaviour checked here)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

H, W, T = 64, 96, 6
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _generate(out, seed=0, workers=1):
    return generate_dataset(
        str(out), 3, seed=seed, num_val_videos=2, frame_range=(T, T), height=H, width=W, workers=workers
    )


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    paths = _generate(out)
    data = {split: json.load(open(path)) for split, path in paths.items()}
    return out, data


def _all_files(root):
    found = {}
    for d, _, files in os.walk(root):
        for f in files:
            p = os.path.join(d, f)
            found[os.path.relpath(p, root)] = open(p, "rb").read()
    return found


def _decode(segm):
    assert isinstance(segm["counts"], list), "segmentations are uncompressed RLE"
    return mask_util.decode(mask_util.frPyObjects(segm, *segm["size"])).astype(bool)


def _tracks(data, video):
    return [a for a in data["annotations"] if a["video_id"] == video["id"]]


def _solid(rgb):
    return Texture("gradient", (rgb, rgb))


# ------------------------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes_whatever_the_worker_count(tiny, tmp_path):
    out, _ = tiny
    _generate(tmp_path, workers=2)
    first, second = _all_files(out), _all_files(tmp_path)
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".jpg") for name in first)
    for name in first:
        assert first[name] == second[name], name


def test_different_seed_gives_different_json_and_frames(tiny, tmp_path):
    out, data = tiny
    _generate(tmp_path, seed=1)
    assert open(out / "train.json", "rb").read() != open(tmp_path / "train.json", "rb").read()
    name = data["train"]["videos"][0]["file_names"][0]
    frame = os.path.join("train", "JPEGImages", name)
    assert open(out / frame, "rb").read() != open(tmp_path / frame, "rb").read()


# ------------------------------------------------------------------------------------------- json validity
def test_json_follows_the_ytvis_layout(tiny):
    _, data = tiny
    for split, n in (("train", 3), ("valid", 2)):
        d = data[split]
        assert {"info", "licenses", "videos", "categories", "annotations"} <= set(d)
        assert [c["id"] for c in d["categories"]] == list(range(1, len(SYNTH_CLASSES) + 1))
        assert tuple(c["name"] for c in d["categories"]) == SYNTH_CLASSES
        assert [v["id"] for v in d["videos"]] == list(range(1, n + 1))
        for v in d["videos"]:
            assert (v["height"], v["width"], v["length"]) == (H, W, T)
            assert len(v["file_names"]) == v["length"]
            folder = v["file_names"][0].split("/")[0]
            assert v["file_names"] == [f"{folder}/{5 * t:05d}.jpg" for t in range(T)]
        ann_ids = [a["id"] for a in d["annotations"]]
        assert len(set(ann_ids)) == len(ann_ids) and len(ann_ids) >= n  # every video has an instance
        videos = {v["id"]: v for v in d["videos"]}
        for a in d["annotations"]:
            assert a["iscrowd"] == 0 and 1 <= a["category_id"] <= len(SYNTH_CLASSES)
            length = videos[a["video_id"]]["length"]
            assert len(a["segmentations"]) == len(a["bboxes"]) == len(a["areas"]) == length


def test_null_frames_agree_across_fields_and_area_is_never_zero(tiny):
    _, data = tiny
    for d in data.values():
        for a in d["annotations"]:
            present = [s is not None for s in a["segmentations"]]
            assert present == [b is not None for b in a["bboxes"]] == [x is not None for x in a["areas"]]
            assert any(present), "a track that is never visible must not be written"
            assert all(x > 0 for x in a["areas"] if x is not None)


def test_areas_and_bboxes_equal_those_of_the_decoded_masks(tiny):
    _, data = tiny
    for d in data.values():
        for a in d["annotations"]:
            for segm, box, area in zip(a["segmentations"], a["bboxes"], a["areas"]):
                if segm is None:
                    continue
                assert segm["size"] == [H, W]
                m = _decode(segm)
                assert area == float(m.sum())
                rle = mask_util.encode(np.asfortranarray(m.astype(np.uint8)))
                assert box == mask_util.toBbox(rle).tolist()


def test_uncompressed_rle_round_trips_masks_that_start_with_foreground():
    m = np.zeros((5, 7), dtype=bool)
    m[0, 0] = m[2:4, 3:6] = m[4, 6] = True
    assert uncompressed_rle(m)["counts"][0] == 0
    assert np.array_equal(_decode(uncompressed_rle(m)), m)


# ------------------------------------------------------------------------------------------- masks and scene
def test_visible_masks_of_instances_never_overlap(tiny):
    _, data = tiny
    for d in data.values():
        for v in d["videos"]:
            for t in range(v["length"]):
                masks = [_decode(a["segmentations"][t]) for a in _tracks(d, v) if a["segmentations"][t]]
                if masks:
                    assert np.sum(masks, axis=0).max() <= 1


def test_occluded_instance_mask_is_only_its_visible_part():
    back = TrackPlan("square", _solid((200.0, 40.0, 40.0)), p0=(40.0, 32.0), r0=15.0)
    front = TrackPlan("circle", _solid((40.0, 40.0, 200.0)), p0=(55.0, 32.0), r0=12.0)
    video = render_video(VideoPlan(H, W, 2, (back, front), noise_sigma=0.0))
    overlap = video.full[0, 0] & video.full[1, 0]
    assert overlap.any()
    assert np.array_equal(video.visible[1, 0], video.full[1, 0])
    assert np.array_equal(video.visible[0, 0], video.full[0, 0] & ~video.full[1, 0])
    # the pixels are the front object's: blue, not red
    pixels = video.frames[0][overlap].astype(int)
    assert (pixels[:, 2] > pixels[:, 0] + 100).all()


def test_ring_mask_excludes_its_hole():
    ring = TrackPlan("ring", _solid((250.0, 250.0, 0.0)), p0=(48.0, 32.0), r0=20.0)
    video = render_video(VideoPlan(H, W, 1, (ring,), noise_sigma=0.0))
    assert not video.visible[0, 0, 32, 48] and video.visible[0, 0, 32, 48 + 15]


def test_some_track_enters_or_leaves_through_the_frame_border(tiny):
    _, data = tiny
    crossing_border = []
    for d in data.values():
        for a in d["annotations"]:
            present = [b is not None for b in a["bboxes"]]
            for t in range(T - 1):
                if present[t] != present[t + 1]:  # appears at t+1 or disappears after t
                    x, y, w, h = a["bboxes"][t + 1 if present[t + 1] else t]
                    crossing_border.append(x == 0 or y == 0 or x + w == W or y + h == H)
    assert any(crossing_border)


@pytest.mark.parametrize("planner", [plan_enter, plan_leave])
def test_entering_track_starts_outside_and_leaving_track_ends_outside(planner):
    rng = np.random.default_rng(7)
    for _ in range(5):
        track = planner(rng, "star", sample_texture(rng), H, W, T)
        assert track is not None
        full = render_video(VideoPlan(H, W, T, (track,), noise_sigma=0.0)).full[0]
        outside, inside = (0, T - 1) if planner is plan_enter else (T - 1, 0)
        assert not full[outside].any() and full[inside].any()


def test_lookalike_crossings_pair_same_class_tracks_that_overlap(tiny):
    _, data = tiny
    n_pairs = 0
    for d in data.values():
        anns = {a["id"]: a for a in d["annotations"]}
        for v in d["videos"]:
            for i, j in v["lookalike_crossings"]:
                a, b = anns[i], anns[j]
                assert a["video_id"] == b["video_id"] == v["id"]
                assert a["category_id"] == b["category_id"]
                n_pairs += 1
    assert n_pairs >= 1  # video 0 of each split is a crossing scenario


def test_lookalike_pair_differs_in_texture_not_in_class_or_size():
    plan = plan_for(0, "train", 0, (12, 12), 192, 320)
    pair = [t for t in plan.tracks if t.motion == "cross"]
    assert len(pair) == 2
    assert pair[0].shape == pair[1].shape
    assert pair[0].texture != pair[1].texture
    assert 0.8 <= pair[0].r0 / pair[1].r0 <= 1.25
    video = render_video(plan)
    k0, k1 = [plan.tracks.index(t) for t in pair]
    assert (video.full[k0] & video.full[k1]).any(), "the pair must cross paths"


# ------------------------------------------------------------------------------------------- hard frames
def test_hard_frames_are_non_adjacent_and_is_hard_follows_the_rule(tiny):
    _, data = tiny
    for d in data.values():
        for v in d["videos"]:
            hard = v["hard_frames"]
            assert hard == sorted(set(hard)) and all(0 <= t < v["length"] for t in hard)
            assert all(b - a >= 2 for a, b in zip(hard, hard[1:])), "a degraded frame needs clear neighbours"
            assert len(v["hard_frame_kinds"]) == len(hard)
            assert set(v["hard_frame_kinds"]) <= {"blur", "noise", "low_contrast"}
            assert v["is_hard"] == (bool(v["lookalike_crossings"]) or 4 * len(hard) >= v["length"])


def _sharpness(frame):
    return np.abs(np.diff(frame.astype(float), axis=1)).mean()


@pytest.mark.parametrize("kind,amount", [("blur", 9.0), ("noise", 60.0), ("low_contrast", 0.15)])
def test_degradation_changes_only_its_frame_and_not_the_masks(kind, amount):
    from vis_d2.data.synthetic_scene import SceneStyle

    # sharp, busy frames (full-contrast textures, many distractors), so that blur has edges to soften
    sharp = SceneStyle(texture_contrast=1.0, distractor_scale=1.0)
    plan = replace(plan_for(3, "train", 2, (5, 5), H, W), degradations={}, style=sharp)
    clean = render_video(plan)
    bad = render_video(replace(plan, degradations={2: Degradation(kind, amount, angle=0.3)}))
    for t in (0, 1, 3, 4):
        assert np.array_equal(clean.frames[t], bad.frames[t])
    assert np.array_equal(clean.visible, bad.visible)
    c, b = clean.frames[2], bad.frames[2]
    if kind == "blur":
        assert _sharpness(b) < 0.8 * _sharpness(c)
    elif kind == "noise":
        assert _sharpness(b) > 2 * _sharpness(c)
    else:
        assert b.astype(float).std() < 0.5 * c.astype(float).std()


# ------------------------------------------------------------------------------------------- files and CLI
def test_every_frame_exists_as_rgb_jpeg_of_the_video_size(tiny):
    out, data = tiny
    for split, d in data.items():
        for v in d["videos"]:
            for name in v["file_names"]:
                with Image.open(out / split / "JPEGImages" / name) as im:
                    assert (im.format, im.mode, im.size) == ("JPEG", "RGB", (v["width"], v["height"]))


def test_cli_writes_both_splits_with_default_val_count(tmp_path):
    cmd = [sys.executable, "-m", "vis_d2.data.synthetic", "--out", str(tmp_path), "--videos", "5",
           "--frames", "2", "3", "--height", "32", "--width", "48", "--seed", "5", "--workers", "1"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    train, valid = (json.load(open(tmp_path / f"{s}.json")) for s in ("train", "valid"))
    # as many valid videos as train videos (at least 4): a 20-video valid split was too noisy to compare methods
    assert len(train["videos"]) == 5 and len(valid["videos"]) == 5
    assert all(2 <= v["length"] <= 3 for v in train["videos"] + valid["videos"])
    assert os.path.isfile(tmp_path / "valid" / "JPEGImages" / valid["videos"][0]["file_names"][-1])


def test_cli_rejects_a_bad_frame_range_with_a_one_line_error(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--frames", "5", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and len(err.strip().splitlines()) == 1


def test_generator_modules_import_neither_torch_nor_detectron2():
    # vis_d2.data's __init__ registers datasets (detectron2); load the generator modules without it
    code = (
        "import sys, types, vis_d2\n"
        "pkg = types.ModuleType('vis_d2.data'); pkg.__path__ = [vis_d2.__path__[0] + '/data']\n"
        "sys.modules['vis_d2.data'] = pkg\n"
        "import vis_d2.data.synthetic\n"
        "heavy = [m for m in ('torch', 'detectron2', 'cv2') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


# ------------------------------------------------------------------------------------------- calibration
def test_texture_contrast_blends_the_second_color_towards_the_first():
    from vis_d2.data.synthetic_render import texture_rgb

    tex = Texture("stripes", ((200.0, 0.0, 0.0), (0.0, 0.0, 200.0)), freq=2.0)
    u = np.linspace(-1, 1, 200, dtype=np.float32)
    v = np.zeros_like(u)
    full, half, flat = (texture_rgb(tex, u, v, c) for c in (1.0, 0.5, 0.0))
    assert np.allclose(flat, [200.0, 0.0, 0.0])
    assert full[:, 2].max() == 200.0 and half[:, 2].max() == 100.0
    assert np.allclose(half, (full + flat) / 2)


def test_degraded_video_share_sets_how_many_videos_have_degraded_frames():
    from vis_d2.data.synthetic_scene import SceneStyle

    def degraded(share):
        style = SceneStyle(degraded_video_share=share)
        return sum(bool(plan_for(0, "train", i, (10, 20), H, W, style=style).degradations) for i in range(30))

    assert degraded(0.0) == 0 and degraded(1.0) == 30
    assert 5 < degraded(0.6) < 28


def test_no_distractors_leave_a_smooth_background():
    from vis_d2.data.synthetic_render import render_background
    from vis_d2.data.synthetic_scene import SceneStyle

    def roughness(scale):
        bg = render_background(np.random.default_rng(3), H, W, 1.0, SceneStyle(distractor_scale=scale))
        return np.abs(np.diff(bg, axis=1)).max()

    # Lines and blobs have hard edges; the color field alone changes by a few levels per pixel.
    assert roughness(0.0) < 30 < roughness(2.0)


@pytest.mark.parametrize(
    "field, value",
    [("texture_contrast", 1.5), ("degraded_video_share", -0.1), ("distractor_scale", -1),
     ("instance_weights", (1.0, -1.0)), ("instance_weights", (0.0, 0.0)), ("instance_weights", (1.0,) * 9)],
)
def test_scene_style_rejects_values_out_of_range(field, value):
    from vis_d2.data.synthetic_scene import SceneStyle

    with pytest.raises(ValueError, match=field):
        SceneStyle(**{field: value})


def test_cli_calibration_flags_are_recorded_in_the_json(tmp_path):
    argv = ["--out", str(tmp_path), "--videos", "3", "--val-videos", "1", "--frames", "3", "--height", "48",
            "--width", "64", "--workers", "1", "--texture-contrast", "0.25", "--distractor-scale", "0.5",
            "--textured-distractors", "0.1", "--degraded-videos", "1.0"]
    assert main(argv) == 0
    info = json.load(open(tmp_path / "train.json"))["info"]
    assert info["style"] == {"texture_contrast": 0.25, "distractor_scale": 0.5, "textured_distractor_share": 0.1,
                             "degraded_video_share": 1.0,
                             "instance_weights": [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]}
    # other calibration and a smaller valid split: both reported as differences from the defaults
    found = differences_from_defaults(str(tmp_path))
    assert len(found) == 2 and "calibration" in found[0] and "1 valid videos for 3 train videos" in found[1]


def test_data_written_with_the_defaults_shows_no_difference_and_missing_data_says_so(tmp_path):
    argv = ["--out", str(tmp_path), "--videos", "2", "--frames", "2", "--height", "32", "--width", "48", "--workers", "1"]
    assert main(argv) == 0
    assert differences_from_defaults(str(tmp_path)) == []
    assert differences_from_defaults(str(tmp_path / "elsewhere"))[0].startswith("missing")


def test_instance_weights_set_how_many_instances_a_video_has():
    from vis_d2.data.synthetic_scene import SceneStyle

    def counts(style):
        return [len(plan_for(0, "train", i, (10, 20), H, W, style=style).tracks) for i in range(30)]

    assert set(counts(SceneStyle(instance_weights=(0, 0, 0, 0, 1, 1)))) == {5, 6}
    assert set(counts(SceneStyle())) == {3, 4, 5, 6}
    # the first release's weights: 1-4, but a crossing video (every third) has its look-alike pair
    old = counts(SceneStyle(instance_weights=(0.2, 0.35, 0.3, 0.15)))
    assert set(old) == {1, 2, 3, 4} and min(old[0::3]) >= 2


def test_data_from_before_the_instance_knob_is_the_first_release_distribution(tmp_path):
    argv = ["--out", str(tmp_path), "--videos", "2", "--frames", "2", "--height", "32", "--width", "48", "--workers", "1"]
    assert main(argv + ["--instance-weights", "0.2", "0.35", "0.3", "0.15"]) == 0
    path = tmp_path / "train.json"
    data = json.load(open(path))
    del data["info"]["style"]["instance_weights"]
    json.dump(data, open(path, "w"))
    assert "calibration" in differences_from_defaults(str(tmp_path))[0]
    assert main(argv) == 0
    assert differences_from_defaults(str(tmp_path)) == []
