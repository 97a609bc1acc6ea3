"""The 3D configuration's network and voxel-level losses, on inputs with known answers."""

from __future__ import annotations

import math

import pytest
import torch

from liverwild.losses.voxel import (
    VoxelFeatureLayer,
    multi_resolution_loss,
    sample_voxels,
    simsiam_voxel_loss,
    soft_dice_loss,
    supervised_contrastive_voxel_loss,
    to_grid,
)
from liverwild.nets import UNet3d, build_network


def test_unet3d_gives_logits_and_its_encoder_and_decoder_hidden_layers():
    torch.manual_seed(0)
    net = UNet3d(1, classes=4, base_channels=4, depth=3)
    x = torch.randn(2, 1, 16, 32, 32)
    logits, hidden = net(x, return_hidden=True)
    assert logits.shape == (2, 4, 16, 32, 32)
    # the encoder finest first, ending at the bottleneck (the paper's f^1); the decoder coarsest first
    assert [tuple(h.shape) for h in hidden["encoder"]] == [
        (2, 4, 16, 32, 32),
        (2, 8, 8, 16, 16),
        (2, 16, 4, 8, 8),
        (2, 32, 2, 4, 4),
    ]
    assert [tuple(h.shape) for h in hidden["decoder"]] == [(2, 16, 4, 8, 8), (2, 8, 8, 16, 16), (2, 4, 16, 32, 32)]
    assert net.hidden_channels == {"encoder": [4, 8, 16, 32], "decoder": [16, 8, 4]}
    rebuilt = build_network(net.config)
    rebuilt.load_state_dict(net.state_dict())
    torch.testing.assert_close(rebuilt.eval()(x), net.eval()(x))


def test_sampling_prefers_false_negatives_up_to_their_cap():
    labels = torch.tensor([0] * 500 + [1] * 500 + [2] * 500)
    predictions = labels.clone()
    predictions[:30] = 1  # 30 background voxels wrong
    predictions[500:540] = 0  # 40 class-1 voxels wrong
    chosen = sample_voxels(labels, predictions, max_samples=300, max_false_negatives=1000)
    wrong = (predictions != labels)[chosen]
    assert wrong.sum() == 70  # every false negative is taken when under the cap
    assert len(chosen) == 300 and len(set(chosen.tolist())) == 300
    capped = sample_voxels(labels, predictions, max_samples=300, max_false_negatives=20)
    assert (predictions != labels)[capped].sum() == 20 and len(capped) == 300


def test_sampling_balances_classes_and_lends_a_small_class_share_to_the_others():
    labels = torch.tensor([0] * 5000 + [1] * 1000 + [2] * 10)  # background, liver, a small organ
    chosen = sample_voxels(labels, labels.clone(), max_samples=310, max_false_negatives=0)
    counts = torch.bincount(labels[chosen], minlength=3).tolist()
    assert counts == [150, 150, 10]  # the small organ gives what it lacks to the others
    assert len(sample_voxels(labels[:20], labels[:20], max_samples=1700)) == 20  # never more than there are


def test_simsiam_loss_is_minus_one_for_aligned_classes_and_stops_gradient_at_z():
    z = torch.tensor([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0], [0.0, 3.0]], requires_grad=True)
    p = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    loss = simsiam_voxel_loss(p, z, labels)
    assert float(loss.detach()) == pytest.approx(-1.0)
    p2 = torch.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]], requires_grad=True)
    loss = simsiam_voxel_loss(p2, z, labels)
    assert float(loss.detach()) == pytest.approx(-(0.5 + 1.0) / 2)  # class 0: pairs (0,1) cos 0 and (1,0) cos 1
    loss.backward()
    assert z.grad is None  # stop-gradient: the targets receive nothing
    assert p2.grad is not None and p2.grad.abs().sum() > 0


def test_simsiam_loss_weights_classes_equally_whatever_their_size():
    # class 0: 10 perfectly aligned voxels; class 1: 2 voxels at 90°
    z = torch.cat([torch.tensor([[1.0, 0.0]]).repeat(10, 1), torch.tensor([[0.0, 1.0], [1.0, 0.0]])])
    labels = torch.tensor([0] * 10 + [1] * 2)
    assert float(simsiam_voxel_loss(z, z, labels)) == pytest.approx(-(1.0 + 0.0) / 2)


def test_supervised_contrastive_loss_is_lower_when_classes_are_separated():
    labels = torch.tensor([0, 0, 0, 1, 1, 1])
    separated = torch.tensor([[1.0, 0.0]] * 3 + [[-1.0, 0.0]] * 3)
    mixed = torch.tensor([[1.0, 0.0], [-1.0, 0.0]] * 3)
    assert supervised_contrastive_voxel_loss(separated, labels) < supervised_contrastive_voxel_loss(mixed, labels)
    # perfect separation: −log(1/2) per anchor (2 positives share the softmax; the negatives' mass vanishes)
    separated_loss = float(supervised_contrastive_voxel_loss(separated, labels, 0.01))
    assert separated_loss == pytest.approx(math.log(2), abs=1e-5)


