"""The frozen teacher: z-scored slices ``(B, 1, H, W)`` → feature maps ``(B, C, h, w)``.

Built from the :class:`~.config.TeacherConfig` that plans record (:func:`~.registry.teacher_config`): the timm
architecture, its weights (loaded with ``strict=True``), the input scaling (:mod:`.scaling`) and the
feature tap. The model stays in ``eval()`` mode without gradients; layers after the deepest tap are
pruned (timm's ``prune_intermediate_layers``), so a stride-16 tap costs only the layers it uses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigurationError
from .config import TeacherConfig
from .registry import MISSING_WEIGHTS, TAP_GRID_STRIDE, is_vit, teacher_config
from .scaling import RULE, scale_and_shift, teacher_input
from .weights import (
    RANDOM_WEIGHTS_SEED,
    adapt_state_dict,
    cached_timm_weights,
    fit_position_embedding,
    read_weights,
    weights_file,
)


def create_teacher_network(config: TeacherConfig) -> nn.Module:
    """The full timm model of a teacher config with its weights loaded (classifier kept when the
    weights carry one). Raises :class:`ConfigurationError` naming the source when they do not fit."""
    import timm

    name, weights = config.name, config.weights
    if weights is None:
        raise ConfigurationError(MISSING_WEIGHTS.format(name=config.teacher or name))
    source = None
    if weights == "timm-cache":
        source = cached_timm_weights(name)
        if source is None:
            raise ConfigurationError(f"timm's cache holds no weights for {name}; " + MISSING_WEIGHTS.format(name=name))
    elif weights != "random":
        source = weights_file(weights)
    state = None
    if source is not None:
        state = read_weights(source, config.key_mapping)
    keeps_classifier = state is not None and config.key_mapping is not None
    model_args = dict(config.model_args or {})
    if not keeps_classifier:
        model_args["num_classes"] = 0
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_WEIGHTS_SEED)  # 'random' weights are reproducible everywhere
            model = timm.create_model(name, pretrained=False, **model_args)
    except RuntimeError as exc:
        raise ConfigurationError(f"backbone {name!r} is unknown to timm: {exc}") from exc
    if state is not None:
        if not keeps_classifier:  # a feature extractor needs no classifier weights
            head = (getattr(model, "pretrained_cfg", None) or {}).get("classifier") or "head"
            state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
        state = adapt_state_dict(state, model, config.key_mapping)
        if config.model_args:  # built for another input size than the weights may have been made for
            state = fit_position_embedding(state, model)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ConfigurationError(f"{weights}: weights do not fit {name} ({first})") from exc
    return model.eval().requires_grad_(False)


class FrozenBackbone(nn.Module):
    """A frozen teacher. ``FrozenBackbone("imagenet-effnet-lite0")``, ``FrozenBackbone("dino-vits16",
    "dino_deitsmall16_pretrain.pth")``, ``FrozenBackbone("vit_tiny_patch16_224", "random")``, or
    :meth:`from_config` with a plans ``backbone`` (:class:`~.config.TeacherConfig`).

    Input: z-scored slices ``(B, 1, H, W)`` (or 3-channel). Output: ``(B, feature_channels, *feature_size)``.
    """

    model: Any  # a timm model: forward_features, forward_intermediates, prune_intermediate_layers
    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(
        self,
        name: str | None = None,
        weights: str | None = None,
        tap: str | None = None,
        image_size: int = 224,
        config: TeacherConfig | None = None,
    ):
        super().__init__()
        self.config = config if config is not None else teacher_config(name, weights, tap)
        rule = self.config.input.rule
        if rule != RULE:
            raise ConfigurationError(
                f"backbone input rule {rule!r} is not supported (expected {RULE!r}); this "
                "configuration comes from an older liverwild: re-plan with --replan"
            )
        self.name, self.weights = self.config.name, self.config.weights
        self.tap = self.config.tap
        self.model = create_teacher_network(self.config)
        self.vit = is_vit(self.model)
        if self.tap.kind == "intermediates":
            self.model.prune_intermediate_layers(self.tap.indices, prune_norm=not self.tap.norm, prune_head=True)
        scale, shift = scale_and_shift(self.config.input.pixel_mean, self.config.input.pixel_std)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("shift", shift, persistent=False)
        self.image_size = image_size
        self.grid = image_size // TAP_GRID_STRIDE
        with torch.no_grad():
            probe = self.forward(torch.zeros(1, 1, image_size, image_size))
        self.feature_channels, self.feature_size = int(probe.shape[1]), tuple(probe.shape[2:])

    @classmethod
    def from_config(cls, config: TeacherConfig, image_size: int = 224) -> FrozenBackbone:
        return cls(image_size=image_size, config=config)

    def train(self, mode: bool = True):
        """Always stays in eval mode: the backbone is frozen."""
        return super().train(False)

    def _tokens_to_map(self, tokens: torch.Tensor) -> torch.Tensor:
        tokens = tokens[:, getattr(self.model, "num_prefix_tokens", 1) :, :]  # drop CLS/register tokens
        n = int(tokens.shape[1])  # a Python int also while tracing (lw_export --onnx)
        h = w = int(round(n**0.5))
        if h * w != n:
            raise ValueError(f"cannot reshape {n} tokens into a square map")
        return tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], h, w)

    def _on_grid(self, maps: list) -> torch.Tensor:
        if len(maps) == 1:
            return maps[0]
        size = (self.grid, self.grid)
        resized = [
            m
            if tuple(m.shape[-2:]) == size
            else F.adaptive_avg_pool2d(m, size)
            if m.shape[-1] > self.grid
            else F.interpolate(m, size=size, mode="bilinear", align_corners=False)
            for m in maps
        ]
        return torch.cat(resized, dim=1)

    @torch.no_grad()
    def forward(self, slices: torch.Tensor) -> torch.Tensor:
        x = teacher_input(slices, self.scale, self.shift)
        if self.tap.kind == "final":
            features = self.model.forward_features(x)
            return self._tokens_to_map(features) if features.ndim == 3 else features
        maps = self.model.forward_intermediates(
            x, indices=self.tap.indices, norm=self.tap.norm, stop_early=True, intermediates_only=True
        )
        return self._on_grid(list(maps))

    def describe(self) -> dict:
        return {
            **{k: v for k, v in self.config.to_json().items() if k != "weights"},
            "feature_channels": self.feature_channels,
            "feature_size": list(self.feature_size),
        }
