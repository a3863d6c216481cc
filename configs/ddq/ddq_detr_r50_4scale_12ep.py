"""DDQ-DETR 4-scale R50 on COCO 2017, 12 epochs at batch 16 (SPEC §5: 51.3 AP), as
mmdetection's config: AdamW lr 2e-4 (backbone 2e-5), weight decay 0.05, gradient clipping at
0.1, linear warmup from 1e-4 over 2000 iterations, lr x0.1 after epoch 11, and training images
without annotations kept."""

from ..common.schedule import coco_lr_multiplier
from ..dino.dino_r50_4scale_12ep import dataloader, optimizer, train
from .models.ddq_detr_r50 import model

__all__ = ["dataloader", "lr_multiplier", "model", "optimizer", "train"]

lr_multiplier = coco_lr_multiplier(12, 11, warmup_iters=2000, warmup_factor=1e-4)
train.output_dir = "./output/ddq_detr_r50_4scale_12ep"
optimizer.lr = 2e-4
optimizer.weight_decay = 0.05
optimizer.params.lr_factors = {"backbone": 0.1}
dataloader.train.dataset.filter_empty = False
