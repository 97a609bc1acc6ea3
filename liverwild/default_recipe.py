"""The default model's recipe: every choice that decides it, as one typed value (no torch import, so
command lines can build their options from it)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Recipe:
    """Everything that decides the default model. Changing any value changes the model.

    The values are the configuration ``effnet_s16_long`` of ``benchmarks/bench_default_recipe.py``, the
    one measured over three seeds (documentation/default_model.md, "Choosing the recipe")."""

    teacher: str = "imagenet-effnet-lite0"
    tap: str | None = None  # the teacher's default tap
    slice_context: str = "slice"  # or "neighbours": the slices above and below fill the teacher's channels
    trainer: str = "ContrastiveDistillationTrainer"
    ct_cases: int = 10
    mr_cases: int = 10
    max_slices: int = 32
    views: int = 1
    val_per_source: int = 2
    epochs: int = 16
    steps_per_epoch: int = 75
    batch_size: int = 8
    lr: float = 3e-3
    seed: int = 0

    def quick(self) -> Recipe:
        """A tiny version for smoke tests (a useless model, built in about a minute)."""
        return replace(
            self, ct_cases=4, mr_cases=4, max_slices=12, views=0, val_per_source=1, epochs=2, steps_per_epoch=6
        )
