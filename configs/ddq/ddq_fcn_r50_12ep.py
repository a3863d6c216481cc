"""DDQ-FCN R50 on COCO 2017, 12 epochs at batch 16 (SPEC §5: 41.5 AP) with DDQ's recipe
(``ddq_fcn_r50_1x.py``): AdamW lr 5e-5 for every parameter, weight decay 0.1, no gradient
clipping, the 1x schedule (linear warmup from 0.001 over 500 iterations, lr x0.1 after
epochs 8 and 11), single-scale 800×1333 training with flips."""

from ..common.data.coco import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import COCO_ITERS_PER_EPOCH, multistep_lr_multiplier
from ..common.train import train
from .models.ddq_fcn_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 12 * COCO_ITERS_PER_EPOCH
train.output_dir = "./output/ddq_fcn_r50_12ep"
train.clip_grad.enabled = False
train.checkpointer.period = COCO_ITERS_PER_EPOCH
train.eval_period = COCO_ITERS_PER_EPOCH
optimizer.lr = 5e-5
optimizer.weight_decay = 0.1
optimizer.params.lr_factors = {}
lr_multiplier = multistep_lr_multiplier(
    train.max_iter,
    [8 * COCO_ITERS_PER_EPOCH, 11 * COCO_ITERS_PER_EPOCH],
    warmup_iters=500,
    warmup_factor=0.001,
)
dataloader.train.total_batch_size = 16
dataloader.train.mapper.min_sizes = (800,)
dataloader.train.mapper.max_size = 1333
dataloader.train.mapper.crop_prob = 0.0
