"""MultiCueTracker (alias OnlineTracker): MaskTrack R-CNN's multi-cue online matching (Eq. 3, official conflict rules)."""
import pytest
import torch
from detectron2.config import get_cfg

from vis_d2.config import add_vis_config
from vis_d2.modeling.tracker import OnlineTracker, pairwise_mask_iou

# Orthogonal unit directions: embedding 5 * E[k] has similarity 25 with itself, 0 with the others.
E = torch.eye(4)


def _tracker(**kwargs):
    args = dict(score_weight=1.0, box_iou_weight=2.0, label_weight=10.0)
    args.update(kwargs)
    return OnlineTracker(**args)


def _update(tracker, frame_idx, embeds, boxes, labels=None, scores=None, masks=None):
    if isinstance(embeds, (list, tuple)):
        embeds = torch.stack([torch.as_tensor(e) for e in embeds])
    embeds = embeds.float()
    n = len(boxes)
    labels = torch.zeros(n, dtype=torch.long) if labels is None else torch.as_tensor(labels)
    scores = torch.full((n,), 0.9) if scores is None else torch.as_tensor(scores)
    return tracker.update(
        frame_idx,
        embeddings=embeds,
        boxes=torch.as_tensor(boxes, dtype=torch.float32),
        scores=scores,
        labels=labels,
        masks=masks,
    ).tolist()


LEFT, MIDDLE, RIGHT = [0, 0, 10, 10], [10, 0, 20, 10], [20, 0, 30, 10]


def test_first_frame_detections_all_become_new_tracks_in_creation_order():
    tracker = _tracker()
    assert _update(tracker, 0, [E[0], E[0], E[0]], [LEFT, LEFT, LEFT]) == [0, 1, 2]
    assert len(tracker) == 3


def test_identity_kept_through_crossing_of_same_class_objects_with_distinct_embeddings():
    a, b = 5 * E[0], 5 * E[1]
    tracker = _tracker()
    assert _update(tracker, 0, [a, b], [LEFT, RIGHT]) == [0, 1]
    assert _update(tracker, 1, [b, a], [MIDDLE, MIDDLE]) == [1, 0]
    # After the crossing each object sits exactly on the other's old box (box IoU favours the swap).
    assert _update(tracker, 2, [a, b], [RIGHT, LEFT]) == [0, 1]
    assert _update(tracker, 3, [b, a], [LEFT, RIGHT]) == [1, 0]

    # Control: without appearance, position alone swaps the identities, so the test above relies
    # on the embeddings deciding.
    blind = _tracker()
    _update(blind, 0, [0 * a, 0 * b], [LEFT, RIGHT])
    assert _update(blind, 1, [0 * a, 0 * b], [RIGHT, LEFT]) == [1, 0]


def test_embed_weight_zero_turns_the_appearance_cue_off():
    # Same crossing as above: with EMBED_WEIGHT 0 the embeddings no longer count, so the box IoU
    # swaps the identities although the appearances say otherwise.
    a, b = 5 * E[0], 5 * E[1]
    tracker = _tracker(embed_weight=0.0)
    assert _update(tracker, 0, [a, b], [LEFT, RIGHT]) == [0, 1]
    assert _update(tracker, 1, [b, a], [LEFT, RIGHT]) == [0, 1]
    # ...and a totally dissimilar detection on the same box is matched, not started as a new track.
    assert _update(tracker, 2, [-5 * E[0]], [LEFT]) == [0]
    appearance = _tracker(embed_weight=1.0)
    _update(appearance, 0, [a, b], [LEFT, RIGHT])
    assert _update(appearance, 1, [b, a], [LEFT, RIGHT]) == [1, 0]


def test_new_object_gets_new_id_and_existing_one_keeps_its_id():
    tracker = _tracker()
    assert _update(tracker, 0, [5 * E[0]], [LEFT]) == [0]
    assert _update(tracker, 1, [-5 * E[0], 5 * E[0]], [RIGHT, LEFT]) == [1, 0]
    assert _update(tracker, 2, [5 * E[0], -5 * E[0]], [LEFT, RIGHT]) == [0, 1]


