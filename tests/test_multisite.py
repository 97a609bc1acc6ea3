"""Domain-specific BatchNorm (MS-Net) and unpaired CT/MR knowledge distillation (Dou et al.): the BatchNorm
routing and the distillation loss on inputs with known answers, then both trainers on phantom folds,
through prediction."""

import json
import math

import numpy as np
import pytest
import torch

from liverwild.losses.alignment import modality_distillation_loss
from liverwild.nets import DomainBatchNorm2d, DomainNormUNet2d, DualNormUNet2d, build_network

# ---- domain-specific BatchNorm ------------------------------------------------------------------


def test_domain_batchnorm_routes_each_sample_to_its_domain_statistics():
    torch.manual_seed(0)
    domains = torch.tensor([2, 0, 2, 1, 0, 2])
    offsets = torch.tensor([-3.0, 0.5, 4.0])[domains].view(-1, 1, 1, 1)
    x = 2 * torch.randn(6, 2, 5, 5) + offsets
    bn = DomainBatchNorm2d(2, n_domains=4).train()
    bn.branch = domains
    out = bn(x)
    momentum, eps = 0.1, 1e-5
    xs, ds = x.numpy().astype(np.float64), domains.numpy()
    for d in range(3):
        part = xs[ds == d]
        mean, var = part.mean(axis=(0, 2, 3)), part.var(axis=(0, 2, 3))
        n = part.shape[0] * part.shape[2] * part.shape[3]
        norm = bn.norms[d]
        assert np.allclose(norm.running_mean.numpy(), momentum * mean, atol=1e-5)
        assert np.allclose(norm.running_var.numpy(), (1 - momentum) + momentum * var * n / (n - 1), atol=1e-5)
        expected = (part - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + eps)
        assert np.allclose(out[domains == d].detach().numpy(), expected, atol=1e-4), "in the batch's order"
    unused = bn.norms[3]
    assert int(unused.num_batches_tracked) == 0 and torch.equal(unused.running_mean, torch.zeros(2))
    (out * torch.randn_like(out)).sum().backward()
    assert unused.weight.grad is None and bn.norms[1].weight.grad is not None

    bn.eval()
    with torch.no_grad():
        routed = bn(x)
        for d in range(3):  # evaluation: each sample with its own domain's running statistics
            bn.branch = d
            assert torch.allclose(routed[domains == d], bn(x)[domains == d], atol=1e-6)


def _fit_branch_statistics(net, branch, data, steps=30):
    net.train()
    net.set_branch(branch)
    with torch.no_grad():
        for _ in range(steps):
            net(data())


def test_domain_norm_unet_picks_the_nearest_of_three_branches_and_rebuilds_from_its_config():
    torch.manual_seed(0)
    net = DomainNormUNet2d(base_channels=4, depth=2, n_domains=3)
    styles = [
        lambda: 0.3 * torch.randn(4, 1, 32, 32) - 2,
        lambda: torch.randn(4, 1, 32, 32),
        lambda: 4 * torch.randn(4, 1, 32, 32) + 6,
    ]
    for branch, style in enumerate(styles):
        _fit_branch_statistics(net, branch, style)
    net.eval()
    net.set_branch("auto")
    x = torch.cat([styles[b]()[:1] for b in (2, 0, 1, 2)])
    with torch.no_grad():
        out = net(x)
        assert net.last_choice.tolist() == [2, 0, 1, 2]
        for row, branch in enumerate((2, 0, 1, 2)):
            net.set_branch(branch)
            assert torch.allclose(out[row], net(x)[row], atol=1e-6)
        net.set_branch("auto")
        config = json.loads(json.dumps(net.config))
        assert config["architecture"] == "domain_norm_unet2d" and config["n_domains"] == 3
        rebuilt = build_network(config)
        rebuilt.load_state_dict(net.state_dict())
        rebuilt.eval()
        assert torch.equal(rebuilt(x), out)
    dual = DualNormUNet2d(base_channels=4, depth=2)  # the two-branch case keeps its saved form
    assert dual.config["norm"] == "dual" and "n_domains" not in dual.config
    assert type(build_network(dual.config)) is DualNormUNet2d


