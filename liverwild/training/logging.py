"""Per-epoch training log as JSON and CSV, and a progress plot."""

from __future__ import annotations

from pathlib import Path

from ..atomic import atomic_path, write_json_atomic


def write_log(history: list, folder) -> None:
    """``log.json`` (list of epoch dicts) and ``log.csv`` (one row per epoch, union of keys)."""
    import pandas as pd

    folder = Path(folder)
    write_json_atomic(folder / "log.json", history)
    with atomic_path(folder / "log.csv", ".csv") as tmp:
        pd.DataFrame(history).to_csv(tmp, index=False, float_format="%.6g")


def plot_progress(history: list, path) -> Path:
    """Losses per term, validation Dice, learning rate and code similarities (3d runs: validation Dice
    per organ) against the epoch."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..visualization import save_figure_atomic

    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8), dpi=90)
    for key in sorted({k for h in history for k in h if k.startswith("loss")}):
        axes[0].plot(epochs, [h.get(key) for h in history], label=key)
    axes[0].set_title("training losses")
    axes[0].legend(fontsize=7)
    axes[1].plot(epochs, [h.get("val_dice") for h in history], "o-", label="validation Dice")
    axes[1].set_ylim(0, 1)
    ax_lr = axes[1].twinx()
    ax_lr.semilogy(epochs, [h.get("lr") for h in history], "k:", label="lr")
    axes[1].set_title("validation Dice (dotted: learning rate)")
    organs = sorted({k for h in history for k in h if k.startswith("val_dice_")})
    for key in organs or ("sim_self", "sim_pos", "sim_neg"):
        if any(key in h for h in history):
            axes[2].plot(epochs, [h.get(key) for h in history], label=key.removeprefix("val_dice_"))
    axes[2].set_title("validation Dice per organ" if organs else "mean code similarity")
    if axes[2].lines:
        axes[2].legend(fontsize=7)
    else:
        axes[2].text(0.5, 0.5, "no distillation loss", ha="center", va="center", transform=axes[2].transAxes)
    for ax in axes:
        ax.set_xlabel("epoch")
    fig.tight_layout()
    try:
        return save_figure_atomic(fig, path)
    finally:
        plt.close(fig)