def test_dummy_new_object_chosen_when_similarity_is_low_even_on_the_same_box():
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0]], [LEFT])
    # Same box and class, dissimilar appearance: log p(dummy) ~ 0 beats log p(track) ~ -25 + 2.
    assert _update(tracker, 1, [-5 * E[0]], [LEFT]) == [1]
    # Similar appearance: matched.
    assert _update(tracker, 2, [5 * E[0]], [LEFT]) == [0]


def test_exact_tie_between_new_object_and_a_track_starts_a_new_track():
    # No appearance (equal logits), same class, no overlap: comp(dummy) == comp(track), and the
    # official code's np.argmax takes the first column, the dummy.
    tracker = _tracker()
    _update(tracker, 0, [0 * E[0]], [LEFT])
    assert _update(tracker, 1, [0 * E[0]], [RIGHT]) == [1]


@pytest.mark.parametrize("winner_first", [True, False])
def test_conflict_goes_to_higher_comp_and_loser_is_dropped_not_a_new_track(winner_first):
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0]], [LEFT])
    # Both detections pick track 0 (p ~ 1 for both, same box and class); the winner has the higher
    # detection score, hence the higher comp.
    winner, loser = 5 * E[0], 6 * E[0]
    if winner_first:
        embeds, scores = [winner, loser], [0.9, 0.3]
    else:
        embeds, scores = [loser, winner], [0.3, 0.9]
    ids = _update(tracker, 1, embeds, [LEFT, LEFT], scores=scores)
    assert ids == ([0, -1] if winner_first else [-1, 0])
    assert len(tracker) == 1
    # The memory took the winner's embedding, and the loser consumed no id.
    assert tracker.memory()["embeddings"][0].tolist() == winner.tolist()
    assert _update(tracker, 2, [-5 * E[0]], [RIGHT]) == [1]


def test_conflict_between_equal_comps_goes_to_the_first_detection_only():
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0]], [LEFT])
    assert _update(tracker, 1, [5 * E[0], 5 * E[0]], [LEFT, LEFT]) == [0, -1]
    assert len(tracker) == 1


def test_matched_track_memory_takes_the_detection_box_and_embedding():
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0]], [LEFT])
    _update(tracker, 1, [4 * E[0]], [MIDDLE])
    mem = tracker.memory()
    assert mem["boxes"].tolist() == [MIDDLE]
    assert mem["embeddings"].tolist() == [(4 * E[0]).tolist()]
    assert mem["last_seen"].tolist() == [1]
    # Two equally similar detections compete for the track: the box IoU with the updated box
    # (MIDDLE), not with the creation box (LEFT), decides.
    assert _update(tracker, 2, [4 * E[0], 4 * E[0]], [LEFT, MIDDLE]) == [-1, 0]


def test_label_consistency_term_decides_between_match_and_new_track():
    # Moderate similarity (3): log p(track) = -0.05, log p(dummy) = -3.05.
    def run(det_label):
        tracker = _tracker()
        _update(tracker, 0, [3 * E[0]], [LEFT], labels=[0])
        return _update(tracker, 1, [E[0]], [LEFT], labels=[det_label])

    assert run(0) == [0]
    # Another class: the dummy keeps its +10 while the track loses it, despite box IoU 1.
    assert run(1) == [1]


@pytest.mark.parametrize("update_label", [False, True])
def test_track_label_is_updated_on_match_only_with_update_label(update_label):
    tracker = _tracker(update_label=update_label)
    _update(tracker, 0, [5 * E[0]], [LEFT], labels=[0])
    # Strong appearance (p ~ 1 vs e^-25) outweighs the label term: matched despite the new class.
    assert _update(tracker, 1, [5 * E[0]], [LEFT], labels=[2]) == [0]
    assert tracker.memory()["labels"].tolist() == [2 if update_label else 0]


def test_retention_forgets_stale_tracks_which_cannot_be_matched_afterwards():
    def run(retain, gap):
        tracker = _tracker(memory_retain_frames=retain)
        _update(tracker, 0, [5 * E[0]], [LEFT])
        for t in range(1, gap):
            _update(tracker, t, [5 * (E[1] - E[0])], [RIGHT])  # another object, unlike track 0
        return tracker, _update(tracker, gap, [5 * E[0]], [LEFT])

    # Last seen at frame 0: still matchable at frame 2 with K = 2 ...
    assert run(2, 2)[1] == [0]
    # ... but forgotten at frame 3: the returning object gets a new id, and memory shrank.
    tracker, ids = run(2, 3)
    assert ids == [2]
    assert sorted(tracker.memory()["track_ids"].tolist()) == [1, 2]
    # -1 keeps every track (official behaviour).
    assert run(-1, 30)[1] == [0]


