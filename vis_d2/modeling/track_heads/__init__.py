"""Track heads (``TRACK_HEAD_REGISTRY``): per-RoI track embeddings and their losses."""
from .build import TRACK_HEAD_REGISTRY, build_track_head
from .embedding_head import (
    EmbeddingTrackHead,
    masktrack_match_scores,
    masktrack_track_loss,
    scale_gradient,
    track_head_inference,
    track_match_logits,
    track_pid_targets,
)

__all__ = [
    "TRACK_HEAD_REGISTRY",
    "EmbeddingTrackHead",
    "build_track_head",
    "masktrack_match_scores",
    "masktrack_track_loss",
    "scale_gradient",
    "track_head_inference",
    "track_match_logits",
    "track_pid_targets",
]
