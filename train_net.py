#!/usr/bin/env python
"""Train or evaluate a vis_d2 model (any of the five methods) with detectron2's default engine.

    python train_net.py --config-file configs/ytvis_2019/masktrack_rcnn_R50_FPN.yaml --num-gpus 8
    python train_net.py --config-file CFG --eval-only MODEL.WEIGHTS model_final.pth
    python train_net.py --config-file CFG --resume            # continue from OUTPUT_DIR/last_checkpoint
Multi-machine: --num-machines N --machine-rank R --dist-url tcp://HOST:PORT. Without CUDA, --num-gpus is the
number of CPU processes (gloo backend).
"""
import logging

from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import get_cfg
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

import vis_d2.data  # noqa: F401  registers the builtin datasets
import vis_d2.modeling  # noqa: F401  registers the shared heads
from vis_d2.config import add_vis_config
from vis_d2.engine import VideoTrainer, launch
from vis_d2.projects import add_project_configs


def setup(args):
    cfg = get_cfg()
    add_vis_config(cfg)
    add_project_configs(cfg)
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(output=cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="vis_d2")
    return cfg


def main(args):
    cfg = setup(args)
    if args.eval_only:
        model = VideoTrainer.build_model(cfg)
        if not cfg.MODEL.WEIGHTS:
            logging.getLogger("vis_d2").warning("MODEL.WEIGHTS is empty: evaluating a randomly initialised model")
        DetectionCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(cfg.MODEL.WEIGHTS, resume=args.resume)
        return VideoTrainer.test(cfg, model)
    trainer = VideoTrainer(cfg)
    trainer.resume_or_load(resume=args.resume)
    return trainer.train()


if __name__ == "__main__":
    args = default_argument_parser().parse_args()
    print("Command Line Args:", args)
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )
