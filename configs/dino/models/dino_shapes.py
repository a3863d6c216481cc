"""A small DINO for the synthetic shapes dataset on a CPU: slim from-scratch ResNet,
d=128, 4 levels, 2 encoder + 3 decoder layers, 100 queries, 5 classes.

Its losses are Deformable DETR's, not DINO's code's: the encoder loss on every proposal and
class-agnostic, the class loss at weight 2. From scratch on shapes, DINO's own losses ranked
its boxes worse (20.1 and 26.2 AP at seeds 42 and 1, against 37.6 and 37.7 with these;
BENCHMARKS.md, eighth session)."""

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DINO, ContrastiveDenoising

from ...common.models.deformable import (
    channel_mapper,
    criterion,
    decoder,
    encoder,
    position_embedding,
    slim_resnet,
)

model = L(DINO)(
    backbone=slim_resnet(widths=(32, 64, 128, 256)),
    neck=channel_mapper(in_channels=(64, 128, 256), embed_dim=128, num_groups=16),
    position_embedding=position_embedding(embed_dim=128),
    encoder=encoder(embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=2),
    decoder=decoder(embed_dim=128, num_heads=4, ffn_dim=512, dropout=0.0, num_layers=3, dino=True),
    criterion=criterion(class_weight=2.0, encoder_binary_class=True),
    encoder_loss_on="all",
    denoising=L(ContrastiveDenoising)(
        num_classes="${..num_classes}",
        embed_dim="${..embed_dim}",
        num_dn_queries=25,  # pairs: about 50 queries
        label_noise_ratio=0.5,
        box_noise_scale=1.0,
    ),
    num_classes=5,
    num_queries=100,
    embed_dim=128,
    num_feature_levels=4,
    num_detections=100,
)
