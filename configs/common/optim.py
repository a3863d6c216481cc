"""Optimizers. ``train_net.py`` sets ``optimizer.params.model`` to the built model."""

import torch
from detectron2.config import LazyCall as L

from detr_efficient.engine import param_groups

# AdamW, lr 1e-4 and weight decay 1e-4 on every parameter; the backbone trains at a tenth of
# the lr (the official DINO, Lite DETR, detrex and mmdetection codes). Deformable DETR's code
# also slows the sampling-offset projections (its configs add ``"*.sampling_offsets": 0.1``).
AdamW = L(torch.optim.AdamW)(
    params=L(param_groups)(
        base_lr="${..lr}",
        weight_decay="${..weight_decay}",
        lr_factors={"backbone": 0.1},
    ),
    lr=1e-4,
    betas=(0.9, 0.999),
    weight_decay=1e-4,
)
