"""Methods combined: one detector class per pairing, made of the methods' own classes."""

from .focus_ddq_detr import FocusDDQDETR

__all__ = ["FocusDDQDETR"]
