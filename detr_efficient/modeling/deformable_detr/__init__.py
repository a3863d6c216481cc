"""Deformable DETR (two-stage, iterative box refinement) on the shared core."""

from .deformable_detr import DeformableDETR

__all__ = ["DeformableDETR"]