def test_mask_iou_cue_changes_the_decision_only_when_its_weight_is_positive():
    left_half = torch.zeros(1, 8, 8, dtype=torch.bool)
    left_half[:, :, :4] = True
    right_half = ~left_half
    zero = torch.zeros(4)
    # Two overlapping tracks of the same class with no appearance cue; the detection's box is
    # closer to track 0 (box IoU 0.9 vs 0.67) but its mask is track 1's mask.
    box0, box1, det_box = [0, 0, 100, 100], [0, 0, 100, 60], [0, 0, 100, 90]

    def run(mask_iou_weight, with_masks):
        tracker = _tracker(mask_iou_weight=mask_iou_weight)
        masks0 = torch.cat([left_half, right_half]).float() if with_masks else None
        _update(tracker, 0, [zero, zero], [box0, box1], masks=masks0)
        return _update(tracker, 1, [zero], [det_box], masks=right_half if with_masks else None)

    assert run(0.0, with_masks=True) == [0]
    assert run(2.0, with_masks=False) == [0]
    assert run(2.0, with_masks=True) == [1]


def test_pairwise_mask_iou_values():
    a = torch.zeros(2, 4, 4, dtype=torch.bool)
    a[0, :2] = True  # top half
    a[1, :, :2] = True  # left half
    iou = pairwise_mask_iou(a, torch.cat([a, torch.zeros(1, 4, 4, dtype=torch.bool)]))
    assert torch.allclose(iou, torch.tensor([[1.0, 1 / 3, 0.0], [1 / 3, 1.0, 0.0]]))


def test_reset_between_videos_restarts_ids_and_forgets_tracks():
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0], 5 * E[1], 5 * E[2]], [LEFT, MIDDLE, RIGHT])
    _update(tracker, 1, [-5 * (E[0] + E[1] + E[2])], [LEFT])
    assert len(tracker) == 4
    tracker.reset()
    assert len(tracker) == 0
    # A new video may start at any frame index after reset(): ids restart at 0.
    assert _update(tracker, 5, [5 * E[3]], [LEFT]) == [0]
    # Frame 0 is a new video too (official `is_first`): memory and ids restart even without reset().
    assert _update(tracker, 0, [5 * E[1], 5 * E[3]], [MIDDLE, LEFT]) == [0, 1]
    assert len(tracker) == 2


def test_memory_size_does_not_grow_with_the_number_of_frames():
    tracker = _tracker(mask_iou_weight=1.0)
    embeds = 5 * E[:3]
    boxes = [LEFT, MIDDLE, RIGHT]
    masks = torch.ones(3, 8, 8, dtype=torch.bool)
    for t in range(60):
        ids = _update(tracker, t, embeds, boxes, masks=masks)
        assert ids == [0, 1, 2]
    mem = tracker.memory()
    assert len(tracker) == 3
    assert {k: v.shape[0] for k, v in mem.items()} == {k: 3 for k in mem}
    assert mem["last_seen"].tolist() == [59, 59, 59]


def test_custom_similarity_callable_replaces_the_dot_product():
    calls = []

    def prefer_second_track(det, mem):
        calls.append((tuple(det.shape), tuple(mem.shape)))
        sim = torch.full((det.shape[0], mem.shape[0]), -20.0)
        sim[:, 1] = 20.0
        return sim

    tracker = _tracker(similarity=prefer_second_track)
    _update(tracker, 0, [5 * E[0], 5 * E[1]], [LEFT, RIGHT])
    # The dot product would pick track 0 (same embedding and box); the custom similarity wins.
    assert _update(tracker, 1, [5 * E[0]], [LEFT]) == [1]
    assert calls == [((1, 4), (2, 4))]


def test_empty_frames_return_empty_ids_and_keep_memory():
    tracker = _tracker()
    _update(tracker, 0, [5 * E[0]], [LEFT])
    empty = tracker.update(
        1,
        embeddings=torch.zeros(0, 4),
        boxes=torch.zeros(0, 4),
        scores=torch.zeros(0),
        labels=torch.zeros(0, dtype=torch.long),
    )
    assert empty.shape == (0,) and empty.dtype == torch.long
    assert _update(tracker, 2, [5 * E[0]], [LEFT]) == [0]


