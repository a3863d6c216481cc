"""A small two-stage Deformable DETR for the synthetic shapes dataset on a CPU (the same
sizes as the small DINO)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DeformableDETR

from ...common.models.deformable import (
    channel_mapper,
    criterion,
    decoder,
    encoder,
    position_embedding,
    slim_resnet,
)

model = L(DeformableDETR)(
    backbone=slim_resnet(widths=(32, 64, 128, 256)),
    neck=channel_mapper(in_channels=(64, 128, 256), embed_dim=128, num_groups=16),
    position_embedding=position_embedding(embed_dim=128),
    encoder=encoder(embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=2),
    decoder=decoder(embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=3),
    criterion=criterion(class_weight=2.0, encoder_binary_class=True),
    num_classes=5,
    num_queries=100,
    embed_dim=128,
    num_feature_levels=4,
    num_detections=100,
)
