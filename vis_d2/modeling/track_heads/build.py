"""Registry of track heads: per-RoI modules that turn pooled RoI features into track embeddings."""
from detectron2.layers import ShapeSpec
from detectron2.utils.registry import Registry

__all__ = ["TRACK_HEAD_REGISTRY", "build_track_head"]

TRACK_HEAD_REGISTRY = Registry("TRACK_HEAD")
TRACK_HEAD_REGISTRY.__doc__ = """
Registry for track heads, which map per-region features (R, C, h, w) to track embeddings (R, D)
and compute the tracking loss against reference objects.

The registered object is called with `obj(cfg, input_shape)`, `input_shape` being the
:class:`ShapeSpec` of one pooled RoI feature. It must provide `forward(roi_features) -> (R, D)`,
`losses(key_embeds, ref_embeds, labels) -> dict[str, Tensor]` and `match_scores(det_embeds, mem_embeds)
-> (N, 1 + M)` log-probabilities for the tracker (see :class:`EmbeddingTrackHead`).
"""


def build_track_head(cfg, input_shape: ShapeSpec):
    """Build the track head named by ``cfg.MODEL.TRACK_HEAD.NAME``."""
    return TRACK_HEAD_REGISTRY.get(cfg.MODEL.TRACK_HEAD.NAME)(cfg, input_shape)
