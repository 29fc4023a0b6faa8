"""A dense one-stage model and a slot model share the one online loop, tracker, aggregation and evaluator.

Both test-only models see the same tiny video (a red and a green square, at half the original resolution,
padded at the bottom by the backbone's size divisibility) and are built so that they are right: a correct
pipeline (masks resized from the feature resolution and cropped out of the padding, tracks linked, RLEs
aggregated) must then give the ground truth's boxes and AP50 = AP75 = 100 in :class:`YTVISEvaluator` (only
the bilinear upsampling of stride-4 masks rounds off their corners).
"""
import json

import numpy as np
import pycocotools.mask as mask_util
import pytest
import torch
import torch.nn.functional as F
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import nn

from vis_d2.evaluation import YTVISEvaluator
from vis_d2.modeling import FrameCache, IdentityTracker, MultiCueTracker, OnlineDenseVideoModel, OnlineSlotVideoModel

H, W = 28, 40  # network input; padded to 32 x 40 (size divisibility 8)
ORIG_H, ORIG_W = 2 * H, 2 * W
RED, GREEN = 0, 1  # class ids (contiguous); the json's are 1 and 2
SIZE = 8  # squares of 8 x 8 input pixels, on the stride-4 grid


def red_at(t):
    return (4 + 4 * t, 8)  # moves right by 4 pixels per frame


GREEN_AT = (28, 20)  # touches the bottom of the frame, next to the padding


def make_video(presence):
    """Frames (network size) and per-object ground-truth masks (original size) of a 5-frame video.

    Args:
        presence: class -> the frames where that square is visible.
    """
    frames, gt = [], {c: [None] * 5 for c in presence}
    for t in range(5):
        image = torch.zeros(3, H, W, dtype=torch.uint8)
        for c, frames_present in presence.items():
            if t not in frames_present:
                continue
            x, y = red_at(t) if c == RED else GREEN_AT
            image[c, y : y + SIZE, x : x + SIZE] = 255
            mask = np.zeros((ORIG_H, ORIG_W), dtype=np.uint8)
            mask[2 * y : 2 * (y + SIZE), 2 * x : 2 * (x + SIZE)] = 1
            gt[c][t] = mask
        frames.append(image)
    return frames, gt


def register_gt(name, tmp_path, gt):
    """A one-video YouTube-VIS json with the ground truth, registered for YTVISEvaluator."""
    def rle(m):
        r = mask_util.encode(np.asfortranarray(m))
        return dict(r, counts=r["counts"].decode("ascii"))

    anns = [{"id": c + 1, "video_id": 1, "category_id": c + 1, "iscrowd": 0,
             "segmentations": [None if m is None else rle(m) for m in masks],
             "areas": [None if m is None else int(m.sum()) for m in masks]} for c, masks in gt.items()]
    data = {"videos": [{"id": 1, "height": ORIG_H, "width": ORIG_W, "length": 5}],
            "categories": [{"id": 1, "name": "red"}, {"id": 2, "name": "green"}], "annotations": anns}
    json_file = tmp_path / f"{name}.json"
    json_file.write_text(json.dumps(data))
    DatasetCatalog.register(name, lambda: [])
    MetadataCatalog.get(name).set(json_file=str(json_file), thing_classes=["red", "green"],
                                  thing_dataset_id_to_contiguous_id={1: 0, 2: 1}, evaluator_type="ytvis")  # fmt: skip


def assert_masks_match(segmentations, gt_masks):
    """Masks resized from stride 4 to the original size with the padding cropped: the same box as the
    ground truth, to the pixel (a stretched or shifted mask would not be), and only the corners rounded off
    by the bilinear upsampling."""
    for seg, mask in zip(segmentations, gt_masks):
        assert (seg is None) == (mask is None)
        if mask is None:
            continue
        gt_rle = mask_util.encode(np.asfortranarray(mask))
        assert mask_util.toBbox(seg).tolist() == mask_util.toBbox(gt_rle).tolist()
        assert mask_util.iou([seg], [gt_rle], [0])[0, 0] > 0.85


