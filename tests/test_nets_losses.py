import math

import numpy as np
import pytest
import torch

from liverwild.backbones import FrozenBackbone
from liverwild.errors import ConfigurationError
from liverwild.losses import (
    ENTROPY_FORMS,
    ContrastiveDistillationLoss,
    EntropyLoss,
    SoftmaxEntropyLoss,
    contrastive_correlation_loss,
    contrastive_partners,
    entropy_loss,
    focal_loss,
    log_iou_loss,
    softmax_entropy_loss,
    tensor_correlation,
    tversky_loss,
)
from liverwild.nets import ContrastiveDistillationNet, SegmentationPipeline, count_trainable
from liverwild.training.config import CHOICES, SliceTrainerConfig, parse_settings

# ---- networks ------------------------------------------------------------------------------------


def test_parameter_count_matches_the_paper():
    net = ContrastiveDistillationNet(in_channels=384)
    assert 2.3e5 < count_trainable(net) < 2.7e5  # paper: about 2.5·10⁵


@pytest.mark.parametrize("feature_size", [14, 28])  # ViT-*/16 and ViT-*/8
def test_decoder_reaches_224_for_any_patch_size(feature_size):
    net = ContrastiveDistillationNet(in_channels=32)
    logits, code = net(torch.randn(2, 32, feature_size, feature_size), torch.randn(2, 1, 224, 224))
    assert logits.shape == (2, 1, 224, 224) and code.shape == (2, 70, feature_size, feature_size)
    assert net.decoder.stage_sizes(feature_size)[-1] == 224 and len(net.decoder.stage_sizes(feature_size)) == 5


def test_raw_slice_path_equals_cached_feature_path():
    torch.manual_seed(0)
    backbone = FrozenBackbone("vit_tiny_patch16_224", "random")
    net = ContrastiveDistillationNet(in_channels=backbone.feature_channels).eval()
    slices = torch.randn(3, 1, 224, 224)
    from_raw = SegmentationPipeline(backbone, net)(slices)
    cached = torch.from_numpy(backbone(slices).numpy().astype(np.float16).astype(np.float32))  # as in the cache
    with torch.no_grad():
        from_cache = torch.sigmoid(net(cached, slices)[0])
    exact = torch.sigmoid(net(backbone(slices), slices)[0]).detach()
    assert torch.allclose(from_raw, exact, atol=1e-6)
    assert torch.allclose(from_raw, from_cache, atol=2e-3)


# ---- segmentation losses on hand-computable inputs -------------------------------------------


def test_focal_loss_values_and_gradient():
    zero = torch.zeros(1, 1, 2, 2)
    assert focal_loss(zero, zero).item() == pytest.approx(0.5 * 0.5**3 * math.log(2))
    big = torch.full((1, 1, 2, 2), 20.0)
    assert focal_loss(big, torch.ones_like(big)).item() < 1e-12
    logits = torch.zeros(1, 1, 2, 2, requires_grad=True)
    focal_loss(logits, torch.ones_like(logits)).backward()
    assert (logits.grad < 0).all()  # pushes towards foreground


def test_focal_down_weights_easy_pixels():
    target = torch.ones(1, 1, 1, 2)
    easy = focal_loss(torch.tensor([[[[3.0, 3.0]]]]), target)
    hard = focal_loss(torch.tensor([[[[-3.0, -3.0]]]]), target)
    bce_ratio = math.log1p(math.exp(3)) / math.log1p(math.exp(-3))
    assert hard / easy > 10 * bce_ratio


def test_tversky_and_log_iou_on_counts():
    big = 50.0
    # prediction: 2 pixels on, target: pixels 1..3 on → TP 1, FP 1, FN 2
    logits = torch.tensor([[[[big, big, -big, -big]]]])
    target = torch.tensor([[[[0.0, 1.0, 1.0, 1.0]]]])
    assert tversky_loss(logits, target, 0.5, 0.5, smooth=0).item() == pytest.approx(1 - 1 / (1 + 0.5 + 1))
    assert tversky_loss(logits, target, 0.9, 0.1, smooth=0).item() == pytest.approx(1 - 1 / (1 + 0.9 + 0.2))
    assert log_iou_loss(logits, target, smooth=0).item() == pytest.approx(-math.log(1 / 4))
    assert log_iou_loss(torch.full((1, 1, 3, 3), big), torch.ones(1, 1, 3, 3)).item() == pytest.approx(0, abs=1e-6)


