#!/usr/bin/env python
"""Train or evaluate any detector of this library from a LazyConfig.

    python train_net.py --config-file configs/<method>/<file>.py [--num-gpus N] key=value ...
    python train_net.py --config-file ... --eval-only train.init_checkpoint=/path/model.pth
    python train_net.py --config-file ... --resume        # continue from train.output_dir

``--num-gpus`` is the number of processes per machine: one per GPU (NCCL) or, with
``train.device=cpu``, CPU processes joined over gloo.
"""

import detr_efficient  # noqa: F401  (first: its compat fixes must precede any Detectron2 import)

# isort: split

from detectron2.config import LazyConfig
from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from detr_efficient.engine import (
    ConfigError,
    backend_for_device,
    check_config,
    do_eval,
    do_train,
    launch,
)


def load_config(args):
    """The config file with the command-line overrides applied, checked."""
    cfg = LazyConfig.load(args.config_file)
    cfg = LazyConfig.apply_overrides(cfg, args.opts)
    check_config(cfg, eval_only=args.eval_only)
    return cfg


def main(args):
    cfg = load_config(args)
    default_setup(cfg, args)  # logging, environment, config.yaml, seeds (train.seed + rank)
    setup_logger(cfg.train.output_dir, distributed_rank=comm.get_rank(), name="detr_efficient")
    if args.eval_only:
        return do_eval(cfg)
    do_train(cfg, resume=args.resume)
    comm.synchronize()


def cli(argv=None):
    args = default_argument_parser().parse_args(argv)
    if not args.config_file:
        raise SystemExit("train_net.py: --config-file is required")
    try:
        cfg = load_config(args)  # fail early, and pick the backend from train.device
    except ConfigError as e:
        raise SystemExit(f"train_net.py: {args.config_file}: {e}") from None
    launch(
        main,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        backend=backend_for_device(cfg.train.device),
        args=(args,),
    )


if __name__ == "__main__":
    cli()
