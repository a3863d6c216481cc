"""DINO: the deltas over the shared deformable DETR core."""

from .dino import DINO

__all__ = ["DINO"]
