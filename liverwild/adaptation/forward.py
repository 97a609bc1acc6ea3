"""The trainable network on adaptation data: forward passes in batches, liver probabilities, entropy, and
the network's normalisation layers."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import nn

from ..errors import ConfigurationError
from ..nets import liver_logits
from .target import AdaptationData


def batches(data: AdaptationData, batch_size: int, device) -> Iterator[tuple[torch.Tensor | None, torch.Tensor]]:
    """``(features or None, centre slices)`` on ``device``, in order."""
    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        features = None if data.features is None else data.features[start:stop].to(device)
        yield features, data.centre[start:stop].to(device)


def sample_batch(data: AdaptationData, batch_size: int, generator: torch.Generator, device) -> tuple:
    """A random batch ``(features or None, centre slices)`` of ``data``."""
    rows = torch.randint(len(data), (min(batch_size, len(data)),), generator=generator)
    features = None if data.features is None else data.features[rows].to(device)
    return features, data.centre[rows].to(device)


def network_logits(net: nn.Module, features: torch.Tensor | None, centre: torch.Tensor) -> torch.Tensor:
    """All output logits ``(B, K, H, W)``: a teacher model's head and decoder on ``features``, or an image
    model (U-Net) on ``centre``."""
    if features is None:
        return net(centre)
    return net(features, centre)[0]


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """``(B, K, H, W)`` probabilities summing to 1 over ``K``: ``(1 − p, p)`` for one liver logit, else the
    softmax."""
    if logits.shape[1] == 1:
        p = torch.sigmoid(logits.float())
        return torch.cat([1 - p, p], dim=1)
    return torch.softmax(logits.float(), dim=1)


def pixel_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean Shannon entropy (nats) of the per-pixel class distribution."""
    p = class_probabilities(logits)
    return -(p * torch.log(p.clamp_min(1e-8))).sum(dim=1).mean()


@torch.no_grad()
def held_out_measures(net: nn.Module, data: AdaptationData, batch_size: int, device) -> dict:
    """``{entropy, liver_pixels}`` of ``data``: mean pixel entropy and the number of pixels whose liver
    probability is ≥ 0.5 (the predicted volume, in 224² slice pixels)."""
    entropy, pixels, n = 0.0, 0, 0
    for features, centre in batches(data, batch_size, device):
        logits = network_logits(net, features, centre)
        entropy += float(pixel_entropy(logits)) * centre.shape[0]
        pixels += int((torch.sigmoid(liver_logits(logits.float())) >= 0.5).sum())
        n += centre.shape[0]
    return {"entropy": entropy / max(n, 1), "liver_pixels": pixels}


def batch_norms(net: nn.Module) -> list[nn.BatchNorm2d]:
    """The network's BatchNorm layers; a network whose normalisation has several branches (DualNorm,
    MS-Net) is refused, for its test-time branch choice already adapts to the scan."""
    if any(hasattr(m, "set_branch") for m in net.modules()):
        raise ConfigurationError(
            "this network has several normalisation branches (DualNorm, MS-Net) chosen per slice at test time; "
            "bn and entropy adaptation are not defined for it"
        )
    norms = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    if not norms:
        raise ConfigurationError("this network has no BatchNorm layer to adapt")
    return norms


def set_trainable(net: nn.Module, parameters: list[nn.Parameter]) -> None:
    """Freeze every parameter of ``net`` except ``parameters``."""
    keep = {id(p) for p in parameters}
    for p in net.parameters():
        p.requires_grad_(id(p) in keep)
