"""STMask's shared prediction head (FCA output kernels, FCB branches) and its ProtoNet.

The head runs on every FPN level with shared weights: an ``upfeature`` conv (+ ReLU), then one tower per
branch (class, box, mask coefficients, track embedding) of ``num_convs`` convs (+ ReLU), then, per anchor
shape, the branch's output conv with that shape's kernel (FCA, §3.1.1). With FCB (§3.1.2) a branch's output
conv is a :class:`FeatureCalibration` fed with the same anchor's box deltas.

Outputs per level are flattened to (B, H_l * W_l * A, K) in the anchor order of :class:`FCAAnchorGenerator`
(row-major over locations, then by anchor shape).
"""
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

from vis_d2.modeling.track_heads import scale_gradient

from .calibration import FCB_MODES, FeatureCalibration

__all__ = ["ProtoNet", "STMaskHead"]

BRANCHES = ("class", "box", "coef", "track")


def _tower(in_channels: int, channels: int, num_convs: int) -> nn.Sequential:
    layers = []
    for i in range(num_convs):
        layers += [nn.Conv2d(in_channels if i == 0 else channels, channels, 3, padding=1), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers)


def _flatten_anchors(per_shape: List[torch.Tensor]) -> torch.Tensor:
    """A list over anchor shapes of (B, K, H, W) -> (B, H * W * A, K), locations row-major, then shapes."""
    stacked = torch.stack(per_shape, dim=1)  # (B, A, K, H, W)
    return stacked.permute(0, 3, 4, 1, 2).flatten(1, 3)


