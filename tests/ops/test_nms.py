"""detr_efficient.ops.nms against torchvision.ops.nms and the plain PyTorch reference."""

import pytest
import torch

from detr_efficient.ops import batched_nms, batched_nms_indices, nms
from detr_efficient.ops.reference import batched_nms_reference, nms_reference

try:
    from torchvision.ops import nms as expected_nms
except ImportError:  # a bare GPU image; the reference is checked against torchvision in CI
    expected_nms = nms_reference

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]


def random_boxes(n, seed, max_size=30.0, extent=100.0):
    generator = torch.Generator().manual_seed(seed)
    corner = torch.rand(n, 2, generator=generator) * extent
    size = torch.rand(n, 2, generator=generator) * max_size
    return torch.cat([corner, corner + size], dim=1)


def random_scores(n, seed, levels=None):
    generator = torch.Generator().manual_seed(seed + 1)
    if levels:  # few distinct values: many exact ties
        return torch.randint(0, levels, (n,), generator=generator).float()
    return torch.rand(n, generator=generator)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [0, 1, 2, 17, 63, 64, 65, 129, 700, 3000])
@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_matches_torchvision_float32(device, n, threshold):
    boxes, scores = random_boxes(n, seed=n), random_scores(n, seed=n)
    expected = expected_nms(boxes, scores, threshold)
    kept = nms(boxes.to(device), scores.to(device), threshold).cpu()
    assert kept.dtype == torch.int64
    assert torch.equal(kept, expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("n", [5, 300, 2000])
def test_exact_ties_keep_input_order(device, n):
    boxes, scores = random_boxes(n, seed=7 * n), random_scores(n, seed=n, levels=4)
    expected = expected_nms(boxes, scores, 0.5)
    assert torch.equal(nms(boxes.to(device), scores.to(device), 0.5).cpu(), expected)
    assert torch.equal(nms_reference(boxes, scores, 0.5), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_float64_matches_reference(device):
    boxes = random_boxes(500, seed=3).double()
    scores = random_scores(500, seed=3).double()
    expected = nms_reference(boxes, scores, 0.45)
    assert torch.equal(nms(boxes.to(device), scores.to(device), 0.45).cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_computes_in_float32(device, dtype):
    boxes = random_boxes(400, seed=11).to(dtype)
    scores = random_scores(400, seed=11).to(dtype)
    expected = expected_nms(boxes.float(), scores.float(), 0.5)
    assert torch.equal(nms(boxes.to(device), scores.to(device), 0.5).cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_identical_boxes_keep_only_the_first_best(device):
    boxes = torch.tensor([[10.0, 10.0, 20.0, 20.0]]).repeat(6, 1)
    scores = torch.tensor([0.2, 0.9, 0.9, 0.1, 0.5, 0.9])
    assert nms(boxes.to(device), scores.to(device), 0.5).tolist() == [1]


@pytest.mark.parametrize("device", DEVICES)
def test_disjoint_boxes_are_all_kept_by_score(device):
    corners = torch.arange(10, dtype=torch.float32)[:, None] * 20.0
    boxes = torch.cat([corners, corners, corners + 10.0, corners + 10.0], dim=1)
    scores = torch.tensor([0.3, 0.1, 0.9, 0.5, 0.7, 0.2, 0.8, 0.0, 0.6, 0.4])
    kept = nms(boxes.to(device), scores.to(device), 0.01).cpu()
    assert kept.tolist() == torch.argsort(scores, descending=True).tolist()


def test_hand_computed_chain():
    # IoU(a, b) = 50 / 150 = 1/3; IoU(b, c) = 1/3; IoU(a, c) = 0.
    boxes = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 0, 20, 10]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    assert nms(boxes, scores, 0.3).tolist() == [0, 2]  # b suppressed by a; c survives
    assert nms(boxes, scores, 0.34).tolist() == [0, 1, 2]
    # At the boundary: float64 IoU is exactly 1/3, not above it; the float32 IoU rounds up
    # to 0.33333334 and is compared in double, as torchvision does.
    assert nms(boxes.double(), scores.double(), 1 / 3).tolist() == [0, 1, 2]
    assert nms(boxes, scores, 1 / 3).tolist() == [0, 2]
    assert expected_nms(boxes, scores, 1 / 3).tolist() == [0, 2]


@pytest.mark.parametrize("device", DEVICES)
def test_degenerate_boxes_and_nan_scores_as_torchvision(device):
    boxes = random_boxes(200, seed=5)
    boxes[::7, 2] = boxes[::7, 0]  # zero width
    boxes[::11, [0, 2]] = boxes[::11, [2, 0]]  # inverted
    scores = random_scores(200, seed=5)
    scores[::13] = float("nan")
    expected = expected_nms(boxes, scores, 0.5)
    assert torch.equal(nms(boxes.to(device), scores.to(device), 0.5).cpu(), expected)


def test_non_contiguous_inputs():
    wide = torch.rand(300, 8) * 50
    boxes = torch.cat([wide[:, ::2][:, :2], wide[:, ::2][:, :2] + wide[:, 1::2][:, 2:]], dim=1)
    scores = torch.rand(600)[::2]
    assert not scores.is_contiguous()
    assert torch.equal(nms(boxes, scores, 0.5), expected_nms(boxes, scores, 0.5))


@pytest.mark.parametrize(
    ("boxes", "scores", "threshold", "error", "match"),
    [
        ([[0.0, 0, 1, 1]], torch.ones(1), 0.5, TypeError, "'boxes' must be a torch.Tensor"),
        (torch.ones(4), torch.ones(1), 0.5, ValueError, "'boxes' must have shape"),
        (torch.ones(3, 5), torch.ones(3), 0.5, ValueError, r"'boxes'.*dim 1 is 5, expected 4"),
        (torch.ones(3, 4), torch.ones(3, 1), 0.5, ValueError, "'scores' must have shape"),
        (torch.ones(3, 4), torch.ones(2), 0.5, ValueError, "boxes.shape.0.=3, scores.shape.0.=2"),
        (torch.ones(3, 4), torch.ones(3).double(), 0.5, TypeError, "share one dtype"),
        (
            torch.ones(3, 4, dtype=torch.int32),
            torch.ones(3),
            0.5,
            TypeError,
            "'boxes' must have dtype",
        ),
        (
            torch.ones(3, 4),
            torch.ones(3),
            float("nan"),
            ValueError,
            "'iou_threshold' must be finite",
        ),
        (torch.ones(3, 4), torch.ones(3), "0.5", TypeError, "'iou_threshold' must be a float"),
        (torch.ones(3, 4), torch.ones(3, device="meta"), 0.5, ValueError, "on one device"),
    ],
)
def test_bad_arguments_raise_clear_errors(boxes, scores, threshold, error, match):
    with pytest.raises(error, match=match):
        nms(boxes, scores, threshold)


def test_fake_tensor_and_schema():
    boxes, scores = random_boxes(50, seed=1), random_scores(50, seed=1)
    torch.library.opcheck(
        torch.ops.detr_efficient.nms.default,
        (boxes, scores, 0.5),
        test_utils=("test_schema", "test_faketensor"),
    )


@pytest.mark.skipif(expected_nms is nms_reference, reason="needs torchvision")
@pytest.mark.parametrize("threshold", [0.3, 0.7])
def test_reference_matches_torchvision(threshold):
    boxes, scores = random_boxes(800, seed=21), random_scores(800, seed=21, levels=50)
    assert torch.equal(
        nms_reference(boxes, scores, threshold), expected_nms(boxes, scores, threshold)
    )


def random_batch(batch, n, seed, pad=True, levels=None):
    boxes = torch.stack([random_boxes(n, seed=seed + b) for b in range(batch)])
    scores = torch.stack([random_scores(n, seed=seed + b, levels=levels) for b in range(batch)])
    valid = torch.ones(batch, n, dtype=torch.bool)
    if pad:
        generator = torch.Generator().manual_seed(seed)
        valid = torch.rand(batch, n, generator=generator) > 0.3
        valid[0] = True  # one unpadded image
        if batch > 2:
            valid[2] = False  # one empty image
    return boxes, scores, valid


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(("batch", "n"), [(1, 1), (2, 64), (3, 65), (4, 700), (2, 3000)])
@pytest.mark.parametrize("max_keep", [None, 0, 1, 50])
def test_batched_matches_per_image_nms(device, batch, n, max_keep):
    boxes, scores, valid = random_batch(batch, n, seed=n, levels=20)
    expected = batched_nms_reference(boxes, scores, 0.5, valid, max_keep)
    keep = batched_nms(boxes.to(device), scores.to(device), 0.5, valid.to(device), max_keep)
    assert keep.dtype == torch.bool
    assert torch.equal(keep.cpu(), expected)
    for b in range(batch):  # and each image as torchvision keeps it
        candidates = valid[b].nonzero()[:, 0]
        kept = candidates[expected_nms(boxes[b, candidates], scores[b, candidates], 0.5)]
        assert torch.equal(keep[b].nonzero()[:, 0].cpu(), kept[:max_keep].sort().values)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_batched_dtypes(device, dtype):
    boxes, scores, valid = random_batch(3, 300, seed=9)
    boxes, scores = boxes.to(dtype), scores.to(dtype)
    compute = torch.float64 if dtype == torch.float64 else torch.float32
    expected = batched_nms_reference(boxes.to(compute), scores.to(compute), 0.6, valid)
    keep = batched_nms(boxes.to(device), scores.to(device), 0.6, valid.to(device))
    assert torch.equal(keep.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_batched_indices_sorted_by_score_and_padded(device):
    boxes, scores, valid = random_batch(3, 200, seed=2)
    keep = batched_nms_reference(boxes, scores, 0.5, valid)
    indices = batched_nms_indices(boxes.to(device), scores.to(device), 0.5, valid.to(device)).cpu()
    assert indices.shape == (3, int(keep.sum(1).max()))
    for b in range(3):
        kept = keep[b].nonzero()[:, 0]
        expected = kept[torch.sort(scores[b, kept], descending=True, stable=True).indices]
        assert torch.equal(indices[b, : len(kept)], expected)
        assert (indices[b, len(kept) :] == -1).all()
    limited = batched_nms_indices(boxes.to(device), scores.to(device), 0.5, valid.to(device), 4)
    assert torch.equal(limited.cpu(), indices[:, :4])


def test_batched_empty_inputs():
    assert batched_nms(torch.zeros(0, 5, 4), torch.zeros(0, 5), 0.5).shape == (0, 5)
    assert batched_nms(torch.zeros(2, 0, 4), torch.zeros(2, 0), 0.5).shape == (2, 0)
    assert batched_nms_indices(torch.zeros(2, 0, 4), torch.zeros(2, 0), 0.5).shape == (2, 0)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"boxes": torch.ones(2, 5, 3)}, ValueError, "'boxes' must have shape"),
        ({"scores": torch.ones(2, 4)}, ValueError, r"'scores' must be \[B, N\] = \[2, 5\]"),
        ({"valid": torch.ones(2, 5)}, TypeError, "'valid' must have dtype"),
        ({"max_keep": -1}, ValueError, "'max_keep' must be None or an int >= 0"),
        ({"iou_threshold": float("inf")}, ValueError, "finite"),
    ],
)
def test_batched_bad_arguments(kwargs, error, match):
    arguments = {"boxes": torch.ones(2, 5, 4), "scores": torch.ones(2, 5), "iou_threshold": 0.5}
    with pytest.raises(error, match=match):
        batched_nms(**{**arguments, **kwargs})
