"""vis_d2: video instance segmentation on Detectron2.

Kept light on purpose: ``import vis_d2`` imports neither torch nor detectron2, so the evaluation CLI
starts fast. Models register with detectron2's registries when ``vis_d2.modeling`` (or a method package
under ``vis_d2.projects``) is imported; datasets register when ``vis_d2.data`` is imported.
"""
__version__ = "0.1.0"