def test_entropy_bounds():
    assert entropy_loss(torch.zeros(1, 1, 3, 3)).item() == pytest.approx(math.log(2))
    assert entropy_loss(torch.full((1, 1, 3, 3), -30.0)).item() < 1e-10


def test_charbonnier_entropy_matches_hand_computed_values():
    """FDA's robust entropy ((H / log C)² + 1e-8)²: p = 0.2 has H = 0.7219 bits, so 0.7219⁴ = 0.27163; the
    plain form keeps H in nats (0.50040). Probabilities (½, ¼, ¼) have H = 1.5 bits = 0.94639 · log 3:
    0.94639⁴ = 0.80221. The uniform prediction is the maximum, (1 + 1e-8)² ≈ 1 (plain: log C)."""
    p02 = torch.full((1, 1, 2, 2), math.log(0.2 / 0.8))
    assert entropy_loss(p02, "charbonnier").item() == pytest.approx(0.27163, abs=1e-5)
    assert entropy_loss(p02, "plain").item() == pytest.approx(0.50040, abs=1e-5)
    assert entropy_loss(torch.zeros(1, 1, 2, 2), "charbonnier").item() == pytest.approx(1.0, abs=1e-6)
    three = torch.log(torch.tensor([0.5, 0.25, 0.25])).view(1, 3, 1, 1).expand(2, 3, 4, 4)
    assert softmax_entropy_loss(three, "charbonnier").item() == pytest.approx(0.80221, abs=1e-5)
    assert softmax_entropy_loss(torch.zeros(1, 5, 2, 2), "charbonnier").item() == pytest.approx(1.0, abs=1e-6)
    # confident pixels: the 4th power shrinks the plain entropy's value far more than its square would
    sure = torch.full((1, 1, 2, 2), -6.0)
    assert entropy_loss(sure, "charbonnier").item() < 1e-3 * entropy_loss(sure, "plain").item()


def test_charbonnier_with_two_classes_is_the_binary_form():
    logits = torch.randn(2, 2, 8, 8, generator=torch.Generator().manual_seed(0))
    binary = logits[:, 1:] - logits[:, :1]
    assert softmax_entropy_loss(logits, "charbonnier").item() == pytest.approx(
        entropy_loss(binary, "charbonnier").item(), rel=1e-5
    )


def test_entropy_form_is_a_checked_choice_defaulting_to_charbonnier():
    assert SliceTrainerConfig().entropy_form == "charbonnier" and CHOICES["entropy_form"] == ENTROPY_FORMS
    assert parse_settings(["entropy_form=plain"]) == {"entropy_form": "plain"}
    with pytest.raises(ConfigurationError, match="entropy_form expects one of charbonnier, plain"):
        parse_settings(["entropy_form=robust"])
    for module in (EntropyLoss, SoftmaxEntropyLoss):
        with pytest.raises(ValueError, match="entropy form must be one of"):
            module("robust")


def test_empty_masks_give_finite_zero_losses():
    empty = torch.zeros(2, 1, 8, 8)
    confident_empty = torch.full((2, 1, 8, 8), -40.0)
    for fn in (tversky_loss, log_iou_loss, focal_loss):
        value = fn(confident_empty, empty)
        assert torch.isfinite(value) and value.item() == pytest.approx(0, abs=1e-6)
    logits = torch.zeros(2, 1, 8, 8, requires_grad=True)
    (tversky_loss(logits, empty) + log_iou_loss(logits, empty)).backward()
    assert torch.isfinite(logits.grad).all() and (logits.grad > 0).all()  # pushes towards background


# ---- contrastive correlation -------------------------------------------------------------------


def test_tensor_correlation_is_cosine():
    a = torch.randn(2, 5, 3, 4)
    corr = tensor_correlation(a, a)
    assert corr.shape == (2, 3, 4, 3, 4)
    diag = corr.reshape(2, 12, 12).diagonal(dim1=1, dim2=2)
    assert torch.allclose(diag, torch.ones_like(diag), atol=1e-6)
    assert torch.allclose(tensor_correlation(a, 3 * a), corr, atol=1e-6)  # scale invariant


