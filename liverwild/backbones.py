"""Frozen self-supervised backbones (timm) that turn 224×224 slices into feature maps.

``FrozenBackbone(name, weights)`` wraps any timm model whose ``forward_features`` yields either a
spatial map ``(B, C, h, w)`` (CNNs) or tokens ``(B, prefix + h·w, C)`` (ViTs; prefix tokens such as
CLS are dropped). Input: normalised slices ``(B, 1, 224, 224)``; they are replicated to 3 channels and
standardised with the plan's mean/std (ImageNet's by default). The model is in ``eval()`` mode and
has no gradients.

Weights never come from the network. ``weights`` is one of:

- a path to a DINO ``.pth`` (plain state dict, or a training checkpoint with ``teacher``/``student``;
  ``module.``/``backbone.`` prefixes and projection ``head.`` keys are removed) or a timm
  ``.safetensors``/``.pth`` file — loaded with ``strict=True``;
- ``"timm-cache"`` — timm's own pretrained weights, only if already in the local cache;
- ``"random"`` — random initialisation, for tests and the demo only; recorded as such downstream. It is
  seeded (``RANDOM_WEIGHTS_SEED``), so prediction rebuilds the very backbone the cache was made with.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigurationError

DEFAULT_BACKBONE = "vit_small_patch16_224.dino"
RANDOM_WEIGHTS_SEED = 0
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

MISSING_WEIGHTS = ("no backbone weights for {name}: pass --backbone-weights FILE (official DINO .pth or a timm "
                   ".safetensors file), or use 'timm-cache' when timm's cache already holds them. Model hubs "
                   "are not reached. For tests and the demo only, --random-backbone uses random weights.")


def _unwrap_state_dict(obj) -> dict:
    for key in ("teacher", "state_dict", "model", "student"):
        if isinstance(obj, dict) and key in obj and isinstance(obj[key], dict):
            obj = obj[key]
            break
    out = {}
    for k, v in obj.items():
        for prefix in ("module.", "backbone."):
            if k.startswith(prefix):
                k = k[len(prefix):]
        if k.startswith("head."):
            continue                                    # DINO projection head, not part of the backbone
        out[k] = v
    return out


def load_state_dict_file(path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigurationError(f"{path}: backbone weights file does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return _unwrap_state_dict(load_file(str(path)))
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 — any unpickling failure is a bad file
        raise ConfigurationError(f"{path}: cannot be read as a PyTorch checkpoint ({exc})") from exc
    return _unwrap_state_dict(obj)


def cached_timm_weights(name: str):
    """Path of ``name``'s pretrained weights in the local Hugging Face or torch-hub cache, or None.

    Looks only at the disk; never contacts a hub.
    """
    import timm
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except Exception:  # noqa: BLE001
        cfg = None
    if cfg is None:
        return None
    if getattr(cfg, "hf_hub_id", None):
        from huggingface_hub import try_to_load_from_cache
        for filename in ("model.safetensors", "pytorch_model.bin", "open_clip_pytorch_model.bin"):
            found = try_to_load_from_cache(cfg.hf_hub_id, filename)
            if isinstance(found, str) and Path(found).is_file():
                return found
    if getattr(cfg, "url", None):
        candidate = Path(torch.hub.get_dir()) / "checkpoints" / Path(cfg.url).name
        if candidate.is_file():
            return str(candidate)
    return None


def weights_tag(weights) -> str:
    """Short, stable description of a weights source for plans and data identifiers."""
    if weights in ("random", "timm-cache"):
        return weights
    digest = hashlib.sha256()
    with open(weights, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            digest.update(chunk)
    return f"file-{digest.hexdigest()[:10]}"


class FrozenBackbone(nn.Module):
    """A frozen timm feature extractor: ``(B, 1, H, W)`` slices → ``(B, C, h, w)`` feature maps."""

    def __init__(self, name: str = DEFAULT_BACKBONE, weights=None, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                 image_size: int = 224):
        super().__init__()
        import timm
        if weights is None:
            raise ConfigurationError(MISSING_WEIGHTS.format(name=name))
        self.name, self.weights = name, str(weights)
        try:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(RANDOM_WEIGHTS_SEED)    # 'random' weights are reproducible everywhere
                self.model = timm.create_model(name, pretrained=False, num_classes=0)
        except RuntimeError as exc:
            raise ConfigurationError(f"backbone {name!r} is unknown to timm: {exc}") from exc
        source = weights
        if weights == "timm-cache":
            source = cached_timm_weights(name)
            if source is None:
                raise ConfigurationError(f"timm's cache holds no weights for {name}; "
                                         + MISSING_WEIGHTS.format(name=name))
        if weights != "random":
            state = load_state_dict_file(source)
            try:
                self.model.load_state_dict(state, strict=True)
            except RuntimeError as exc:
                first = str(exc).splitlines()[0]
                raise ConfigurationError(f"{weights}: weights do not fit {name} ({first})") from exc
        self.model.eval().requires_grad_(False)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.image_size = image_size
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, 1, image_size, image_size))
        self.feature_channels, self.feature_size = probe.shape[1], tuple(probe.shape[2:])

    def train(self, mode: bool = True):
        """Always stays in eval mode: the backbone is frozen."""
        return super().train(False)

    @torch.no_grad()
    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        x = slices.expand(-1, 3, -1, -1) if slices.shape[1] == 1 else slices
        x = (x - self.mean) / self.std
        features = self.model.forward_features(x)
        if features.ndim == 3:                              # ViT tokens: drop CLS/register tokens
            prefix = getattr(self.model, "num_prefix_tokens", 1)
            tokens = features[:, prefix:, :]
            n = tokens.shape[1]
            h = w = int(round(n ** 0.5))
            if h * w != n:
                raise ValueError(f"cannot reshape {n} tokens into a square map")
            features = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)
        return features

    def describe(self) -> dict:
        return {"name": self.name, "weights": weights_tag(self.weights) if self.weights else None,
                "feature_channels": int(self.feature_channels), "feature_size": list(self.feature_size)}
