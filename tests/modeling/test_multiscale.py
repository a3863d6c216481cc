"""Token map bookkeeping, encoder reference points and two-stage proposals, by hand."""

import torch

from detr_efficient.layers.box_ops import inverse_sigmoid
from detr_efficient.modeling.multiscale import (
    encoder_reference_points,
    flatten_levels,
    level_masks,
)
from detr_efficient.modeling.proposals import EncoderProposals


def _padded_masks():
    mask = torch.zeros(2, 8, 8, dtype=torch.bool)
    mask[1, :, 4:] = True  # image 1 is 8 high and 4 wide
    return level_masks(mask, [(4, 4), (2, 2)])


def test_flatten_levels_layout_and_valid_ratios():
    masks = _padded_masks()
    features = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    positions = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    level_embed = torch.randn(2, 3)
    token_map = flatten_levels(features, masks, positions, level_embed)
    assert token_map.tokens.shape == (2, 20, 3)
    assert token_map.spatial_shapes.tolist() == [[4, 4], [2, 2]]
    assert token_map.level_start_index.tolist() == [0, 16]
    # Token of level 1 at (row 1, col 0) is index 16 + 1 * 2 + 0.
    torch.testing.assert_close(token_map.tokens[:, 18], features[1][:, :, 1, 0])
    torch.testing.assert_close(token_map.pos[:, 18], positions[1][:, :, 1, 0] + level_embed[1])
    torch.testing.assert_close(
        token_map.valid_ratios, torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 1.0]]])
    )
    assert token_map.padding_mask[1].view(-1)[:16].view(4, 4)[:, 2:].all()


def test_encoder_reference_points_are_cell_centres_of_the_valid_area():
    ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 1.0]]])
    ref = encoder_reference_points([(4, 4), (2, 2)], ratios)
    assert ref.shape == (2, 20, 2, 2)
    # Image 0, level 0, cell (row 2, col 1): centre (1.5 / 4, 2.5 / 4) on every level.
    torch.testing.assert_close(ref[0, 2 * 4 + 1], torch.tensor([[0.375, 0.625]] * 2))
    # Image 1 is valid over 2 of 4 columns: x is normalised by 2 then rescaled by 0.5.
    torch.testing.assert_close(ref[1, 2 * 4 + 1], torch.tensor([[0.375, 0.625]] * 2))
    # Level 1, cell (0, 1) of image 1: x = 1.5 / (0.5 * 2) = 1.5 before projection.
    torch.testing.assert_close(ref[1, 16 + 1, 0], torch.tensor([0.75, 0.25]))


def test_proposals_sizes_validity_and_memory_zeroing():
    masks = _padded_masks()
    padding = torch.cat([m.flatten(1) for m in masks], dim=1)
    ratios = torch.tensor([[[1.0, 1.0], [1.0, 1.0]], [[0.5, 1.0], [0.5, 1.0]]])
    module = EncoderProposals(embed_dim=4, base_size=0.05)
    memory = torch.randn(2, 20, 4)
    out, proposals, valid = module(memory, padding, [(4, 4), (2, 2)], ratios)
    # Image 0 level 0 cell (0, 0): centre (0.125, 0.125), size 0.05.
    torch.testing.assert_close(
        proposals[0, 0], inverse_sigmoid(torch.tensor([0.125, 0.125, 0.05, 0.05]))
    )
    # Level 1 size doubles: 0.1.
    torch.testing.assert_close(
        proposals[0, 16], inverse_sigmoid(torch.tensor([0.25, 0.25, 0.1, 0.1]))
    )
    # Padding tokens and out-of-range centres (image 1 columns 2-3: x >= 0.99) are invalid.
    assert not valid[1, 2] and not valid[1, 3] and valid[1, 1]
    assert torch.isinf(proposals[1, 2]).all()
    zeroed = module.norm(module.output(torch.zeros(4)))
    torch.testing.assert_close(out[1, 2], zeroed)
