"""The stopping rule of the iterative methods: held-out target scans watch the predicted liver volume and
the entropy, so that an adaptation cannot run away (collapse to an empty or a full mask)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

from torch import nn

from .forward import held_out_measures
from .target import AdaptationData


@dataclass
class HeldOutGuard:
    """Keeps the best acceptable state of ``net``.

    A state is acceptable while the held-out predicted liver volume stays within ``max_volume_change``
    (relative) of the volume before adaptation; among acceptable states the one with the lowest held-out
    entropy (``select="entropy"``) or the latest (``select="latest"``) is kept. :meth:`check` says when to
    stop: at the first unacceptable state, or after ``patience`` checks without a better entropy.
    """

    net: nn.Module
    held_out: AdaptationData
    batch_size: int
    device: object
    max_volume_change: float
    patience: int
    select: str = "entropy"
    history: list = field(default_factory=list)

    def __post_init__(self) -> None:
        self.start = held_out_measures(self.net, self.held_out, self.batch_size, self.device)
        self.history.append({"step": 0, **self.start, "volume_change": 0.0})
        self.best_state = copy.deepcopy(self.net.state_dict())
        self.best_step, self.best_entropy, self.stale = 0, self.start["entropy"], 0
        # a model that finds (almost) no liver: changes are measured against 0.1 % of the held-out pixels
        pixels = len(self.held_out) * int(self.held_out.centre.shape[-1]) * int(self.held_out.centre.shape[-2])
        self.volume_floor = max(self.start["liver_pixels"], 1e-3 * pixels)

    def check(self, step: int) -> str | None:
        """Measure the current state; returns why to stop, or None to go on."""
        was_training = self.net.training
        self.net.eval()
        now = held_out_measures(self.net, self.held_out, self.batch_size, self.device)
        self.net.train(was_training)
        change = abs(now["liver_pixels"] - self.start["liver_pixels"]) / self.volume_floor
        self.history.append({"step": step, **now, "volume_change": change})
        if change > self.max_volume_change:
            return f"held-out liver volume changed by {change:.0%} (bound {self.max_volume_change:.0%}) at step {step}"
        if self.select == "latest" or now["entropy"] < self.best_entropy:
            self.best_state = copy.deepcopy(self.net.state_dict())
            self.best_step, self.best_entropy, self.stale = step, min(now["entropy"], self.best_entropy), 0
            return None
        self.stale += 1
        if self.stale >= self.patience:
            return f"held-out entropy did not improve in {self.patience} checks (step {step})"
        return None

    def restore(self) -> dict:
        """Load the kept state into the network; returns the summary for the report."""
        self.net.load_state_dict(self.best_state)
        return {"kept_step": self.best_step, "held_out_start": self.start, "history": self.history}
