"""DINO-4scale R50 on COCO 2017, 12 epochs at batch 16 (SPEC §2: 49.0 AP). AdamW lr 1e-4
(backbone 1e-5), weight decay 1e-4, gradient clipping at 0.1, lr x0.1 after epoch 11.
ImageNet weights: ``train.init_checkpoint=<R50 converted by tools/convert_checkpoint.py>``."""

from ..common.data.coco import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import lr_multiplier_12ep as lr_multiplier
from ..common.train import train
from .models.dino_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 90000
train.output_dir = "./output/dino_r50_4scale_12ep"
train.clip_grad.enabled = True
train.clip_grad.params.max_norm = 0.1
train.checkpointer.period = 5000
train.eval_period = 5000
optimizer.lr = 1e-4
optimizer.weight_decay = 1e-4
dataloader.train.total_batch_size = 16
