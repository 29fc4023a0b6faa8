"""TFA: Eq. 1-2, the support pools, training, online inference with a bounded cache, and its ablation keys."""
import os

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from test_masktrack_model import CountingFrames, make_clip

from vis_d2.config import add_vis_config
from vis_d2.modeling import CascadeTrackROIHeads
from vis_d2.projects.tfa import TFA, SupportRoIs, TemporalFeatureAugmentation, TFAROIHeads, add_tfa_config, merge_support_rois

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = os.path.join(REPO, "configs", "synth_vis", "tfa_tiny.yaml")


def tiny_cfg(*opts):
    """The shipped tiny TFA config, shrunk so that one step takes a fraction of a second."""
    cfg = get_cfg()
    add_vis_config(cfg)
    add_tfa_config(cfg)
    cfg.merge_from_file(TINY)
    cfg.merge_from_list(
        [
            "MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS", [32, 64, 96, 128],
            "MODEL.FPN.OUT_CHANNELS", 32,
            "MODEL.RPN.PRE_NMS_TOPK_TRAIN", 200, "MODEL.RPN.POST_NMS_TOPK_TRAIN", 50,
            "MODEL.RPN.PRE_NMS_TOPK_TEST", 200, "MODEL.RPN.POST_NMS_TOPK_TEST", 50,
            "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", 32,
            "MODEL.ROI_HEADS.SCORE_THRESH_TEST", 0.0,  # random weights: keep detections
            "MODEL.ROI_BOX_HEAD.CONV_DIM", 32, "MODEL.ROI_BOX_HEAD.FC_DIM", 64,
            "MODEL.ROI_MASK_HEAD.CONV_DIM", 32,
            "MODEL.TRACK_HEAD.FC_DIM", 32,
            "MODEL.TFA.TOP_K", 16, "MODEL.TFA.EMBED_DIM", 24,
            *opts,
        ]  # fmt: skip
    )
    return cfg


def _train_step(model, roles=("key", "ref", "support")):
    model.train()
    with EventStorage():
        return model([make_clip(1, roles), make_clip(2, roles)])