class STMaskHead(nn.Module):
    """Class, box (+ centerness), mask-coefficient and track-embedding predictions at every anchor."""

    @configurable
    def __init__(
        self,
        *,
        in_channels: int,
        num_classes: int,
        kernel_shapes: Sequence[Tuple[int, int]],
        num_convs: int = 2,
        conv_dim: int = 256,
        num_prototypes: int = 32,
        embed_dim: int = 128,
        fcb_modes: Dict[str, str] = None,
        box_variances: Sequence[float] = (0.1, 0.2),
        track_feature_grad_scale: float = 1.0,
    ):
        """
        Args:
            in_channels: FPN channels.
            num_classes: foreground classes (the class branch predicts num_classes + 1, background last).
            kernel_shapes: (kh, kw) of each anchor shape's output kernels (FCA); all (3, 3) turns FCA off.
            num_convs, conv_dim: each branch's tower.
            num_prototypes: mask coefficients per anchor.
            embed_dim: track embedding size (L2-normalised).
            fcb_modes: per branch among "class", "coef", "track": "none", "ada" or "ali" (FCB).
            box_variances: the box coding's (for the aligned FCB).
            track_feature_grad_scale: the share of the track branch's gradient that reaches the shared
                upfeature conv and the features below it (1: all of it, the code; 0: none).
        """
        super().__init__()
        fcb_modes = dict(fcb_modes or {})
        for branch, mode in fcb_modes.items():
            if branch not in ("class", "coef", "track") or mode not in FCB_MODES:
                raise ValueError(f"FCB: branch {branch!r} / mode {mode!r}; branches class/coef/track, modes {FCB_MODES}")
        self.num_classes = num_classes
        self.kernel_shapes = [tuple(k) for k in kernel_shapes]
        self.num_prototypes = num_prototypes
        self.embed_dim = embed_dim
        self.track_feature_grad_scale = float(track_feature_grad_scale)
        self.fcb_modes = {b: fcb_modes.get(b, "none") for b in ("class", "coef", "track")}
        self.upfeature = nn.Sequential(nn.Conv2d(in_channels, conv_dim, 3, padding=1), nn.ReLU(inplace=True))
        self.towers = nn.ModuleDict({b: _tower(conv_dim, conv_dim, num_convs) for b in BRANCHES})
        out_channels = {"class": num_classes + 1, "box": 4 + 1, "coef": num_prototypes, "track": embed_dim}
        self.outputs = nn.ModuleDict()
        for branch in BRANCHES:
            mode = self.fcb_modes.get(branch, "none")
            per_shape = []
            for kh, kw in self.kernel_shapes:
                if mode == "none":
                    per_shape.append(nn.Conv2d(conv_dim, out_channels[branch], (kh, kw), padding=((kh - 1) // 2, (kw - 1) // 2)))
                else:
                    per_shape.append(FeatureCalibration(conv_dim, out_channels[branch], (kh, kw), mode, box_variances))
            self.outputs[branch] = nn.ModuleList(per_shape)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for branch in BRANCHES:  # FCB's adaptive offsets start at zero (the plain kernel)
            for out in self.outputs[branch]:
                if isinstance(out, FeatureCalibration) and out.mode == "ada":
                    nn.init.zeros_(out.offset.weight)

    @classmethod
    def from_config(cls, cfg, input_shape):
        s = cfg.MODEL.STMASK
        kernels = s.FCA.KERNEL_SHAPES if s.FCA.ENABLED else [[3, 3]] * len(s.FCA.KERNEL_SHAPES)
        return {
            "in_channels": input_shape[0].channels,
            "num_classes": cfg.MODEL.STMASK.NUM_CLASSES,
            "kernel_shapes": kernels,
            "num_convs": s.HEAD.NUM_CONVS,
            "conv_dim": s.HEAD.CONV_DIM,
            "num_prototypes": s.NUM_PROTOTYPES,
            "embed_dim": s.HEAD.EMBED_DIM,
            "fcb_modes": {"class": s.FCB.CLASS, "coef": s.FCB.MASK, "track": s.FCB.TRACK},
            "box_variances": s.BOX_VARIANCES,
            "track_feature_grad_scale": s.HEAD.TRACK_FEATURE_GRAD_SCALE,
        }

    def _branch(self, branch: str, tower: torch.Tensor, deltas: List[torch.Tensor]) -> List[torch.Tensor]:
        outs = self.outputs[branch]
        if self.fcb_modes.get(branch, "none") == "none":
            return [conv(tower) for conv in outs]
        return [fcb(tower, d) for fcb, d in zip(outs, deltas)]

    def forward(self, features: List[torch.Tensor]) -> Dict[str, List[torch.Tensor]]:
        """
        Args:
            features: FPN levels [(B, C, H_l, W_l)], finest first.

        Returns:
            per level: ``deltas`` (B, HWA, 4), ``centerness`` (B, HWA) (tanh), ``logits`` (B, HWA, K + 1),
            ``coefs`` (B, HWA, P) (raw; tanh is applied when masks are assembled), ``embeds`` (B, HWA, E)
            (L2-normalised); and ``upfeatures``, the (B, conv_dim, H_l, W_l) ``upfeature`` outputs (what the
            temporal fusion concatenates).
        """
        out = {k: [] for k in ("deltas", "centerness", "logits", "coefs", "embeds", "upfeatures")}
        for x in features:
            up = self.upfeature(x)
            box = [conv(self.towers["box"](up)) for conv in self.outputs["box"]]  # per shape (B, 5, H, W)
            deltas = [b[:, :4] for b in box]
            logits = self._branch("class", self.towers["class"](up), deltas)
            coefs = self._branch("coef", self.towers["coef"](up), deltas)
            track_in = scale_gradient(up, self.track_feature_grad_scale) if self.training else up
            embeds = self._branch("track", self.towers["track"](track_in), deltas)
            out["deltas"].append(_flatten_anchors(deltas))
            out["centerness"].append(torch.tanh(_flatten_anchors([b[:, 4:] for b in box]).squeeze(-1)))
            out["logits"].append(_flatten_anchors(logits))
            out["coefs"].append(_flatten_anchors(coefs))
            out["embeds"].append(F.normalize(_flatten_anchors(embeds), dim=-1))
            out["upfeatures"].append(up)
        return out


class ProtoNet(nn.Module):
    """YOLACT's prototype branch on P3: 3 convs, 2x bilinear upsampling, a conv, 1x1 to P prototypes, ReLU."""

    def __init__(self, in_channels: int, conv_dim: int = 256, num_prototypes: int = 32, num_convs: int = 3):
        super().__init__()
        self.convs = _tower(in_channels, conv_dim, num_convs)
        self.refine = nn.Sequential(nn.Conv2d(conv_dim, conv_dim, 3, padding=1), nn.ReLU(inplace=True))
        self.predict = nn.Conv2d(conv_dim, num_prototypes, 1)

    def forward(self, p3: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) P3 -> (B, P, 2H, 2W) non-negative prototypes (stride 4 of the input)."""
        x = self.convs(p3)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return torch.relu(self.predict(self.refine(x)))
