"""The pieces of the distillation model configs: DETRDistill with the paper's settings, and
a shapes detector narrowed into a student."""

import copy

from detectron2.config import LazyCall as L

from detr_efficient.modeling import DETRDistill
from detr_efficient.modeling.detr_distill import FeatureDistillation, LogitsDistillation

from ...common.models.deformable import channel_mapper, decoder, encoder, position_embedding


def detr_distill(student, teacher, student_dim: int, teacher_dim: int):
    """DETRDistill (SPEC §6) of ``student`` by ``teacher`` (model configs of ``student_dim`` /
    ``teacher_dim`` channels): logits distillation class 1 / L1 5 / GIoU 2, target-aware
    feature distillation over the top 100 queries, query-prior distillation at weight 1.
    Set ``teacher_weights`` to the teacher's checkpoint."""
    return L(DETRDistill)(
        student=student,
        teacher=teacher,
        teacher_weights="",
        logits_distill=L(LogitsDistillation)(class_weight=1.0, bbox_weight=5.0, giou_weight=2.0),
        feature_distill=L(FeatureDistillation)(
            student_dim=student_dim, teacher_dim=teacher_dim, top_k=100
        ),
        query_weight=1.0,
    )


def resnet101_teacher(student):
    """A copy of the R50 ``student`` model config with a ResNet-101 backbone."""
    teacher = copy.deepcopy(student)
    teacher.backbone.depth = 101
    return teacher


def narrow(model, embed_dim: int = 64) -> None:
    """Rebuild ``model``'s (a shapes DINO-family config) neck, position encoding, encoder and
    decoder at ``embed_dim`` channels, same depth, 4 heads and a 4× wider FFN."""
    model.embed_dim = embed_dim
    model.neck = channel_mapper(in_channels=(64, 128, 256), embed_dim=embed_dim, num_groups=16)
    model.position_embedding = position_embedding(embed_dim=embed_dim)
    model.encoder = encoder(
        embed_dim=embed_dim, num_heads=4, ffn_dim=4 * embed_dim, dropout=0.0, num_layers=2
    )
    model.decoder = decoder(
        embed_dim=embed_dim,
        num_heads=4,
        ffn_dim=4 * embed_dim,
        dropout=0.0,
        num_layers=3,
        dino=True,
    )
