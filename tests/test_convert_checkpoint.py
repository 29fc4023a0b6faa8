"""Checkpoint conversion: every parameter of our model is filled from the right source tensor (rows in the
right order), nothing is left over, and anything unexpected is refused.

Source state dicts are built here with the official key names and shapes (MaskTrack R-CNN release =
mmdetection v0.x Mask R-CNN R50-FPN + track head, 40 classes + background; torchvision ResNet-50; Caffe2
R-50). Each source tensor is filled with ``10000 * id + row``, so a converted value tells which source
tensor it came from (``// 10000``) and which of its rows (``% 10000``).
"""
import importlib.util
import os
import pickle

import pytest
import torch

from vis_d2.checkpoint.convert import ConversionError
from vis_d2.checkpoint.formats import convert_checkpoint

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
R50_CONFIG = os.path.join(REPO, "configs", "ytvis_2019", "masktrack_rcnn_R50_FPN.yaml")
K = 40  # YouTube-VIS 2019 classes
_spec = importlib.util.spec_from_file_location("convert_checkpoint_cli", os.path.join(REPO, "tools", "convert_checkpoint.py"))
cli = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cli)


def official_resnet50(prefix=""):
    """torchvision / mmdetection v0.x ResNet-50 keys and shapes (Bottleneck, expansion 4)."""
    shapes = {f"{prefix}conv1.weight": (64, 3, 7, 7)}
    shapes.update({f"{prefix}bn1.{f}": (64,) for f in ("weight", "bias", "running_mean", "running_var")})
    shapes[f"{prefix}bn1.num_batches_tracked"] = ()
    in_ch = 64
    for layer, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=1):
        for b in range(blocks):
            p = f"{prefix}layer{layer}.{b}."
            convs = {"conv1": (planes, in_ch, 1, 1), "conv2": (planes, planes, 3, 3), "conv3": (4 * planes, planes, 1, 1)}
            for k, (name, shape) in enumerate(convs.items(), start=1):
                shapes[p + name + ".weight"] = shape
                for f in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{p}bn{k}.{f}"] = (shape[0],)
                shapes[f"{p}bn{k}.num_batches_tracked"] = ()
            if b == 0:
                shapes[p + "downsample.0.weight"] = (4 * planes, in_ch, 1, 1)
                for f in ("weight", "bias", "running_mean", "running_var"):
                    shapes[f"{p}downsample.1.{f}"] = (4 * planes,)
                shapes[f"{p}downsample.1.num_batches_tracked"] = ()
            in_ch = 4 * planes
    return shapes


def official_masktrack_r50(num_classes=K, softmax_rpn=False):
    """The official MaskTrack R-CNN release's state dict layout (mmdetection v0.x names)."""
    shapes = official_resnet50("backbone.")
    for i, c in enumerate((256, 512, 1024, 2048)):
        shapes.update({f"neck.lateral_convs.{i}.conv.weight": (256, c, 1, 1), f"neck.lateral_convs.{i}.conv.bias": (256,),
                       f"neck.fpn_convs.{i}.conv.weight": (256, 256, 3, 3), f"neck.fpn_convs.{i}.conv.bias": (256,)})
    cls_ch = 6 if softmax_rpn else 3
    shapes.update({
        "rpn_head.rpn_conv.weight": (256, 256, 3, 3), "rpn_head.rpn_conv.bias": (256,),
        "rpn_head.rpn_cls.weight": (cls_ch, 256, 1, 1), "rpn_head.rpn_cls.bias": (cls_ch,),
        "rpn_head.rpn_reg.weight": (12, 256, 1, 1), "rpn_head.rpn_reg.bias": (12,),
        "bbox_head.shared_fcs.0.weight": (1024, 256 * 7 * 7), "bbox_head.shared_fcs.0.bias": (1024,),
        "bbox_head.shared_fcs.1.weight": (1024, 1024), "bbox_head.shared_fcs.1.bias": (1024,),
        "bbox_head.fc_cls.weight": (num_classes + 1, 1024), "bbox_head.fc_cls.bias": (num_classes + 1,),
        "bbox_head.fc_reg.weight": (4 * (num_classes + 1), 1024), "bbox_head.fc_reg.bias": (4 * (num_classes + 1),),
        "mask_head.upsample.weight": (256, 256, 2, 2), "mask_head.upsample.bias": (256,),
        "mask_head.conv_logits.weight": (num_classes + 1, 256, 1, 1), "mask_head.conv_logits.bias": (num_classes + 1,),
        "track_head.fcs.0.weight": (1024, 256 * 7 * 7), "track_head.fcs.0.bias": (1024,),
        "track_head.fcs.1.weight": (1024, 1024), "track_head.fcs.1.bias": (1024,),
    })  # fmt: skip
    for i in range(4):
        shapes.update({f"mask_head.convs.{i}.conv.weight": (256, 256, 3, 3), f"mask_head.convs.{i}.conv.bias": (256,)})
    return shapes


