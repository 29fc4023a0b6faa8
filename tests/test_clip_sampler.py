"""ClipSampler: which frames form a training clip, by role (vis_d2/data/clip_sampler.py)."""
import random

import numpy as np
import pytest

from detectron2.config import get_cfg
from vis_d2.config import add_vis_config
from vis_d2.data.clip_sampler import ClipSampler

SEEDS = range(40)


def video(length, annotated=None, crowd_only=()):
    """A video dict without files: frames in ``annotated`` (default all) hold one instance."""
    annotated = range(length) if annotated is None else annotated
    annos = []
    for t in range(length):
        if t in crowd_only:
            annos.append([{"id": 9, "category_id": 0, "iscrowd": 1}])
        elif t in annotated:
            annos.append([{"id": 1, "category_id": 0, "iscrowd": 0}])
        else:
            annos.append([])
    return {"video_id": 7, "length": length, "file_names": [f"{t}.jpg" for t in range(length)],
            "annotations": annos}


def frames_of(picks, role):
    return [t for t, r in picks if r == role]


def test_from_config_reads_the_sampling_keys():
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.INPUT.SAMPLING_FRAME_NUM = 4
    cfg.INPUT.SAMPLING_SUPPORT_NUM = 2
    cfg.INPUT.SAMPLING_FRAME_RANGE = 7
    cfg.INPUT.SAMPLING_SUPPORT_RANGE = -1
    cfg.INPUT.SAMPLING_METHOD = "uniform"
    cfg.INPUT.SAMPLING_CAUSAL = True
    s = ClipSampler(cfg)
    assert (s.num_frames, s.num_refs, s.num_supports) == (4, 1, 2)
    assert (s.frame_range, s.support_range, s.method, s.causal) == (7, 7, "uniform", True)


def test_clip_has_frame_num_frames_key_first_then_refs_then_supports_in_time_order():
    s = ClipSampler(num_frames=6, frame_range=100, support_num=2)
    for seed in SEEDS:
        picks = s(video(30), np.random.default_rng(seed))
        assert [r for _, r in picks] == ["key", "ref", "ref", "ref", "support", "support"]
        refs, sups = frames_of(picks, "ref"), frames_of(picks, "support")
        assert refs == sorted(refs) and sups == sorted(sups)


def test_one_frame_video_gives_the_key_frame_in_every_role():
    s = ClipSampler(num_frames=4, frame_range=10, support_num=2)
    picks = s(video(1), np.random.default_rng(0))
    assert picks == [(0, "key"), (0, "ref"), (0, "support"), (0, "support")]


def test_refs_are_distinct_and_never_the_key_when_enough_candidates():
    s = ClipSampler(num_frames=5, frame_range=100)
    for seed in SEEDS:
        picks = s(video(10), np.random.default_rng(seed))
        key, refs = picks[0][0], frames_of(picks, "ref")
        assert len(set(refs)) == 4 and key not in refs


def test_fewer_candidates_than_requested_uses_each_candidate_then_repeats():
    s = ClipSampler(num_frames=6, frame_range=100)  # 5 refs from a 3-frame video: 2 candidates
    for seed in SEEDS:
        picks = s(video(3), np.random.default_rng(seed))
        key, refs = picks[0][0], frames_of(picks, "ref")
        assert len(refs) == 5
        assert set(refs) == set(range(3)) - {key}


def test_refs_and_supports_stay_within_their_ranges():
    s = ClipSampler(num_frames=7, frame_range=2, support_num=3, support_range=5)
    support_offsets = []
    for seed in SEEDS:
        picks = s(video(60), np.random.default_rng(seed))
        key = picks[0][0]
        assert all(abs(t - key) <= 2 for t in frames_of(picks, "ref"))
        support_offsets += [abs(t - key) for t in frames_of(picks, "support")]
    assert max(support_offsets) == 5  # supports use their own, wider range


def test_support_range_minus_one_means_frame_range():
    s = ClipSampler(num_frames=3, frame_range=1, support_num=2, support_range=-1)
    offsets = []
    for seed in SEEDS:
        picks = s(video(40), np.random.default_rng(seed))
        offsets += [abs(t - picks[0][0]) for t in frames_of(picks, "support")]
    assert set(offsets) == {1}  # both neighbours of the key, never the key itself


def test_causal_support_frames_are_all_before_the_key():
    s = ClipSampler(num_frames=4, frame_range=50, support_num=3, causal=True)
    for seed in SEEDS:
        picks = s(video(30, annotated=[20]), np.random.default_rng(seed))
        assert picks[0] == (20, "key")
        assert all(t < 20 for t in frames_of(picks, "support"))


