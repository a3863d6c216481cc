"""LazyCall builders for the pieces every deformable DETR config shares. Method configs call
these with their sizes; everything stays overridable afterwards (``model.encoder.num_layers=3``,
``model.encoder.layer.self_attn.num_points=8``, ...)."""

from detectron2.config import LazyCall as L

from detr_efficient.layers import (
    DeformableDecoderLayer,
    DeformableEncoderLayer,
    KeyAwareDeformableAttention,
    MultiScaleDeformableAttention,
    PositionEmbeddingSine,
)
from detr_efficient.modeling import (
    ChannelMapper,
    DeformableTransformerDecoder,
    DeformableTransformerEncoder,
    build_resnet,
    build_slim_resnet,
)
from detr_efficient.modeling.criterion import SetCriterion
from detr_efficient.modeling.lite_detr import (
    InterleavedEncoder,
    SplitFFNEncoderLayer,
    parse_variant,
)
from detr_efficient.modeling.matcher import HungarianMatcher
from detr_efficient.modeling.token_selection import (
    DualAttention,
    SelectiveEncoderLayer,
    SelectiveTokenEncoder,
)


def resnet(depth=50, freeze_at=2, norm="FrozenBN"):
    """Detectron2 ResNet giving res3-res5 (ImageNet weights via ``train.init_checkpoint``).
    ``freeze_at=2`` freezes the stem and res2, as the DETR, Deformable DETR, DINO, Lite DETR
    and mmdetection codes do (detrex: 1, the stem only)."""
    return L(build_resnet)(
        depth=depth, out_features=("res3", "res4", "res5"), norm=norm, freeze_at=freeze_at
    )


def slim_resnet(widths=(32, 64, 128, 256), blocks=(1, 1, 1, 1)):
    """Narrow from-scratch ResNet for CPU-sized experiments."""
    return L(build_slim_resnet)(widths=widths, blocks=blocks, out_features=("res3", "res4", "res5"))


def channel_mapper(in_channels, embed_dim=256, num_levels=4, num_groups=32):
    return L(ChannelMapper)(
        in_channels=in_channels,
        in_features=("res3", "res4", "res5"),
        out_channels=embed_dim,
        num_outs=num_levels,
        num_groups=num_groups,
    )


def position_embedding(embed_dim=256, temperature=10000, offset=-0.5):
    return L(PositionEmbeddingSine)(
        num_feats=embed_dim // 2, temperature=temperature, normalize=True, offset=offset
    )


def attention(embed_dim=256, num_heads=8, num_levels=4, num_points=4, dropout=0.0, key_aware=False):
    """Deformable attention; ``key_aware=True``: Lite DETR's KDA (keys = the values)."""
    module = KeyAwareDeformableAttention if key_aware else MultiScaleDeformableAttention
    return L(module)(
        embed_dim=embed_dim,
        num_heads=num_heads,
        num_levels=num_levels,
        num_points=num_points,
        dropout=dropout,
    )


def encoder_layer(embed_dim, num_heads, num_levels, num_points, ffn_dim, dropout, key_aware=False):
    """Deformable self-attention and FFN (the layer of every encoder here)."""
    return L(DeformableEncoderLayer)(
        self_attn=attention(embed_dim, num_heads, num_levels, num_points, dropout, key_aware),
        embed_dim=embed_dim,
        ffn_dim=ffn_dim,
        dropout=dropout,
    )


def encoder(
    embed_dim=256, num_heads=8, num_levels=4, num_points=4, ffn_dim=1024, dropout=0.1, num_layers=6
):
    return L(DeformableTransformerEncoder)(
        layer=encoder_layer(embed_dim, num_heads, num_levels, num_points, ffn_dim, dropout),
        num_layers=num_layers,
    )


def selective_encoder(
    keep_ratios,
    embed_dim=256,
    num_heads=8,
    num_levels=4,
    num_points=4,
    ffn_dim=1024,
    dropout=0.1,
    dual_attention_top_k=None,
    score_product="probabilities",
    value_source="updated",
):
    """Encoder updating each image's top ``keep_ratios[i]`` tokens in layer ``i`` (one layer
    per ratio); ``dual_attention_top_k``: Focus-DETR's self-attention among that many."""
    dual = None
    if dual_attention_top_k:
        dual = L(DualAttention)(
            embed_dim=embed_dim, num_heads=num_heads, top_k=dual_attention_top_k, dropout=dropout
        )
    return L(SelectiveTokenEncoder)(
        layer=L(SelectiveEncoderLayer)(
            layer=encoder_layer(embed_dim, num_heads, num_levels, num_points, ffn_dim, dropout),
            dual_attention=dual,
        ),
        keep_ratios=keep_ratios,
        score_product=score_product,
        value_source=value_source,
    )


def interleaved_encoder(
    variant="H3L1-(2+1)x3",
    embed_dim=256,
    num_heads=8,
    num_points=4,
    ffn_dim=1024,
    low_ffn_dim=256,
    dropout=0.1,
    key_aware=True,
):
    """Lite DETR's encoder named as in the paper (``"H3L1-(2+1)x3"``, ``"H2L2-(2+1)x3"``,
    ``"H3L1-(6+1)x1"``, ...); ``key_aware``: KDA (True, Lite DETR) or MSDA."""
    spec = parse_variant(variant)
    levels = spec.pop("num_levels")
    return L(InterleavedEncoder)(
        high_layer=encoder_layer(
            embed_dim, num_heads, levels, num_points, ffn_dim, dropout, key_aware
        ),
        full_layer=L(SplitFFNEncoderLayer)(
            self_attn=attention(embed_dim, num_heads, levels, num_points, dropout, key_aware),
            embed_dim=embed_dim,
            ffn_dim=ffn_dim,
            low_ffn_dim=low_ffn_dim,
            dropout=dropout,
        ),
        **spec,
    )


def decoder(
    embed_dim=256,
    num_heads=8,
    num_levels=4,
    num_points=4,
    ffn_dim=1024,
    dropout=0.1,
    num_layers=6,
    dino=False,
    key_aware=False,
    refine_eps=1e-5,
):
    """``dino=True``: query positions from boxes, look-forward-twice and a final norm;
    ``key_aware=True``: KDA cross-attention (Lite DETR); ``refine_eps``: the refinement's
    ``inverse_sigmoid`` clamp (DINO's code: 1e-3)."""
    return L(DeformableTransformerDecoder)(
        layer=L(DeformableDecoderLayer)(
            cross_attn=attention(embed_dim, num_heads, num_levels, num_points, dropout, key_aware),
            embed_dim=embed_dim,
            num_heads=num_heads,
            ffn_dim=ffn_dim,
            dropout=dropout,
        ),
        num_layers=num_layers,
        embed_dim=embed_dim,
        query_pos_from_boxes=dino,
        look_forward_twice=dino,
        final_norm=dino,
        refine_eps=refine_eps,
    )


def criterion(class_weight=1.0, encoder_binary_class=False):
    """Matching costs class/bbox/giou 2/5/2; loss weights ``class_weight``/5/2."""
    return L(SetCriterion)(
        num_classes="${..num_classes}",
        matcher=L(HungarianMatcher)(cost_class=2.0, cost_bbox=5.0, cost_giou=2.0),
        weight_dict={"loss_class": class_weight, "loss_bbox": 5.0, "loss_giou": 2.0},
        encoder_binary_class=encoder_binary_class,
    )
