"""Python face of the kernels (torch only): argument checks, dispatch to
``torch.ops.detr_efficient``, and plain PyTorch references in :mod:`.reference`."""

from ._extension import compiled_cuda_version
from .nms import nms

__all__ = ["compiled_cuda_version", "nms"]
