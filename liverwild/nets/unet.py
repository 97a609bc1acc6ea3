"""A plain 2D U-Net on normalised slices, for the baselines that learn from images (no teacher).

``UNet2d(slices)`` → logits ``(B, 1, H, W)`` from slices ``(B, 1, H, W)``; ``H`` and ``W`` must be
divisible by ``2**depth`` (224 with the default depth 4: 224 → 112 → 56 → 28 → 14).
``forward(x, return_features=True)`` also returns the last decoder feature map ``(B, base, H, W)``:
the semantic features the meta-learning baselines align and cluster. The final layer is a 1×1
convolution, so the logit of a mean feature is the mean of the logits.

``norm="dual"`` gives every normalisation layer two BatchNorms (:class:`DualBatchNorm2d`) — the
dual-normalisation network of Zhou et al. (CVPR 2022); see :class:`DualNormUNet2d`.
"""

from __future__ import annotations

import torch
from torch import nn


class DualBatchNorm2d(nn.Module):
    """Two BatchNorms over the same channels; ``branch`` (0 or 1) says which one a forward uses."""

    def __init__(self, channels: int):
        super().__init__()
        self.norms = nn.ModuleList([nn.BatchNorm2d(channels), nn.BatchNorm2d(channels)])
        self.branch = 0
        self.record: list | None = None  # when a list: per-sample input statistics are appended

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.record is not None:
            self.record.append((x.float().mean(dim=(2, 3)), x.float().var(dim=(2, 3), unbiased=False)))
        return self.norms[self.branch](x)


def _norm(kind: str, channels: int) -> nn.Module:
    return DualBatchNorm2d(channels) if kind == "dual" else nn.BatchNorm2d(channels)


class ConvBlock(nn.Sequential):
    """Two 3×3 convolution – normalisation – ReLU layers (dropout after the second)."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(norm, cout),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
        )


class UNet2d(nn.Module):
    """Encoder of ``depth + 1`` levels with ``base · 2^l`` channels (2×2 max-pooling between), decoder of
    transposed 2×2 convolutions and skip concatenation, and a 1×1 convolution to one logit."""

    architecture = "unet2d"

    def __init__(
        self, in_channels: int = 1, base_channels: int = 16, depth: int = 4, dropout: float = 0.0, norm: str = "batch"
    ):
        super().__init__()
        if norm not in ("batch", "dual"):
            raise ValueError(f"norm must be 'batch' or 'dual', not {norm!r}")
        self.config = {
            "architecture": self.architecture,
            "in_channels": in_channels,
            "base_channels": base_channels,
            "depth": depth,
            "dropout": dropout,
            "norm": norm,
        }
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels, widths[0], norm, 0.0)]
            + [ConvBlock(widths[i - 1], widths[i], norm, dropout) for i in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(depth, 0, -1))
        self.decoder = nn.ModuleList(
            ConvBlock(2 * widths[i - 1], widths[i - 1], norm, 0.0) for i in range(depth, 0, -1)
        )
        self.output = nn.Conv2d(widths[0], 1, 1)
        self.feature_channels = widths[0]

    def forward(self, x: torch.Tensor, return_features: bool = False):
        skips = []
        for level, block in enumerate(self.encoder):
            x = block(x if level == 0 else self.pool(x))
            skips.append(x)
        x = skips.pop()
        for up, block in zip(self.up, self.decoder):
            x = block(torch.cat([up(x), skips.pop()], dim=1))
        logits = self.output(x)
        return (logits, x) if return_features else logits


class DualNormUNet2d(UNet2d):
    """The U-Net with dual normalisation: branch 0 is trained on source-similar images, branch 1 on
    source-dissimilar ones (``set_branch``). In evaluation mode with ``branch="auto"`` every slice is run
    through both branches and keeps the output of the branch whose BatchNorm running statistics are
    nearest to the slice's own feature statistics (sum over all normalisation layers of the L2 distances
    between means and between variances), as Zhou et al. choose the branch at test time."""

    architecture = "dual_norm_unet2d"

    def __init__(
        self, in_channels: int = 1, base_channels: int = 16, depth: int = 4, dropout: float = 0.0, norm: str = "dual"
    ):
        super().__init__(in_channels, base_channels, depth, dropout, "dual")
        self.config["architecture"] = self.architecture
        self.branch: int | str = "auto"

    def dual_norms(self) -> list:
        return [m for m in self.modules() if isinstance(m, DualBatchNorm2d)]

    def set_branch(self, branch: int | str) -> None:
        self.branch = branch
        if branch != "auto":
            for m in self.dual_norms():
                m.branch = int(branch)

    def branch_distances(self, x: torch.Tensor) -> tuple:
        """``(distances (B, 2), logits per branch [(B, 1, H, W)] × 2)``."""
        norms = self.dual_norms()
        distances, outputs = [], []
        for branch in (0, 1):
            for m in norms:
                m.branch, m.record = branch, []
            outputs.append(UNet2d.forward(self, x))
            d = torch.zeros(x.shape[0], device=x.device)
            for m in norms:
                ((mean, var),) = m.record
                bn = m.norms[branch]
                d += torch.linalg.vector_norm(mean - bn.running_mean, dim=1)
                d += torch.linalg.vector_norm(var - bn.running_var, dim=1)
                m.record = None
            distances.append(d)
        return torch.stack(distances, dim=1), outputs

    def forward(self, x: torch.Tensor, return_features: bool = False):
        if self.branch != "auto" or self.training:
            if self.branch == "auto":
                raise RuntimeError("DualNormUNet2d: choose a branch (set_branch) for training")
            return super().forward(x, return_features)
        if return_features:
            raise ValueError("features are only returned for an explicit branch")
        distances, (first, second) = self.branch_distances(x)
        chosen = distances.argmin(dim=1)
        self.last_choice = chosen
        return torch.where(chosen.view(-1, 1, 1, 1) == 0, first, second)
