"""Another detectron2 project uses our heads: `import vis_d2.modeling`, then name them in its config."""
import subprocess
import sys

import torch
from detectron2.config import get_cfg
from detectron2.modeling import GeneralizedRCNN, build_model
from detectron2.structures import BitMasks, Boxes, Instances
from detectron2.utils.events import EventStorage

import vis_d2.modeling  # noqa: F401  what the other project does
from vis_d2.config import add_vis_config
from vis_d2.modeling import TrackROIHeads

H, W = 64, 96


def test_importing_vis_d2_modeling_is_what_registers_the_heads():
    code = (
        "from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY, ROI_HEADS_REGISTRY\n"
        "assert 'TrackROIHeads' not in ROI_HEADS_REGISTRY\n"
        "import vis_d2.modeling\n"
        "from vis_d2.modeling import TRACK_HEAD_REGISTRY\n"
        "assert 'TrackROIHeads' in ROI_HEADS_REGISTRY and 'EmbeddingTrackHead' in TRACK_HEAD_REGISTRY\n"
        "assert 'CascadeTrackROIHeads' in ROI_HEADS_REGISTRY\n"
        "from vis_d2.modeling import TRACKER_REGISTRY\n"
        "assert {'MultiCueTracker', 'IdentityTracker'} <= set(name for name, _ in TRACKER_REGISTRY)\n"
        "assert 'OnlineVideoRCNN' in META_ARCH_REGISTRY\n"
        "assert 'build_small_resnet_fpn_backbone' in BACKBONE_REGISTRY\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def _generalized_rcnn_cfg():
    """A plain detectron2 Mask R-CNN config (ResNet-18-FPN, GN) whose ROI heads are ours."""
    cfg = get_cfg()
    add_vis_config(cfg)  # for the MODEL.TRACK_HEAD keys
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.MASK_ON = True
    cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.NORM = "GN"
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[16], [32], [64], [128], [256]]
    cfg.MODEL.RPN.IN_FEATURES = ["p2", "p3", "p4", "p5", "p6"]
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = 50
    cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 50
    cfg.MODEL.ROI_HEADS.NAME = "TrackROIHeads"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["p2", "p3", "p4", "p5"]
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0  # random weights: keep detections
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_MASK_HEAD.NUM_CONV = 1
    cfg.MODEL.ROI_MASK_HEAD.CONV_DIM = 32
    cfg.MODEL.TRACK_HEAD.FC_DIM = 24
    cfg.TEST.DETECTIONS_PER_IMAGE = 5
    return cfg


def _image_input(seed=0):
    image = torch.randint(0, 50, (3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(seed))
    image[:, 10:40, 20:60] = 200
    inst = Instances((H, W))
    inst.gt_boxes = Boxes(torch.tensor([[20.0, 10.0, 60.0, 40.0]]))
    inst.gt_classes = torch.tensor([1])
    masks = torch.zeros(1, H, W, dtype=torch.bool)
    masks[0, 10:40, 20:60] = True
    inst.gt_masks = BitMasks(masks)  # no gt_ids: an image dataset
    return {"image": image, "instances": inst, "height": 2 * H, "width": 2 * W}


def test_generalized_rcnn_with_track_roi_heads_trains_without_track_loss_and_infers_embeddings():
    torch.manual_seed(0)
    model = build_model(_generalized_rcnn_cfg())
    assert type(model) is GeneralizedRCNN and isinstance(model.roi_heads, TrackROIHeads)

    model.train()
    with EventStorage():
        losses = model([_image_input(0), _image_input(1)])
    # No reference frame: detection and mask losses only, and the track loss is skipped.
    assert set(losses) == {"loss_cls", "loss_box_reg", "loss_mask", "loss_rpn_cls", "loss_rpn_loc"}
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert model.roi_heads.box_predictor.cls_score.weight.grad.abs().sum() > 0

    model.eval()
    with torch.no_grad():
        (out,) = model([_image_input(2)])
    instances = out["instances"]
    assert 0 < len(instances) <= 5 and instances.image_size == (2 * H, 2 * W)  # rescaled to height/width
    assert instances.pred_track_embeds.shape == (len(instances), 24)
    assert instances.pred_masks.shape == (len(instances), 2 * H, 2 * W)
    # The embeddings are those of the kept boxes: recomputing them on the network-size boxes agrees.
    with torch.no_grad():
        images = model.preprocess_image([_image_input(2)])
        features = model.backbone(images.tensor)
        proposals, _ = model.proposal_generator(images, features, None)
        (dets,) = model.roi_heads.detect(features, proposals)
    assert torch.allclose(dets.pred_track_embeds, instances.pred_track_embeds, atol=1e-5)