def test_min_match_iou_puts_tracks_without_enough_box_overlap_out_of_reach():
    # Same appearance and class, no box overlap: ungated, the appearance term joins the detection
    # to the far-away track; with the gate it starts a new track.
    ungated = _tracker()
    _update(ungated, 0, [5 * E[0]], [LEFT])
    assert _update(ungated, 1, [5 * E[0]], [RIGHT]) == [0]
    gated = _tracker(min_match_iou=0.1)
    _update(gated, 0, [5 * E[0]], [LEFT])
    assert _update(gated, 1, [5 * E[0]], [RIGHT]) == [1]
    # Overlap at or above the gate: matched as before (IoU with the track's last box RIGHT: 2/3).
    assert _update(gated, 2, [5 * E[0]], [[22, 0, 32, 10]]) == [1]
    # Overlap below the gate (IoU 1/19 < 0.1): out of reach again, a new track.
    assert _update(gated, 3, [5 * E[0]], [[31, 0, 41, 10]]) == [2]


def test_min_match_iou_frames_lets_tracks_unseen_for_longer_be_re_identified_anywhere():
    def run(frames):
        tracker = _tracker(min_match_iou=0.1, min_match_iou_frames=frames)
        _update(tracker, 0, [5 * E[0]], [LEFT])
        # Frame 1: the object is not detected (occluded); frame 2: it is back, far from its last box.
        _update(tracker, 1, torch.zeros(0, 4), torch.zeros(0, 4))
        return _update(tracker, 2, [5 * E[0]], [RIGHT])

    assert run(frames=-1) == [1]  # the gate holds for every track: a new track
    assert run(frames=1) == [0]  # last seen 2 frames ago: out of the gate, re-identified by appearance
    assert run(frames=2) == [1]  # still within the gate
    # A track seen in the previous frame stays gated.
    tracker = _tracker(min_match_iou=0.1, min_match_iou_frames=1)
    _update(tracker, 0, [5 * E[0]], [LEFT])
    assert _update(tracker, 1, [5 * E[0]], [RIGHT]) == [1]


def test_min_match_iou_must_be_a_fraction():
    with pytest.raises(ValueError, match="min_match_iou"):
        _tracker(min_match_iou=1.5)
    with pytest.raises(ValueError, match="min_match_iou_frames"):
        _tracker(min_match_iou=0.1, min_match_iou_frames=-2)


def test_from_config_reads_model_tracker_keys():
    cfg = get_cfg()
    add_vis_config(cfg)
    cfg.MODEL.TRACKER.EMBED_WEIGHT = 0.5
    cfg.MODEL.TRACKER.LABEL_WEIGHT = 3.0
    cfg.MODEL.TRACKER.MASK_IOU_WEIGHT = 2.0
    cfg.MODEL.TRACKER.MEMORY_RETAIN_FRAMES = 20
    cfg.MODEL.TRACKER.UPDATE_LABEL = True
    cfg.MODEL.TRACKER.MIN_MATCH_IOU = 0.2
    cfg.MODEL.TRACKER.MIN_MATCH_IOU_FRAMES = 3
    sim = lambda d, m: d @ m.t()  # noqa: E731
    tracker = OnlineTracker(cfg, similarity=sim)
    assert tracker.embed_weight == 0.5
    assert tracker.label_weight == 3.0 and tracker.mask_iou_weight == 2.0
    assert tracker.memory_retain_frames == 20 and tracker.update_label is True
    assert tracker.min_match_iou == 0.2 and tracker.min_match_iou_frames == 3
    assert tracker.score_weight == 1.0 and tracker.box_iou_weight == 2.0
    assert tracker.similarity is sim


