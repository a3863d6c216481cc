"""Detections: top (query, class) pairs, scaled to the original image size."""

import torch

from detr_efficient.modeling.postprocess import select_detections


def test_top_pairs_boxes_and_rescaling_by_hand():
    logits = torch.full((1, 3, 2), -10.0)
    logits[0, 2, 1] = 2.0  # best: query 2, class 1
    logits[0, 0, 0] = 1.0  # second: query 0, class 0
    logits[0, 0, 1] = 0.5  # third: query 0 again, class 1
    boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.4], [0.1, 0.1, 0.1, 0.1], [0.25, 0.75, 0.5, 0.5]]])
    # Network input 100x200 (H, W), original image 50x100: everything scales by 1/2.
    (det,) = select_detections(logits, boxes, [(100, 200)], [(50, 100)], num_detections=3)
    assert det.image_size == (50, 100)
    torch.testing.assert_close(det.scores, torch.sigmoid(torch.tensor([2.0, 1.0, 0.5])))
    assert det.pred_classes.tolist() == [1, 0, 1]
    expected = torch.tensor(
        [
            [0.0, 25.0, 50.0, 50.0],  # (0.25 +- 0.25) * 100, (0.75 +- 0.25) * 50 ... halved
            [40.0, 15.0, 60.0, 35.0],
            [40.0, 15.0, 60.0, 35.0],
        ]
    )
    torch.testing.assert_close(det.pred_boxes.tensor, expected)


def test_fewer_pairs_than_requested_and_batch():
    logits = torch.randn(2, 2, 3)
    boxes = torch.rand(2, 2, 4) * 0.5 + 0.25
    dets = select_detections(logits, boxes, [(10, 10), (20, 30)], [(10, 10), (20, 30)], 100)
    assert [len(d) for d in dets] == [6, 6]
    for d, lg in zip(dets, logits, strict=True):
        assert torch.allclose(d.scores.sort().values, lg.sigmoid().flatten().sort().values)


def test_masked_queries_are_never_output_even_when_pairs_run_short():
    # DDQ's suppressed duplicates: with more detections asked for than an image has pairs of
    # unmasked queries, the image gets fewer, not the masked queries at score 0.
    logits = torch.tensor(
        [[[3.0, -200.0], [1.0, 0.0], [2.0, -1.0]], [[0.0, 1.0], [2.0, 3.0], [-1.0, 4.0]]]
    )
    boxes = torch.rand(2, 3, 4) * 0.5 + 0.25
    mask = torch.tensor([[True, False, True], [False, False, False]])
    first, second = select_detections(
        logits, boxes, [(10, 10)] * 2, [(10, 10)] * 2, num_detections=5, query_mask=mask
    )
    # Query 0's second class underflows to score 0 and still counts: it is not masked.
    torch.testing.assert_close(first.scores, torch.sigmoid(torch.tensor([3.0, 2.0, -1.0, -200.0])))
    assert first.pred_classes.tolist() == [0, 0, 1, 1]
    assert len(second) == 0
