"""Adaptation methods without labels, one class each, in a registry (``lw_adapt --method NAME``).

``bn`` (AdaBN), ``entropy`` (TENT-style) and ``adversarial`` (feature-level adversarial alignment, Dou,
Ouyang et al., IJCAI 2018). Each says which settings it reads; the command refuses the others.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from ..errors import ConfigurationError
from ..inference.model import TrainedModel
from ..log import get_logger
from ..nets import ContrastiveDistillationNet
from .critic import DomainCritic, critic_features, gradient_penalty
from .forward import batch_norms, network_logits, pixel_entropy, sample_batch, set_trainable
from .guard import HeldOutGuard
from .statistics import reestimate_batch_norms
from .target import AdaptationData

logger = get_logger(__name__)


@dataclass(frozen=True)
class AdaptationSettings:
    """Every setting of ``lw_adapt`` (the command's options of the same names). ``steps``/``lr`` None:
    the method's default."""

    method: str = "bn"
    max_slices: int = 48  # evenly spaced slices per scan
    batch_size: int = 16
    seed: int = 0
    steps: int | None = None
    lr: float | None = None
    held_out_share: float = 0.2  # of the scans, for the stopping rule
    max_volume_change: float = 0.3  # relative change of the held-out predicted liver volume that stops
    eval_every: int = 10
    patience: int = 3
    source: str = "auto"  # adversarial: where source features come from (cache, phantoms, auto)
    critic_steps: int = 5
    gradient_penalty: float = 10.0

    def __post_init__(self):
        """Refuse a value out of its range (one line naming the setting), before anything is read."""
        counts = {"max_slices": 1, "batch_size": 1, "steps": 1, "eval_every": 1, "patience": 1, "critic_steps": 1}
        for name, minimum in counts.items():
            value = getattr(self, name)
            if value is not None and value < minimum:
                raise ConfigurationError(f"--{name.replace('_', '-')} {value}: must be at least {minimum}")
        for name, low, high in (("lr", 0, None), ("max_volume_change", 0, None), ("held_out_share", 0, 1)):
            value = getattr(self, name)
            if value is not None and not (low < value and (high is None or value < high)):
                bounds = f"between {low} and {high}" if high is not None else f"above {low}"
                raise ConfigurationError(f"--{name.replace('_', '-')} {value}: must be {bounds}")
        if self.gradient_penalty < 0:
            raise ConfigurationError(f"--gradient-penalty {self.gradient_penalty}: must be at least 0")


SHARED = ("method", "max_slices", "batch_size", "seed")
METHODS: dict = {}


def register_method(cls):
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> AdaptationMethod:
    if name not in METHODS:
        raise ConfigurationError(f"unknown adaptation method {name!r}; available: {', '.join(sorted(METHODS))}")
    return METHODS[name]()


class AdaptationMethod:
    """One way to adapt a trained network to unlabelled target slices."""

    name = ""
    reads: tuple[str, ...] = ()  # settings beyond SHARED that act
    default_steps: int | None = None
    default_lr: float | None = None

    def check_settings(self, given: set) -> None:
        """Refuse options the method would ignore."""
        unused = sorted(given - set(SHARED) - set(self.reads))
        if unused:
            names = ", ".join("--" + u.replace("_", "-") for u in unused)
            raise ConfigurationError(f"--method {self.name} does not use {names}")

    def check_model(self, model: TrainedModel) -> None:
        if model.configuration != "2d":
            raise ConfigurationError(
                f"{model.folder}: a {model.configuration} model; lw_adapt adapts 2D models (the liver models)"
            )

    def adapt(self, model: TrainedModel, data: AdaptationData, settings: AdaptationSettings, device, **kw) -> dict:
        raise NotImplementedError


@register_method
class BatchNormAdaptation(AdaptationMethod):
    """AdaBN (Li et al., Pattern Recognition 2018): every BatchNorm's statistics re-estimated on the target
    scans (:mod:`.statistics`); no weight changes. Cheap and label-free; it helps where the shift is one
    of intensity statistics, and needs several target slices (tens, not a few) to estimate them."""

    name = "bn"

    def check_model(self, model: TrainedModel) -> None:
        super().check_model(model)
        batch_norms(model.net)

    def adapt(self, model, data, settings, device, **kw) -> dict:
        changes = reestimate_batch_norms(model.net, batch_norms(model.net), data, settings.batch_size, device)
        return {"layers": len(changes), "mean_abs_change_of_running_means": changes}


@register_method
class EntropyAdaptation(BatchNormAdaptation):
    """TENT-style (Wang et al., ICLR 2021) entropy minimisation of the BatchNorm affine parameters.

    Follows TENT in what moves (BatchNorm scales and shifts only, Adam) and what is minimised (the mean
    pixel entropy of the predictions). Deviates: the statistics are first re-estimated on the target (as
    ``bn``) and then kept fixed, instead of using each test batch's own, so that the saved model computes
    exactly what was optimised and a mask does not depend on the batch. Stopping rule
    (:class:`.guard.HeldOutGuard`): a share of the scans is held out; the state with the lowest held-out
    entropy is kept, and adaptation stops at once if the held-out predicted liver volume moves by more than
    ``max_volume_change``. Not to be used when the model's masks are already poor on the target: entropy
    minimisation sharpens what the model believes, right or wrong.
    """

    name = "entropy"
    reads = ("steps", "lr", "held_out_share", "max_volume_change", "eval_every", "patience")
    default_steps, default_lr = 100, 1e-3

    def adapt(self, model, data, settings, device, **kw) -> dict:
        net = model.net
        statistics = super().adapt(model, data, settings, device)["layers"]  # bn's re-estimation first
        norms = batch_norms(net)
        adapt_part, held_out = data.split_scans(settings.held_out_share, settings.seed)
        parameters = [p for m in norms for p in (m.weight, m.bias) if p is not None]
        set_trainable(net, parameters)
        net.eval()  # statistics fixed, dropout off
        guard = HeldOutGuard(
            net, held_out, settings.batch_size, device, settings.max_volume_change, settings.patience, "entropy"
        )
        optimizer = torch.optim.Adam(parameters, lr=settings.lr or self.default_lr)
        generator = torch.Generator().manual_seed(settings.seed)
        steps, reason = settings.steps or self.default_steps or 0, None
        for step in range(1, steps + 1):
            features, centre = sample_batch(adapt_part, settings.batch_size, generator, device)
            loss = pixel_entropy(network_logits(net, features, centre))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % settings.eval_every == 0 and (reason := guard.check(step)):
                break
        set_trainable(net, [])
        return {"statistics_layers": statistics, "stop": reason or f"{steps} steps done", **guard.restore()}


@register_method
class AdversarialAdaptation(AdaptationMethod):
    """Feature-level adversarial alignment (Dou, Ouyang et al., IJCAI 2018; the DG tutorial's "domain
    adaptation module" and "domain critic module").

    Follows the paper: the source model stays fixed; its lower layers get a target copy (here the
    distillation head, fed by the frozen teacher) that is trained, against a Wasserstein critic, so that the
    target's code and early decoder features (:func:`.critic.critic_features`) become indistinguishable from
    the source's; the higher layers (the decoder) are shared and frozen. Source features come from the
    model's training cache or, when absent (the shipped default model), from phantoms of each source's
    modality (:mod:`.source`). Deviates: the critic's Lipschitz bound is a gradient penalty (WGAN-GP)
    instead of weight clipping, and the held-out guard (:class:`.guard.HeldOutGuard`, latest acceptable
    state) stops it if the held-out predicted liver volume moves by more than ``max_volume_change``.
    For models with a teacher only. Not to be used with few target scans (a critic fitted to a handful of
    slices aligns noise) or when the source features are phantoms far from the model's real training data.
    """

    name = "adversarial"
    reads: tuple[str, ...] = (
        *("steps", "lr", "held_out_share", "max_volume_change", "eval_every"),
        *("source", "critic_steps", "gradient_penalty"),
    )
    default_steps, default_lr = 200, 1e-4

    def check_model(self, model: TrainedModel) -> None:
        super().check_model(model)
        if model.backbone is None or not isinstance(model.net, ContrastiveDistillationNet):
            raise ConfigurationError(
                f"{model.folder}: an image model (no teacher); adversarial adaptation aligns the head's code "
                "of a teacher model: use --method bn or entropy"
            )

    def adapt(self, model, data, settings, device, *, source_features=None, **kw) -> dict:
        assert source_features is not None and data.features is not None
        net = model.net
        assert isinstance(net, ContrastiveDistillationNet)  # check_model refused the others
        adapt_part, held_out = data.split_scans(settings.held_out_share, settings.seed)
        assert adapt_part.features is not None
        source_head = copy.deepcopy(net.head).eval().requires_grad_(False)
        net.eval()
        set_trainable(net, list(net.head.parameters()))
        with torch.no_grad():
            channels = critic_features(net.head, net.decoder, adapt_part.features[:1].to(device)).shape[1]
        critic = DomainCritic(channels).to(device)
        betas = (0.5, 0.9)
        optimizer_critic = torch.optim.Adam(critic.parameters(), lr=settings.lr or self.default_lr, betas=betas)
        optimizer_head = torch.optim.Adam(net.head.parameters(), lr=settings.lr or self.default_lr, betas=betas)
        guard = HeldOutGuard(
            net, held_out, settings.batch_size, device, settings.max_volume_change, settings.patience, "latest"
        )
        generator = torch.Generator().manual_seed(settings.seed)
        bs, steps, reason, distances = settings.batch_size, settings.steps or self.default_steps or 0, None, []

        def draw(pool: torch.Tensor) -> torch.Tensor:
            return pool[torch.randint(pool.shape[0], (min(bs, pool.shape[0]),), generator=generator)].to(device)

        for step in range(1, steps + 1):
            for _ in range(settings.critic_steps):
                with torch.no_grad():
                    s = critic_features(source_head, net.decoder, draw(source_features))
                    t = critic_features(net.head, net.decoder, draw(adapt_part.features))
                distance = critic(s).mean() - critic(t).mean()
                loss = -distance + settings.gradient_penalty * gradient_penalty(critic, s, t)
                optimizer_critic.zero_grad(set_to_none=True)
                loss.backward()
                optimizer_critic.step()
            distances.append(float(distance.detach()))
            loss = -critic(critic_features(net.head, net.decoder, draw(adapt_part.features))).mean()
            optimizer_head.zero_grad(set_to_none=True)
            loss.backward()
            optimizer_head.step()
            if step % settings.eval_every == 0 and (reason := guard.check(step)):
                break
        set_trainable(net, [])
        summary = guard.restore()
        return {
            "stop": reason or f"{steps} steps done",
            "wasserstein_estimates": distances[:: settings.eval_every],
            **summary,
        }