# ---- knowledge distillation between modalities -------------------------------------------------


def _numpy_kd(logits, labels, modalities, temperature):
    """L_kd written out with numpy: per class, the softmax of the class-mean two-channel logits
    [−l/2, l/2] / T per modality, symmetric KL, mean over the classes both modalities have."""
    terms = []
    for c in (0, 1):
        probabilities = []
        for m in (0, 1):
            pixels = logits[modalities == m][labels[modalities == m] == c]
            if pixels.size == 0:
                break
            z = np.array([-pixels.mean() / 2, pixels.mean() / 2]) / temperature
            probabilities.append(np.exp(z) / np.exp(z).sum())
        else:
            p, q = probabilities
            terms.append(np.sum(p * np.log(p / q)) + np.sum(q * np.log(q / p)))
    return float(np.mean(terms)) if terms else 0.0


def test_modality_distillation_loss_on_a_hand_computed_case():
    # CT (modality 0): liver logits 1 and 4 ln 3 − 1 → mean 2 ln 3; background logits 0.5 and −0.5 → mean 0.
    # MR (modality 1): liver logit −2 ln 3; background logits 0.
    # T = 2: p_liver^CT = softmax([0, ln 3]) = [1/4, 3/4], p_liver^MR = [3/4, 1/4],
    # KL(p‖q) = KL(q‖p) = ¾ ln 3 − ¼ ln 3 = ½ ln 3; p_background equal (½, ½) in both → 0.
    # L_kd = (1/2) (ln 3 + 0) = ½ ln 3.
    ln3 = math.log(3)
    logits = torch.tensor([[[[1.0, 4 * ln3 - 1]]], [[[0.5, -0.5]]], [[[-2 * ln3, 0.0]]]])
    labels = torch.tensor([[[[1.0, 1.0]]], [[[0.0, 0.0]]], [[[1.0, 0.0]]]])
    modalities = torch.tensor([0, 0, 1])
    assert float(modality_distillation_loss(logits, labels, modalities, 2.0)) == pytest.approx(ln3 / 2, rel=1e-6)
    assert float(modality_distillation_loss(logits, labels, 1 - modalities, 2.0)) == pytest.approx(ln3 / 2, rel=1e-6)
    # no background in MR's part: that class is skipped, C = 1 → ln 3
    only_liver = labels.clone()
    only_liver[2] = 1.0
    logits_liver = logits.clone()
    logits_liver[2] = -2 * ln3
    assert float(modality_distillation_loss(logits_liver, only_liver, modalities, 2.0)) == pytest.approx(ln3, rel=1e-6)
    # the same input in both modalities: no divergence
    same = torch.cat([logits[:2], logits[:2]])
    assert float(modality_distillation_loss(same, torch.cat([labels[:2]] * 2), torch.tensor([0, 0, 1, 1]))) == 0.0


def test_modality_distillation_loss_matches_an_independent_computation():
    rng = np.random.default_rng(3)
    for temperature in (1.0, 2.0, 5.0):
        logits = rng.normal(0, 3, size=(6, 1, 4, 5)).astype(np.float32)
        labels = (rng.random((6, 1, 4, 5)) < 0.3).astype(np.float32)
        modalities = np.array([0, 1, 1, 0, 1, 0])
        got = modality_distillation_loss(
            torch.from_numpy(logits), torch.from_numpy(labels), torch.from_numpy(modalities), temperature
        )
        assert float(got) == pytest.approx(_numpy_kd(logits, labels, modalities, temperature), rel=1e-4)
    logits_t = torch.randn(4, 1, 3, 3, requires_grad=True)
    loss = modality_distillation_loss(logits_t, (torch.rand(4, 1, 3, 3) < 0.5).float(), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    assert logits_t.grad is not None and torch.isfinite(logits_t.grad).all()