def test_multi_resolution_loss_sums_weighted_layers_on_their_own_grids():
    torch.manual_seed(0)
    labels = torch.zeros(2, 8, 16, 16, dtype=torch.long)
    labels[:, 2:6, 4:12, 4:12] = 1
    labels[:, :, :2, :2] = 2
    assert tuple(to_grid(labels, (4, 8, 8)).shape) == (2, 4, 8, 8)
    assert set(to_grid(labels, (4, 8, 8)).unique().tolist()) == {0, 1, 2}
    hidden = [torch.randn(2, 6, 4, 8, 8, requires_grad=True), torch.randn(2, 3, 8, 16, 16, requires_grad=True)]
    layers = [VoxelFeatureLayer(6, 16), VoxelFeatureLayer(3, 16)]
    total, per_layer = multi_resolution_loss(
        hidden, layers, labels, labels, simsiam_voxel_loss, weights=[1.0, 0.5], max_samples=200
    )
    torch.testing.assert_close(total, per_layer[0] + 0.5 * per_layer[1])
    total.backward()
    assert all(h.grad is not None and h.grad.abs().sum() > 0 for h in hidden)  # each layer is trained
    with pytest.raises(ValueError, match="hidden layers"):
        multi_resolution_loss(hidden, layers[:1], labels, labels, simsiam_voxel_loss)


def test_labels_reach_a_coarse_grid_by_majority_of_each_block_not_by_its_corner_voxel():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, 1:, 1:, 1:] = 3  # 27 of the 64 voxels: the organ misses the block's corner (0, 0, 0)
    labels[0, 0, 0, 0] = 1
    assert to_grid(labels, (1, 1, 1)).tolist() == [[[[0]]]]  # background: 36 of 64
    labels[0, :, 2:, :] = 3  # now 41 of 64 (22 background), still not at the corner
    assert to_grid(labels, (1, 1, 1)).tolist() == [[[[3]]]]  # nearest neighbour would give the corner's 1
    halves = torch.zeros(1, 2, 4, 4, dtype=torch.long)
    halves[0, :, :, 2:] = 2
    assert to_grid(halves, (1, 2, 2)).tolist() == [[[[0, 2], [0, 2]]]]  # each 2 × 2 × 2 block its own class


def test_a_one_voxel_grid_adds_nothing_instead_of_failing():
    labels = torch.zeros(1, 4, 4, 4, dtype=torch.long)
    labels[0, :2] = 1
    hidden = [torch.randn(1, 6, 1, 1, 1, requires_grad=True), torch.randn(1, 3, 2, 2, 2, requires_grad=True)]
    layers = [VoxelFeatureLayer(6, 8), VoxelFeatureLayer(3, 8)]
    total, per_layer = multi_resolution_loss(hidden, layers, labels, labels, simsiam_voxel_loss)
    assert float(per_layer[0].detach()) == 0.0  # one voxel: no pair
    assert float(per_layer[1].detach()) < 0  # the 2³ grid has pairs of each class
    torch.testing.assert_close(total, per_layer[1])


def test_soft_dice_is_zero_for_a_perfect_prediction_and_one_for_a_missed_organ():
    labels = torch.zeros(1, 4, 8, 8, dtype=torch.long)
    labels[:, 1:3, 2:6, 2:6] = 1
    perfect = torch.nn.functional.one_hot(labels, 2).permute(0, 4, 1, 2, 3).float() * 50
    assert float(soft_dice_loss(perfect, labels)) == pytest.approx(0.0, abs=1e-3)
    missed = torch.zeros_like(perfect)
    missed[:, 0] = 50
    # nothing of the 32 organ voxels predicted: Dice = smooth / (32 + smooth) = 1/33
    assert float(soft_dice_loss(missed, labels)) == pytest.approx(1 - 1 / 33, abs=1e-4)


def test_the_sampled_vectors_are_the_features_of_the_voxels_whose_labels_they_carry():
    torch.manual_seed(1)
    labels = torch.randint(0, 4, (3, 4, 6, 5))
    index = torch.arange(labels.numel(), dtype=torch.float32).reshape(3, 1, 4, 6, 5)
    features = torch.cat([index, labels[:, None].float()], dim=1)  # channel 0: where, channel 1: which class
    seen = {}

    def record(p, z, y):
        seen["vectors"], seen["labels"] = p, y
        return p.sum() * 0.0

    multi_resolution_loss([features], [lambda v: (v, v)], labels, labels, record, max_samples=60)
    where = seen["vectors"][:, 0].long()
    assert len(where) == 60 and len(set(where.tolist())) == 60
    assert torch.equal(seen["vectors"][:, 1].long(), seen["labels"])  # the vector of the voxel with that label
    assert torch.equal(labels.reshape(-1)[where], seen["labels"])


def test_projections_keep_unit_variance_so_the_voxels_cannot_collapse_to_one_point():
    layer = VoxelFeatureLayer(8, 16).train()
    last = layer.projection[-1]
    assert isinstance(last, torch.nn.BatchNorm1d) and not last.affine  # SimSiam's output BN
    with torch.no_grad():
        for module in layer.projection:  # even weights that shrink every feature tenfold ...
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(0.1)
        _, z = layer(torch.randn(500, 8))
    torch.testing.assert_close(z.var(dim=0, unbiased=False), torch.ones(16), atol=0.05, rtol=0)  # z stays spread
