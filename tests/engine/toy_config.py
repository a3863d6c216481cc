"""LazyConfig of the toy detector on the toy shapes sets, built from the common configs the
way a method config is (``toy_detector`` must be importable)."""

from detectron2.config import LazyCall as L
from toy_detector import TRAIN_SET, VAL_SET, ToyDetector

from detr_efficient.data import DetrDatasetMapper

from ...configs.common.data.shapes import dataloader
from ...configs.common.optim import AdamW as optimizer
from ...configs.common.schedule import multistep_lr_multiplier
from ...configs.common.train import train

model = L(ToyDetector)()

optimizer.lr = 1e-2
lr_multiplier = multistep_lr_multiplier(max_iter=8, decay_iters=[6], warmup_iters=2)

dataloader.train.dataset.names = TRAIN_SET
dataloader.train.mapper = L(DetrDatasetMapper)(
    is_train=True,
    min_sizes=(64, 80, 96),
    max_size=128,
    crop_resize_sizes=(80, 96),
    crop_size=(48, 80),
)
dataloader.train.total_batch_size = 4
dataloader.train.num_workers = 0
dataloader.test.dataset.names = VAL_SET
dataloader.test.mapper = L(DetrDatasetMapper)(is_train=False, eval_min_size=96, eval_max_size=128)
dataloader.test.num_workers = 0

train.device = "cpu"
train.max_iter = 8
train.checkpointer.period = 4
train.eval_period = 4
train.log_period = 2
