"""Which recipe each row of a report was trained with, stated beside the tables: for the ``3d`` rows, the
feature loss and its λ (``feature_weight``), layers and width, read from each run's configuration record
(:mod:`.records`) — rows such as ``Siamese3DTrainer`` (the tuned λ) and ``Siamese3DPaperWeightTrainer``
(the paper's λ read literally) differ by these values alone."""

from __future__ import annotations

RECIPE_FIELDS = ("feature_weight", "feature_placement", "feature_layers", "feature_hidden")


def describe_recipe(trainer: str, config: dict) -> str | None:
    """One ``3d`` run's recipe in words (None for a 2D trainer, or one this installation does not register):
    its loss, and for the representation rows λ, the layers the feature loss sits on and the layers' width."""
    from ..training import TRAINERS

    cls = TRAINERS.get(trainer)
    if cls is None or cls.configuration != "3d":
        return None
    if "voxel_features" not in cls.config_groups:
        return "soft Dice alone (no feature loss)"
    loss = "supervised contrastive" if "supervised_contrastive" in cls.config_groups else "SimSiam"
    weight, placement, layers, hidden = (config.get(k) for k in RECIPE_FIELDS)
    return (
        f"soft Dice + λ · {loss} feature loss, λ = {weight:g} (feature_weight), on the last {layers} "
        f"{placement} layers, width {hidden}"
    )


def row_recipes(plan, configs: dict) -> dict:
    """``{row: its recipe}`` for the plan's ``3d`` rows (``configs``: run key → the run's configuration);
    a row whose runs differ lists each recipe."""
    from .measured import row_of

    rows: dict = {}
    for run in plan.runs:
        described = describe_recipe(run.trainer, configs.get(run.key, {}))
        if described is not None:
            rows.setdefault(row_of(run, plan), set()).add(described)
    return {row: "; or ".join(sorted(ways)) for row, ways in rows.items()}


def recipe_section(recipes: dict) -> list:
    """Markdown lines naming each row's recipe (none when no row is a ``3d`` trainer)."""
    if not recipes:
        return []
    return ["Recipe per row:", "", *(f"- {row}: {recipe}" for row, recipe in recipes.items()), ""]