def _reference_ids(frames, score_w, box_w, label_w, mask_w, retain, update_label):
    """The official code's per-detection loop (two_stage.py), in float64 numpy, plus retention."""
    import numpy as np

    def box_iou(a, b):
        iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = iw * ih
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if inter > 0 else 0.0

    def mask_iou(a, b):
        inter, union = np.logical_and(a, b).sum(), np.logical_or(a, b).sum()
        return inter / union if union > 0 else 0.0

    memory, next_id, out = [], 0, []
    for t, (emb, boxes, scores, labels, masks) in enumerate(frames):
        emb, boxes, scores = emb.double().numpy(), boxes.double().numpy(), scores.double().numpy()
        labels, masks = labels.numpy(), masks.numpy() >= 0.5  # the tracker binarises at 0.5
        if retain >= 0:
            memory = [m for m in memory if t - m["last"] <= retain]
        ids = [-1] * len(emb)
        best = [-np.inf] * len(memory)
        new = []
        for i in range(len(emb)):
            logits = np.array([0.0] + [emb[i] @ m["emb"] for m in memory])
            comp = logits - (logits.max() + np.log(np.exp(logits - logits.max()).sum()))
            comp += score_w * np.log(scores[i])
            comp[0] += label_w
            for j, m in enumerate(memory):
                comp[j + 1] += box_w * box_iou(boxes[i], m["box"])
                comp[j + 1] += label_w * float(labels[i] == m["label"])
                comp[j + 1] += mask_w * mask_iou(masks[i], m["mask"])
            k = int(np.argmax(comp))
            if k == 0:
                new.append(i)
            elif comp[k] > best[k - 1]:
                if best[k - 1] > -np.inf:
                    ids[ids.index(memory[k - 1]["id"])] = -1
                best[k - 1] = comp[k]
                ids[i] = memory[k - 1]["id"]
        for i in range(len(emb)):
            if ids[i] >= 0:
                m = next(m for m in memory if m["id"] == ids[i])
                m.update(emb=emb[i], box=boxes[i], mask=masks[i], last=t)
                if update_label:
                    m["label"] = labels[i]
        for i in new:
            ids[i] = next_id
            memory.append(
                dict(id=next_id, emb=emb[i], box=boxes[i], label=labels[i], mask=masks[i], last=t)
            )
            next_id += 1
        out.append(ids)
    return out


def _random_video(seed, num_frames=25, num_objects=6, dim=8):
    """Look-alike objects that come and go, with duplicated detections that cause conflicts."""
    g = torch.Generator().manual_seed(seed)
    protos = torch.randn(num_objects, dim, generator=g)
    centers = torch.rand(num_objects, 2, generator=g) * 60
    classes = torch.randint(0, 3, (num_objects,), generator=g)
    frames = []
    for _ in range(num_frames):
        present = torch.nonzero(torch.rand(num_objects, generator=g) < 0.6).flatten()
        dup = present[torch.rand(len(present), generator=g) < 0.3]
        objs = torch.cat([present, dup])
        objs = objs[torch.randperm(len(objs), generator=g)]
        n = len(objs)
        centers += torch.randn(num_objects, 2, generator=g) * 3
        c = centers[objs] + torch.randn(n, 2, generator=g) * 2
        wh = 10 + torch.rand(n, 2, generator=g) * 10
        boxes = torch.cat([c - wh / 2, c + wh / 2], dim=1)
        emb = protos[objs] + 0.7 * torch.randn(n, dim, generator=g)
        flip = torch.rand(n, generator=g) < 0.15
        labels = torch.where(flip, torch.randint(0, 3, (n,), generator=g), classes[objs])
        scores = 0.05 + 0.95 * torch.rand(n, generator=g)
        masks = torch.rand(n, 6, 6, generator=g)  # soft masks
        frames.append((emb, boxes, scores, labels, masks))
    return frames


@pytest.mark.parametrize(
    "seed, retain, update_label, mask_w",
    [(0, -1, False, 0.0), (1, 3, True, 2.0), (2, 1, False, 1.0)],
)
def test_batched_matching_agrees_with_the_official_per_detection_loop(
    seed, retain, update_label, mask_w
):
    frames = _random_video(seed)
    tracker = _tracker(
        mask_iou_weight=mask_w, memory_retain_frames=retain, update_label=update_label
    )
    got = []
    for t, (emb, boxes, scores, labels, masks) in enumerate(frames):
        ids = tracker.update(
            t, embeddings=emb, boxes=boxes, scores=scores, labels=labels, masks=masks
        )
        got.append(ids.tolist())
    expected = _reference_ids(frames, 1.0, 2.0, 10.0, mask_w, retain, update_label)
    assert got == expected
    # The random video exercises every branch: matches, new tracks and dropped detections.
    flat = [i for ids in got[1:] for i in ids]
    assert -1 in flat and len(set(flat) - {-1}) > 1 and max(flat) >= len(got[0])
