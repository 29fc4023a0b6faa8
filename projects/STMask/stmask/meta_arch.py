"""STMask (Li, Li, Li, Zhang: "Spatial Feature Calibration and Temporal Fusion for Effective One-stage Video
Instance Segmentation", CVPR 2021) on :class:`OnlineDenseVideoModel`.

Training on frame pairs (``INPUT.SAMPLING_FRAME_NUM 2``): the frame-level losses of both frames
(:mod:`.losses`), the track loss over all their positive anchors, and with ``MODEL.STMASK.TF.ENABLED`` the
temporal fusion's box-shift and mask-shift losses from the earlier frame of each pair to the later one.

Inference, per frame: decode the anchors (score = class probability x centerness), cross-class fast NMS;
with TF, move every track of the tracker's memory from the previous frame into this one (box, mask
coefficients, mask; score x 0.95) from the cached previous frame's P4 and upfeature maps; match with
:class:`STMaskTracker` (STMask's cosine score, :func:`stmask_match_scores`, + mask and box IoU with the moved
tracks); masks from the prototypes for the kept detections; and the moved masks of tracks that no detection
continued, for up to ``MAX_FILL_FRAMES`` frames after they were last seen (:meth:`untracked_outputs`).
"""
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.modeling.anchor_generator import build_anchor_generator
from detectron2.modeling.matcher import Matcher
from detectron2.structures import Boxes, ImageList, Instances, pairwise_iou

from vis_d2.modeling import OnlineDenseVideoModel
from vis_d2.modeling.frame_masks import encode_frame_masks, frame_masks_at_stride
from vis_d2.modeling.meta_arch.clip_frames import FrameBatch
from vis_d2.modeling.meta_arch.online_video_model import rescale_boxes
from vis_d2.modeling.tracker import build_tracker

from .box_coding import decode_boxes, encode_boxes
from .head import ProtoNet, STMaskHead
from .losses import box_and_centerness_losses, hard_negative_class_loss, pairwise_track_loss
from .masks import assemble_masks, expand_boxes, mask_loss
from .temporal import TemporalFusion

__all__ = ["STMask", "fast_nms", "stmask_match_scores"]

PROTOTYPE_STRIDE = 4


def stmask_match_scores(det_embeds: torch.Tensor, mem_embeds: torch.Tensor, new_object_score: float = 1.4) -> torch.Tensor:
    """STMask's appearance score for :class:`MultiCueTracker`: (cos + 1) / 2 of the L2-normalised
    embeddings, with the "new object" column at 1.4.

    The official matching adds 1 x mask IoU + 2 x box IoU to the cosine score and gives the new-object entry
    the score 0.5 plus a dummy IoU of 0.3 for both (0.5 + 0.3 + 0.6 = 1.4); the multi-cue tracker gives
    that entry no IoU, so the constant carries the whole threshold.
    """
    similarity = (det_embeds @ mem_embeds.t() + 1.0) / 2.0
    return torch.cat([similarity.new_full((len(det_embeds), 1), new_object_score), similarity], dim=1)


def fast_nms(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float, top_k: int) -> torch.Tensor:
    """YOLACT's fast NMS, class-agnostic: among the ``top_k`` best, drop every box whose IoU with a
    higher-scored one exceeds the threshold (boxes already dropped still suppress). Returns kept indices,
    best first."""
    order = scores.argsort(descending=True)[:top_k]
    iou = pairwise_iou(Boxes(boxes[order]), Boxes(boxes[order])).triu(diagonal=1)
    keep = iou.max(dim=0).values <= iou_threshold if len(order) else torch.zeros(0, dtype=torch.bool)
    return order[keep]


