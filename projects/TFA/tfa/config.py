"""TFA's config keys (``MODEL.TFA``), on top of vis_d2's shared blocks.

[paper]: stated in the paper (Dong et al., ICCVW 2019); [ours]: a default of ours where the 2-page paper is
silent (the README of projects/TFA says why each one is what it is).
"""
from detectron2.config import CfgNode as CN

from vis_d2.config import add_vis_config

__all__ = ["add_tfa_config"]


def add_tfa_config(cfg):
    """Add the keys TFA configs use to a detectron2 config, in place. Idempotent."""
    add_vis_config(cfg)
    if "TFA" in cfg.MODEL:
        return
    # The N frames of a training clip are INPUT.SAMPLING_FRAME_NUM (key + reference + support frames), and
    # at inference a frame's pool holds its own and the previous N-1 frames' proposals
    # (MODEL.VIDEO.CONTEXT_FRAMES -1; or that many frames).
    cfg.MODEL.TFA = CN()
    # fmt: off
    cfg.MODEL.TFA.ENABLED = True             # False: Cascade Mask R-CNN + track head, no augmentation (ablation)
    cfg.MODEL.TFA.TOP_K = 100                # [ours] t: support RoIs kept from the N frames' proposals, by RPN score
    cfg.MODEL.TFA.EMBED_DIM = 1024           # [ours] output size of the shared FC f_e (Eq. 1), no activation
    cfg.MODEL.TFA.TEMPERATURE = 10.0         # [ours] scale of the cosine (Eq. 1) before the softmax
    cfg.MODEL.TFA.LEARN_TEMPERATURE = True   # [ours] the scale is learned from its initial value
    cfg.MODEL.TFA.FUSION = "replace"         # [paper] r <- r_hat (Eq. 2); "residual": r <- r + r_hat [ours]
    cfg.MODEL.TFA.STAGES = [0, 1, 2]         # [paper] "before the RoI features feed into the four branches": every stage
    cfg.MODEL.TFA.AUGMENT_MASKS = True       # [paper] the mask branch too, with the weights of the same boxes' 7x7 embeddings [ours]
    cfg.MODEL.TFA.DETACH_SUPPORT = False     # [ours] True stops gradients at the support RoI features
    cfg.MODEL.TFA.TEST_SUPPORT = "causal"    # [ours] "causal": the previous N-1 frames (cached); "uniform": N-1 frames over the video
    # fmt: on