def test_contrastive_loss_on_a_hand_example():
    # two positions with orthogonal features: fd = I, centred → ±0.5; code equal to features → cd = I
    f = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    for b in (0.0, 0.55):
        loss, sim = contrastive_correlation_loss(f, f, f, f, b)
        assert loss.item() == pytest.approx(-(1 - 2 * b) / 4)
        assert sim.item() == pytest.approx(0.5)


def test_contrastive_gradient_reaches_code_only_and_respects_shift():
    f = torch.randn(2, 16, 4, 4, requires_grad=True)
    code = torch.randn(2, 8, 4, 4, requires_grad=True)
    loss, _ = contrastive_correlation_loss(f, f, code, code, 0.55)
    loss.backward()
    assert f.grad is None and code.grad is not None and torch.isfinite(code.grad).all()
    # with the paper's self shift (0.55 > every centred feature correlation of random features), every
    # positive code correlation is costly: gradient descent lowers the code similarity
    code2 = torch.randn(1, 8, 4, 4).abs().requires_grad_(True)  # all-positive codes: similar
    before = tensor_correlation(code2, code2).mean().item()
    opt = torch.optim.SGD([code2], lr=1.0)
    for _ in range(20):
        opt.zero_grad()
        contrastive_correlation_loss(f[:1].detach(), f[:1].detach(), code2, code2, 0.55)[0].backward()
        opt.step()
    assert tensor_correlation(code2, code2).mean().item() < before


def test_distillation_loss_with_the_papers_shifts_on_a_hand_example():
    """Two positions with orthogonal features (centred correlation +0.5 on the diagonal, −0.5 off it) and
    codes 60° apart (code correlation 1 on the diagonal, 0.5 off it):
    L_cr(b) = −[2·(0.5 − b)·1 + 2·(−0.5 − b)·0.5] / 4 = (3b − 0.5) / 4 → 0.2875 (b_self 0.55),
    0.25 (b₊ 0.5), 0.325 (b₋ 0.6); L_cd = 0.8625 with each pair kind given once."""
    f = torch.tensor([[[[1.0, 0.0]], [[0.0, 1.0]]]])  # (1, 2, 1, 2)
    code = torch.tensor([[[[1.0, 0.5]], [[0.0, 3**0.5 / 2]]]])  # unit vectors 60° apart
    assert tensor_correlation(code, code)[0, 0, 0, 0, 1].item() == pytest.approx(0.5)
    for b, expected in ((0.55, 0.2875), (0.5, 0.25), (0.6, 0.325)):
        assert contrastive_correlation_loss(f, f, code, code, b)[0].item() == pytest.approx(expected, abs=1e-6)
    total, parts = ContrastiveDistillationLoss(0.55, 0.5, 0.6)(f, code, [(f, code)], [(f, code)])
    assert set(parts) == {"cd_self", "cd_pos", "cd_neg", "sim_self", "sim_pos", "sim_neg"}
    assert total.item() == pytest.approx(0.8625, abs=1e-6)
    assert parts["sim_self"].item() == pytest.approx(0.75)  # mean of [[1, .5], [.5, 1]]
    two_negatives = ContrastiveDistillationLoss(0.55, 0.5, 0.6)(f, code, [(f, code)], [(f, code)] * 2)[0]
    assert two_negatives.item() == pytest.approx(0.8625, abs=1e-6)  # averaged, not summed


# ---- slice sampling ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "i, n, strategy, positives, negatives",
    [
        (5, 10, "neighbours", [4, 6], [0]),
        (0, 10, "neighbours", [1], [5]),
        (9, 10, "neighbours", [8], [4]),
        (3, 7, "neighbours", [2, 4], [6]),
        (5, 10, "neighbours2", [3, 7], [0]),
        (1, 10, "neighbours2", [3], [6]),
        (5, 10, "two_negatives", [4, 6], [0, 1]),
        (9, 10, "two_negatives", [8], [4, 5]),
        (0, 1, "neighbours", [0], [0]),  # single-slice scan
        (1, 2, "neighbours2", [1], [0]),  # no ±2 neighbour: itself
    ],
)
def test_contrastive_partners(i, n, strategy, positives, negatives):
    assert contrastive_partners(i, n, strategy) == (positives, negatives)


def test_contrastive_partners_rejects_bad_input():
    with pytest.raises(KeyError):
        contrastive_partners(0, 3, "nope")
    with pytest.raises(IndexError):
        contrastive_partners(3, 3)
