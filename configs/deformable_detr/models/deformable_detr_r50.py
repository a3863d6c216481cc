"""Deformable DETR two-stage with iterative box refinement, ResNet-50 (SPEC §2): 300
queries, 6 + 6 layers, FFN 1024, dropout 0.1, class loss weight 2, 100 detections."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DeformableDETR

from ...common.models.deformable import (
    channel_mapper,
    criterion,
    decoder,
    encoder,
    position_embedding,
    resnet,
)

model = L(DeformableDETR)(
    backbone=resnet(depth=50),
    neck=channel_mapper(in_channels=(512, 1024, 2048)),
    position_embedding=position_embedding(),
    encoder=encoder(ffn_dim=1024, dropout=0.1),
    decoder=decoder(ffn_dim=1024, dropout=0.1),
    criterion=criterion(class_weight=2.0, encoder_binary_class=True),
    num_classes=80,
    num_queries=300,
    embed_dim=256,
    num_feature_levels=4,
    num_detections=100,
)
