"""tools/benchmark_kernels.py at small sizes on the CPU: every benchmark writes its rows, and the
NMS keep-set check compares against torchvision's CPU NMS (and fails on another set)."""

import pytest
import torch
from conftest import benchmark_rows, load_tool

from detr_efficient.ops import batched_nms

pytest.importorskip("torchvision")
tool = load_tool("benchmark_kernels")


def test_every_benchmark_writes_its_rows(tmp_path):
    argv = ["--device", "cpu", "--nms-sizes", "300", "--nms-batches", "2", "--tokens", "600"]
    argv += ["--ratios", "0.3", "--image", "64", "96", "--repeats", "1", "--warmup", "0"]
    rows = benchmark_rows("benchmark_kernels", argv, tmp_path, "kernels_cpu.json", 600)
    ops = {row["op"] for row in rows}
    assert {"nms", "tokens"} <= ops and any(op.startswith("msda") for op in ops)
    assert all(row["ratio_to_ours"] == 1.0 for row in rows if row["variant"] == "ours")


def test_keep_sets_are_checked_against_torchvision():
    boxes, scores = tool.detector_like_boxes(400, torch.device("cpu"), seed=3)
    boxes, scores = boxes[None], scores[None]
    keep = batched_nms(boxes, scores, 0.7)
    tool.check_keep_sets(keep, boxes, scores, 0.7)
    wrong = keep.clone()
    wrong[0, int(keep[0].nonzero()[-1])] = False
    with pytest.raises(AssertionError, match="image 0: keep sets differ"):
        tool.check_keep_sets(wrong, boxes, scores, 0.7)
