"""Config keys shared by every vis_d2 method. Method-specific keys live in each project's ``config.py``."""
from detectron2.config import CfgNode as CN


def add_vis_config(cfg):
    """Add vis_d2's keys (with defaults) to a detectron2 config, in place. Idempotent."""
    if hasattr(cfg, "VIS_D2_CONFIG_ADDED"):
        return
    cfg.VIS_D2_CONFIG_ADDED = True

    # ---------------------------------------------------------------- clip sampling (training)
    # A training clip is one key frame plus reference frames (targets for tracking losses) and
    # support frames (inputs to temporal aggregation). SAMPLING_* names follow the de-facto standard
    # of Detectron2 VIS code; the role counts are ours.
    # fmt: off
    cfg.INPUT.SAMPLING_FRAME_NUM = 2              # frames per clip, key frame included
    cfg.INPUT.SAMPLING_FRAME_RANGE = 100          # max |t - t_key| (frames) of reference frames
    cfg.INPUT.SAMPLING_FRAME_SHUFFLE = False      # shuffle the refs among themselves, and the supports (key stays first)
    cfg.INPUT.SAMPLING_SUPPORT_NUM = 0            # how many of the clip's non-key frames are support frames
    cfg.INPUT.SAMPLING_SUPPORT_RANGE = -1         # max |t - t_key| of support frames; -1: SAMPLING_FRAME_RANGE
    cfg.INPUT.SAMPLING_METHOD = "random"          # "random" or "uniform" (evenly spaced in the range)
    cfg.INPUT.SAMPLING_CAUSAL = False             # support frames only from t < t_key (online methods)
    cfg.INPUT.SAMPLING_KEY_REQUIRE_ANNOTATIONS = True  # key frames need >= 1 non-crowd instance
    cfg.INPUT.SAMPLING_REF_REQUIRE_ANNOTATIONS = True  # so do reference frames (MaskTrack R-CNN's rule)
    # fmt: on

    # ---------------------------------------------------------------- checkpoints (vis_d2/engine/checkpoint.py)
    # [ours] Checkpoints load with torch.load(weights_only=True) (detectron2 model-zoo .pkl: numpy arrays
    # only); True also loads files that need a full unpickling, which runs code named in the file.
    cfg.MODEL.WEIGHTS_ALLOW_PICKLE = False

    # ---------------------------------------------------------------- base online video model (training)
    cfg.MODEL.VIDEO = CN()
    # [ours] Detection and mask losses on every annotated frame of a clip (key + reference frames), averaged
    # over the frames; the official MaskTrack R-CNN trains detection on the key frame only (False).
    cfg.MODEL.VIDEO.DETECT_ALL_FRAMES = False
    # [ours] Earlier frames an online model caches at inference as temporal context (OnlineVideoModel.
    # temporal_features); -1: as many as the training clips' support frames (INPUT.SAMPLING_SUPPORT_NUM).
    cfg.MODEL.VIDEO.CONTEXT_FRAMES = -1

    # ---------------------------------------------------------------- optimizer (vis_d2/solver.py)
    cfg.SOLVER.OPTIMIZER = "SGD"  # "SGD" (detectron2's) or "ADAMW"
    cfg.SOLVER.BETAS = (0.9, 0.999)  # AdamW's betas
    # SOLVER.CLIP_GRADIENTS.CLIP_TYPE also accepts "full_model": one L2 norm over all gradients (official
    # MaskTrack R-CNN: 35); detectron2's "norm" / "value" clip each parameter on its own.

    # ---------------------------------------------------------------- video evaluation
    cfg.TEST.VIS_ZIP_RESULTS = True  # also write results.zip (what the YouTube-VIS server accepts)
    cfg.TEST.VIS_MAX_TRACKS_PER_VIDEO = 100  # keep the top-scoring tracks per video in results.json

    # ---------------------------------------------------------------- track head (TRACK_HEAD_REGISTRY)
    # The defaults of MODEL.TRACK_HEAD and MODEL.TRACKER are MaskTrack R-CNN's (ICCV 2019) [paper]/[orig]: its
    # configs set only what they change (the tiny synthetic model's FC_DIM, for instance).
    cfg.MODEL.TRACK_HEAD = CN()
    # fmt: off
    cfg.MODEL.TRACK_HEAD.NAME = "EmbeddingTrackHead"
    cfg.MODEL.TRACK_HEAD.NUM_FC = 2               # [paper] 2 FCs on the 7x7 box RoI features: 12544 -> 1024 -> 1024
    cfg.MODEL.TRACK_HEAD.FC_DIM = 1024            # [orig] embedding size
    cfg.MODEL.TRACK_HEAD.RELU_AFTER_LAST = False  # [orig] no ReLU after the last FC ([mmtrack]: ReLU)
    cfg.MODEL.TRACK_HEAD.LOSS_WEIGHT = 1.0        # [orig]
    # [orig] 1: the track loss also trains the shared backbone/FPN features; 0: the head learns on the
    # detector's features without changing them (the tiny from-scratch configs: docs/synthetic_benchmark.md)
    cfg.MODEL.TRACK_HEAD.FEATURE_GRAD_SCALE = 1.0
    # fmt: on

    # ---------------------------------------------------------------- online tracker (TRACKER_REGISTRY)
    cfg.MODEL.TRACKER = CN()
    # "MultiCueTracker" (MaskTrack R-CNN's matching), "IdentityTracker" (ids from the model: slot models) or
    # "PerFrameTracker" (no association: the detector-only baseline).
    cfg.MODEL.TRACKER.NAME = "MultiCueTracker"
    # Multi-cue assignment score ([paper] Eq. 3 with [orig] match_coeff [1.0, 2.0, 10]):
    #   EMBED_WEIGHT*log p(match) + SCORE_WEIGHT*log(det score) + BOX_IOU_WEIGHT*IoU + LABEL_WEIGHT*[same class]
    #   + MASK_IOU_WEIGHT*mask IoU (TFA's extra cue; 0 disables it).
    # fmt: off
    cfg.MODEL.TRACKER.EMBED_WEIGHT = 1.0          # [paper] weight of log p(match) (the appearance cue); 0: motion + class only
    cfg.MODEL.TRACKER.SCORE_WEIGHT = 1.0          # [orig]
    cfg.MODEL.TRACKER.BOX_IOU_WEIGHT = 2.0        # [orig]
    cfg.MODEL.TRACKER.LABEL_WEIGHT = 10.0         # [orig]
    cfg.MODEL.TRACKER.MASK_IOU_WEIGHT = 0.0       # TFA's cue, off for MaskTrack R-CNN
    cfg.MODEL.TRACKER.MEMORY_RETAIN_FRAMES = -1   # [orig] drop tracks unseen this many frames; -1 keeps all ([mmtrack] 20)
    cfg.MODEL.TRACKER.UPDATE_LABEL = False        # [orig] keeps a track's label from creation ([mmtrack] updates)
    cfg.MODEL.TRACKER.MIN_MATCH_IOU = 0.0         # [orig] 0: every track competes; g > 0: only tracks with box IoU >= g
    cfg.MODEL.TRACKER.MIN_MATCH_IOU_FRAMES = -1   # [ours] K >= 0: the gate holds only for tracks seen <= K frames ago
    # fmt: on

    # ---------------------------------------------------------------- small from-scratch backbone
    # build_small_resnet_fpn_backbone (vis_d2/modeling/backbone/small_resnet.py): detectron2's BasicStem /
    # BasicBlock with free widths, for training from scratch on CPU (tiny synthetic configs). NORM, OUT_FEATURES,
    # FREEZE_AT and the FPN come from detectron2's MODEL.RESNETS.*, MODEL.BACKBONE.* and MODEL.FPN.* keys.
    cfg.MODEL.SMALL_RESNET = CN()
    # fmt: off
    cfg.MODEL.SMALL_RESNET.STEM_OUT_CHANNELS = 32
    cfg.MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS = [32, 64, 128, 256]  # res2..res5; GN needs multiples of 32
    cfg.MODEL.SMALL_RESNET.NUM_BLOCKS = [2, 2, 2, 2]                # BasicBlocks per stage (ResNet-18 layout)
    # fmt: on
