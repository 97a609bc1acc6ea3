"""``train_fold``: what ``lw_train`` calls."""

from __future__ import annotations

from ..device import configure_cpu_threads
from ..paths import preprocessed_folder, results_folder
from .config import TrainerConfig
from .trainers import get_trainer


def train_fold(
    fold_name: str,
    trainer: str = "ContrastiveDistillationTrainer",
    preprocessed=None,
    results=None,
    device="auto",
    continue_training: bool = False,
    config: TrainerConfig | None = None,
    progress: bool = True,
    threads: int | None = None,
    log=print,
) -> dict:
    """Train the fold ``fold_name`` of ``$LW_preprocessed/splits.json``; returns a summary dict."""
    from preprocessing.splits import get_fold

    pre = preprocessed_folder(preprocessed, must_exist=True)
    res = results_folder(results)
    configure_cpu_threads(threads)
    fold = get_fold(pre / "splits.json", fold_name)
    cls = get_trainer(trainer)
    return cls(fold_name, fold, pre, res, config, device, log).fit(continue_training, progress)
