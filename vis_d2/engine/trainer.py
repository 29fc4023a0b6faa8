"""``VideoTrainer``: detectron2's ``DefaultTrainer`` with video loaders, the YouTube-VIS evaluator, CPU DDP,
atomic and safe checkpoints, and a clean stop on a non-finite loss."""
import logging
import os
import weakref

from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase, create_ddp_model
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from vis_d2.data.build import build_video_test_loader, build_video_train_loader
from vis_d2.evaluation.ytvis_evaluator import YTVISEvaluator
from vis_d2.solver import build_video_optimizer

from .checkpoint import VideoCheckpointer
from .loss_guard import NonFiniteLossError, attach_loss_guard

__all__ = ["VideoTrainer", "inference_output_dir"]


def inference_output_dir(cfg, dataset_name):
    """``OUTPUT_DIR/inference`` for a single test set (the documented place of ``metrics.json``),
    ``OUTPUT_DIR/inference/<dataset_name>`` when several are evaluated."""
    root = os.path.join(cfg.OUTPUT_DIR, "inference")
    return root if len(cfg.DATASETS.TEST) <= 1 else os.path.join(root, dataset_name)


class VideoTrainer(DefaultTrainer):
    """Trains and evaluates vis_d2 models with detectron2's default training loop and hooks.

    Differences from ``DefaultTrainer``: the optimizer of :mod:`vis_d2.solver` (SGD or AdamW), video dataset loaders (clips for training, whole videos for testing),
    the YouTube-VIS evaluator, and a DDP wrapper that also works for CPU processes (gloo), where
    ``DefaultTrainer`` would pass GPU ``device_ids``. Checkpoints go through :class:`VideoCheckpointer`
    (written atomically, loaded without unpickling code unless ``MODEL.WEIGHTS_ALLOW_PICKLE``). A NaN/inf
    loss raises :class:`NonFiniteLossError` naming the loss and the iteration, before the backward pass, and
    no checkpoint is written after it.
    """

    def __init__(self, cfg):
        # Same construction order as DefaultTrainer.__init__; only the DDP wrapping differs.
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        attach_loss_guard(model)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        on_gpu = next(model.parameters()).device.type == "cuda"
        ddp_kwargs = {} if on_gpu else {"device_ids": None}
        model = create_ddp_model(model, broadcast_buffers=False, **ddp_kwargs)
        use_amp = cfg.SOLVER.AMP.ENABLED and on_gpu
        self._trainer = (AMPTrainer if use_amp else SimpleTrainer)(model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = VideoCheckpointer(
            model, cfg.OUTPUT_DIR, allow_pickle=cfg.MODEL.WEIGHTS_ALLOW_PICKLE, trainer=weakref.proxy(self)
        )
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    def run_step(self):
        try:
            super().run_step()
        except FloatingPointError as e:
            # Ours (a loss of this process) or detectron2's (the sum over processes): in both cases the
            # weights may be broken from here on; keep the last checkpoint as the last one.
            iteration = getattr(e, "iteration", self.iter)
            self.checkpointer.refuse_saves(f"training stopped on a non-finite loss at iteration {iteration}")
            if isinstance(e, NonFiniteLossError):
                last = self.checkpointer.get_checkpoint_file() if self.checkpointer.has_checkpoint() else None
                raise NonFiniteLossError(e.losses, e.iteration, last_checkpoint=last or None) from None
            raise

    @classmethod
    def build_optimizer(cls, cfg, model):
        return build_video_optimizer(cfg, model)

    @classmethod
    def build_train_loader(cls, cfg):
        return build_video_train_loader(cfg)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        return build_video_test_loader(cfg, dataset_name)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_dir=None):
        return YTVISEvaluator(
            dataset_name,
            output_dir=output_dir or inference_output_dir(cfg, dataset_name),
            zip_results=cfg.TEST.VIS_ZIP_RESULTS,
            max_tracks_per_video=cfg.TEST.VIS_MAX_TRACKS_PER_VIDEO,
        )
