"""Learning-rate multipliers (``lr_multiplier`` in a method config).

A multiplier is a function of the training progress (iteration / ``train.max_iter``), so
overriding ``train.max_iter`` stretches or shrinks a schedule, decay points included.
The COCO schedules assume a total batch of 16: 7500 iterations per epoch.
"""

from detectron2.config import LazyCall as L
from detectron2.solver import WarmupParamScheduler
from fvcore.common.param_scheduler import MultiStepParamScheduler

COCO_ITERS_PER_EPOCH = 7500


def multistep_lr_multiplier(max_iter, decay_iters, warmup_iters=0, gamma=0.1, warmup_factor=0.001):
    """Constant lr multiplied by ``gamma`` at each of ``decay_iters``, after a linear warmup
    from ``warmup_factor`` over ``warmup_iters`` (all counted in a ``max_iter`` schedule)."""
    decay_iters = sorted(int(i) for i in decay_iters)
    if not all(0 < i < max_iter for i in decay_iters):
        raise ValueError(f"decay_iters {decay_iters} must lie in (0, max_iter={max_iter})")
    if not 0 <= warmup_iters < max_iter:
        raise ValueError(f"warmup_iters {warmup_iters} must lie in [0, max_iter={max_iter})")
    return L(WarmupParamScheduler)(
        scheduler=L(MultiStepParamScheduler)(
            values=[gamma**k for k in range(len(decay_iters) + 1)],
            milestones=decay_iters,
            num_updates=max_iter,
        ),
        warmup_length=warmup_iters / max_iter,
        warmup_factor=warmup_factor,
    )


def coco_lr_multiplier(epochs, decay_epochs, warmup_iters=0, warmup_factor=0.001):
    """``multistep_lr_multiplier`` for ``epochs`` COCO epochs with one decay (x0.1) after
    ``decay_epochs``."""
    return multistep_lr_multiplier(
        epochs * COCO_ITERS_PER_EPOCH,
        [decay_epochs * COCO_ITERS_PER_EPOCH],
        warmup_iters,
        warmup_factor=warmup_factor,
    )


lr_multiplier_12ep = coco_lr_multiplier(12, 11)  # 90000 iterations, decay at 82500
lr_multiplier_24ep = coco_lr_multiplier(24, 20)  # 180000 iterations, decay at 150000
lr_multiplier_36ep = coco_lr_multiplier(36, 30)  # 270000 iterations, decay at 225000
lr_multiplier_50ep = coco_lr_multiplier(50, 40)  # 375000 iterations, decay at 300000
