#!/usr/bin/env python
"""Train or evaluate a vis_d2 model (any of the five methods) with detectron2's default engine.

    python train_net.py --config-file configs/ytvis_2019/masktrack_rcnn_R50_FPN.yaml --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth
    python train_net.py --config-file CFG --resume            # continue from OUTPUT_DIR/last_checkpoint
Multi-machine: --num-machines N --machine-rank R --dist-url tcp://HOST:PORT. Without CUDA, --num-gpus is the
number of CPU processes (gloo backend).

A config mistake (unknown key, wrong value type), a NaN/inf loss and an unreadable or unsafe checkpoint end
the run with one "error: ..." line and exit status 1.
"""
import logging
import sys

from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import vis_d2.data  # noqa: F401  registers the builtin datasets
import vis_d2.modeling  # noqa: F401  registers the shared heads
from vis_d2.checkpoint import CheckpointReadError, UnsafeCheckpointError
from vis_d2.engine import ConfigError, NonFiniteLossError, VideoCheckpointer, VideoTrainer, build_config, launch


def setup(args):
    cfg = build_config(args.config_file, args.opts)
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vis_d2")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = VideoTrainer.build_model(cfg)
        if not cfg.MODEL.WEIGHTS:
            logging.getLogger("vis_d2").warning("MODEL.WEIGHTS is empty: evaluating a randomly initialised model")
        VideoCheckpointer(
            model, save_dir=cfg.OUTPUT_DIR, allow_pickle=cfg.MODEL.WEIGHTS_ALLOW_PICKLE
        ).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return VideoTrainer.test(cfg, model)
    trainer = VideoTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    try:
        build_config(args.config_file, args.opts)  # config mistakes fail here, before any process starts
        launch(
            main,
            args.num_gpus,
            num_machines=args.num_machines,
            machine_rank=args.machine_rank,
            dist_url=args.dist_url,
            args=(args,),
        )
    except (ConfigError, NonFiniteLossError, UnsafeCheckpointError, CheckpointReadError) as e:
        sys.exit(f"error: {e}")
