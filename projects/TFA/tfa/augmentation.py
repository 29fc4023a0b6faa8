"""Temporal feature augmentation of RoI features (TFA, Dong et al., ICCVW 2019, §2.2, Eq. 1-2).

Each key-frame RoI is re-expressed as a weighted sum of the RoI features of a pool of support proposals
taken from several frames of the same video (the key frame's own proposals included):

    e = f_e(r)                                   one shared ("siamese") FC layer on the flattened RoI
    s_ij = softmax_j(tau * cos(e_i^k, e_j^s))    Eq. 1, over the t support RoIs j
    r_hat_i^k = sum_j s_ij * r_j^s               Eq. 2, on the raw (C, 7, 7) or (C, 14, 14) RoI features

``r_hat`` replaces the key RoI's features (the paper) or is added to them (``fusion="residual"``, ours).
The temperature ``tau`` is ours: the paper states a softmax over cosine similarities, and cosines in
[-1, 1] would give nearly uniform weights over 100 support RoIs.
"""
from dataclasses import dataclass
from typing import List, Optional

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from torch import nn

__all__ = ["SupportRoIs", "TemporalFeatureAugmentation", "merge_support_rois"]

FUSIONS = ("replace", "residual")


@dataclass
class SupportRoIs:
    """The support pool of one image: the top proposals of its video's other (and own) frames.

    Attributes:
        box_features: (t, C, 7, 7) RoI features at the box pooler's resolution.
        embeds: (t, D) their embeddings ``f_e(box_features)``, computed once per pool.
        objectness: (t,) the proposals' RPN objectness logits (what the pool is ranked by).
        mask_features: (t, C, 14, 14) RoI features of the same proposals at the mask pooler's
            resolution, or None without a mask branch.
    """

    box_features: torch.Tensor
    embeds: torch.Tensor
    objectness: torch.Tensor
    mask_features: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.objectness)

    def __getitem__(self, index) -> "SupportRoIs":
        mask = None if self.mask_features is None else self.mask_features[index]
        return SupportRoIs(self.box_features[index], self.embeds[index], self.objectness[index], mask)


def merge_support_rois(pools: List[SupportRoIs], top_k: int) -> SupportRoIs:
    """The ``top_k`` RoIs by objectness among several frames' pools (TFA's top-t of the pooled proposals)."""
    if not pools:
        raise ValueError("merge_support_rois needs at least one pool")
    with_masks = {p.mask_features is not None for p in pools}
    if len(with_masks) != 1:
        raise ValueError("Support pools disagree on whether they carry mask features")
    merged = SupportRoIs(
        torch.cat([p.box_features for p in pools]),
        torch.cat([p.embeds for p in pools]),
        torch.cat([p.objectness for p in pools]),
        torch.cat([p.mask_features for p in pools]) if with_masks.pop() else None,
    )
    if len(merged) <= top_k:
        return merged
    return merged[merged.objectness.topk(top_k).indices]


class TemporalFeatureAugmentation(nn.Module):
    """Eq. 1-2: similarity weights between key and support RoIs, and the weighted sum of support features."""

    @configurable
    def __init__(
        self,
        *,
        in_features: int,
        embed_dim: int = 1024,
        temperature: float = 10.0,
        learn_temperature: bool = True,
        fusion: str = "replace",
    ):
        """
        Args:
            in_features: size of a flattened box RoI feature, C * 7 * 7.
            embed_dim: output size of the shared FC layer ``f_e`` (no activation).
            temperature: initial scale of the cosine similarities before the softmax (ours).
            learn_temperature: whether the scale is a learned parameter.
            fusion: "replace" (the paper: r <- r_hat) or "residual" (r <- r + r_hat).
        """
        super().__init__()
        if fusion not in FUSIONS:
            raise ValueError(f"TFA fusion must be one of {FUSIONS}, got {fusion!r}")
        if temperature <= 0:
            raise ValueError(f"TFA temperature must be > 0, got {temperature}")
        self.fusion = fusion
        self.embed_fc = nn.Linear(in_features, embed_dim)
        nn.init.normal_(self.embed_fc.weight, std=0.01)
        nn.init.zeros_(self.embed_fc.bias)
        log_t = torch.tensor(float(temperature)).log()
        if learn_temperature:
            self.log_temperature = nn.Parameter(log_t)
        else:
            self.register_buffer("log_temperature", log_t, persistent=False)

    @classmethod
    def from_config(cls, cfg, box_feature_shape):
        t = cfg.MODEL.TFA
        return {
            "in_features": box_feature_shape.channels * box_feature_shape.height * box_feature_shape.width,
            "embed_dim": t.EMBED_DIM,
            "temperature": t.TEMPERATURE,
            "learn_temperature": t.LEARN_TEMPERATURE,
            "fusion": t.FUSION,
        }

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_temperature.exp()

    def embed(self, box_features: torch.Tensor) -> torch.Tensor:
        """(R, C, 7, 7) box RoI features -> (R, D) embeddings ``e = f_e(r)``."""
        return self.embed_fc(box_features.flatten(1))

    def weights(self, key_embeds: torch.Tensor, support_embeds: torch.Tensor) -> torch.Tensor:
        """Eq. 1: (R, D) key and (t, D) support embeddings -> (R, t) weights, each row summing to 1."""
        cosine = F.normalize(key_embeds, dim=1) @ F.normalize(support_embeds, dim=1).t()
        return (self.temperature * cosine).softmax(dim=1)

    def fuse(self, key_features: torch.Tensor, weights: torch.Tensor, support_features: torch.Tensor) -> torch.Tensor:
        """Eq. 2: (R, C, h, w) key features, (R, t) weights, (t, C, h, w) support features -> (R, C, h, w)."""
        augmented = (weights @ support_features.flatten(1)).view_as(key_features)
        return augmented if self.fusion == "replace" else key_features + augmented

    def forward(self, key_box_features: torch.Tensor, support: SupportRoIs) -> torch.Tensor:
        """The augmented (R, C, 7, 7) box RoI features of one image's key RoIs.

        An empty support pool (no proposal in any frame) leaves the features unchanged.
        """
        if len(support) == 0 or len(key_box_features) == 0:
            return key_box_features
        weights = self.weights(self.embed(key_box_features), support.embeds)
        return self.fuse(key_box_features, weights, support.box_features)
