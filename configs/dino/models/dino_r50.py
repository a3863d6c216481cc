"""DINO 4-scale, ResNet-50 (SPEC §2): 900 queries, 100 denoising pairs as DINO's
``dn_number`` (about 200 queries; label noise 0.5, box noise 1.0), 6 + 6 layers, FFN 2048,
no dropout, 300 detections per image. As in DINO's code, ``inverse_sigmoid`` clamps at 1e-3
(refinement, predicted boxes, denoising boxes)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DINO, ContrastiveDenoising

from ...common.models.deformable import (
    channel_mapper,
    criterion,
    decoder,
    encoder,
    position_embedding,
    resnet,
)

model = L(DINO)(
    backbone=resnet(depth=50),
    neck=channel_mapper(in_channels=(512, 1024, 2048)),
    position_embedding=position_embedding(),
    encoder=encoder(ffn_dim=2048, dropout=0.0),
    decoder=decoder(ffn_dim=2048, dropout=0.0, dino=True, refine_eps=1e-3),
    criterion=criterion(class_weight=1.0),
    denoising=L(ContrastiveDenoising)(
        num_classes="${..num_classes}",
        embed_dim="${..embed_dim}",
        num_dn_queries=100,
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
        eps=1e-3,
    ),
    num_classes=80,
    num_queries=900,
    embed_dim=256,
    num_feature_levels=4,
    num_detections=300,
    box_eps=1e-3,
)
