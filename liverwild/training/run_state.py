"""What a training run keeps: ``config.json``'s description of the run, a checkpoint's content, and
resuming a trainer from one (network, training-only modules, optimiser, schedule, mixed-precision
scaler, epochs done, best validation Dice, the log so far)."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import nn

from .. import distributed


class TrainerState(Protocol):
    """What of a trainer (:class:`~.base.TrainerBase`) a run's record holds: who trains what, on which
    plans, and where training stands."""

    fold_name: str
    fold: dict
    plans_id: str
    device: torch.device
    distributed: distributed.DistributedContext
    config: Any  # its family's configuration (to_json)
    notes: list[str]
    network: nn.Module
    auxiliary: nn.ModuleDict
    optimizer: torch.optim.Optimizer
    scheduler: Any
    scaler: torch.amp.GradScaler
    start_epoch: int
    best_dice: float
    history: list[dict]

    @property
    def global_batch_size(self) -> int: ...

    @property
    def software(self) -> dict: ...

    @classmethod
    def name(cls) -> str: ...

    def plans_json(self) -> dict: ...

    def model_description(self) -> dict: ...

    def data_record(self) -> dict: ...


def run_description(trainer: TrainerState) -> dict:
    """``config.json``: trainer, fold, resolved configuration, network, plans, device, job (world size,
    backend, global batch), software, what prediction needs, and notes about the run's data."""
    network = trainer.network
    return {
        "trainer": trainer.name(),
        "fold_name": trainer.fold_name,
        "fold": trainer.fold,
        "config": trainer.config.to_json(),
        "network": network.config,
        "trainable_parameters": sum(p.numel() for p in network.parameters() if p.requires_grad),
        "plans_identifier": trainer.plans_id,
        "plans": trainer.plans_json(),
        "device": str(trainer.device),
        "job": {**distributed.describe_job(trainer.distributed), "global_batch_size": trainer.global_batch_size},
        **trainer.software,
        **trainer.model_description(),
        "notes": list(trainer.notes),
    }


def checkpoint_state(trainer: TrainerState) -> dict:
    """Everything :func:`restore` needs to continue the run, and prediction needs to use its network."""
    return {
        **trainer.model_description(),
        "trainer": trainer.name(),
        "network": trainer.network.state_dict(),
        "network_config": trainer.network.config,
        "auxiliary": trainer.auxiliary.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "scaler": trainer.scaler.state_dict(),
        "epochs_done": trainer.start_epoch,
        "best_dice": trainer.best_dice,
        "history": trainer.history,
        "config": trainer.config.to_json(),
        "plans": trainer.plans_json(),
        "fold_name": trainer.fold_name,
        "data": trainer.data_record(),
        **trainer.software,
    }


def restore(trainer: TrainerState, state: dict) -> None:
    """Continue ``trainer`` (initialised) from a checkpoint's ``state``."""
    trainer.network.load_state_dict(state["network"])
    trainer.auxiliary.load_state_dict(state.get("auxiliary", {}))
    trainer.optimizer.load_state_dict(state["optimizer"])
    trainer.scheduler.load_state_dict(state["scheduler"])
    trainer.scaler.load_state_dict(state["scaler"])
    trainer.start_epoch, trainer.best_dice, trainer.history = state["epochs_done"], state["best_dice"], state["history"]