def test_causal_support_of_the_first_frame_falls_back_to_the_key():
    s = ClipSampler(num_frames=3, frame_range=50, support_num=2, causal=True)
    picks = s(video(10, annotated=[0]), np.random.default_rng(0))
    assert frames_of(picks, "support") == [0, 0]


def test_key_and_refs_only_from_frames_with_non_crowd_instances():
    s = ClipSampler(num_frames=3, frame_range=100)
    v = video(12, annotated=[2, 5, 9], crowd_only=[3, 4])
    for seed in SEEDS:
        picks = s(v, np.random.default_rng(seed))
        assert {t for t, r in picks if r in ("key", "ref")} <= {2, 5, 9}


def test_refs_without_annotation_requirement_may_be_unannotated_frames():
    s = ClipSampler(num_frames=2, frame_range=100, ref_require_annotations=False)
    refs = {s(video(12, annotated=[2, 5]), np.random.default_rng(seed))[1][0] for seed in SEEDS}
    assert refs - {2, 5}


def test_only_annotated_frame_is_key_and_its_own_reference():
    # MaskTrack R-CNN's official fallback when no other annotated frame exists.
    s = ClipSampler(num_frames=2, frame_range=100)
    assert s(video(8, annotated=[4]), np.random.default_rng(1)) == [(4, "key"), (4, "ref")]


def test_supports_need_no_annotations():
    s = ClipSampler(num_frames=3, frame_range=100, support_num=2)
    for seed in SEEDS:
        picks = s(video(12, annotated=[6]), np.random.default_rng(seed))
        assert len(set(frames_of(picks, "support"))) == 2
        assert 6 not in frames_of(picks, "support")


def test_supports_avoid_reference_frames_when_possible():
    s = ClipSampler(num_frames=4, frame_range=100, support_num=2)
    for seed in SEEDS:
        picks = s(video(4), np.random.default_rng(seed))
        assert sorted(t for t, _ in picks) == [0, 1, 2, 3]


def test_uniform_method_spaces_refs_evenly():
    # key is the only annotated frame (0); 40 candidate refs 1..40, 4 picks: spacing exactly 10
    s = ClipSampler(num_frames=5, frame_range=40, method="uniform", ref_require_annotations=False)
    starts = set()
    for seed in SEEDS:
        picks = s(video(41, annotated=[0]), np.random.default_rng(seed))
        refs = frames_of(picks, "ref")
        assert np.all(np.diff(refs) == 10), refs
        starts.add(refs[0])
    assert len(starts) > 1  # the random phase varies the clip


def test_uniform_method_with_more_picks_than_candidates_covers_every_candidate():
    s = ClipSampler(num_frames=8, frame_range=100, method="uniform")
    for seed in SEEDS:
        picks = s(video(4), np.random.default_rng(seed))
        assert set(frames_of(picks, "ref")) == set(range(4)) - {picks[0][0]}


def test_shuffle_permutes_frames_within_each_role_and_keeps_the_role_layout():
    s = ClipSampler(num_frames=6, frame_range=100, support_num=2, shuffle=True)
    plain = ClipSampler(num_frames=6, frame_range=100, support_num=2)
    ref_orders, support_orders = set(), set()
    for seed in SEEDS:
        picks = s(video(30), np.random.default_rng(seed))
        # Every clip has the same layout, so clips of one batch can be stacked by role.
        assert [r for _, r in picks] == ["key", "ref", "ref", "ref", "support", "support"]
        refs, sups = frames_of(picks, "ref"), frames_of(picks, "support")
        ref_orders.add(refs == sorted(refs))
        support_orders.add(sups == sorted(sups))
        # Shuffling changes the order, not the frames: the same draw as without shuffling.
        unshuffled = plain(video(30), np.random.default_rng(seed))
        assert picks[0] == unshuffled[0] and sorted(refs) == frames_of(unshuffled, "ref")
        assert sorted(sups) == frames_of(unshuffled, "support")
    assert ref_orders == {True, False} and support_orders == {True, False}


@pytest.mark.parametrize("make_rng", [np.random.default_rng, random.Random])
def test_same_seed_gives_same_clip_with_either_generator_kind(make_rng):
    s = ClipSampler(num_frames=5, frame_range=10, support_num=2, shuffle=True)
    clips = [s(video(50), make_rng(seed)) for seed in SEEDS]
    assert clips == [s(video(50), make_rng(seed)) for seed in SEEDS]
    assert len({tuple(c) for c in clips}) > 1


def test_invalid_role_counts_are_rejected_at_construction():
    with pytest.raises(ValueError, match="SAMPLING_SUPPORT_NUM"):
        ClipSampler(num_frames=2, frame_range=5, support_num=2)
    with pytest.raises(ValueError, match="SAMPLING_METHOD"):
        ClipSampler(num_frames=2, frame_range=5, method="dense")
