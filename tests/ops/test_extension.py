"""The compiled extension: what it registers, what it was built with, and clear device errors."""

import os

import pytest
import torch

from detr_efficient.ops import _extension, compiled_cuda_version

OPS = [
    "nms",
    "batched_nms",
    "select_topk",
    "gather_tokens",
    "scatter_tokens",
    "ms_deform_attn",
    "ms_deform_attn_backward",
    "key_aware_deform_attn",
    "key_aware_deform_attn_backward",
]


@pytest.mark.parametrize("op", OPS)
def test_ops_have_cpu_kernels(op):
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"detr_efficient::{op}", "CPU")


@pytest.mark.skipif(
    os.environ.get("DETR_EFFICIENT_EXPECT_CUDA_BUILD") != "1",
    reason="set DETR_EFFICIENT_EXPECT_CUDA_BUILD=1 where the CUDA kernels must have been built",
)
@pytest.mark.parametrize("op", OPS)
def test_cuda_kernels_were_compiled(op):
    assert compiled_cuda_version() >= 12000
    assert torch._C._dispatch_has_kernel_for_dispatch_key(f"detr_efficient::{op}", "CUDA")


def test_cuda_version_agrees_with_registered_kernels():
    has_cuda_kernel = torch._C._dispatch_has_kernel_for_dispatch_key("detr_efficient::nms", "CUDA")
    assert (compiled_cuda_version() > 0) == has_cuda_kernel


def test_cpu_only_build_rejects_cuda_tensors_clearly(monkeypatch):
    monkeypatch.setattr(_extension, "compiled_cuda_version", lambda: 0)
    with pytest.raises(RuntimeError, match="built without its CUDA kernels"):
        _extension.require_kernels_for(torch.device("cuda", 0), "nms")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without a GPU")
def test_cuda_call_without_a_gpu_raises_clearly():
    if compiled_cuda_version() == 0:
        pytest.skip("CPU-only build: covered by test_cpu_only_build_rejects_cuda_tensors_clearly")
    with pytest.raises(RuntimeError, match="no CUDA device is available"):
        _extension.require_kernels_for(torch.device("cuda", 0), "nms")


def test_unsupported_device_type():
    with pytest.raises(NotImplementedError, match="no kernel for device type 'mps'"):
        _extension.require_kernels_for(torch.device("mps"), "nms")
