"""The CPU-fast layers compute what their torch namesakes compute (values, gradients, distribution)."""

from __future__ import annotations

import torch
from torch import nn

from liverwild.nets import ContrastiveDistillationNet
from liverwild.nets.layers import ChannelsLastConv2d, UniformMaskDropout, use_reference_layers


def test_channels_last_conv_matches_conv2d_forward_and_backward():
    torch.manual_seed(0)
    fast = ChannelsLastConv2d(5, 3, 3, padding=1, bias=True)
    plain = nn.Conv2d(5, 3, 3, padding=1, bias=True)
    plain.load_state_dict(fast.state_dict())
    x = torch.randn(2, 5, 31, 29, requires_grad=True)
    y_fast = fast(x)
    assert y_fast.is_contiguous()  # NCHW out, so BatchNorm after it keeps its fast kernel
    grad_fast = torch.autograd.grad(y_fast.square().sum(), [x, fast.weight, fast.bias])
    y_plain = plain(x)
    grad_plain = torch.autograd.grad(y_plain.square().sum(), [x, plain.weight, plain.bias])
    torch.testing.assert_close(y_fast, y_plain, rtol=1e-5, atol=1e-5)
    for a, b in zip(grad_fast, grad_plain):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_uniform_mask_dropout_keeps_one_minus_p_and_rescales():
    torch.manual_seed(0)
    drop = UniformMaskDropout(0.3)
    x = torch.ones(200, 1000)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 200 000 Bernoulli(0.7) draws: σ ≈ 0.001
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.7))
    x = torch.randn(4, 5, requires_grad=True)
    y = drop(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    torch.testing.assert_close(g, (y != 0).float() / 0.7)  # the gradient goes through the kept elements
    drop.eval()
    assert torch.equal(drop(x), x)
    assert torch.equal(UniformMaskDropout(1.0)(torch.ones(3)), torch.zeros(3))


def test_reference_layers_give_the_same_network():
    torch.manual_seed(0)
    net = ContrastiveDistillationNet(16, 8, 0.1, (8, 6, 4, 4, 3), 0.3, 32).eval()
    features, slices = torch.randn(2, 16, 4, 4), torch.randn(2, 1, 32, 32)
    fast = net(features, slices)[0]
    use_reference_layers(net)
    kinds = {type(m) for m in net.modules()}
    assert ChannelsLastConv2d not in kinds and UniformMaskDropout not in kinds
    assert nn.Conv2d in kinds and nn.Dropout in kinds
    torch.testing.assert_close(net(features, slices)[0], fast, rtol=1e-5, atol=1e-5)
