"""Two-stage proposals from the encoder memory (Deformable DETR, DINO): one box per token,
centred on it with a size that doubles per level, plus the projected memory the encoder
heads read."""

from __future__ import annotations

import torch
from torch import nn

from detr_efficient.layers.box_ops import inverse_sigmoid

__all__ = ["EncoderProposals"]


class EncoderProposals(nn.Module):
    """``forward(memory [B, S, C], padding_mask [B, S], shapes [(H_l, W_l)], valid_ratios
    [B, L, 2])`` → ``(output_memory [B, S, C], proposals [B, S, 4], valid [B, S])``.

    Proposals are unnormalised (inverse-sigmoid) cxcywh: the token's cell centre within the
    valid image, width and height ``base_size * 2**level``. A proposal is valid when its
    token is not padding and all four coordinates lie in (0.01, 0.99); invalid proposals are
    ``+inf`` and their memory is zeroed (the official behaviour), so selections must honour
    ``valid``. ``output_memory = norm(linear(memory))``.
    """

    def __init__(self, embed_dim: int = 256, base_size: float = 0.05) -> None:
        super().__init__()
        self.base_size = base_size
        self.output = nn.Linear(embed_dim, embed_dim)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(
        self,
        memory: torch.Tensor,
        padding_mask: torch.Tensor,
        shapes: list[tuple[int, int]],
        valid_ratios: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        device = memory.device
        boxes = []
        for level, (height, width) in enumerate(shapes):
            ys, xs = torch.meshgrid(
                torch.arange(height, dtype=torch.float32, device=device) + 0.5,
                torch.arange(width, dtype=torch.float32, device=device) + 0.5,
                indexing="ij",
            )
            valid_w = valid_ratios[:, level, 0, None] * width  # [B, 1]
            valid_h = valid_ratios[:, level, 1, None] * height
            cx = xs.reshape(1, -1) / valid_w
            cy = ys.reshape(1, -1) / valid_h
            size = torch.full_like(cx, self.base_size * 2.0**level)
            boxes.append(torch.stack([cx, cy, size, size], dim=-1))
        proposals = torch.cat(boxes, dim=1)  # [B, S, 4]
        valid = ((proposals > 0.01) & (proposals < 0.99)).all(-1) & ~padding_mask
        proposals = inverse_sigmoid(proposals).masked_fill(~valid[..., None], float("inf"))
        output_memory = memory.masked_fill(~valid[..., None], 0.0)
        output_memory = self.norm(self.output(output_memory))
        return output_memory, proposals, valid
