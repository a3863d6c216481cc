"""DDQ-FCN R50 on COCO 2017, 12 epochs at batch 16 (SPEC §5: 41.5 AP): AdamW lr 2e-4
(backbone 2e-5), weight decay 0.05, gradient clipping at 0.1, the 1x schedule (lr x0.1 after
epochs 8 and 11, 500 warmup iterations), single-scale 800×1333 training with flips."""

from ..common.data.coco import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import COCO_ITERS_PER_EPOCH, multistep_lr_multiplier
from ..common.train import train
from .models.ddq_fcn_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 12 * COCO_ITERS_PER_EPOCH
train.output_dir = "./output/ddq_fcn_r50_12ep"
train.clip_grad.enabled = True
train.clip_grad.params.max_norm = 0.1
train.checkpointer.period = COCO_ITERS_PER_EPOCH
train.eval_period = COCO_ITERS_PER_EPOCH
optimizer.lr = 2e-4
optimizer.weight_decay = 0.05
optimizer.params.lr_factors = {"backbone.bottom_up": 0.1}
lr_multiplier = multistep_lr_multiplier(
    train.max_iter, [8 * COCO_ITERS_PER_EPOCH, 11 * COCO_ITERS_PER_EPOCH], warmup_iters=500
)
dataloader.train.total_batch_size = 16
dataloader.train.mapper.min_sizes = (800,)
dataloader.train.mapper.max_size = 1333
dataloader.train.mapper.crop_prob = 0.0
