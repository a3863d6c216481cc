"""Narrowing a shapes detector config into a distillation student."""

from ...common.models.deformable import channel_mapper, decoder, encoder, position_embedding


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
