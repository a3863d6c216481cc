"""A small DINO trained from scratch on the synthetic shapes dataset, sized for a 2-core CPU
(the ``make demo`` job): about 9 minutes of training, evaluated on ``shapes_val``.

The images are used at their own 256x256 size with flips only: in a schedule this short the
multi-scale resize and random crop of DETR's augmentation cost far more than they give
(Focus-DETR, 1000 iterations: 9.5 AP with them, 22.5 without)."""

from ..common.data.shapes import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import multistep_lr_multiplier
from ..common.train import train
from .models.dino_shapes import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.device = "cpu"
train.max_iter = 1200
train.output_dir = "./output/dino_shapes_cpu"
train.clip_grad.enabled = True
train.clip_grad.params.max_norm = 0.1
train.checkpointer.period = 250
train.eval_period = 0
train.log_period = 20
optimizer.lr = 8e-4
# The slim backbone trains from scratch at the full lr; the box heads at a tenth of it. Their
# last layer starts at zero, so their hidden ReLU units get no gradient at first, and then
# Adam's full-size steps at 8e-4 switched most of them off: by iteration 250, 2% of the shared
# box head's second hidden layer was active, every decoder layer predicted its input box and
# runs stayed near 0 AP (BENCHMARKS.md). Slowed, the same seeds learn.
optimizer.params.lr_factors = {"*.box_head": 0.1, "*.enc_box_head": 0.1}
lr_multiplier = multistep_lr_multiplier(1200, [1000], warmup_iters=50)
dataloader.train.total_batch_size = 4
dataloader.train.mapper.min_sizes = (256,)
dataloader.train.mapper.max_size = 256
dataloader.train.mapper.crop_prob = 0.0
dataloader.train.num_workers = 1
dataloader.test.num_workers = 1
