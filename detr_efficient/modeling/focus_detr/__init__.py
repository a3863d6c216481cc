"""Focus-DETR: the deltas over DINO (ground-truth foreground supervision; the selective
encoder lives in ``modeling.token_selection``)."""

from .assignment import (
    OFFICIAL_SCALE_RANGES,
    PAPER_SCALE_RANGES,
    foreground_loss,
    foreground_targets,
)
from .focus_detr import FocusDETR

__all__ = [
    "OFFICIAL_SCALE_RANGES",
    "PAPER_SCALE_RANGES",
    "FocusDETR",
    "foreground_loss",
    "foreground_targets",
]
