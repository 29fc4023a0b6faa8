"""TRACKER_REGISTRY: MultiCueTracker on Instances (boxes optional, extra per-track state), the identity and
per-frame trackers, and the track head's appearance score as the one definition of similarity."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.structures import Boxes, Instances

from vis_d2.config import add_vis_config
from vis_d2.modeling import (
    TRACKER_REGISTRY,
    EmbeddingTrackHead,
    IdentityTracker,
    MultiCueTracker,
    OnlineTracker,
    PerFrameTracker,
    build_tracker,
)
from vis_d2.modeling.track_heads import masktrack_track_loss, track_match_logits

E = torch.eye(4)
LEFT, RIGHT = [0.0, 0, 10, 10], [20.0, 0, 30, 10]


def dets(embeds=None, boxes=None, labels=None, scores=None, **fields):
    n = len(embeds if embeds is not None else boxes if boxes is not None else fields["pred_ids"])
    out = Instances((100, 100))
    out.scores = torch.full((n,), 0.9) if scores is None else torch.tensor(scores)
    out.pred_classes = torch.zeros(n, dtype=torch.long) if labels is None else torch.tensor(labels)
    if embeds is not None:
        out.pred_track_embeds = torch.stack(list(embeds)).float()
    if boxes is not None:
        out.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32))
    for k, v in fields.items():
        out.set(k, v)
    return out


def test_registry_builds_the_tracker_named_in_the_config_with_the_multi_cue_default():
    cfg = get_cfg()
    add_vis_config(cfg)
    assert cfg.MODEL.TRACKER.NAME == "MultiCueTracker" and OnlineTracker is MultiCueTracker
    assert {"MultiCueTracker", "IdentityTracker", "PerFrameTracker"} <= set(name for name, _ in TRACKER_REGISTRY)
    assert type(build_tracker(cfg)) is MultiCueTracker
    cfg.MODEL.TRACKER.NAME = "IdentityTracker"
    assert type(build_tracker(cfg)) is IdentityTracker


def test_instances_and_keyword_forms_of_update_give_the_same_ids():
    g = torch.Generator().manual_seed(0)
    a, b = MultiCueTracker(), MultiCueTracker()
    for t in range(12):
        n = int(torch.randint(1, 5, (1,), generator=g))
        e = torch.randn(n, 4, generator=g) * 3
        xy = torch.rand(n, 2, generator=g) * 50
        boxes = torch.cat([xy, xy + 10], dim=1)
        labels, scores = torch.randint(0, 2, (n,), generator=g), 0.1 + 0.9 * torch.rand(n, generator=g)
        inst = Instances((100, 100), pred_track_embeds=e, pred_boxes=Boxes(boxes), pred_classes=labels, scores=scores)
        ids = a.update(t, inst)
        assert ids.tolist() == b.update(t, embeddings=e, boxes=boxes, scores=scores, labels=labels).tolist()


def test_boxes_are_optional_and_then_the_box_cue_is_left_out():
    # Same class, no appearance cue: with boxes, the overlapping detection joins the track; without boxes,
    # nothing beats the "new object" entry (exact tie -> new track).
    with_boxes, without = MultiCueTracker(), MultiCueTracker()
    zero = [0 * E[0]]
    with_boxes.update(0, dets(zero, [LEFT]))
    assert with_boxes.update(1, dets(zero, [LEFT])).tolist() == [0]
    without.update(0, dets(zero))
    assert without.update(1, dets(zero)).tolist() == [1]
    assert "boxes" not in without.memory()
    # Appearance alone still links a box-free object.
    appearance = MultiCueTracker()
    appearance.update(0, dets([5 * E[0]]))
    assert appearance.update(1, dets([5 * E[1], 5 * E[0]])).tolist() == [1, 0]


class TemplateTracker(MultiCueTracker):
    """Keeps a (2, 3, 3) template per track and prefers the track whose template matches (as CompFeat would)."""

    def detection_state(self, detections):
        return {"templates": detections.templates}

    def comp_scores(self, state, scores):
        comp = super().comp_scores(state, scores)
        dist = (state["templates"][:, None] - self._memory.state["templates"][None]).abs().flatten(2).mean(2)
        comp[:, 1:] -= 10 * dist
        return comp


def test_extra_per_track_state_of_any_shape_follows_its_track_and_stays_bounded():
    tracker = TemplateTracker(embed_weight=0.0)
    templates = torch.stack([torch.zeros(2, 3, 3), torch.ones(2, 3, 3)])
    for t in range(200):
        # Two same-class objects on the same box, listed in alternating order: only the templates tell them apart.
        order = [0, 1] if t % 2 == 0 else [1, 0]
        ids = tracker.update(t, dets(boxes=[LEFT, LEFT], templates=templates[order]))
        assert ids.tolist() == order
    mem = tracker.memory()
    assert mem["templates"].shape == (2, 2, 3, 3)  # one template per track, however long the video
    assert torch.equal(mem["templates"][mem["track_ids"]], templates)


def test_the_tracker_scores_appearance_with_the_track_heads_definition():
    head = EmbeddingTrackHead(ShapeSpec(channels=2, height=1, width=1), fc_dims=[4])
    det, mem = torch.randn(3, 4), torch.randn(5, 4)
    scores = head.match_scores(det, mem)
    # The tracker's log p_i(n) is the log-softmax of the logits the training loss uses (Eq. 2).
    assert torch.allclose(scores, torch.log_softmax(track_match_logits(det, mem), dim=1))
    labels = torch.tensor([0, 2, 5])
    assert torch.allclose(-scores[torch.arange(3), labels].mean(), masktrack_track_loss([track_match_logits(det, mem)], [labels]))

    calls = []

    def recording(d, m):
        calls.append((d.shape[0], m.shape[0]))
        return head.match_scores(d, m)

    tracker = MultiCueTracker(match_scores=recording)
    tracker.update(0, dets([5 * E[0], 5 * E[1]], [LEFT, RIGHT]))
    tracker.update(1, dets([5 * E[1]], [RIGHT]))
    assert calls == [(1, 2)]
    with pytest.raises(ValueError, match="not both"):
        MultiCueTracker(match_scores=recording, similarity=lambda d, m: d @ m.t())


def test_identity_tracker_returns_the_models_ids_and_drops_lower_scoring_duplicates():
    tracker = IdentityTracker()
    assert tracker.update(0, dets(pred_ids=torch.tensor([2, 0]))).tolist() == [2, 0]
    ids = tracker.update(1, dets(pred_ids=torch.tensor([1, 1, 3, 1]), scores=[0.3, 0.8, 0.5, 0.8]))
    assert ids.tolist() == [-1, 1, 3, -1]  # of the two 0.8s, the first keeps id 1
    with pytest.raises(ValueError, match="pred_ids"):
        tracker.update(2, dets(boxes=[LEFT]))
    with pytest.raises(ValueError, match=">= 0"):
        tracker.update(3, dets(pred_ids=torch.tensor([-1])))


def test_per_frame_tracker_starts_a_new_track_for_every_detection_and_restarts_per_video():
    tracker = PerFrameTracker()
    assert tracker.update(0, dets(boxes=[LEFT, RIGHT])).tolist() == [0, 1]
    assert tracker.update(1, dets(boxes=[LEFT])).tolist() == [2]
    assert tracker.update(0, dets(boxes=[RIGHT])).tolist() == [0]
