#!/usr/bin/env python
"""Convert another codebase's checkpoint into the model of a vis_d2 config; every tensor is accounted for.

    # the official MaskTrack R-CNN release (mmdetection v0.x) -> our MaskTrack R-CNN R50-FPN
    python tools/convert_checkpoint.py --format masktrack-mmdet \\
        --config-file configs/ytvis_2019/masktrack_rcnn_R50_FPN.yaml [KEY VALUE ...] \\
        masktrack_rcnn_r50_fpn_1x.pth output/masktrack_official.pth --config-out output/masktrack_official.yaml
    # a torchvision ResNet-50 (ImageNet) -> the backbone of the same model
    python tools/convert_checkpoint.py --format torchvision --config-file CFG resnet50-0676ba61.pth out.pth
    # a detectron2 model-zoo / Caffe2 ImageNet checkpoint -> the backbone (add --scope "" for every key)
    python tools/convert_checkpoint.py --format detectron2 --config-file CFG model_final_a54504.pkl out.pth

Checks (the conversion is refused, with every offending key listed, when one fails):
- each source tensor maps to a parameter or buffer of the model, or is dropped for a stated reason
  (optimizer state, BatchNorm counters, the ImageNet classifier, mmdet's background regression rows and
  mask channel); a source key with no rule is an error, never silently skipped;
- each model key in the scope (``--scope``; by default the whole model for ``masktrack-mmdet``, the ResNet
  for ``torchvision``, the ResNet (+FPN if present) for ``detectron2``) is filled exactly once, with its shape.

Remappings (details in ``vis_d2/checkpoint/mmdet_masktrack.py`` and ``resnet.py``):
- ResNet: ``conv1``/``bn1`` -> ``stem.conv1``(``.norm``), ``layer{i}.{b}.conv{k}``/``bn{k}`` ->
  ``res{i+1}.{b}.conv{k}``(``.norm``), ``downsample.{0,1}`` -> ``shortcut``(``.norm``); Caffe2
  ``res{s}_{b}_branch2{a,b,c}`` / ``branch1`` -> ``conv1..3`` / ``shortcut`` with affine-channel scale/bias
  -> ``norm.weight``/``norm.bias`` and running mean 0 / var 1 synthesised.
- FPN: ``neck.lateral_convs.{i}.conv`` -> ``backbone.fpn_lateral{i+2}``, ``neck.fpn_convs.{i}.conv`` ->
  ``backbone.fpn_output{i+2}``.
- RPN: ``rpn_head.rpn_conv``/``rpn_cls``/``rpn_reg`` -> ``rpn_head.conv``/``objectness_logits``/
  ``anchor_deltas``: same anchor order (per location, by aspect ratio) and delta layout (A, 4), so unchanged;
  a softmax RPN (2A channels) becomes foreground minus background logits.
- Box head: ``bbox_head.shared_fcs.{i}`` -> ``box_head.fc{i+1}``; ``fc_cls`` rows reordered from mmdet's
  background-first to detectron2's background-last (``[1..K, 0]``); ``fc_reg``'s 4 background rows dropped
  (detectron2's class-specific regression has K*4 rows); deltas (dx, dy, dw, dh) with stds (0.1, 0.1, 0.2,
  0.2) = ``BBOX_REG_WEIGHTS`` (10, 10, 5, 5).
- Mask head: ``convs.{i}.conv`` -> ``mask_fcn{i+1}``, ``upsample`` -> ``deconv``, ``conv_logits``' background
  channel 0 dropped -> ``predictor``. Track head: ``track_head.fcs.{i}`` -> the i-th linear of ``track_head.fcs``.

The converted file holds tensors only (it loads with ``torch.load(weights_only=True)``) and is written
atomically. The weights alone do not make the model behave like the source: the tool prints the config
overrides they need (pytorch-style ResNet input: RGB, ImageNet mean/std, ``STRIDE_IN_1X1 False``; for the
MaskTrack release also mmdet v0.x's anchor offset and non-aligned RoIAlign) and ``--config-out`` writes a
config that inherits ``--config-file`` and sets them with ``MODEL.WEIGHTS``.

Exit status: 0 converted, 1 refused (the message lists why).
"""
import argparse
import os
import sys

