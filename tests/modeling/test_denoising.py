"""Contrastive denoising queries: group layout, noise bounds and the attention mask."""

import torch

from detr_efficient.layers.box_ops import box_cxcywh_to_xyxy
from detr_efficient.modeling.denoising import ContrastiveDenoising, denoising_attn_mask


def _targets():
    return [
        {
            "labels": torch.tensor([1, 3]),
            "boxes": torch.tensor([[0.5, 0.5, 0.2, 0.4], [0.3, 0.6, 0.1, 0.1]]),
        },
        {"labels": torch.zeros(0, dtype=torch.int64), "boxes": torch.zeros(0, 4)},
    ]


def test_group_count_layout_and_padding():
    torch.manual_seed(0)
    dn = ContrastiveDenoising(
        num_classes=5, embed_dim=8, num_dn_queries=5, box_noise_scale=0.0, label_noise_ratio=0.0
    )(_targets())
    # M = 2 targets at most: groups = 5 pairs // 2 = 2 (DINO's dn_number // M), group size 4.
    assert dn.meta == {"num_groups": 2, "group_size": 4, "max_gts": 2}
    assert dn.content.shape == (2, 8, 8) and dn.boxes.shape == (2, 8, 4)
    # Without noise, every copy of a target reproduces its box; image 1 is all padding.
    boxes = dn.boxes.sigmoid()
    for g in range(2):
        for polarity in range(2):
            torch.testing.assert_close(
                boxes[0, g * 4 + polarity * 2 : g * 4 + polarity * 2 + 2],
                _targets()[0]["boxes"],
                atol=1e-4,
                rtol=0,
            )
    assert torch.count_nonzero(dn.content[1]) == 0 and torch.count_nonzero(dn.boxes[1]) == 0


def test_labels_are_embedded_without_label_noise():
    module = ContrastiveDenoising(
        num_classes=5, embed_dim=8, num_dn_queries=8, label_noise_ratio=0.0
    )
    dn = module(_targets())
    weight = module.label_embed.weight
    for g in range(dn.meta["num_groups"]):
        for polarity in range(2):
            base = g * 4 + polarity * 2
            torch.testing.assert_close(dn.content[0, base], weight[1])
            torch.testing.assert_close(dn.content[0, base + 1], weight[3])


def test_positive_noise_stays_inside_and_negative_noise_outside_one_box_scale():
    torch.manual_seed(1)
    box = torch.tensor([[0.5, 0.5, 0.2, 0.2]])
    targets = [{"labels": torch.tensor([0]), "boxes": box}]
    module = ContrastiveDenoising(num_classes=2, embed_dim=4, num_dn_queries=2000)
    dn = module(targets)
    noised = dn.boxes.sigmoid()[0].double().view(-1, 2, 4)  # [G, (positive, negative), 4]
    shift = (box_cxcywh_to_xyxy(noised) - box_cxcywh_to_xyxy(box.double())).abs() / 0.1
    # Positives: every corner moves by less than half the box size.
    assert shift[:, 0].max() <= 1.0 + 1e-3
    # Negatives: by one to two half sizes (checked where the noised box kept a positive size:
    # crossed corners collapse to zero width in the inverse-sigmoid encoding, as upstream).
    upright = (noised[:, 1, 2:] > 1e-3).all(-1)
    assert upright.float().mean() > 0.2
    assert shift[upright, 1].min() >= 1.0 - 1e-3
    assert shift[upright, 1].max() <= 2.0 + 1e-3


def test_label_noise_rate_is_half_the_ratio():
    torch.manual_seed(2)
    targets = [{"labels": torch.zeros(1, dtype=torch.int64), "boxes": torch.tensor([[0.5] * 4])}]
    module = ContrastiveDenoising(
        num_classes=1000,
        embed_dim=4,
        num_dn_queries=20000,
        label_noise_ratio=0.5,
        box_noise_scale=0.0,
    )
    dn = module(targets)
    unchanged = (dn.content[0] == module.label_embed.weight[0]).all(-1).float().mean().item()
    assert abs((1 - unchanged) - 0.25 * 999 / 1000) < 0.02


def test_no_targets_gives_none():
    module = ContrastiveDenoising(num_classes=3, embed_dim=4)
    assert module([_targets()[1]]) is None


def test_attention_mask_blocks_groups_and_hides_denoising_from_matching_queries():
    mask = denoising_attn_mask(num_groups=2, group_size=2, num_queries=3, device="cpu")
    allowed = ~mask
    expected = torch.tensor(
        [
            [1, 1, 0, 0, 1, 1, 1],
            [1, 1, 0, 0, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 1, 1, 1, 1, 1],
            [0, 0, 0, 0, 1, 1, 1],
            [0, 0, 0, 0, 1, 1, 1],
            [0, 0, 0, 0, 1, 1, 1],
        ],
        dtype=torch.bool,
    )
    assert torch.equal(allowed, expected)