# ------------------------------------------------------------------------------------ Eq. 1-2
def test_eq1_weights_are_a_softmax_over_scaled_cosines_of_the_shared_embedding():
    tfa = TemporalFeatureAugmentation(in_features=2, embed_dim=2, temperature=2.0, learn_temperature=False)
    with torch.no_grad():
        tfa.embed_fc.weight.copy_(torch.eye(2))  # f_e = identity: the embeddings are the inputs
    key = torch.tensor([[1.0, 0.0]])
    support = torch.tensor([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    weights = tfa.weights(tfa.embed(key), tfa.embed(support))
    cosines = torch.tensor([1.0, 0.0, 2**-0.5])
    expected = torch.exp(2.0 * cosines) / torch.exp(2.0 * cosines).sum()
    assert torch.allclose(weights, expected[None])


def test_eq2_replaces_a_key_roi_by_the_weighted_sum_of_raw_support_features_or_adds_it():
    key = torch.ones(1, 1, 2, 2)
    support = torch.stack([torch.full((1, 2, 2), 2.0), torch.full((1, 2, 2), 6.0)])
    weights = torch.tensor([[0.75, 0.25]])
    replace = TemporalFeatureAugmentation(in_features=4, embed_dim=2)
    residual = TemporalFeatureAugmentation(in_features=4, embed_dim=2, fusion="residual")
    assert torch.allclose(replace.fuse(key, weights, support), torch.full((1, 1, 2, 2), 3.0))  # 0.75*2 + 0.25*6
    assert torch.allclose(residual.fuse(key, weights, support), torch.full((1, 1, 2, 2), 4.0))


def test_an_empty_pool_leaves_the_features_unchanged_and_bad_settings_are_refused():
    tfa = TemporalFeatureAugmentation(in_features=4, embed_dim=2)
    key = torch.randn(3, 1, 2, 2)
    empty = SupportRoIs(torch.zeros(0, 1, 2, 2), torch.zeros(0, 2), torch.zeros(0))
    assert torch.equal(tfa(key, empty), key)
    with pytest.raises(ValueError, match="fusion"):
        TemporalFeatureAugmentation(in_features=4, embed_dim=2, fusion="concat")
    with pytest.raises(ValueError, match="temperature"):
        TemporalFeatureAugmentation(in_features=4, embed_dim=2, temperature=0.0)


def test_merged_pool_keeps_the_top_k_rois_by_objectness_across_frames():
    def pool(scores):
        n = len(scores)
        return SupportRoIs(torch.arange(n, dtype=torch.float)[:, None, None, None].expand(n, 1, 2, 2),
                           torch.zeros(n, 2), torch.tensor(scores))  # fmt: skip

    merged = merge_support_rois([pool([0.9, 0.1]), pool([0.5, 0.95, 0.2])], top_k=3)
    assert sorted(merged.objectness.tolist()) == pytest.approx([0.5, 0.9, 0.95])
    assert len(merge_support_rois([pool([0.3])], top_k=3)) == 1


# ------------------------------------------------------------------------------------ the model
def test_tfa_is_built_by_name_from_its_tiny_config_with_cascade_track_heads():
    model = build_model(tiny_cfg())
    assert isinstance(model, TFA) and isinstance(model.roi_heads, TFAROIHeads)
    assert isinstance(model.roi_heads, CascadeTrackROIHeads) and model.roi_heads.num_cascade_stages == 3
    assert model.roi_heads.stages == (0, 1, 2) and model.roi_heads.augment_masks
    assert model.tracker.uses_masks  # the mask-IoU cue
    assert model.frame_cache.maxlen == 2  # N - 1 earlier frames, N = SAMPLING_FRAME_NUM = 3


def test_clip_pool_holds_the_top_t_proposals_of_all_frames_and_is_pooled_from_each_frame():
    heads = build_model(tiny_cfg("MODEL.TFA.TOP_K", 3)).roi_heads
    size = (64, 96)
    features = [{f: torch.randn(1, 32, 64 // s, 96 // s) for f, s in (("p2", 4), ("p3", 8), ("p4", 16), ("p5", 32))}
                for _ in range(2)]  # fmt: skip

    def proposals(scores):
        p = Instances(size)
        p.proposal_boxes = Boxes(torch.tensor([[4.0, 4, 40, 40]] * len(scores)))
        p.objectness_logits = torch.tensor(scores)
        return [p]

    pool = heads.clip_support(features, [proposals([0.2, 0.8]), proposals([0.9, 0.1, 0.5])])[0]
    assert sorted(pool.objectness.tolist()) == pytest.approx([0.5, 0.8, 0.9])
    # Same box in both frames: the two chosen from frame 1 share their features, frame 0's differs.
    order = pool.objectness.argsort()
    f0, f1a, f1b = pool.box_features[order[1]], pool.box_features[order[0]], pool.box_features[order[2]]
    assert torch.allclose(f1a, f1b) and not torch.allclose(f0, f1a)
    assert pool.mask_features.shape == (3, 32, 14, 14) and pool.embeds.shape == (3, 24)


def test_training_step_has_finite_losses_and_gradients_reach_every_new_module():
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    losses = _train_step(model)
    assert {"loss_track", "loss_mask", "loss_cls_stage2", "loss_rpn_cls"} <= set(losses)
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    tfa = model.roi_heads.augmentation
    assert tfa.embed_fc.weight.grad.abs().sum() > 0 and tfa.log_temperature.grad is not None
    for stage in range(3):
        assert next(model.roi_heads.box_head[stage].parameters()).grad.abs().sum() > 0
    assert all(p.grad is not None for p in model.roi_heads.track_head.parameters())


def test_training_without_support_frames_pools_the_key_and_reference_frames():
    cfg = tiny_cfg("INPUT.SAMPLING_FRAME_NUM", 2, "INPUT.SAMPLING_SUPPORT_NUM", 0)
    losses = _train_step(build_model(cfg), roles=("key", "ref"))
    assert all(torch.isfinite(v) for v in losses.values())


def test_online_inference_tracks_a_short_video_with_the_cache_bounded_and_each_frame_read_once():
    torch.manual_seed(0)
    model = build_model(tiny_cfg()).eval()
    pools = []
    original = model.roi_heads.detect
    model.roi_heads.detect = lambda f, p, support=None: (pools.append(len(support[0])), original(f, p, support))[1]
    frames = CountingFrames(6)
    out = model([{"video_id": 3, "height": 64, "width": 96, "length": 6, "image": frames}])[0]
    assert frames.reads == list(range(6))  # nothing recomputed: earlier frames come from the cache
    assert len(model.frame_cache) == 2  # N - 1 entries at most
    assert max(pools) <= 16 and pools[0] <= pools[-1]  # the pool grows with the cache, up to t
    assert out["pred_tracks"] and all(len(t["segmentations"]) == 6 for t in out["pred_tracks"])


def test_uniform_test_support_reads_frames_spread_over_the_video_first_and_caches_nothing():
    model = build_model(tiny_cfg("MODEL.TFA.TEST_SUPPORT", "uniform")).eval()
    frames = CountingFrames(7)
    model([{"video_id": 3, "height": 64, "width": 96, "length": 7, "image": frames}])
    assert frames.reads[:2] == [0, 6] and frames.reads[2:] == list(range(7))
    assert model.frame_cache.maxlen == 0


# ------------------------------------------------------------------------------------ ablation keys
def test_tfa_off_builds_no_augmentation_and_trains_as_the_cascade_track_model():
    torch.manual_seed(0)
    model = build_model(tiny_cfg("MODEL.TFA.ENABLED", False))
    assert model.roi_heads.augmentation is None and model.frame_cache.maxlen == 0
    assert not any("augmentation" in name for name, _ in model.named_parameters())
    called = []
    model.roi_heads.clip_support = lambda *a: called.append(1)
    assert all(torch.isfinite(v) for v in _train_step(model).values()) and not called


def test_with_no_pool_or_no_augmented_stage_the_heads_compute_what_cascade_track_heads_compute():
    torch.manual_seed(0)
    heads = build_model(tiny_cfg()).roi_heads.eval()
    features = {f: torch.randn(1, 32, 64 // s, 96 // s) for f, s in (("p2", 4), ("p3", 8), ("p4", 16), ("p5", 32))}
    p = Instances((64, 96))
    p.proposal_boxes = Boxes(torch.tensor([[4.0, 4, 40, 40], [30, 10, 90, 60]]))
    p.objectness_logits = torch.tensor([1.0, 0.5])
    pool = heads.frame_support(features, [p])
    with torch.no_grad():
        plain = CascadeTrackROIHeads.detect(heads, features, [p])[0]
        no_pool = heads.detect(features, [p])[0]
        with_pool = heads.detect(features, [p], support=pool)[0]
        heads.stages = ()
        heads.augment_masks = False
        no_stage = heads.detect(features, [p], support=pool)[0]
    assert torch.equal(plain.scores, no_pool.scores) and torch.equal(plain.scores, no_stage.scores)
    assert not torch.equal(plain.pred_track_embeds, with_pool.pred_track_embeds)


def test_fusion_top_k_and_n_reach_the_model():
    assert build_model(tiny_cfg()).roi_heads.augmentation.fusion == "residual"  # the tiny default (see its yaml)
    model = build_model(tiny_cfg("MODEL.TFA.FUSION", "replace", "MODEL.TFA.TOP_K", 5,
                                 "INPUT.SAMPLING_FRAME_NUM", 4, "INPUT.SAMPLING_SUPPORT_NUM", 2))  # fmt: skip
    assert model.roi_heads.augmentation.fusion == "replace" and model.roi_heads.top_k == 5
    assert model.frame_cache.maxlen == 3
    assert not build_model(tiny_cfg("MODEL.TRACKER.MASK_IOU_WEIGHT", 0.0)).tracker.uses_masks
    with pytest.raises(ValueError, match="STAGES"):
        build_model(tiny_cfg("MODEL.TFA.STAGES", [3]))


# ------------------------------------------------------------------------------------ elsewhere
def test_tfa_heads_work_inside_detectron2s_generalized_rcnn_without_a_pool():
    cfg = tiny_cfg("MODEL.META_ARCHITECTURE", "GeneralizedRCNN")
    model = build_model(cfg)
    assert isinstance(model, GeneralizedRCNN) and isinstance(model.roi_heads, TFAROIHeads)
    model.eval()
    image = make_clip(1)["image"][0]
    with torch.no_grad():
        out = model([{"image": image, "height": 64, "width": 96}])[0]["instances"]
    assert out.has("pred_track_embeds") and out.has("pred_masks")
