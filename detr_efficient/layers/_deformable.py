"""Shared parts of the deformable attention modules: the sampling-offset, value and output
projections, the forward-argument checks and the sampling locations.

Subclasses add their own way of weighting the sampled points (:meth:`_attend`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from detr_efficient import ops
from detr_efficient.ops import reference
from detr_efficient.ops.deform_attn import check_level_values


def resolve_op(name: str, use_reference: bool) -> Callable[..., torch.Tensor]:
    """``detr_efficient.ops.<name>`` (the kernel), or ``ops.reference.<name>_reference``."""
    return getattr(reference, f"{name}_reference") if use_reference else getattr(ops, name)


def init_sampling_offsets(
    linear: nn.Linear, num_heads: int, num_levels: int, num_points: int
) -> None:
    """Deformable-DETR's start: weight 0; bias puts head ``h``'s point ``p`` (0-based) at
    ``(p + 1) * (cos, sin)(2 pi h / H)``, the direction scaled so that its larger coordinate
    is 1, identically on every level. Bias layout ``[H, L, P, 2]`` flattened."""
    nn.init.zeros_(linear.weight)
    angles = torch.arange(num_heads, dtype=torch.float64) * (2.0 * math.pi / num_heads)
    directions = torch.stack([angles.cos(), angles.sin()], dim=-1)  # [H, 2]
    directions = directions / directions.abs().amax(dim=-1, keepdim=True)
    steps = torch.arange(1, num_points + 1, dtype=torch.float64).view(1, 1, num_points, 1)
    bias = directions.view(num_heads, 1, 1, 2) * steps  # [H, 1, P, 2]
    bias = bias.expand(num_heads, num_levels, num_points, 2).reshape(-1)
    with torch.no_grad():
        linear.bias.copy_(bias)


def init_xavier(linear: nn.Linear) -> None:
    nn.init.xavier_uniform_(linear.weight)
    nn.init.zeros_(linear.bias)


def _positive_int(owner: str, name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{owner}: '{name}' must be a positive int, got {value!r}")
    return value


class DeformableAttentionBase(nn.Module):
    """Projections and forward plumbing common to the deformable attention modules.

    Shapes (``batch_first=True``; with ``False`` the first two dims of query, value,
    query_pos, identity and the output are swapped): query ``[B, Q, C]``, value
    ``[B, S, C]``, reference_points ``[B, Q, L, 2 | 4]``, spatial_shapes ``[L, 2]``,
    level_start_index ``[L]``, key_padding_mask ``[B, S]`` → ``[B, Q, C]``.

    Shapes and dtypes are checked here; the level values (S == sum H_l * W_l, the start
    indices) need a host read, which the kernel ops already do, so the module checks them
    only on the reference path.
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        num_levels: int,
        num_points: int,
        dropout: float,
        batch_first: bool,
        value_dim: int,
        use_reference: bool,
    ) -> None:
        super().__init__()
        owner = type(self).__name__
        for name, value in (
            ("embed_dim", embed_dim),
            ("num_heads", num_heads),
            ("num_levels", num_levels),
            ("num_points", num_points),
        ):
            _positive_int(owner, name, value)
        if embed_dim % num_heads:
            raise ValueError(
                f"{owner}: 'embed_dim' ({embed_dim}) must be divisible by 'num_heads' ({num_heads})"
            )
        if value_dim <= 0 or value_dim % num_heads:
            raise ValueError(
                f"{owner}: the value dim ({value_dim}, from 'value_proj_ratio') must be a positive "
                f"multiple of 'num_heads' ({num_heads})"
            )
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"{owner}: 'dropout' must be in [0, 1), got {dropout!r}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.num_levels = num_levels
        self.num_points = num_points
        self.value_dim = value_dim
        self.batch_first = batch_first
        self.use_reference = use_reference
        points = num_heads * num_levels * num_points
        self.sampling_offsets = nn.Linear(embed_dim, points * 2)
        self.value_proj = nn.Linear(embed_dim, value_dim)
        self.output_proj = nn.Linear(value_dim, embed_dim)
        self.dropout = nn.Dropout(dropout)

    def _reset_common(self) -> None:
        init_sampling_offsets(
            self.sampling_offsets, self.num_heads, self.num_levels, self.num_points
        )
        init_xavier(self.value_proj)
        init_xavier(self.output_proj)

    def extra_repr(self) -> str:
        return (
            f"embed_dim={self.embed_dim}, num_heads={self.num_heads}, "
            f"num_levels={self.num_levels}, num_points={self.num_points}, "
            f"batch_first={self.batch_first}, use_reference={self.use_reference}"
        )

    def forward(
        self,
        query: torch.Tensor,
        value: torch.Tensor | None = None,
        query_pos: torch.Tensor | None = None,
        reference_points: torch.Tensor | None = None,
        spatial_shapes: torch.Tensor | None = None,
        level_start_index: torch.Tensor | None = None,
        key_padding_mask: torch.Tensor | None = None,
        identity: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``identity + dropout(output_proj(attention))``; ``value=None`` attends to the
        query itself, ``identity=None`` is the query before ``query_pos`` is added."""
        self._check_inputs(
            query,
            value,
            query_pos,
            reference_points,
            spatial_shapes,
            level_start_index,
            key_padding_mask,
            identity,
        )
        if identity is None:
            identity = query
        if value is None:
            value = query
        if query_pos is not None:
            query = query + query_pos
        if not self.batch_first:
            query, value = query.transpose(0, 1), value.transpose(0, 1)

        projected = self.value_proj(value)
        if key_padding_mask is not None:
            projected = projected.masked_fill(key_padding_mask[..., None], 0.0)
        batch, queries, _ = query.shape
        offsets = self.sampling_offsets(query).reshape(
            batch, queries, self.num_heads, self.num_levels, self.num_points, 2
        )
        locations = self._sampling_locations(reference_points, offsets, spatial_shapes, query.dtype)
        out = self._attend(
            query, value, projected, key_padding_mask, locations, spatial_shapes, level_start_index
        )  # [B, Q, value_dim]
        out = self.output_proj(out)
        if not self.batch_first:
            out = out.transpose(0, 1)
        return identity + self.dropout(out)

    def _attend(
        self,
        query: torch.Tensor,
        value: torch.Tensor,
        projected: torch.Tensor,
        key_padding_mask: torch.Tensor | None,
        locations: torch.Tensor,
        spatial_shapes: torch.Tensor,
        level_start_index: torch.Tensor,
    ) -> torch.Tensor:
        """query ``[B, Q, C]`` (position added), value ``[B, S, C]`` (unprojected),
        projected ``[B, S, value_dim]`` (padding zeroed), locations ``[B, Q, H, L, P, 2]``
        → ``[B, Q, value_dim]``."""
        raise NotImplementedError

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """``[B, N, H * D]`` → ``[B, N, H, D]``."""
        return x.reshape(x.shape[0], x.shape[1], self.num_heads, -1)

    def _sampling_locations(
        self,
        reference_points: torch.Tensor,
        offsets: torch.Tensor,
        spatial_shapes: torch.Tensor,
        dtype: torch.dtype,
    ) -> torch.Tensor:
        """Normalised (x, y) ``[B, Q, H, L, P, 2]``, computed in ``dtype`` (the query's) and
        handed to the op as they are: under autocast they stay float32 while the values are
        low precision (the kernels read locations in float32).

        Points: ``ref + offset / (W_l, H_l)``; boxes (cx, cy, w, h):
        ``ref_xy + offset / P * ref_wh / 2``.
        """
        offsets = offsets.to(dtype)
        reference = reference_points.to(dtype)[:, :, None, :, None, :]  # [B, Q, 1, L, 1, 2|4]
        if reference_points.shape[-1] == 2:
            normalizer = spatial_shapes.flip(-1).to(device=offsets.device, dtype=dtype)
            return reference + offsets / normalizer[:, None, :]
        return reference[..., :2] + offsets / self.num_points * reference[..., 2:] * 0.5

    def _check_inputs(
        self,
        query,
        value,
        query_pos,
        reference_points,
        spatial_shapes,
        level_start_index,
        key_padding_mask,
        identity,
    ) -> None:
        owner = type(self).__name__
        rows = "[B, {}, C]" if self.batch_first else "[{}, B, C]"

        def tensor(name: str, x, dims: int, layout: str) -> None:
            if not isinstance(x, torch.Tensor):
                raise TypeError(f"{owner}: '{name}' must be a torch.Tensor, got {type(x).__name__}")
            if x.dim() != dims:
                raise ValueError(f"{owner}: '{name}' must be {layout}, got {list(x.shape)}")

        def floating(name: str, x: torch.Tensor) -> None:
            if not x.is_floating_point():
                raise TypeError(f"{owner}: '{name}' must be a floating tensor, got {x.dtype}")

        for name, x in (
            ("reference_points", reference_points),
            ("spatial_shapes", spatial_shapes),
            ("level_start_index", level_start_index),
        ):
            if x is None:
                raise TypeError(f"{owner}: '{name}' is required")

        tensor("query", query, 3, rows.format("Q"))
        floating("query", query)
        if query.shape[-1] != self.embed_dim:
            raise ValueError(
                f"{owner}: 'query' must have last dim embed_dim={self.embed_dim}, "
                f"got {list(query.shape)}"
            )
        for name, x in (("query_pos", query_pos), ("identity", identity)):
            if x is not None:
                tensor(name, x, 3, rows.format("Q"))
                if x.shape != query.shape:
                    raise ValueError(
                        f"{owner}: '{name}' must have the shape of 'query' {list(query.shape)}, "
                        f"got {list(x.shape)}"
                    )
        batch_dim = 0 if self.batch_first else 1
        batch, queries = query.shape[batch_dim], query.shape[1 - batch_dim]
        if value is not None:
            tensor("value", value, 3, rows.format("S"))
            floating("value", value)
            if value.shape[-1] != self.embed_dim or value.shape[batch_dim] != batch:
                raise ValueError(
                    f"{owner}: 'value' must be {rows.format('S')} with B={batch}, "
                    f"C={self.embed_dim}, got {list(value.shape)}"
                )
        tokens = (query if value is None else value).shape[1 - batch_dim]

        levels = self.num_levels
        tensor("reference_points", reference_points, 4, f"[B, Q, L={levels}, 2 or 4]")
        floating("reference_points", reference_points)
        if tuple(reference_points.shape[:3]) != (batch, queries, levels) or (
            reference_points.shape[3] not in (2, 4)
        ):
            raise ValueError(
                f"{owner}: 'reference_points' must be [B={batch}, Q={queries}, L={levels}, 2] "
                f"(points) or [B, Q, L, 4] (boxes cx, cy, w, h), got "
                f"{list(reference_points.shape)}"
            )
        tensor("spatial_shapes", spatial_shapes, 2, f"[L={levels}, 2]")
        if tuple(spatial_shapes.shape) != (levels, 2) or spatial_shapes.dtype != torch.int64:
            raise ValueError(
                f"{owner}: 'spatial_shapes' must be int64 [L={levels}, 2] (H_l, W_l), got "
                f"{spatial_shapes.dtype} {list(spatial_shapes.shape)}"
            )
        tensor("level_start_index", level_start_index, 1, f"[L={levels}]")
        if tuple(level_start_index.shape) != (levels,) or level_start_index.dtype != torch.int64:
            raise ValueError(
                f"{owner}: 'level_start_index' must be int64 [L={levels}], got "
                f"{level_start_index.dtype} {list(level_start_index.shape)}"
            )
        # The kernel ops check the level values themselves (one host read per unchanged
        # pair); the reference does not, so check them here for it, the same way. Values are
        # unknown while torch.compile traces.
        if self.use_reference and not torch.compiler.is_compiling():
            check_level_values(owner, spatial_shapes, level_start_index, tokens)
        if key_padding_mask is not None:
            tensor("key_padding_mask", key_padding_mask, 2, "[B, S]")
            if key_padding_mask.dtype != torch.bool or tuple(key_padding_mask.shape) != (
                batch,
                tokens,
            ):
                raise ValueError(
                    f"{owner}: 'key_padding_mask' must be bool [B={batch}, S={tokens}] "
                    f"(True = padding), got {key_padding_mask.dtype} "
                    f"{list(key_padding_mask.shape)}"
                )