def encoded(shapes):
    """name -> tensor of ``10000 * id + row``; and id -> name."""
    tensors, names = {}, {}
    for i, (name, shape) in enumerate(shapes.items(), start=1):
        if shape == ():
            tensors[name] = torch.tensor(7, dtype=torch.long)  # num_batches_tracked
        else:
            rows = torch.arange(shape[0], dtype=torch.float32).reshape(-1, *[1] * (len(shape) - 1))
            tensors[name] = (10000.0 * i + rows).expand(shape).clone()
        names[i] = name
    return tensors, names


def decode(tensor):
    """(source id, row of each target row) of a converted tensor; asserts each row is one source row."""
    flat = tensor.reshape(tensor.shape[0], -1) if tensor.dim() else tensor.reshape(1, 1)
    assert bool((flat == flat[:, :1]).all()), "a row mixes source values"
    ids = torch.div(flat[:, 0], 10000, rounding_mode="floor").long().unique()
    assert len(ids) == 1, "a tensor mixes source tensors"
    return int(ids[0]), (flat[:, 0] % 10000).long().tolist()


def expected_official_source(target):
    """Our key -> the official key it must come from (the mapping the converter documents)."""
    import re

    t = target
    for pat, rep in [
        (r"backbone\.bottom_up\.stem\.conv1\.weight", "backbone.conv1.weight"),
        (r"backbone\.bottom_up\.stem\.conv1\.norm\.(\w+)", r"backbone.bn1.\1"),
        (r"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.weight", lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.conv{m[3]}.weight"),
        (r"backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.(\w+)", lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.bn{m[3]}.{m[4]}"),
        (r"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.weight", lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.0.weight"),
        (r"backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.(\w+)", lambda m: f"backbone.layer{int(m[1]) - 1}.{m[2]}.downsample.1.{m[3]}"),
        (r"backbone\.fpn_lateral(\d)\.(\w+)", lambda m: f"neck.lateral_convs.{int(m[1]) - 2}.conv.{m[2]}"),
        (r"backbone\.fpn_output(\d)\.(\w+)", lambda m: f"neck.fpn_convs.{int(m[1]) - 2}.conv.{m[2]}"),
        (r"proposal_generator\.rpn_head\.conv\.(\w+)", r"rpn_head.rpn_conv.\1"),
        (r"proposal_generator\.rpn_head\.objectness_logits\.(\w+)", r"rpn_head.rpn_cls.\1"),
        (r"proposal_generator\.rpn_head\.anchor_deltas\.(\w+)", r"rpn_head.rpn_reg.\1"),
        (r"roi_heads\.box_head\.fc(\d)\.(\w+)", lambda m: f"bbox_head.shared_fcs.{int(m[1]) - 1}.{m[2]}"),
        (r"roi_heads\.box_predictor\.cls_score\.(\w+)", r"bbox_head.fc_cls.\1"),
        (r"roi_heads\.box_predictor\.bbox_pred\.(\w+)", r"bbox_head.fc_reg.\1"),
        (r"roi_heads\.mask_head\.mask_fcn(\d)\.(\w+)", lambda m: f"mask_head.convs.{int(m[1]) - 1}.conv.{m[2]}"),
        (r"roi_heads\.mask_head\.deconv\.(\w+)", r"mask_head.upsample.\1"),
        (r"roi_heads\.mask_head\.predictor\.(\w+)", r"mask_head.conv_logits.\1"),
        (r"roi_heads\.track_head\.fcs\.0\.(\w+)", r"track_head.fcs.0.\1"),
        (r"roi_heads\.track_head\.fcs\.2\.(\w+)", r"track_head.fcs.1.\1"),
    ]:
        if re.fullmatch(pat, t):
            return re.sub(pat, rep, t)
    raise AssertionError(f"no expectation for {target}")


@pytest.fixture(scope="module")
def r50_shapes():
    from vis_d2.engine import build_config

    return cli.target_shapes_of(build_config(R50_CONFIG, ["MODEL.WEIGHTS", ""]))


def _save(tmp_path, name, obj):
    path = str(tmp_path / name)
    torch.save(obj, path)
    return path


def test_official_masktrack_fills_every_parameter_from_the_right_tensor_and_row(r50_shapes, tmp_path):
    source, names = encoded(official_masktrack_r50())
    path = _save(tmp_path, "masktrack_official.pth", {"meta": {"epoch": 12}, "state_dict": source})
    conv, overrides, notes = convert_checkpoint(path, "masktrack-mmdet", r50_shapes)
    conv.raise_if_incomplete()
    assert set(conv.tensors) == set(r50_shapes)  # every parameter and buffer of our model
    used = set()
    for target, tensor in conv.tensors.items():
        src_id, rows = decode(tensor)
        assert names[src_id] == expected_official_source(target), target
        used.add(names[src_id])
        n = tensor.shape[0]
        if "cls_score" in target:  # background first (mmdet) -> last (detectron2)
            assert rows == list(range(1, K + 1)) + [0]
        elif "bbox_pred" in target:  # the background's 4 regression rows dropped
            assert rows == list(range(4, 4 * (K + 1)))
        elif "mask_head.predictor" in target:  # the background mask channel dropped
            assert rows == list(range(1, K + 1))
        else:
            assert rows == list(range(n)), target
    # nothing left over: every source tensor was used, except the BatchNorm counters, dropped by name
    leftover = set(source) - used
    assert leftover == set(conv.dropped) and all(k.endswith("num_batches_tracked") for k in leftover)
    assert "MODEL.RESNETS.STRIDE_IN_1X1" in overrides and "MODEL.ANCHOR_GENERATOR.OFFSET" in overrides
    assert any("meta" in n for n in notes)


def test_unknown_or_misshapen_source_keys_are_refused_not_dropped(r50_shapes, tmp_path):
    source, _ = encoded(official_masktrack_r50())
    source["neck.fpn_convs.4.conv.weight"] = torch.zeros(256, 2048, 3, 3)  # an extra-conv P6: no counterpart
    source["bbox_head.fc_extra.weight"] = torch.zeros(3, 3)
    conv, _, _ = convert_checkpoint(_save(tmp_path, "a.pth", source), "masktrack-mmdet", r50_shapes)
    with pytest.raises(ConversionError, match=r"2 source keys have no counterpart.*fpn_convs\.4.*fc_extra"):
        conv.raise_if_incomplete()

    source, _ = encoded(official_masktrack_r50(num_classes=80))  # COCO's 80 classes into our 40
    conv, _, _ = convert_checkpoint(_save(tmp_path, "b.pth", source), "masktrack-mmdet", r50_shapes)
    with pytest.raises(ConversionError, match=r"shapes differ.*fc_cls.weight \(81, 1024\)"):
        conv.raise_if_incomplete()
    conv, _, _ = convert_checkpoint(_save(tmp_path, "b.pth", source), "masktrack-mmdet", r50_shapes,
                                    drop_class_layers=True)
    conv.raise_if_incomplete()  # the class layers are left to initialisation, and the report says so
    assert {k for k, why in conv.left_to_init.items() if "classes" in why} == {
        f"roi_heads.{p}.{f}" for p in ("box_predictor.cls_score", "box_predictor.bbox_pred", "mask_head.predictor")
        for f in ("weight", "bias")}

    source, _ = encoded(official_masktrack_r50())
    del source["track_head.fcs.1.weight"]
    conv, _, _ = convert_checkpoint(_save(tmp_path, "c.pth", source), "masktrack-mmdet", r50_shapes)
    with pytest.raises(ConversionError, match=r"1 model keys are not in the source: roi_heads.track_head.fcs.2.weight"):
        conv.raise_if_incomplete()


def test_softmax_rpn_becomes_foreground_minus_background_logit():
    from vis_d2.checkpoint.convert import convert_state_dict
    from vis_d2.checkpoint.mmdet_masktrack import masktrack_mmdet_rename

    target = {"proposal_generator.rpn_head.objectness_logits.weight": (3, 4, 1, 1),
              "proposal_generator.rpn_head.objectness_logits.bias": (3,)}
    w, b = torch.randn(6, 4, 1, 1), torch.randn(6)  # (A, 2) layout, class 1 = object
    conv = convert_state_dict({"rpn_head.rpn_cls.weight": w, "rpn_head.rpn_cls.bias": b},
                              masktrack_mmdet_rename(target), target)
    conv.raise_if_incomplete()
    x = torch.randn(4)
    fg_prob = torch.softmax((w[:, :, 0, 0] @ x + b).view(3, 2), dim=1)[:, 1]
    ours = torch.sigmoid(conv.tensors["proposal_generator.rpn_head.objectness_logits.weight"][:, :, 0, 0] @ x
                         + conv.tensors["proposal_generator.rpn_head.objectness_logits.bias"])
    assert torch.allclose(fg_prob, ours, atol=1e-6)


def test_torchvision_resnet50_fills_the_backbone_and_drops_only_the_classifier(r50_shapes, tmp_path):
    shapes = official_resnet50()
    shapes.update({"fc.weight": (1000, 2048), "fc.bias": (1000,)})
    source, names = encoded(shapes)
    conv, overrides, _ = convert_checkpoint(_save(tmp_path, "resnet50.pth", source), "torchvision", r50_shapes)
    conv.raise_if_incomplete()
    resnet_keys = {k for k in r50_shapes if k.startswith("backbone.bottom_up.")}
    assert set(conv.tensors) == resnet_keys
    for target, tensor in conv.tensors.items():
        src_id, rows = decode(tensor)
        assert "backbone." + names[src_id] == expected_official_source(target) and rows == list(range(len(rows)))
    assert set(conv.dropped) == {"fc.weight", "fc.bias"} | {k for k in source if k.endswith("num_batches_tracked")}
    assert set(conv.left_to_init) == set(r50_shapes) - resnet_keys  # FPN and heads: outside the scope
    assert overrides[:2] == ["MODEL.RESNETS.STRIDE_IN_1X1", "False"]


def test_resnet18_into_resnet50_is_refused(r50_shapes, tmp_path):
    source = {"conv1.weight": torch.zeros(64, 3, 7, 7), "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    conv, _, _ = convert_checkpoint(_save(tmp_path, "r18.pth", source), "torchvision", r50_shapes)
    with pytest.raises(ConversionError, match=r"shapes differ.*layer1\.0\.conv1\.weight \(64, 64, 3, 3\)"):
        conv.raise_if_incomplete()


def test_caffe2_imagenet_pkl_fills_the_backbone_with_synthesised_norm_statistics(r50_shapes, tmp_path):
    shapes = {"conv1_w": (64, 3, 7, 7), "res_conv1_bn_s": (64,), "res_conv1_bn_b": (64,), "fc1000_w": (1000, 2048),
              "fc1000_b": (1000,), "conv1_w_momentum": (64, 3, 7, 7)}
    in_ch = 64
    for stage, (planes, blocks) in enumerate(zip((64, 128, 256, 512), (3, 4, 6, 3)), start=2):
        for b in range(blocks):
            for br, shape in (("branch2a", (planes, in_ch, 1, 1)), ("branch2b", (planes, planes, 3, 3)),
                              ("branch2c", (4 * planes, planes, 1, 1))) + ((("branch1", (4 * planes, in_ch, 1, 1)),) if b == 0 else ()):
                shapes[f"res{stage}_{b}_{br}_w"] = shape
                shapes[f"res{stage}_{b}_{br}_bn_s"] = shapes[f"res{stage}_{b}_{br}_bn_b"] = (shape[0],)
            in_ch = 4 * planes
    tensors, names = encoded(shapes)
    path = tmp_path / "R-50.pkl"
    with open(path, "wb") as f:  # the Caffe2 model-zoo layout: a pickle of numpy arrays
        pickle.dump({k: v.numpy() for k, v in tensors.items()}, f)
    conv, _, _ = convert_checkpoint(str(path), "detectron2", r50_shapes)  # no pickle opt-in needed
    conv.raise_if_incomplete()
    assert set(conv.tensors) == {k for k in r50_shapes if k.startswith("backbone.bottom_up.")}
    assert names[decode(conv.tensors["backbone.bottom_up.res3.0.conv2.weight"])[0]] == "res3_0_branch2b_w"
    assert names[decode(conv.tensors["backbone.bottom_up.res4.0.shortcut.norm.weight"])[0]] == "res4_0_branch1_bn_s"
    assert torch.equal(conv.tensors["backbone.bottom_up.res2.1.conv3.norm.running_var"], torch.ones(256))
    assert torch.equal(conv.tensors["backbone.bottom_up.stem.conv1.norm.running_mean"], torch.zeros(64))
    assert set(conv.dropped) == {"fc1000_w", "fc1000_b", "conv1_w_momentum"}


def test_detectron2_mask_rcnn_with_other_classes_into_masktrack(r50_shapes, tmp_path):
    # A detectron2 COCO Mask R-CNN (80 classes, no track head) -> every key but the track head and class layers.
    shapes = {k: v for k, v in r50_shapes.items() if not k.startswith("roi_heads.track_head.")}
    shapes.update({"roi_heads.box_predictor.cls_score.weight": (81, 1024), "roi_heads.box_predictor.cls_score.bias": (81,),
                   "roi_heads.box_predictor.bbox_pred.weight": (320, 1024), "roi_heads.box_predictor.bbox_pred.bias": (320,),
                   "roi_heads.mask_head.predictor.weight": (80, 256, 1, 1), "roi_heads.mask_head.predictor.bias": (80,),
                   "pixel_mean": (3, 1, 1)})  # fmt: skip
    tensors, names = encoded(shapes)
    path = tmp_path / "model_final.pkl"
    with open(path, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in tensors.items()}, "__author__": "Detectron2 Model Zoo"}, f)
    conv, _, _ = convert_checkpoint(str(path), "detectron2", r50_shapes, scope=[""], drop_class_layers=True,
                                    allow_missing=["roi_heads.track_head."])
    conv.raise_if_incomplete()
    for target, tensor in conv.tensors.items():
        assert names[decode(tensor)[0]] == target  # detectron2 names: the same key
    assert len(conv.tensors) == len(r50_shapes) - 4 - 6
    assert conv.dropped["pixel_mean"].startswith("input normalisation")


def test_cli_writes_tensors_only_checkpoint_and_config_that_load_into_the_model(tmp_path):
    from vis_d2.engine import VideoCheckpointer, build_config

    source, _ = encoded(official_masktrack_r50())
    src = _save(tmp_path, "official.pth", {"state_dict": source})
    out, cfg_out = str(tmp_path / "ours.pth"), str(tmp_path / "ours.yaml")
    assert cli.main(["--format", "masktrack-mmdet", "--config-file", R50_CONFIG, src, out, "--config-out", cfg_out]) == 0
    torch.load(out, weights_only=True)
    cfg = build_config(cfg_out, ["MODEL.DEVICE", "cpu"])
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.RESNETS.STRIDE_IN_1X1 is False and cfg.MODEL.WEIGHTS == out
    from detectron2.modeling import build_model

    model = build_model(cfg)
    VideoCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    assert decode(model.roi_heads.track_head.state_dict()["fcs.2.weight"])[1][:3] == [0, 1, 2]
    # a source with an unknown key: exit status 1, nothing written
    source["rpn_head.extra.weight"] = torch.zeros(1)
    bad = _save(tmp_path, "bad.pth", {"state_dict": source})
    assert cli.main(["--format", "masktrack-mmdet", "--config-file", R50_CONFIG, bad, str(tmp_path / "x.pth")]) == 1
    assert not os.path.exists(tmp_path / "x.pth")