@META_ARCH_REGISTRY.register()
class STMask(OnlineDenseVideoModel):
    """FCA/FCB prediction head + ProtoNet on FPN P3-P7, trained on frame pairs, tracked online."""

    @configurable
    def __init__(
        self,
        *,
        protonet: ProtoNet,
        anchor_generator: torch.nn.Module,
        temporal_fusion: Optional[TemporalFusion],
        loss_weights: Dict[str, float],
        box_variances=(0.1, 0.2),
        score_threshold: float = 0.05,
        nms_threshold: float = 0.5,
        pre_nms_topk: int = 200,
        detections_per_image: int = 100,
        max_positives: int = 100,
        tf_in_feature: str = "p4",
        max_fill_frames: int = 10,
        score_decay: float = 0.95,
        **kwargs,
    ):
        """
        Args:
            protonet: prototypes from P3.
            anchor_generator: anchors of the head's levels (:class:`FCAAnchorGenerator`).
            temporal_fusion: the TF module, or None (TF off).
            loss_weights: "class", "box", "centerness", "mask", "track", "box_shift", "mask_shift".
            box_variances: the box coding's.
            score_threshold, nms_threshold, pre_nms_topk, detections_per_image: test-time decoding.
            max_positives: positives per image that the mask and TF losses use (a random subset) [ours].
            tf_in_feature: the level the temporal fusion correlates.
            max_fill_frames: how many frames after it was last detected a track is still output from its
                moved mask (TF at inference).
            score_decay: a moved track's score is multiplied by this per frame.
            kwargs: the arguments of :class:`OnlineDenseVideoModel` (backbone, head, tracker, ...).
        """
        super().__init__(**kwargs)
        self.protonet = protonet
        self.anchor_generator = anchor_generator
        self.temporal_fusion = temporal_fusion
        self.loss_weights = dict(loss_weights)
        self.box_variances = tuple(box_variances)
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.pre_nms_topk = pre_nms_topk
        self.detections_per_image = detections_per_image
        self.max_positives = max_positives
        self.tf_in_feature = tf_in_feature
        self.max_fill_frames = max_fill_frames
        self.score_decay = score_decay
        if temporal_fusion is not None and not hasattr(self.tracker, "move_tracks"):
            raise ValueError("STMask's temporal fusion needs MODEL.TRACKER.NAME 'STMaskTracker'")
        self._frame: Dict = {}  # per-frame inference state: prototypes, upfeature map, moved tracks
        self._orig_size = None
        # YOLACT's rule: IoU < 0.4 negative, > 0.5 positive, in between ignored; each object's best anchor positive
        self.matcher = Matcher([0.4, 0.5], [0, -1, 1], allow_low_quality_matches=True)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        s = cfg.MODEL.STMASK
        shapes = ret["backbone"].output_shape()
        in_features = list(s.IN_FEATURES)
        level_shapes = [shapes[f] for f in in_features]
        ret["head"] = STMaskHead(cfg, level_shapes)
        ret["head_in_features"] = in_features
        ret["protonet"] = ProtoNet(shapes[in_features[0]].channels, s.PROTO_CONV_DIM, s.NUM_PROTOTYPES)
        ret["anchor_generator"] = build_anchor_generator(cfg, level_shapes)
        ret["tracker"] = build_tracker(cfg, match_scores=stmask_match_scores)
        ret["temporal_fusion"] = None
        if s.TF.ENABLED:
            tf_shape = shapes[s.TF.IN_FEATURE]
            ret["temporal_fusion"] = TemporalFusion(
                tf_shape.channels, s.HEAD.CONV_DIM, tf_shape.stride, s.NUM_PROTOTYPES, s.TF.PATCH_SIZE,
                tuple(s.TF.CONV_DIMS),
            )
        w = s.LOSS
        ret["loss_weights"] = {
            "class": w.CLASS, "box": w.BOX, "centerness": w.CENTERNESS, "mask": w.MASK, "track": w.TRACK,
            "box_shift": w.BOX_SHIFT, "mask_shift": w.MASK_SHIFT,
        }  # fmt: skip
        ret.update(
            box_variances=s.BOX_VARIANCES,
            score_threshold=s.SCORE_THRESH_TEST,
            nms_threshold=s.NMS_THRESH_TEST,
            pre_nms_topk=s.PRE_NMS_TOPK_TEST,
            detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
            max_positives=s.MAX_POSITIVES_PER_IMAGE,
            tf_in_feature=s.TF.IN_FEATURE,
            max_fill_frames=s.TF.MAX_FILL_FRAMES,
            score_decay=s.TF.SCORE_DECAY,
            context_frames=1 if s.TF.ENABLED else 0,  # the previous frame's P4 and upfeature maps
        )
        return ret

    # ------------------------------------------------------------------------------ shared
    def _predict(self, features: Dict[str, torch.Tensor]):
        """Head outputs concatenated over levels, the prototypes, and the anchors (A, 4)."""
        levels = [features[f] for f in self.head_in_features]
        out = self.head(levels)
        flat = {k: torch.cat(v, dim=1) for k, v in out.items() if k != "upfeatures"}
        flat["upfeatures"] = dict(zip(self.head_in_features, out["upfeatures"]))
        anchors = Boxes.cat(self.anchor_generator(levels)).tensor
        return flat, self.protonet(features[self.head_in_features[0]]), anchors

    # ------------------------------------------------------------------------------ training
    def forward_clip(self, key: FrameBatch, refs: List[FrameBatch], supports: List[FrameBatch]) -> Dict:
        if key.targets is None:
            raise ValueError("Training clips need 'instances'")
        if len(refs) != 1:
            raise ValueError(f"STMask trains on frame pairs (INPUT.SAMPLING_FRAME_NUM 2, no support frames); got {len(refs)} reference frames")
        ref = refs[0]
        num_clips = len(key.targets)
        features = {k: torch.cat([key.features[k], ref.features[k]]) for k in key.features}
        targets = list(key.targets) + list(ref.targets)
        preds, prototypes, anchors = self._predict(features)
        matched = [self._match(anchors, t) for t in targets]
        losses = self._frame_losses(preds, prototypes, anchors, targets, matched)
        if self.temporal_fusion is not None:
            losses.update(self._tf_losses(key, ref, features, preds, prototypes, anchors, targets, matched, num_clips))
        return {name: value * self.loss_weights[name[len("loss_"):]] for name, value in losses.items()}

    def _match(self, anchors: torch.Tensor, target: Instances):
        """Per anchor: the matched object's index and its label (1 positive, 0 negative, -1 ignored)."""
        if len(target) == 0:
            return torch.zeros(len(anchors), dtype=torch.long), torch.zeros(len(anchors), dtype=torch.int8)
        return self.matcher(pairwise_iou(target.gt_boxes, Boxes(anchors)))

    def _positives(self, labels: torch.Tensor) -> torch.Tensor:
        """Indices of the positive anchors, at most ``max_positives`` (random) for the costly losses."""
        idx = (labels == 1).nonzero().squeeze(1)
        if len(idx) > self.max_positives:
            idx = idx[torch.randperm(len(idx), device=idx.device)[: self.max_positives]]
        return idx

    def _frame_losses(self, preds, prototypes, anchors, targets, matched) -> Dict[str, torch.Tensor]:
        class_losses, boxes, gt_boxes, centerness, masks, embeds, ids = [], [], [], [], [], [], []
        for i, (target, (idx, labels)) in enumerate(zip(targets, matched)):
            background = self.head.num_classes
            cls = torch.full_like(idx, background)
            if len(target):
                cls = torch.where(labels == 1, target.gt_classes[idx], cls)
            cls[labels == -1] = -1
            class_losses.append(hard_negative_class_loss(preds["logits"][i], cls))
            pos = (labels == 1).nonzero().squeeze(1)
            decoded = decode_boxes(preds["deltas"][i][pos], anchors[pos], self.box_variances)
            boxes.append(decoded)
            centerness.append(preds["centerness"][i][pos])
            if len(pos):
                gt_boxes.append(target.gt_boxes.tensor[idx[pos]])
                embeds.append(preds["embeds"][i][pos])
                ids.append(target.gt_ids[idx[pos]])
            sub = self._positives(labels)
            if len(sub):
                crop = expand_boxes(decode_boxes(preds["deltas"][i][sub], anchors[sub], self.box_variances).detach(), 1.2)
                probs = assemble_masks(prototypes[i], preds["coefs"][i][sub])
                gt = self._padded_masks(target, prototypes.shape[-2:])[idx[sub]]
                masks.append(mask_loss(probs, gt, crop, PROTOTYPE_STRIDE))
        losses = {"loss_class": torch.stack(class_losses).mean()}
        boxes = torch.cat(boxes)
        gt_boxes = torch.cat(gt_boxes) if gt_boxes else boxes.detach()
        losses["loss_box"], losses["loss_centerness"] = box_and_centerness_losses(boxes, gt_boxes, torch.cat(centerness))
        losses["loss_mask"] = torch.cat(masks).mean() if masks else prototypes.sum() * 0.0
        if embeds:
            all_embeds, all_ids = torch.cat(embeds), torch.cat(ids)
            keep = torch.randperm(len(all_ids), device=all_ids.device)[: 4 * self.max_positives]
            losses["loss_track"] = pairwise_track_loss(all_embeds[keep], all_ids[keep])
        else:
            losses["loss_track"] = preds["embeds"].sum() * 0.0
        return losses

    @staticmethod
    def _padded_masks(target: Instances, proto_size) -> torch.Tensor:
        """The target's (N, H, W) masks zero-padded to the network input that the prototypes cover."""
        masks = target.gt_masks.tensor
        height, width = proto_size[0] * PROTOTYPE_STRIDE, proto_size[1] * PROTOTYPE_STRIDE
        return F.pad(masks, (0, width - masks.shape[-1], 0, height - masks.shape[-2]))

    def _tf_losses(self, key, ref, features, preds, prototypes, anchors, targets, matched, num_clips):
        """Box-shift and mask-shift losses from each pair's earlier frame to its later one (Eq. 11-14)."""
        later_is_ref = [True] * num_clips
        if key.frame_indices is not None and ref.frame_indices is not None:
            later_is_ref = [r >= k for k, r in zip(key.frame_indices, ref.frame_indices)]
        first = torch.tensor([b if lr else num_clips + b for b, lr in enumerate(later_is_ref)])
        second = torch.tensor([num_clips + b if lr else b for b, lr in enumerate(later_is_ref)])
        level, up = features[self.tf_in_feature], preds["upfeatures"][self.tf_in_feature]
        fused = self.temporal_fusion.fuse(level[first], level[second], up[first], up[second])
        rois, box_targets, coefs, next_masks, next_boxes, pairs = [], [], [], [], [], []
        for b in range(num_clips):
            i, j = int(first[b]), int(second[b])
            idx, labels = matched[i]
            sub = self._positives(labels)
            t_i, t_j = targets[i], targets[j]
            if len(sub) == 0 or len(t_j) == 0:
                rois.append(anchors.new_zeros((0, 4)))
                continue
            ids_i = t_i.gt_ids[idx[sub]]
            in_next = (ids_i[:, None] == t_j.gt_ids[None, :])
            has_next = in_next.any(dim=1)
            sub, ids_next = sub[has_next], in_next[has_next].float().argmax(dim=1)
            rois.append(decode_boxes(preds["deltas"][i][sub], anchors[sub], self.box_variances).detach())
            box_targets.append(encode_boxes(t_j.gt_boxes.tensor[ids_next], t_i.gt_boxes.tensor[idx[sub]], self.box_variances))
            coefs.append(preds["coefs"][i][sub])
            next_masks.append(self._padded_masks(t_j, prototypes.shape[-2:])[ids_next])
            next_boxes.append(t_j.gt_boxes.tensor[ids_next])
            pairs.extend([j] * len(sub))
        box_shift, coef_shift = self.temporal_fusion(fused, rois)
        if len(box_shift) == 0:
            zero = fused.sum() * 0.0
            return {"loss_box_shift": zero, "loss_mask_shift": zero}
        loss_box = F.smooth_l1_loss(box_shift, torch.cat(box_targets), reduction="none").sum(dim=1).mean()
        shifted = torch.cat(coefs) + coef_shift
        pairs = torch.tensor(pairs)
        probs = torch.cat([assemble_masks(prototypes[j], shifted[pairs == j]) for j in pairs.unique().tolist()])
        order = torch.cat([(pairs == j).nonzero().squeeze(1) for j in pairs.unique().tolist()])
        loss_mask = mask_loss(probs, torch.cat(next_masks)[order], torch.cat(next_boxes)[order], PROTOTYPE_STRIDE).mean()
        return {"loss_box_shift": loss_box, "loss_mask_shift": loss_mask}

    # ------------------------------------------------------------------------------ inference
    def begin_video(self, video: dict):
        super().begin_video(video)
        self._orig_size = (int(video["height"]), int(video["width"]))
        self._frame = {}

    def detect_frame(self, images: ImageList, features: Dict[str, torch.Tensor]) -> Instances:
        preds, prototypes, anchors = self._predict(features)
        self._frame = {"prototypes": prototypes[0], "upfeature": preds["upfeatures"].get(self.tf_in_feature)}
        probs = preds["logits"][0].softmax(dim=1)[:, :-1]
        class_prob, classes = probs.max(dim=1)
        scores = class_prob * preds["centerness"][0]
        keep = (class_prob > self.score_threshold) & (scores > 0)
        boxes = decode_boxes(preds["deltas"][0][keep], anchors[keep], self.box_variances)
        out = Instances(images.image_sizes[0])
        kept = fast_nms(boxes, scores[keep], self.nms_threshold, self.pre_nms_topk)[: self.detections_per_image]
        out.pred_boxes = Boxes(boxes[kept])
        out.pred_boxes.clip(images.image_sizes[0])
        out.scores = scores[keep][kept]
        out.pred_classes = classes[keep][kept]
        out.pred_track_embeds = preds["embeds"][0][keep][kept]
        out.pred_coefs = preds["coefs"][0][keep][kept]
        if self.temporal_fusion is not None and len(self.frame_cache) and len(self.tracker):
            self._move_tracks(images, features)
        return out

    def context_entry(self, features, detections: Instances):
        """The next frame's temporal fusion reads this frame's P4 and upfeature maps."""
        return features[self.tf_in_feature], self._frame["upfeature"]

    def _move_tracks(self, images: ImageList, features: Dict[str, torch.Tensor]):
        """Eq. 11-14 at inference: every track of the memory from the previous frame into this one."""
        previous, previous_up = self.frame_cache.entries()[-1]
        memory = self.tracker.memory()
        if "coefs" not in memory:
            return
        image_size, covered_size = images.image_sizes[0], tuple(images.tensor.shape[-2:])
        fused = self.temporal_fusion.fuse(previous, features[self.tf_in_feature], previous_up, self._frame["upfeature"])
        boxes = rescale_boxes(Boxes(memory["boxes"]), self._orig_size, image_size).tensor  # to the network input
        box_shift, coef_shift = self.temporal_fusion(fused, [boxes])
        moved = Boxes(decode_boxes(box_shift, boxes, self.box_variances))
        moved.clip(image_size)
        coefs = memory["coefs"] + coef_shift
        masks = assemble_masks(self._frame["prototypes"], coefs, moved.tensor, PROTOTYPE_STRIDE)
        track_masks = None
        if self.tracker.uses_masks:
            track_masks = frame_masks_at_stride(
                masks, None, covered_size, image_size, self._orig_size, self.tracker_mask_stride, self.mask_threshold
            )
        scores = memory["scores"] * self.score_decay
        orig_boxes = rescale_boxes(moved, image_size, self._orig_size).tensor
        self.tracker.move_tracks(boxes=orig_boxes, coefs=coefs, scores=scores, masks=track_masks)
        self._frame["moved"] = {
            "track_ids": memory["track_ids"], "last_seen": memory["last_seen"], "labels": memory["labels"],
            "scores": scores, "masks": masks, "covered_size": covered_size, "image_size": image_size,
        }  # fmt: skip

    def predict_masks(self, features, detections: Instances) -> Instances:
        """Image-covering (N, h, w) masks at the prototypes' stride 4, cropped by the detection boxes."""
        detections.pred_masks = assemble_masks(
            self._frame["prototypes"], detections.pred_coefs, detections.pred_boxes.tensor, PROTOTYPE_STRIDE
        )
        return detections

    def untracked_outputs(self, frame_idx, images, track_ids, orig_size):
        """The moved masks of recent tracks that no detection of this frame continued (score decayed)."""
        moved = self._frame.get("moved")
        if moved is None:
            return None
        continued = torch.isin(moved["track_ids"], track_ids[track_ids >= 0].to(moved["track_ids"].device))
        recent = (frame_idx - moved["last_seen"]) <= self.max_fill_frames
        keep = ~continued & recent & (moved["scores"] > self.score_threshold)
        if not bool(keep.any()):
            return None
        rles = encode_frame_masks(
            moved["masks"][keep], None, moved["covered_size"], moved["image_size"], orig_size, threshold=self.mask_threshold
        )
        return moved["track_ids"][keep], moved["scores"][keep], moved["labels"][keep], rles
