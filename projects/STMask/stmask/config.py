"""STMask's config keys (``MODEL.STMASK``), on top of vis_d2's shared blocks.

Tags: [paper] Li et al., CVPR 2021; [code] the official code (MinghanLi/STMask), the default where the two
disagree; [ours] where neither says.
"""
from detectron2.config import CfgNode as CN

from vis_d2.config import add_vis_config

__all__ = ["add_stmask_config"]


def add_stmask_config(cfg):
    """Add the keys STMask configs use to a detectron2 config, in place. Idempotent."""
    add_vis_config(cfg)
    if "STMASK" in cfg.MODEL:
        return
    cfg.MODEL.STMASK = CN()
    # fmt: off
    cfg.MODEL.STMASK.NUM_CLASSES = 40            # foreground classes (YouTube-VIS 2019); the head adds background
    cfg.MODEL.STMASK.IN_FEATURES = ["p3", "p4", "p5", "p6", "p7"]  # [code] P3-P7; prototypes from the first
    cfg.MODEL.STMASK.NUM_PROTOTYPES = 32         # [code]
    cfg.MODEL.STMASK.PROTO_CONV_DIM = 256        # [code] ProtoNet width
    cfg.MODEL.STMASK.BOX_VARIANCES = (0.1, 0.2)  # [code] YOLACT/SSD centre-size coding
    cfg.MODEL.STMASK.HEAD = CN()
    cfg.MODEL.STMASK.HEAD.NUM_CONVS = 2          # [code] extra_layers (2, 2, 2, 2): 2 convs per branch tower
    cfg.MODEL.STMASK.HEAD.CONV_DIM = 256         # [code]
    cfg.MODEL.STMASK.HEAD.EMBED_DIM = 128        # [code] track embedding (L2-normalised)
    # [code] 1: the track loss also trains the shared upfeature conv, FPN and backbone; 0: the track tower
    # learns on detached features (as MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE for the RoI track head)
    cfg.MODEL.STMASK.HEAD.TRACK_FEATURE_GRAD_SCALE = 1.0
    # ---- losses: [code] weights where our normalisation is the code's (per positive); class is [ours]
    cfg.MODEL.STMASK.LOSS = CN()
    cfg.MODEL.STMASK.LOSS.CLASS = 1.0            # [ours] OHEM 3:1 CE per positive ([code] 6.125 with its own normalisation)
    cfg.MODEL.STMASK.LOSS.BOX = 5.0              # [code] bboxiou_alpha, DIoU loss
    cfg.MODEL.STMASK.LOSS.CENTERNESS = 20.0      # [code]
    cfg.MODEL.STMASK.LOSS.MASK = 6.125           # [code] mask_alpha
    cfg.MODEL.STMASK.LOSS.TRACK = 5.0            # [code] track_alpha
    cfg.MODEL.STMASK.LOSS.BOX_SHIFT = 5.0        # [code] boxshift_alpha (TF)
    cfg.MODEL.STMASK.LOSS.MASK_SHIFT = 6.125     # [code] maskshift_alpha (TF)
    cfg.MODEL.STMASK.MAX_POSITIVES_PER_IMAGE = 100  # [ours] random subset of positives for the mask and TF losses
    # ---- test-time decoding
    cfg.MODEL.STMASK.SCORE_THRESH_TEST = 0.05    # [code] on the max class probability
    cfg.MODEL.STMASK.NMS_THRESH_TEST = 0.5       # [code] cross-class fast NMS
    cfg.MODEL.STMASK.PRE_NMS_TOPK_TEST = 200     # [code] top_k before fast NMS ([paper] 100 boxes)
    # ---- FCA (§3.1.1): one output kernel per anchor shape, anchors of the kernel's shape in cells of the level
    cfg.MODEL.STMASK.FCA = CN()
    cfg.MODEL.STMASK.FCA.ENABLED = True
    cfg.MODEL.STMASK.FCA.KERNEL_SHAPES = [[3, 3], [3, 5], [5, 3]]  # [paper]/[code] (kh, kw): w/h = 1, 5/3, 3/5
    # ---- FCB (§3.1.2): per branch, "none", "ada" (learned 1x1 offsets) or "ali" (closed form)
    cfg.MODEL.STMASK.FCB = CN()
    cfg.MODEL.STMASK.FCB.CLASS = "ada"  # [code] the released configs calibrate the class branch only
    cfg.MODEL.STMASK.FCB.MASK = "none"  # [paper] "ada" on class + mask + track, or "ali" on mask + track
    cfg.MODEL.STMASK.FCB.TRACK = "none"
    # ---- TF (§3.2): local correlation of two frames' features, temporal net on RoIs of the earlier frame's boxes
    cfg.MODEL.STMASK.TF = CN()
    cfg.MODEL.STMASK.TF.ENABLED = True
    cfg.MODEL.STMASK.TF.IN_FEATURE = "p4"  # [paper] Table 3 / [code] correlation_selected_layer=1
    cfg.MODEL.STMASK.TF.PATCH_SIZE = 11    # [paper] d = 11: displacements of +-5 cells
    cfg.MODEL.STMASK.TF.CONV_DIMS = [512, 512, 1024]  # [code] the temporal net's three 3x3 convs
    cfg.MODEL.STMASK.TF.MAX_FILL_FRAMES = 10  # [code] a track missed by the detector is output from its moved mask this long
    cfg.MODEL.STMASK.TF.SCORE_DECAY = 0.95    # [code] per moved frame
    # fmt: on
