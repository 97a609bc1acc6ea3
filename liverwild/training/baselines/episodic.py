"""What the episodic (meta-learning) baselines share: episode splits, the first-order inner step,
the metric embedding and per-domain pixel sampling.

An episode splits the source domains present in a batch into meta-train and meta-test. The inner
step is first-order (the gradient of the meta-train loss is treated as a constant, as first-order
MAML): the fast weights ``θ' = θ − α · clip(∇θ L_task)`` stay differentiable in ``θ`` with Jacobian
one, so the meta-test losses at ``θ'`` send their gradient straight to ``θ``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from ...errors import LiverwildError
from ...losses.alignment import sample_class_pixels
from ..images import DomainBalancedBatchSampler
from .supervised import SupervisedUNetTrainer


def split_episode(domains: torch.Tensor, generator: torch.Generator, n_test: int = 1) -> tuple:
    """``(meta-train domain ids, meta-test domain ids)``: a random ``n_test`` of the domains present
    in ``domains`` (at least one stays for meta-train)."""
    present = torch.unique(domains.cpu())
    if len(present) < 2:
        raise ValueError("an episode needs at least two domains in the batch")
    order = present[torch.randperm(len(present), generator=generator)]
    n_test = min(n_test, len(present) - 1)
    return order[n_test:].tolist(), order[:n_test].tolist()


def first_order_step(network: nn.Module, loss: torch.Tensor, lr: float, clip: float | None) -> dict:
    """Fast weights ``{name: θ − lr · g}`` with ``g`` the gradient of ``loss`` (detached; scaled so that
    its global norm is at most ``clip``)."""
    names = [n for n, p in network.named_parameters() if p.requires_grad]
    params = [p for p in network.parameters() if p.requires_grad]
    raw = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, raw)]
    scale = 1.0
    if clip:
        norm = float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads])))
        scale = min(1.0, clip / (norm + 1e-12))
    return {n: p - lr * scale * g for n, p, g in zip(names, params, grads)}


def forward_with(network: nn.Module, weights: dict, x: torch.Tensor) -> tuple:
    """``(logits, last decoder features)`` of ``network`` with ``weights`` in place of its parameters."""
    return functional_call(network, weights, (x,), {"return_features": True})


class MetricEmbedding(nn.Sequential):
    """``M_φ``: per-pixel two-layer 1×1 MLP on the decoder features → unit-length embeddings."""

    def __init__(self, in_channels: int, channels: int):
        super().__init__(nn.Conv2d(in_channels, channels, 1), nn.ReLU(inplace=True), nn.Conv2d(channels, channels, 1))

    def forward(self, x):
        return F.normalize(super().forward(x.float()), dim=1)


class EpisodicTrainer(SupervisedUNetTrainer):
    """Batches hold ``batch_size`` slices of every source; each step is one episode.

    Not under torchrun: the inner step updates a functional copy of the weights outside the network's
    forward, which DistributedDataParallel cannot synchronise.
    """

    min_sources = 2
    supports_distributed = False
    config_groups = SupervisedUNetTrainer.config_groups | {"episodic"}

    def build_datasets(self):
        super().build_datasets()
        if len(self.sources) < self.min_sources:
            raise LiverwildError(
                f"{self.name()} needs at least two source datasets (episodes split them into "
                f"meta-train and meta-test); fold {self.fold_name} has {len(self.sources)}"
            )
        self.episodes = torch.Generator().manual_seed(self.config.seed)

    def build_auxiliary(self) -> nn.ModuleDict:
        return nn.ModuleDict({"metric": MetricEmbedding(self.network.feature_channels, self.config.embedding_channels)})

    def batch_sampler(self, epoch: int):
        per_domain = self.config.batch_size
        steps = self.config.steps_per_epoch or max(1, math.ceil(len(self.train_set) / (per_domain * len(self.sources))))
        sampler = DomainBalancedBatchSampler(self.train_set.domains, per_domain, steps, self.config.seed)
        sampler.epoch = epoch
        self.episodes.manual_seed(self.config.seed * 100003 + epoch)  # episode splits: same on resume
        return sampler

    @property
    def inner_lr(self) -> float:
        return self.config.inner_lr if self.config.inner_lr is not None else self.config.lr

    def pixels(self, features: torch.Tensor, labels: torch.Tensor) -> tuple:
        """Sampled unit embeddings and classes of at most ``pixels_per_class`` pixels per class."""
        return sample_class_pixels(
            self.auxiliary["metric"](features), labels, self.config.pixels_per_class, self.episodes
        )


def members(domains: torch.Tensor, ids) -> torch.Tensor:
    """Boolean mask of the batch items whose domain is in ``ids``."""
    return torch.isin(domains, torch.as_tensor(list(ids), device=domains.device))


def mixture_indices(domains: torch.Tensor, rng: np.random.Generator, size: int) -> torch.Tensor:
    """``size`` batch items drawn with random domain fractions (Dirichlet(1) over the domains present),
    each domain's share drawn from its own items (with replacement when it has too few)."""
    present = torch.unique(domains.cpu()).tolist()
    counts = rng.multinomial(size, rng.dirichlet(np.ones(len(present))))
    chosen = []
    for domain, count in zip(present, counts):
        items = torch.nonzero(domains.cpu() == domain).flatten().numpy()
        if count:
            chosen += rng.choice(items, int(count), replace=len(items) < count).tolist()
    return torch.as_tensor(chosen, dtype=torch.long)
