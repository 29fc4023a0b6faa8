"""A small BasicBlock ResNet (+ FPN) with free per-stage widths, for training from scratch on CPU.

detectron2's ``build_resnet_backbone`` ties BasicBlock ResNets (depth 18/34) to 64 channels in
res2 and doubles from there. Training from scratch on 2 CPU cores wants something narrower
(e.g. 32/64/128/256 channels, ~4M parameters with the heads; see the tiny synthetic config) and
GroupNorm, because frozen BatchNorm cannot learn without pretrained statistics. The blocks are
detectron2's own ``BasicStem`` / ``BasicBlock``; only the widths are free.

Config keys: ``MODEL.SMALL_RESNET.{STEM_OUT_CHANNELS, STAGE_OUT_CHANNELS, NUM_BLOCKS}`` and, shared
with detectron2's ResNet, ``MODEL.RESNETS.{NORM, OUT_FEATURES}``, ``MODEL.BACKBONE.FREEZE_AT`` and
``MODEL.FPN.*``.
"""
from detectron2.layers import ShapeSpec
from detectron2.modeling.backbone import BACKBONE_REGISTRY, FPN, ResNet
from detectron2.modeling.backbone.fpn import LastLevelMaxPool
from detectron2.modeling.backbone.resnet import BasicBlock, BasicStem

__all__ = ["build_small_resnet_backbone", "build_small_resnet_fpn_backbone"]

# detectron2's get_norm("GN", C) builds GroupNorm(32, C).
_GN_GROUPS = 32


def _check_widths(norm: str, widths):
    if norm != "GN":
        return
    bad = [w for w in widths if w < _GN_GROUPS or w % _GN_GROUPS]
    if bad:
        raise ValueError(
            f"GroupNorm uses {_GN_GROUPS} groups: every width of MODEL.SMALL_RESNET must be a multiple "
            f"of {_GN_GROUPS} (got {bad})"
        )


@BACKBONE_REGISTRY.register()
def build_small_resnet_backbone(cfg, input_shape: ShapeSpec) -> ResNet:
    """A BasicBlock ResNet: stem (stride 4), then res2..res5 with strides 4, 8, 16, 32.

    Returns:
        detectron2 ``ResNet`` whose outputs are ``MODEL.RESNETS.OUT_FEATURES`` (e.g. res2..res5);
        stages after the last requested one are not built.
    """
    spec = cfg.MODEL.SMALL_RESNET
    norm = cfg.MODEL.RESNETS.NORM
    out_features = cfg.MODEL.RESNETS.OUT_FEATURES
    widths, depths = list(spec.STAGE_OUT_CHANNELS), list(spec.NUM_BLOCKS)
    if len(widths) != 4 or len(depths) != 4:
        raise ValueError("MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS and NUM_BLOCKS need 4 entries (res2..res5)")
    _check_widths(norm, [spec.STEM_OUT_CHANNELS] + widths)
    # detectron2's BasicBlock adds a projection shortcut only when the width changes, so a strided
    # stage (res3..res5) must change it, or the residual sum would mix two resolutions.
    for idx in range(1, 4):
        if widths[idx] == widths[idx - 1]:
            raise ValueError(
                f"MODEL.SMALL_RESNET.STAGE_OUT_CHANNELS: res{idx + 2} must be wider or narrower than "
                f"res{idx + 1} (got {widths})"
            )

    stem = BasicStem(in_channels=input_shape.channels, out_channels=spec.STEM_OUT_CHANNELS, norm=norm)
    stage_names = ["res2", "res3", "res4", "res5"]
    num_stages = max(stage_names.index(f) + 1 for f in out_features if f in stage_names)
    stages, in_channels = [], spec.STEM_OUT_CHANNELS
    for idx in range(num_stages):
        first_stride = 1 if idx == 0 else 2
        stages.append(
            ResNet.make_stage(
                BasicBlock,
                depths[idx],
                in_channels=in_channels,
                out_channels=widths[idx],
                stride_per_block=[first_stride] + [1] * (depths[idx] - 1),
                norm=norm,
            )
        )
        in_channels = widths[idx]
    return ResNet(stem, stages, out_features=out_features, freeze_at=cfg.MODEL.BACKBONE.FREEZE_AT)


@BACKBONE_REGISTRY.register()
def build_small_resnet_fpn_backbone(cfg, input_shape: ShapeSpec) -> FPN:
    """:func:`build_small_resnet_backbone` + detectron2's FPN with a max-pooled P6 (P2-P6)."""
    return FPN(
        bottom_up=build_small_resnet_backbone(cfg, input_shape),
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=cfg.MODEL.FPN.OUT_CHANNELS,
        norm=cfg.MODEL.FPN.NORM,
        top_block=LastLevelMaxPool(),
        fuse_type=cfg.MODEL.FPN.FUSE_TYPE,
    )
