"""The adversarial method's domain critic (Dou, Ouyang et al., IJCAI 2018): a small convolutional
network scoring the joint head code and early decoder features, trained as a Wasserstein critic."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..nets.decoder import UpsamplingDecoder


def critic_features(
    head: nn.Module, decoder: UpsamplingDecoder, features: torch.Tensor, depth: int = 2
) -> torch.Tensor:
    """``(B, 70 + C_depth, h, w)``: the head's code of teacher ``features`` ``(B, C, h, w)`` (the adapted
    lower layers, the paper's M_A) beside the first ``depth`` decoder stages' output pooled back to
    ``h × w`` (the higher layers F_H the critic also sees)."""
    code = head(features)
    x = code
    for stage, size in zip(decoder.stages[:depth], decoder.stage_sizes(code.shape[-1])):
        x = stage(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))
    return torch.cat([code, F.adaptive_avg_pool2d(x, code.shape[-2:])], dim=1)


class DomainCritic(nn.Module):
    """Three 3×3 convolutions (LeakyReLU 0.2, no normalisation, as WGAN-GP asks) → one score per map."""

    def __init__(self, channels: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 1, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).mean(dim=(1, 2, 3))


def gradient_penalty(critic: nn.Module, source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's ``E[(‖∇D(x̂)‖₂ − 1)²]`` on random interpolates of equally many source and target maps:
    the Lipschitz constraint ``‖D‖_L ≤ K`` of the paper (which clips weights instead)."""
    n = min(source.shape[0], target.shape[0])
    alpha = torch.rand(n, 1, 1, 1, device=source.device)
    mixed = (alpha * source[:n] + (1 - alpha) * target[:n]).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
