"""A plain 2D U-Net on normalised slices, for the baselines that learn from images (no teacher).

``UNet2d(slices)`` → logits ``(B, 1, H, W)`` from slices ``(B, 1, H, W)``; ``H`` and ``W`` must be
divisible by ``2**depth`` (224 with the default depth 4: 224 → 112 → 56 → 28 → 14).
``forward(x, return_features=True)`` also returns the last decoder feature map ``(B, base, H, W)``:
the semantic features the meta-learning baselines align and cluster. The final layer is a 1×1
convolution, so the logit of a mean feature is the mean of the logits.

Domain-specific normalisation: ``norm="domain"`` gives every normalisation layer ``n_domains``
BatchNorms (:class:`DomainBatchNorm2d`) behind shared convolutions — MS-Net's site-specific and Dou et
al.'s modality-specific BatchNorm; see :class:`DomainNormUNet2d`. ``norm="dual"`` is its two-branch case
as Zhou et al.'s dual-normalisation network (CVPR 2022) saves it: :class:`DualNormUNet2d`.
"""

from __future__ import annotations

import torch
from torch import nn


class DomainBatchNorm2d(nn.Module):
    """``n_domains`` BatchNorms over the same channels. ``branch`` says which one a forward uses: an int
    for the whole batch, or a ``(B,)`` integer tensor with each sample's domain — then the samples of
    each domain are normalised together by that domain's BatchNorm (in training with that sub-batch's
    statistics, and only that domain's running statistics move)."""

    def __init__(self, channels: int, n_domains: int = 2):
        super().__init__()
        if n_domains < 1:
            raise ValueError(f"n_domains must be at least 1, not {n_domains}")
        self.norms = nn.ModuleList([nn.BatchNorm2d(channels) for _ in range(n_domains)])
        self.branch: int | torch.Tensor = 0
        self.record: list | None = None  # when a list: per-sample input statistics are appended

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.record is not None:
            self.record.append((x.float().mean(dim=(2, 3)), x.float().var(dim=(2, 3), unbiased=False)))
        if not isinstance(self.branch, torch.Tensor):
            return self.norms[self.branch](x)
        domains = self.branch.to(x.device)
        if domains.shape != x.shape[:1]:
            raise ValueError(f"one domain per sample: {tuple(domains.shape)} for a batch of {x.shape[0]}")
        parts, rows = [], []
        for d in torch.unique(domains).tolist():
            idx = torch.nonzero(domains == d).flatten()
            parts.append(self.norms[d](x.index_select(0, idx)))
            rows.append(idx)
        return torch.cat(parts)[torch.argsort(torch.cat(rows))]  # back to the batch's order


class DualBatchNorm2d(DomainBatchNorm2d):
    """Two BatchNorms over the same channels (DualNorm's): :class:`DomainBatchNorm2d` with two domains."""

    def __init__(self, channels: int):
        super().__init__(channels, 2)


def _norm(kind: str, channels: int, n_domains: int) -> nn.Module:
    if kind == "dual":
        return DualBatchNorm2d(channels)
    return DomainBatchNorm2d(channels, n_domains) if kind == "domain" else nn.BatchNorm2d(channels)


class ConvBlock(nn.Sequential):
    """Two 3×3 convolution – normalisation – ReLU layers (dropout after the second)."""

    def __init__(self, cin: int, cout: int, norm: str, dropout: float, n_domains: int = 2):
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            _norm(norm, cout, n_domains),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            _norm(norm, cout, n_domains),
            nn.ReLU(inplace=True),
            nn.Dropout2d(dropout) if dropout else nn.Identity(),
        )


