"""Deformable DETR two-stage + iterative box refinement, R50, COCO 2017, 50 epochs at batch
16 (SPEC §2: 46.8 AP). AdamW lr 2e-4 (backbone and sampling offsets 2e-5, as the official
code), weight decay 1e-4, gradient clipping at 0.1, lr x0.1 after epoch 40."""

from ..common.data.coco import dataloader
from ..common.optim import AdamW as optimizer
from ..common.schedule import lr_multiplier_50ep as lr_multiplier
from ..common.train import train
from .models.deformable_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

train.max_iter = 375000
train.output_dir = "./output/deformable_detr_r50_two_stage_50ep"
train.clip_grad.enabled = True
train.clip_grad.params.max_norm = 0.1
train.checkpointer.period = 7500
train.eval_period = 7500
optimizer.lr = 2e-4
optimizer.weight_decay = 1e-4
optimizer.params.lr_factors = {"backbone": 0.1, "*.sampling_offsets": 0.1}
dataloader.train.total_batch_size = 16
