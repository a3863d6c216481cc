"""DINO whose encoder updates only the tokens a foreground selector ranks highest."""

from __future__ import annotations

import torch
from detectron2.structures import ImageList
from torch import nn

from ..dino import DINO
from ..heads import reset_transformer_parameters
from ..multiscale import TokenMap
from .encoder import SelectiveTokenEncoder, SparseEncoding

__all__ = ["TokenSelectingDINO"]


class TokenSelectingDINO(DINO):
    """DINO with a ``selector`` (``ForegroundTokenSelector``) scoring the projected backbone
    tokens (``proposals``' projection of tokens + positions, as the official code) and a
    ``SelectiveTokenEncoder``. Subclasses add the selector's loss in ``selector_loss``.
    Everything after the encoder is DINO's."""

    def __init__(self, *, selector: nn.Module, encoder: SelectiveTokenEncoder, **kwargs) -> None:
        super().__init__(encoder=encoder, **kwargs)
        self.selector = selector
        reset_transformer_parameters(self.selector.scorer)

    def encode_sparse(
        self, batched_inputs: list[dict]
    ) -> tuple[ImageList, TokenMap, torch.Tensor, SparseEncoding]:
        """Images, token map, foreground logits ``[B, S]`` and the sparse encoding."""
        images, mask = self.preprocess_images(batched_inputs)
        token_map = self.token_map(images.tensor, mask)
        projected = self.propose(token_map, token_map.tokens + token_map.pos)[0]
        scores = self.selector(projected, token_map)
        encoding = self.encoder(token_map, scores, class_head=self.enc_class_head)
        return images, token_map, scores, encoding

    def forward(self, batched_inputs: list[dict]):
        images, token_map, scores, encoding = self.encode_sparse(batched_inputs)
        targets = self.prepare_targets(batched_inputs) if self.training else None
        result = self.decode(images, token_map, encoding.memory, batched_inputs, targets)
        if self.training:
            result.update(self.selector_loss(scores, token_map, batched_inputs))
        return result

    def selector_loss(
        self, scores: torch.Tensor, token_map: TokenMap, batched_inputs: list[dict]
    ) -> dict[str, torch.Tensor]:
        raise NotImplementedError