import yaml

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--format", required=True, choices=["masktrack-mmdet", "torchvision", "detectron2"])
    p.add_argument("--config-file", required=True, help="the vis_d2 config whose model receives the weights")
    p.add_argument("source", help="checkpoint to convert")
    p.add_argument("output", help="converted checkpoint (.pth)")
    p.add_argument("--scope", action="append", help="model key prefix to fill (repeatable; '' = every key)")
    p.add_argument("--allow-missing", action="append", default=[], metavar="PREFIX",
                   help="model keys under PREFIX may stay unfilled (repeatable), e.g. roi_heads.track_head.")
    p.add_argument("--drop-class-layers", action="store_true",
                   help="leave class-dependent layers to initialisation when the number of classes differs")
    p.add_argument("--allow-pickle", action="store_true",
                   help="the source needs a full unpickling: runs code named in the file; only for trusted files")
    p.add_argument("--config-out", help="also write a config inheriting --config-file with the needed overrides")
    # Anything else is a config override, KEY VALUE pairs as in train_net.py.
    args, args.opts = p.parse_known_args(argv)
    if any(k.startswith("-") for k in args.opts[::2]):
        p.error(f"unrecognised arguments: {' '.join(args.opts)}")
    return args


def target_shapes_of(cfg):
    from detectron2.modeling import build_model

    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    return {k: tuple(v.shape) for k, v in build_model(cfg).state_dict().items()}


def write_config(path, base_config, weights, overrides):
    """A yaml that inherits ``base_config`` and sets ``overrides`` ([KEY, VALUE, ...]) and MODEL.WEIGHTS."""
    tree = {"_BASE_": os.path.abspath(base_config)}
    for key, value in zip(overrides[0::2] + ["MODEL.WEIGHTS"], overrides[1::2] + [os.path.abspath(weights)]):
        node = tree
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value) if value != os.path.abspath(weights) else value
    from vis_d2.checkpoint import atomic_write_text

    atomic_write_text(path, "# written by tools/convert_checkpoint.py\n" + yaml.safe_dump(tree, sort_keys=False))


def main(argv=None) -> int:
    args = parse_args(argv)
    from vis_d2.checkpoint import CheckpointReadError, UnsafeCheckpointError, atomic_torch_save
    from vis_d2.checkpoint.convert import ConversionError
    from vis_d2.checkpoint.formats import convert_checkpoint
    from vis_d2.checkpoint.mmdet_masktrack import MASKTRACK_CLASS_LAYERS
    from vis_d2.engine import ConfigError, build_config

    conversion = None
    try:
        cfg = build_config(args.config_file, args.opts)
        shapes = target_shapes_of(cfg)
        conversion, overrides, notes = convert_checkpoint(
            args.source, args.format, shapes, allow_pickle=args.allow_pickle, scope=args.scope,
            allow_missing=args.allow_missing, drop_class_layers=args.drop_class_layers,
        )
        conversion.raise_if_incomplete()
    except (ConfigError, ConversionError, CheckpointReadError, UnsafeCheckpointError) as e:
        hint = ""
        if isinstance(e, ConversionError) and conversion is not None and any(
            any(t.startswith(p) for p in MASKTRACK_CLASS_LAYERS) for _, t, _, _ in conversion.mismatched
        ):
            hint = "\n(another number of classes? --drop-class-layers leaves those layers to initialisation)"
        print(f"error: {e}{hint}", file=sys.stderr)
        return 1
    for note in notes:
        print(note)
    print(conversion.summary())
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    atomic_torch_save(
        {"model": conversion.tensors, "__author__": f"vis_d2 tools/convert_checkpoint.py ({args.format})",
         "matching_heuristics": False, "config_overrides": overrides},
        args.output,
    )
    print(f"wrote {args.output}")
    if overrides:
        print("the converted weights need these config overrides:\n  " + " ".join(overrides))
    if args.config_out:
        write_config(args.config_out, args.config_file, args.output, overrides)
        print(f"wrote {args.config_out} (inherits {args.config_file}, sets the overrides and MODEL.WEIGHTS)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
