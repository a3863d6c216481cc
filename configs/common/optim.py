"""Optimizers. ``train_net.py`` sets ``optimizer.params.model`` to the built model."""

import torch
from detectron2.config import LazyCall as L

from detr_efficient.engine import param_groups

# AdamW, lr 1e-4 and weight decay 1e-4 on every parameter. The backbone and the sampling-offset
# projections of every deformable attention train at a tenth of the lr (Deformable DETR paper
# §5 and the official DINO code; detrex scales the backbone only: set
# ``optimizer.params.lr_factors={"backbone": 0.1}`` to match it).
AdamW = L(torch.optim.AdamW)(
    params=L(param_groups)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        lr_factors={"backbone": 0.1, "*.sampling_offsets": 0.1},
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=1e-4,
)