class UNet2d(nn.Module):
    """Encoder of ``depth + 1`` levels with ``base · 2^l`` channels (2×2 max-pooling between), decoder of
    transposed 2×2 convolutions and skip concatenation, and a 1×1 convolution to one logit. ``norm``:
    ``"batch"``, ``"dual"`` or ``"domain"`` (``n_domains`` BatchNorms per layer, kept in the config)."""

    architecture = "unet2d"

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
        norm: str = "batch",
        n_domains: int = 2,
    ):
        super().__init__()
        if norm not in ("batch", "dual", "domain"):
            raise ValueError(f"norm must be 'batch', 'dual' or 'domain', not {norm!r}")
        self.config = {
            "architecture": self.architecture,
            "in_channels": in_channels,
            "base_channels": base_channels,
            "depth": depth,
            "dropout": dropout,
            "norm": norm,
        }
        if norm == "domain":
            self.config["n_domains"] = n_domains
        widths = [base_channels * 2**level for level in range(depth + 1)]
        self.encoder = nn.ModuleList(
            [ConvBlock(in_channels, widths[0], norm, 0.0, n_domains)]
            + [ConvBlock(widths[i - 1], widths[i], norm, dropout, n_domains) for i in range(1, depth + 1)]
        )
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[i], widths[i - 1], 2, stride=2) for i in range(depth, 0, -1))
        self.decoder = nn.ModuleList(
            ConvBlock(2 * widths[i - 1], widths[i - 1], norm, 0.0, n_domains) for i in range(depth, 0, -1)
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


class DomainNormUNet2d(UNet2d):
    """The U-Net with shared convolutions and ``n_domains`` BatchNorm branches per layer.

    ``set_branch`` chooses how a forward normalises: one branch ``k`` for the whole batch, a ``(B,)``
    tensor of branches (each sample through its own domain's BatchNorms: training on several domains at
    once), or ``"auto"``. In evaluation mode with ``"auto"`` every slice is run through every branch and
    keeps the output of the branch whose BatchNorm running statistics are nearest to the slice's own
    feature statistics (sum over all normalisation layers of the L2 distances between means and
    between variances) — Zhou et al.'s test-time choice, made per slice; ``last_choice`` holds it."""

    architecture = "domain_norm_unet2d"

    def __init__(
        self,
        in_channels: int = 1,
        base_channels: int = 16,
        depth: int = 4,
        dropout: float = 0.0,
        n_domains: int = 2,
        norm: str = "domain",
    ):
        if norm not in ("domain", "dual"):
            raise ValueError(f"{type(self).__name__} normalises per domain: norm 'domain' or 'dual', not {norm!r}")
        super().__init__(in_channels, base_channels, depth, dropout, norm, 2 if norm == "dual" else n_domains)
        self.config["architecture"] = self.architecture
        self.n_domains = 2 if norm == "dual" else n_domains
        self.branch: int | str | torch.Tensor = "auto"

    def domain_norms(self) -> list:
        return [m for m in self.modules() if isinstance(m, DomainBatchNorm2d)]

    def set_branch(self, branch: int | str | torch.Tensor) -> None:
        """A branch index, a ``(B,)`` tensor of branch indices (one per sample), or ``"auto"``."""
        self.branch = branch
        if isinstance(branch, str):
            if branch != "auto":
                raise ValueError(f"branch must be an index, a tensor of indices or 'auto', not {branch!r}")
            return
        for m in self.domain_norms():
            m.branch = branch if isinstance(branch, torch.Tensor) else int(branch)

    def branch_distances(self, x: torch.Tensor) -> tuple:
        """``(distances (B, n_domains), logits per branch [(B, 1, H, W)] × n_domains)``."""
        norms = self.domain_norms()
        distances, outputs = [], []
        for branch in range(self.n_domains):
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
        auto = isinstance(self.branch, str)
        if not auto or self.training:
            if auto:
                raise RuntimeError(f"{type(self).__name__}: choose a branch (set_branch) for training")
            return super().forward(x, return_features)
        if return_features:
            raise ValueError("features are only returned for an explicit branch")
        distances, outputs = self.branch_distances(x)
        chosen = distances.argmin(dim=1)
        self.last_choice = chosen
        return torch.stack(outputs)[chosen, torch.arange(x.shape[0], device=x.device)]


class DualNormUNet2d(DomainNormUNet2d):
    """The U-Net with dual normalisation (Zhou et al., CVPR 2022): branch 0 is trained on source-similar
    images, branch 1 on source-dissimilar ones (``set_branch``); ``"auto"`` in evaluation mode chooses
    per slice by the nearest running statistics, as :class:`DomainNormUNet2d`."""

    architecture = "dual_norm_unet2d"

    def __init__(
        self, in_channels: int = 1, base_channels: int = 16, depth: int = 4, dropout: float = 0.0, norm: str = "dual"
    ):
        super().__init__(in_channels, base_channels, depth, dropout, 2, "dual")
