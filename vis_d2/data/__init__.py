"""Video data: dataset registration (on import), clip sampling, mappers and loaders."""
from . import datasets  # noqa: F401  registers ytvis_2019_*, ytvis_2021_*, ovis_*, synth_vis_*
from .build import build_video_test_loader, build_video_train_loader, get_video_dataset_dicts
from .clip_sampler import ClipSampler
from .dataset_mapper import LazyVideoFrames, YTVISClipMapper, YTVISVideoMapper

__all__ = [
    "ClipSampler",
    "LazyVideoFrames",
    "YTVISClipMapper",
    "YTVISVideoMapper",
    "build_video_test_loader",
    "build_video_train_loader",
    "get_video_dataset_dicts",
]
