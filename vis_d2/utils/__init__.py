"""Small helpers shared across vis_d2 (standard library only, so importing them stays cheap)."""
from .gc import gc_paused

__all__ = ["gc_paused"]
