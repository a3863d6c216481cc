"""What every deformable DETR here shares around its transformer: image normalisation and
padding masks, backbone + channel mapper + position encodings → ``TokenMap``, targets in
the normalised cxcywh form the losses use, and detections in Detectron2 form."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from detectron2.structures import ImageList
from torch import nn

from detr_efficient import ops
from detr_efficient.layers.box_ops import box_xyxy_to_cxcywh_normalized

from .multiscale import TokenMap, flatten_levels, level_masks
from .postprocess import select_detections
from .proposals import EncoderProposals
from .tap import DecoderTap, QueryGroup

__all__ = [
    "DeformableDetectorBase",
    "PixelNormalizedDetector",
    "detections_in_original_size",
    "normalized_images",
    "normalized_targets",
]


class PixelNormalizedDetector(nn.Module):
    """A detector whose images are normalised by ``pixel_mean`` / ``pixel_std`` (buffers
    ``[3, 1, 1]``, not saved in checkpoints); its ``device`` is theirs."""

    def __init__(
        self,
        pixel_mean: Sequence[float] = (123.675, 116.280, 103.530),
        pixel_std: Sequence[float] = (58.395, 57.120, 57.375),
    ) -> None:
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor(pixel_mean).view(-1, 1, 1), False)
        self.register_buffer("pixel_std", torch.tensor(pixel_std).view(-1, 1, 1), False)

    @property
    def device(self) -> torch.device:
        return self.pixel_mean.device


class DeformableDetectorBase(PixelNormalizedDetector):
    """Shared front and back end of a two-stage deformable DETR. Subclasses implement
    ``forward`` (query selection, decoding, heads).

    backbone: a Detectron2 ``Backbone`` (``backbone.*`` parameters get the backbone lr);
    neck: its features → ``num_feature_levels`` maps of ``embed_dim`` channels (e.g.
    ``ChannelMapper``); position_embedding: padding mask ``[B, H, W]`` → ``[B, C, H, W]``;
    encoder: ``TokenMap`` → memory ``[B, S, C]``; decoder: ``DeformableTransformerDecoder``;
    criterion: outputs and targets → weighted losses; ``proposals``: the two-stage
    ``EncoderProposals`` over the memory.
    Inputs are Detectron2 dicts with ``image`` (uint8 ``[3, H, W]`` in the mapper's format),
    ``height``/``width`` (the original size) and, in training, ``instances``.

    Detectors whose ``supports_tap`` is True fill ``tap`` (a ``DecoderTap``) during the
    forward passes run inside ``tapped()`` (knowledge distillation).
    """

    supports_tap = False

    def __init__(
        self,
        *,
        backbone: nn.Module,
        neck: nn.Module,
        position_embedding: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        criterion: nn.Module,
        num_classes: int,
        num_queries: int,
        embed_dim: int = 256,
        num_feature_levels: int = 4,
        pixel_mean: Sequence[float] = (123.675, 116.280, 103.530),
        pixel_std: Sequence[float] = (58.395, 57.120, 57.375),
        size_divisibility: int = 0,
        num_detections: int = 100,
    ) -> None:
        super().__init__(pixel_mean, pixel_std)
        if num_classes < 1:
            raise ValueError(
                f"{type(self).__name__}: 'num_classes' must be >= 1, got {num_classes}"
            )
        self.backbone = backbone
        self.neck = neck
        self.position_embedding = position_embedding
        self.num_classes = num_classes
        self.embed_dim = embed_dim
        self.num_detections = num_detections
        self.size_divisibility = size_divisibility
        self.level_embed = nn.Parameter(torch.empty(num_feature_levels, embed_dim))
        nn.init.normal_(self.level_embed)
        self.encoder = encoder
        self.decoder = decoder
        self.criterion = criterion
        self.num_queries = num_queries
        self.proposals = EncoderProposals(embed_dim)
        self.tap: DecoderTap | None = None

    @contextmanager
    def tapped(self, group: QueryGroup | None = None) -> Iterator[DecoderTap]:
        """Within the block, forward passes fill the yielded ``DecoderTap`` and decode
        ``group`` (extra queries) in isolation beside the detector's own queries. An eval-mode
        forward (a distillation teacher's) returns ``[]``: its detections would be unused."""
        if not self.supports_tap:
            raise ValueError(
                f"{type(self).__name__} does not expose its decoder to distillation "
                "(supports_tap is False)"
            )
        self.tap = DecoderTap(group=group)
        try:
            yield self.tap
        finally:
            self.tap = None

    def preprocess_images(self, batched_inputs: list[dict]) -> tuple[ImageList, torch.Tensor]:
        """Normalised, zero-padded images and their padding mask bool ``[B, H, W]``."""
        return normalized_images(
            batched_inputs, self.pixel_mean, self.pixel_std, self.size_divisibility
        )

    def token_map(self, images: torch.Tensor, mask: torch.Tensor) -> TokenMap:
        """Backbone, neck and position encodings of ``[B, 3, H, W]`` images."""
        features = self.neck(self.backbone(images))
        if len(features) != self.level_embed.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: the neck gives {len(features)} levels but "
                f"num_feature_levels is {self.level_embed.shape[0]}"
            )
        masks = level_masks(mask, [tuple(f.shape[-2:]) for f in features])
        positions = [self.position_embedding(m) for m in masks]
        return flatten_levels(features, masks, positions, self.level_embed)

    def encode(self, batched_inputs: list[dict]) -> tuple[ImageList, TokenMap, torch.Tensor]:
        """Images, their token map and the encoder memory ``[B, S, C]``."""
        images, mask = self.preprocess_images(batched_inputs)
        token_map = self.token_map(images.tensor, mask)
        return images, token_map, self.encoder(token_map)

    def propose(
        self, token_map: TokenMap, memory: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Two-stage proposals: (output_memory ``[B, S, C]``, proposals ``[B, S, 4]``
        unnormalised cxcywh, valid bool ``[B, S]``); see ``EncoderProposals``."""
        return self.proposals(
            memory, token_map.padding_mask, token_map.shapes, token_map.valid_ratios
        )

    def select_proposals(self, scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Indices ``[B, K]`` of the ``K = min(num_queries, S)`` best valid proposals by
        ``scores`` ``[B, S]`` (no gradient), -1 past an image's valid count."""
        width = min(self.num_queries, int(scores.shape[1]))
        return ops.select_topk(scores.detach().float(), width, valid=valid, max_k=width)

    def prepare_targets(self, batched_inputs: list[dict]) -> list[dict[str, torch.Tensor]]:
        """Per image {"labels": int64 [N], "boxes": [N, 4] cxcywh relative to the image}."""
        return normalized_targets(batched_inputs, self.num_classes, self.device, self)

    def detections(
        self,
        pred_logits: torch.Tensor,
        pred_boxes: torch.Tensor,
        images: ImageList,
        batched_inputs: list[dict],
        query_mask: torch.Tensor | None = None,
    ) -> list[dict]:
        """Eval-mode output: ``[{"instances": Instances}]`` in original image coordinates
        (only the queries ``query_mask`` marks, when given)."""
        return detections_in_original_size(
            pred_logits, pred_boxes, images, batched_inputs, self.num_detections, query_mask
        )


def normalized_images(
    batched_inputs: list[dict], pixel_mean: torch.Tensor, pixel_std: torch.Tensor, divisor: int
) -> tuple[ImageList, torch.Tensor]:
    """Images normalised by ``pixel_mean`` / ``pixel_std`` ``[3, 1, 1]`` (on the device the
    images go to), zero-padded to a common size divisible by ``divisor``, and their padding
    mask bool ``[B, H, W]`` (True = padding)."""
    device = pixel_mean.device
    images = [(x["image"].to(device) - pixel_mean) / pixel_std for x in batched_inputs]
    images = ImageList.from_tensors(images, divisor)
    batch, _, height, width = images.tensor.shape
    mask = torch.ones(batch, height, width, dtype=torch.bool, device=device)
    for i, (h, w) in enumerate(images.image_sizes):
        mask[i, :h, :w] = False
    return images, mask


def normalized_targets(
    batched_inputs: list[dict], num_classes: int, device, owner: nn.Module
) -> list[dict[str, torch.Tensor]]:
    """Per image {"labels": int64 [N], "boxes": [N, 4] cxcywh relative to the image} from the
    ``instances`` of training inputs; errors name ``owner``'s class and the file."""
    name = type(owner).__name__
    targets = []
    for x in batched_inputs:
        if "instances" not in x:
            raise ValueError(f"{name}: training inputs need 'instances'")
        labels = x["instances"].gt_classes  # checked where the mapper left it (the CPU)
        if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{name}: gt_classes must be in [0, {num_classes}), got "
                f"{labels.unique().tolist()} (file {x.get('file_name', '?')})"
            )
        instances = x["instances"].to(device)
        boxes = box_xyxy_to_cxcywh_normalized(
            instances.gt_boxes.tensor.float(), instances.image_size
        )
        targets.append({"labels": instances.gt_classes, "boxes": boxes})
    return targets


def detections_in_original_size(
    pred_logits: torch.Tensor,
    pred_boxes: torch.Tensor,
    images: ImageList,
    batched_inputs: list[dict],
    num_detections: int,
    query_mask: torch.Tensor | None = None,
) -> list[dict]:
    """``[{"instances": Instances}]`` with the best ``num_detections`` (query, class) pairs
    of ``pred_logits`` ``[B, Q, K]`` / ``pred_boxes`` ``[B, Q, 4]`` (cxcywh relative to each
    valid image), in original image coordinates. Queries outside ``query_mask`` bool
    ``[B, Q]`` (DDQ's suppressed duplicates and padding), when given, are never output."""
    output_sizes = [
        (x.get("height", h), x.get("width", w))
        for x, (h, w) in zip(batched_inputs, images.image_sizes, strict=True)
    ]
    results = select_detections(
        pred_logits, pred_boxes, images.image_sizes, output_sizes, num_detections, query_mask
    )
    return [{"instances": r} for r in results]
