"""``train_fold``: what ``lw_train`` calls."""

from __future__ import annotations

from ..device import configure_cpu_threads
from ..distributed import distributed_session
from ..paths import preprocessed_folder, results_folder
from .config import TrainerConfig
from .registry import get_trainer


def train_fold(
    fold_name: str,
    trainer: str = "ContrastiveDistillationTrainer",
    *,
    preprocessed=None,
    results=None,
    device="auto",
    continue_training: bool = False,
    config: TrainerConfig | None = None,
    progress: bool = True,
    threads: int | None = None,
) -> dict:
    """Train (or resume) one fold of ``$LW_preprocessed/splits.json`` — what ``lw_train`` runs.

    Under ``torchrun --nproc_per_node N lw_train ...`` the processes train together with
    DistributedDataParallel (``config.batch_size`` per process, rank 0 validates and writes).

    Args:
        fold_name: a fold of ``splits.json``, e.g. ``"loo_BTCV"``.
        trainer: a registered trainer name (``liverwild.training.TRAINERS``).
        preprocessed, results: folders; default ``$LW_preprocessed`` and ``$LW_results``.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        continue_training: resume from ``checkpoint_latest.pth`` (an error when there is none).
        config: the trainer's family configuration (:class:`SliceTrainerConfig` or :class:`VolumeTrainerConfig`;
            default: the trainer's own, ``get_trainer(trainer).default_config()`` — the one to change, e.g.
            with ``.updated``).
        progress: show a progress bar per epoch.
        threads: torch CPU threads (default ``$LW_THREADS`` or all cores).

    Returns:
        ``{"output": model folder, "best_val_dice": float, "epochs": int}``.

    Example::

        from liverwild.training import SliceTrainerConfig, train_fold
        summary = train_fold("loo_PhantomT2MR", config=SliceTrainerConfig(epochs=10), device="cpu")
    """
    from preprocessing.splits import get_fold

    pre = preprocessed_folder(preprocessed, must_exist=True)
    res = results_folder(results)
    configure_cpu_threads(threads)
    fold = get_fold(pre / "splits.json", fold_name)
    cls = get_trainer(trainer)
    with distributed_session(device) as (_, dev):  # under torchrun: DDP over the job's processes
        return cls(fold_name, fold, pre, res, config, dev).fit(continue_training, progress)
