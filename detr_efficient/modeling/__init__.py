"""Detectors: the shared core (backbone adapter, matcher, criterion, heads, post-processing)
and one folder of deltas per method, registered in Detectron2's ``META_ARCH_REGISTRY``."""

from .backbone import ChannelMapper, build_resnet, build_slim_resnet
from .combined import FocusDDQDETR
from .ddq import DDQDETR, DDQFCN, DDQRCNN
from .decoder import DeformableTransformerDecoder
from .deformable_detr import DeformableDETR
from .denoising import ContrastiveDenoising
from .detector import DeformableDetectorBase
from .detr_distill import DETRDistill
from .dino import DINO
from .encoder import DeformableTransformerEncoder
from .focus_detr import FocusDETR
from .sparse_detr import SparseDETR

__all__ = [
    "DDQDETR",
    "DDQFCN",
    "DDQRCNN",
    "DETRDistill",
    "DINO",
    "ChannelMapper",
    "ContrastiveDenoising",
    "DeformableDETR",
    "DeformableDetectorBase",
    "DeformableTransformerDecoder",
    "DeformableTransformerEncoder",
    "FocusDDQDETR",
    "FocusDETR",
    "SparseDETR",
    "build_resnet",
    "build_slim_resnet",
]
