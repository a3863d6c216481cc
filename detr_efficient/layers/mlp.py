"""Small feed-forward blocks: the box-regression ``MLP`` and the transformer ``FFN``."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FFN", "MLP"]


class MLP(nn.Module):
    """``num_layers`` linear layers with ReLU between them: ``[..., in] → [..., out]``."""

    def __init__(self, input_dim: int, hidden_dim: int, output_dim: int, num_layers: int) -> None:
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"MLP: 'num_layers' must be >= 1, got {num_layers}")
        dims = [input_dim] + [hidden_dim] * (num_layers - 1) + [output_dim]
        pairs = zip(dims[:-1], dims[1:], strict=True)
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in pairs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x


class FFN(nn.Module):
    """Post-norm transformer feed-forward block:
    ``norm(x + dropout(linear2(dropout(relu(linear1(x))))))``, ``[..., C] → [..., C]``."""

    def __init__(self, embed_dim: int = 256, ffn_dim: int = 1024, dropout: float = 0.0) -> None:
        super().__init__()
        self.linear1 = nn.Linear(embed_dim, ffn_dim)
        self.linear2 = nn.Linear(ffn_dim, embed_dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(embed_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.linear2(self.dropout1(torch.relu(self.linear1(x))))
        return self.norm(x + self.dropout2(out))
