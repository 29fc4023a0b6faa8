"""TFA on vis_d2 (importable as ``vis_d2.projects.tfa``).

Importing it registers the "TFA" meta-architecture and the "TFAROIHeads" ROI heads with detectron2's
registries.
"""
from .augmentation import SupportRoIs, TemporalFeatureAugmentation, merge_support_rois
from .config import add_tfa_config
from .meta_arch import TFA
from .roi_heads import TFAROIHeads

__all__ = ["SupportRoIs", "TFA", "TFAROIHeads", "TemporalFeatureAugmentation", "add_tfa_config", "merge_support_rois"]
