"""Build everything a LazyConfig describes and train or evaluate it (what ``train_net.py``
runs in every process)."""

from __future__ import annotations

import logging

import torch
from detectron2.config import instantiate
from detectron2.engine import hooks
from detectron2.engine.defaults import default_writers
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

from .amp import Precision
from .checkpoint import PeriodicCheckpointHook, TrainCheckpointer
from .config import check_train_config
from .ema import ModelEMA
from .rng import preserved_rng, restore_rng_state
from .train_loader import build_train_loader
from .trainer import Trainer

__all__ = ["build_model", "build_trainer", "do_eval", "do_train", "evaluate", "resume_or_load"]

logger = logging.getLogger(__name__)


def build_model(cfg) -> torch.nn.Module:
    """``instantiate(cfg.model)`` moved to ``cfg.train.device``."""
    model = instantiate(cfg.model)
    return model.to(torch.device(cfg.train.device))


def evaluate(cfg, model: torch.nn.Module) -> dict:
    """Inference of ``model`` on ``cfg.dataloader.test`` scored by ``cfg.dataloader.evaluator``;
    the main process logs the results (AP table and copy-paste lines)."""
    loader = instantiate(cfg.dataloader.test)
    evaluator = instantiate(cfg.dataloader.evaluator)
    results = inference_on_dataset(model, loader, evaluator)
    if comm.is_main_process():
        print_csv_format(results)
    return results


def _wrap_ddp(model: torch.nn.Module, train_cfg) -> torch.nn.Module:
    if comm.get_world_size() == 1:
        return model
    on_cuda = torch.device(train_cfg.device).type == "cuda"
    ddp = DistributedDataParallel(
        model,
        device_ids=[comm.get_local_rank()] if on_cuda else None,
        broadcast_buffers=train_cfg.ddp.broadcast_buffers,
        find_unused_parameters=train_cfg.ddp.find_unused_parameters,
    )
    if train_cfg.ddp.fp16_compression:
        from torch.distributed.algorithms.ddp_comm_hooks import default as comm_hooks

        ddp.register_comm_hook(state=None, hook=comm_hooks.fp16_compress_hook)
    return ddp


def build_trainer(cfg) -> Trainer:
    """Model, optimizer, resumable loader, trainer and its hooks (timer, lr schedule,
    checkpoints, evaluation, writers). The checkpointer is ``trainer.checkpointer``."""
    train = cfg.train
    check_train_config(train)
    model = build_model(cfg)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    seed = train.seed if train.seed >= 0 else comm.shared_random_seed()
    loader = build_train_loader(cfg.dataloader.train, seed)
    ema = ModelEMA(model, train.model_ema.decay) if train.model_ema.enabled else None
    clip = train.clip_grad
    trainer = Trainer(
        _wrap_ddp(model, train),
        loader,
        optimizer,
        Precision(train.amp.enabled, train.amp.dtype, train.device),
        max_grad_norm=clip.params.max_norm if clip.enabled else None,
        grad_norm_type=clip.params.norm_type,
        ema=ema,
    )
    checkpointables = {"trainer": trainer} if ema is None else {"trainer": trainer, "ema": ema}
    trainer.checkpointer = TrainCheckpointer(
        model, train.output_dir, save_to_disk=comm.is_main_process(), **checkpointables
    )

    def eval_function():
        with preserved_rng():  # evaluation must not shift the training random streams
            use_ema = ema is not None and train.model_ema.eval_with_ema
            return evaluate(cfg, ema.module if use_ema else model)

    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            PeriodicCheckpointHook(
                trainer.checkpointer, train.checkpointer.period, train.checkpointer.max_to_keep
            ),
            hooks.EvalHook(train.eval_period, eval_function),
            hooks.PeriodicWriter(
                default_writers(train.output_dir, train.max_iter), train.log_period
            )
            if comm.is_main_process()
            else None,
        ]
    )
    return trainer


def resume_or_load(trainer: Trainer, init_checkpoint: str, resume: bool) -> None:
    """With ``resume`` and a checkpoint in the output directory: restore everything (weights,
    optimizer, scheduler, scaler, EMA, data stream, this process's RNG) and continue after its
    iteration. Otherwise load only the weights of ``init_checkpoint`` (if any) and start at 0.
    """
    checkpointer, ema = trainer.checkpointer, trainer.ema
    if not (resume and checkpointer.has_checkpoint()):
        checkpointer.load(init_checkpoint, checkpointables=[])
        trainer.start_iter = 0
        if ema is not None:
            ema.reset(trainer.model)
        return
    extra = checkpointer.load(checkpointer.get_checkpoint_file(), checkpointables=["trainer"])
    if ema is not None:
        if "ema" in extra:
            ema.load_state_dict(extra["ema"])
        else:
            logger.warning("The checkpoint has no EMA weights: the EMA restarts from its model")
            ema.reset(trainer.model)
    trainer.start_iter = trainer.iter + 1
    rng_states = extra.get("rng_states") or []
    if len(rng_states) == comm.get_world_size():
        restore_rng_state(rng_states[comm.get_rank()])
    else:
        logger.warning(
            "The checkpoint holds RNG states of %d process(es), this run has %d: the random "
            "streams of the model restart from the seed (the data stream is still exact).",
            len(rng_states),
            comm.get_world_size(),
        )


def do_train(cfg, resume: bool = False, extra_hooks=()) -> Trainer:
    """Train ``cfg`` (optionally resuming from ``cfg.train.output_dir``) up to
    ``cfg.train.max_iter``; ``extra_hooks`` run after the standard ones."""
    trainer = build_trainer(cfg)
    trainer.register_hooks(list(extra_hooks))
    resume_or_load(trainer, cfg.train.init_checkpoint, resume)
    trainer.train(trainer.start_iter, cfg.train.max_iter)
    return trainer


def do_eval(cfg) -> dict:
    """Evaluate the weights of ``cfg.train.init_checkpoint``; with ``train.model_ema`` enabled
    and ``eval_with_ema``, its EMA weights when the checkpoint has them."""
    check_train_config(cfg.train)
    model = build_model(cfg)
    if not cfg.train.init_checkpoint:
        logger.warning("train.init_checkpoint is empty: evaluating a randomly initialized model")
    extra = TrainCheckpointer(model, require_every_weight=bool(cfg.train.init_checkpoint)).load(
        cfg.train.init_checkpoint
    )
    ema_cfg = cfg.train.model_ema
    if ema_cfg.enabled and ema_cfg.eval_with_ema:
        if "ema" in extra:
            logger.info("Evaluating the EMA weights of %s", cfg.train.init_checkpoint)
            model.load_state_dict(extra["ema"])
        else:
            logger.warning("The checkpoint has no EMA weights: evaluating its model weights")
    return evaluate(cfg, model)
