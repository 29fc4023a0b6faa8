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
    cfg.MODEL.STMASK.BOX_VARIANCES = (0.1, 0.2)  # [code] YOLACT/SSD centre-size coding
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
    # fmt: on
