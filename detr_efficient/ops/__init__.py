"""Python face of the kernels (torch only): argument checks, dispatch to
``torch.ops.detr_efficient``, autograd and fake (tracing) registrations, and plain PyTorch
references in :mod:`.reference`."""

from ._extension import compiled_cuda_version
from .deform_attn import deform_attn_threads_per_block, key_aware_deform_attn, ms_deform_attn
from .nms import batched_nms, batched_nms_indices, nms
from .tokens import gather_tokens, gather_tokens_many, scatter_tokens
from .topk import select_topk

__all__ = [
    "batched_nms",
    "batched_nms_indices",
    "compiled_cuda_version",
    "deform_attn_threads_per_block",
    "gather_tokens",
    "gather_tokens_many",
    "key_aware_deform_attn",
    "ms_deform_attn",
    "nms",
    "scatter_tokens",
    "select_topk",
]