@pytest.fixture
def evaluate(tmp_path, request):
    """Run a model on one video and evaluate its output; returns (output, metrics)."""
    names = []

    def _evaluate(model, frames, gt):
        name = f"families_{request.node.name}_{len(names)}"
        names.append(name)
        register_gt(name, tmp_path, gt)
        video = {"video_id": 1, "height": ORIG_H, "width": ORIG_W, "length": 5, "image": frames}
        (output,) = model.eval()([video])
        evaluator = YTVISEvaluator(name, str(tmp_path / name), distributed=False)
        evaluator.reset()
        evaluator.process([{"video_id": 1, "length": 5}], [output])
        return output, evaluator.evaluate()["segm"]

    yield _evaluate
    for name in names:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


class PoolBackbone(Backbone):
    """Stride-4 average pooling of the normalised frame: one level "p2" with the 3 color channels."""

    def __init__(self):
        super().__init__()
        self.pool = nn.AvgPool2d(4)

    def forward(self, x):
        return {"p2": self.pool(x)}

    def output_shape(self):
        return {"p2": ShapeSpec(channels=3, stride=4)}

    @property
    def size_divisibility(self):
        return 8


def downsampled_targets(targets, num_channels, padded_size, stride=4):
    """(B, num_channels, h, w) over the padded input: 1 where a ground-truth mask of that class covers most of
    a stride-4 cell."""
    out = []
    for inst in targets:
        masks = inst.gt_masks.tensor.float()
        h, w = masks.shape[-2:]
        pad = (0, padded_size[1] - w, 0, padded_size[0] - h)
        cells = F.avg_pool2d(F.pad(masks, pad)[:, None], stride)[:, 0] > 0.5 if len(inst) else None
        heat = torch.zeros(num_channels, padded_size[0] // stride, padded_size[1] // stride)
        for k in range(len(inst)):
            heat[int(inst.gt_classes[k])] = torch.maximum(heat[int(inst.gt_classes[k])], cells[k].float())
        out.append(heat)
    return torch.stack(out)


# ------------------------------------------------------------------------------------ dense
class ListHead(nn.Module):
    """1x1 conv on the single level: per-location class logits (B, 2, h, w)."""

    def __init__(self):
        super().__init__()
        self.cls = nn.Conv2d(3, 2, 1)
        with torch.no_grad():  # hand-set so that the test model is right: red -> class 0, green -> class 1
            self.cls.weight.zero_()
            self.cls.weight[RED, 0] = self.cls.weight[GREEN, 1] = 20.0
            self.cls.bias.fill_(-10.0)

    def forward(self, features):
        return self.cls(features[0])


class TinyDenseVIS(OnlineDenseVideoModel):
    """Test-only dense one-stage model: the best location per class is a detection; its embedding is the
    color at that location, its box the class map's extent, its mask the class map (image-covering, stride 4)."""

    def __init__(self, **kwargs):
        super().__init__(backbone=PoolBackbone(), head=ListHead(), tracker=MultiCueTracker(),
                         pixel_mean=[0.0, 0.0, 0.0], pixel_std=[255.0, 255.0, 255.0], **kwargs)  # fmt: skip

    def forward_training(self, key, features, predictions, refs):
        target = downsampled_targets(key.targets, 2, key.images.tensor.shape[-2:]).to(predictions)
        return {"loss_cls": F.binary_cross_entropy_with_logits(predictions, target)}

    def forward_inference(self, images, features, predictions):
        logits = predictions[0]  # (2, h, w)
        scores, classes, embeds, boxes = [], [], [], []
        for c in range(logits.shape[0]):
            score = logits[c].max().sigmoid()
            if score <= 0.5:
                continue
            peak = int(logits[c].flatten().argmax())
            y, x = divmod(peak, logits.shape[2])
            ys, xs = torch.nonzero(logits[c] > 0, as_tuple=True)
            scores.append(score)
            classes.append(c)
            embeds.append(5 * features["p2"][0, :, y, x])
            boxes.append([4 * xs.min(), 4 * ys.min(), 4 * (xs.max() + 1), 4 * (ys.max() + 1)])
        out = Instances(images.image_sizes[0])
        out.scores = torch.stack(scores) if scores else torch.zeros(0)
        out.pred_classes = torch.tensor(classes, dtype=torch.long)
        out.pred_track_embeds = torch.stack(embeds) if embeds else torch.zeros(0, 3)
        out.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        return out

    def predict_masks(self, features, detections):
        logits = self.run_head(features)[0]  # recomputed for the kept detections only, as STMask would
        detections.pred_masks = logits[detections.pred_classes].sigmoid()  # (N, h, w) covering the padded input
        return detections


def test_dense_model_with_image_covering_masks_scores_ap_100_through_loop_tracker_and_evaluator(evaluate):
    frames, gt = make_video({RED: range(5), GREEN: [1, 2, 3]})
    output, metrics = evaluate(TinyDenseVIS(), frames, gt)
    tracks = {t["category_id"]: t for t in output["pred_tracks"]}
    assert len(output["pred_tracks"]) == 2 and set(tracks) == {RED, GREEN}
    # The multi-cue tracker linked each square into one track; green was absent in frames 0 and 4.
    assert [s is None for s in tracks[GREEN]["segmentations"]] == [True, False, False, False, True]
    for c in (RED, GREEN):
        assert_masks_match(tracks[c]["segmentations"], gt[c])
    assert metrics["AP50"] == pytest.approx(100.0) and metrics["AP75"] == pytest.approx(100.0)


def _clip(presence_per_frame):
    """A training clip of the test video's frames, targets at the network input size."""
    images, instances = [], []
    for t in presence_per_frame:
        frames, gt = make_video({RED: [t], GREEN: [t]})
        inst = Instances((H, W))
        masks = torch.stack([torch.from_numpy(gt[c][t][::2, ::2].copy()).bool() for c in (RED, GREEN)])
        inst.gt_masks = BitMasks(masks)
        inst.gt_boxes = inst.gt_masks.get_bounding_boxes()
        inst.gt_classes = torch.tensor([RED, GREEN])
        inst.gt_ids = torch.tensor([1, 2])
        images.append(frames[t])
        instances.append(inst)
    roles = ["key"] + ["ref"] * (len(presence_per_frame) - 1)
    return {"video_id": 1, "height": H, "width": W, "frame_roles": roles, "image": images, "instances": instances}


@pytest.mark.parametrize("model_cls, param", [("dense", "head.cls.weight"), ("slot", "slot_kernels")])
def test_dense_and_slot_models_train_on_clips_through_the_base_batching(model_cls, param):
    model = TinyDenseVIS() if model_cls == "dense" else TinySlotVIS()
    model.train()
    with EventStorage():
        losses = model([_clip([0, 2]), _clip([1, 3])])
    assert losses and all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert dict(model.named_parameters())[param].grad.abs().sum() > 0


# ------------------------------------------------------------------------------------ slots
class TinySlotVIS(OnlineSlotVideoModel):
    """Test-only slot model: 3 slot kernels over the pixel features [r, g, b, 1]; masks are a softmax across
    the slots (mutually exclusive, HITF Eq. 5). Slot 0 holds the red square, slot 1 the green one, slot 2
    the background ("no object")."""

    SLOT_CLASS = (RED, GREEN, None)

    def __init__(self):
        super().__init__(backbone=PoolBackbone(), tracker=IdentityTracker(), num_slots=3, score_threshold=0.5,
                         pixel_mean=[0.0, 0.0, 0.0], pixel_std=[255.0, 255.0, 255.0])  # fmt: skip
        self.slot_kernels = nn.Parameter(torch.tensor([[20.0, 0, 0, -10], [0, 20.0, 0, -10], [0, 0, 0, 0]]))

    def _mask_logits(self, features):
        f = features["p2"]
        f = torch.cat([f, torch.ones_like(f[:, :1])], dim=1)  # (B, 4, h, w)
        return torch.einsum("ld,bdhw->blhw", self.slot_kernels, f)  # (B, L, h, w)

    def slot_losses(self, key, features, refs):
        # Every pixel belongs to one slot: red -> 0, green -> 1, background -> 2.
        heat = downsampled_targets(key.targets, 2, key.images.tensor.shape[-2:]).to(features["p2"])
        target = torch.full(heat.shape[:1] + heat.shape[2:], 2, dtype=torch.long)
        target[heat[:, RED] > 0] = 0
        target[heat[:, GREEN] > 0] = 1
        return {"loss_slot_mask": F.cross_entropy(self._mask_logits(features), target)}

    def predict_slots(self, images, features):
        mask_probs = self._mask_logits(features).softmax(dim=1)[0]  # (L, h, w)
        presence = mask_probs.flatten(1).max(dim=1).values
        class_probs = torch.zeros(3, 3)  # 2 classes + "no object"
        for slot, c in enumerate(self.SLOT_CLASS):
            p = presence[slot] if c is not None else torch.tensor(0.0)
            class_probs[slot, 2] = 1 - p
            if c is not None:
                class_probs[slot, c] = p
        return class_probs, mask_probs


def test_slot_model_tracks_by_slot_index_and_scores_ap_100_through_loop_and_evaluator(evaluate):
    # Green is seen first and red only from frame 2: matching in creation order would give green id 0;
    # identity by slot gives each square its slot's id.
    frames, gt = make_video({GREEN: range(4), RED: [2, 3, 4]})
    output, metrics = evaluate(TinySlotVIS(), frames, gt)
    ids = {t["category_id"]: t["track_id"] for t in output["pred_tracks"]}
    assert ids == {RED: 0, GREEN: 1}
    red = next(t for t in output["pred_tracks"] if t["track_id"] == 0)
    assert [s is None for s in red["segmentations"]] == [True, True, False, False, False]
    for track in output["pred_tracks"]:
        assert_masks_match(track["segmentations"], gt[track["category_id"]])
    assert metrics["AP50"] == pytest.approx(100.0) and metrics["AP75"] == pytest.approx(100.0)


# ------------------------------------------------------------------------------------ frame cache
class RecordingDense(TinyDenseVIS):
    """Records the temporal context each frame receives; each frame's cache entry is its frame number."""

    def __init__(self, context_frames):
        super().__init__(context_frames=context_frames)
        self.contexts, self._frame = [], 0

    def begin_video(self, video):
        super().begin_video(video)
        self._frame = 0

    def temporal_features(self, features, context):
        self.contexts.append(list(context))
        return features

    def context_entry(self, features, detections):
        self._frame += 1
        return self._frame - 1


def test_inference_context_is_the_last_k_frames_and_restarts_with_each_video():
    model = RecordingDense(context_frames=2).eval()
    frames, _ = make_video({RED: range(5)})
    video = {"video_id": 1, "height": H, "width": W, "length": 5, "image": frames}
    model([video, video])
    per_video = [[], [0], [0, 1], [1, 2], [2, 3]]
    assert model.contexts == per_video + per_video
    assert len(model.frame_cache) == 2


def test_frame_cache_holds_at_most_maxlen_entries_on_a_long_video():
    cache = FrameCache(3)
    for t in range(1000):
        cache.append({"p2": torch.full((1, 2, 2), float(t))})
        assert len(cache) == min(t + 1, 3)
    assert [int(e["p2"][0, 0, 0]) for e in cache.entries()] == [997, 998, 999]
    cache.begin_video()
    assert cache.entries() == []
    empty = FrameCache(0)
    empty.append("frame")
    assert len(empty) == 0
