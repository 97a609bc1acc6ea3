"""The trainer every family builds on: :class:`TrainerBase`, a fixed training loop with small hooks.

Families implement the abstract hooks — ``2d`` slices on teacher features (:mod:`.slices`), ``3d``
volumes (:mod:`.volumetric`), each with its typed configuration (:mod:`.config`); a variant overrides one
hook or sets ``recipe`` (its defaults), ``overrides`` (what it always changes) or ``config_groups`` (the
fields it reads; others are refused). Here, once: seeding, mixed precision, logging, checkpoints and
resumption in a locked :class:`~.run_folder.RunFolder`, and DDP under ``torchrun`` — every process draws
the same global batches of ``batch_size × N`` items and trains on its share (:mod:`.batches`) through
``self.model``, the DDP wrapper of ``self.network``; rank 0 validates and writes, the others wait.
"""

from __future__ import annotations

import abc
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

import torch
from torch import nn
from torch.utils.data import DataLoader

from planning.plans import Plans, load_plans

from .. import distributed
from ..checkpoints import load_checkpoint
from ..device import resolve_device
from ..errors import ConfigurationError, LiverwildError
from ..log import get_logger
from ..revision import provenance_fields
from . import run_state
from .batches import epoch_generator, epoch_loader, shuffled_batches
from .config import FIELD_GROUPS, TrainerConfig
from .data import TrainingSet
from .run_folder import RunFolder

logger = get_logger(__name__)
ConfigT = TypeVar("ConfigT", bound=TrainerConfig)  # a family's configuration


class TrainerBase(abc.ABC, Generic[ConfigT]):
    """Trains one fold from ``splits.json`` on a cache of the fold's sources (see the module docstring)."""

    config_class: type[ConfigT]  # the family's configuration
    recipe: dict = {}  # this trainer's defaults, over its config_class's; what the user sets wins
    overrides: dict = {}  # always applied (e.g. an ablation's missing loss term); a user's other value is refused
    config_groups: frozenset[str] = frozenset({"loop"})  # the fields it reads, as groups of FIELD_GROUPS
    quick: dict = {"epochs": 2, "steps_per_epoch": 4, "batch_size": 4}  # lw_experiment --quick
    configuration = ""  # the cache it trains on: "2d" (slices and teacher features) or "3d" (volumes)
    item_name = "items"  # what one training item is (the log's train_<item_name> column)
    min_sources = 1  # source datasets a fold needs for this trainer
    supports_distributed = True  # trains under torchrun with DDP (False: say why in the class docstring)
    network: nn.Module  # made by initialize(): the trainable network, whose weights the checkpoints keep
    model: Callable[..., Any]  # what a training step calls: the network, its DDP wrapper or its compiled form
    train_set: TrainingSet
    val_cases: dict[str, list]  # {source: its held-out cached cases}, made by build_datasets

    def __init__(
        self,
        fold_name: str,
        fold: dict,
        preprocessed_root,
        results_root,
        config: ConfigT | None = None,
        device="auto",
    ):
        if config is not None and not isinstance(config, self.config_class):
            raise ConfigurationError(
                f"{self.name()} trains with a {self.config_class.__name__}, not a {type(config).__name__}: "
                f"start from {self.name()}.default_config()"
            )
        self.fold_name, self.fold = fold_name, fold
        self.preprocessed_root, self.results_root = Path(preprocessed_root), Path(results_root)
        base = config or self.default_config()
        self.config: ConfigT = base.updated(**self.overrides) if self.overrides else base
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.distributed = distributed.current()
        self.plans = self._load_plans()
        self.plans_id = self.plans_identifier()
        self.output = self.results_root / fold_name / f"{self.name()}__{self.plans_id}"
        self.folder = RunFolder(self.output)
        self.history: list[dict] = []
        self.notes: list[str] = []  # what config.json should tell about this run's data (e.g. cases left out)
        self.best_dice, self.start_epoch = -1.0, 0

    # ---- configuration ---------------------------------------------------------------------------

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    @classmethod
    def default_config(cls) -> ConfigT:
        """This trainer's configuration before a user changes anything: its family's defaults, then the
        trainer's ``recipe`` and ``overrides``. ``lw_train`` and ``lw_experiment`` start from it."""
        return cls.config_class().updated(**{**cls.recipe, **cls.overrides})  # overrides win

    @classmethod
    def config_fields(cls) -> frozenset[str]:
        """The configuration fields this trainer reads (``loss_weights.<term>`` for one loss weight)."""
        return frozenset(name for group in cls.config_groups for name in FIELD_GROUPS[group])

    # ---- the fold's sources ------------------------------------------------------------------------

    def _load_plans(self) -> dict[str, Plans]:
        plans = {}
        for source in self.fold["sources"]:
            path = self.preprocessed_root / source / "plans.json"
            if not path.is_file():
                raise LiverwildError(f"{path}: missing; run lw_plan_and_preprocess -d {source}")
            plans[source] = load_plans(path)
        self.check_sources(plans)
        return plans

    def plans_json(self) -> dict:
        """``{source: plans as JSON}``, as ``config.json`` and the checkpoints keep them."""
        return {source: plans.to_json() for source, plans in self.plans.items()}

    def select_training_cases(self, source: str, cases: list) -> list:
        """The training cases of one source (the Table 4 ablation caps their number)."""
        cap = self.config.max_scans_per_source
        return cases[:cap] if cap else cases

    @abc.abstractmethod
    def check_sources(self, plans: dict[str, Plans]) -> None:
        """Refuse a fold whose sources' plans cannot train together (one line saying what to re-run)."""

    @abc.abstractmethod
    def plans_identifier(self) -> str:
        """The plans part of the output folder's name (what must agree across the fold's sources)."""

    @abc.abstractmethod
    def data_identifier(self, source: str) -> str:
        """The cache of ``source`` this trainer reads (its folder below the dataset's preprocessed one)."""

    # ---- what a family builds ----------------------------------------------------------------------

    @abc.abstractmethod
    def build_datasets(self) -> None:
        """Set ``self.train_set`` and ``self.val_cases`` from the fold's caches."""

    @abc.abstractmethod
    def build_network(self) -> nn.Module:
        """The network the checkpoints keep and prediction runs."""

    def build_auxiliary(self) -> nn.ModuleDict:
        """Training-only modules (trained with the network, kept in checkpoints, unused at inference)."""
        return nn.ModuleDict()

    def build_losses(self) -> dict:
        """Loss modules by term (those with state or settings; functions need none)."""
        return {}

    @abc.abstractmethod
    def build_optimizer(self, network: nn.Module) -> torch.optim.Optimizer: ...

    @abc.abstractmethod
    def build_scheduler(self, optimizer: torch.optim.Optimizer) -> Any:
        """The learning-rate schedule, stepped after each epoch's validation by :meth:`step_scheduler`."""

    @abc.abstractmethod
    def step_scheduler(self, val_dice: float) -> None: ...

    @abc.abstractmethod
    def train_step(self, batch: dict) -> dict:
        """One optimiser step on ``batch``; the step's :meth:`loss_stats`."""

    @abc.abstractmethod
    def validate(self) -> dict:
        """``{"val_dice": mean over the held-out cases, "val_cases": {case: Dice}, "log": {column: value}}``
        (``log`` optional: more per-epoch columns)."""

    @abc.abstractmethod
    def model_description(self) -> dict:
        """What prediction needs besides the network and the plans (``configuration`` first), kept in
        ``config.json`` and in every checkpoint."""

    def prepare_batch(self, batch: dict) -> dict:  # on the device, before train_step (2D: teacher features)
        return batch

    # ---- set-up ------------------------------------------------------------------------------------

    def initialize(self):
        if self.config.compile_mode != "default" and not self.config.compile:
            raise ConfigurationError(
                f"compile_mode={self.config.compile_mode} acts only on a compiled network: add --set compile=true"
            )
        torch.manual_seed(self.config.seed)
        self.build_datasets()
        self.network = self.build_network().to(self.device)
        self.auxiliary = self.build_auxiliary().to(self.device)
        self.model = self.wrap_distributed(self.network)
        if self.config.compile:
            self.model = torch.compile(self.model, mode=self.config.compile_mode)
        self.losses = self.build_losses()
        self.optimizer = self.build_optimizer(self.network)
        self.scheduler = self.build_scheduler(self.optimizer)
        use_scaler = self.device.type == "cuda" and self.config.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    @property
    def captures_cuda_graphs(self) -> bool:
        """The compiled network runs as CUDA graphs (``compile_mode`` reduce-overhead or max-autotune on a
        GPU): each step then starts with ``torch.compiler.cudagraph_mark_step_begin``."""
        modes = ("reduce-overhead", "max-autotune")
        return bool(self.config.compile) and self.config.compile_mode in modes and self.device.type == "cuda"

    def begin_step(self) -> None:
        """Called before each :meth:`train_step`: under CUDA graphs, a new step may overwrite the buffers of
        the previous step's graph outputs (``torch.compiler.cudagraph_mark_step_begin``)."""
        if self.captures_cuda_graphs:
            torch.compiler.cudagraph_mark_step_begin()

    def wrap_distributed(self, network: nn.Module) -> nn.Module:
        """Under torchrun: the DDP wrapper (:func:`~liverwild.distributed.data_parallel`)."""
        if self.distributed.enabled and not self.supports_distributed:
            raise LiverwildError(
                f"{self.name()} does not train under torchrun (see its documentation): run it as a single process"
            )
        return distributed.data_parallel(network, self.distributed, self.device)

    # ---- one step ----------------------------------------------------------------------------------

    @staticmethod
    def loss_stats(total: torch.Tensor, terms: dict) -> dict:
        """A step's logged values, ``{"loss": total, "loss_<term>": ...}``, left on the device (detached):
        reading them back would stall the GPU every step; :meth:`run_epoch` does it once per epoch."""
        return {"loss": total.detach(), **{f"loss_{k}": v.detach() for k, v in terms.items()}}

    def optimize(self, total: torch.Tensor) -> None:
        """One optimiser step on ``total`` (gradient scaling for float16 on GPU)."""
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()

    # ---- the loop ----------------------------------------------------------------------------------

    @property
    def global_batch_size(self) -> int:
        """Items per optimiser step over all processes: ``batch_size × world size``."""
        return self.config.batch_size * self.distributed.world_size

    def batch_sampler(self, epoch: int):
        """The global batches of one epoch (lists of item indices): ``steps_per_epoch`` batches drawn at
        random, or one shuffled pass."""
        generator = epoch_generator(self.config.seed, epoch)
        return shuffled_batches(self.train_set, self.global_batch_size, self.config.steps_per_epoch, generator)

    def loader(self, epoch: int) -> DataLoader:
        self.train_set.epoch = epoch
        return epoch_loader(
            self.train_set, self.batch_sampler(epoch), self.distributed, self.device, self.config.num_workers
        )

    def run_epoch(self, epoch: int) -> dict:
        from tqdm import tqdm

        rank_offset = 7919 * self.distributed.rank  # each process its own dropout masks
        torch.manual_seed(self.config.seed * 100003 + epoch + rank_offset)  # same per epoch on resume
        self.network.train()
        sums: dict = {}  # tensors on the device (floats from trainers that give floats)
        count, items_seen, start = 0, 0, time.perf_counter()
        show = self.progress and self.distributed.is_main
        for batch in tqdm(self.loader(epoch), desc=f"epoch {epoch}", leave=False, disable=not show):
            batch = self.prepare_batch({k: v.to(self.device, non_blocking=True) for k, v in batch.items()})
            items_seen += len(next(iter(batch.values())))
            self.begin_step()
            stats = self.train_step(batch)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        train_seconds = time.perf_counter() - start
        row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update(distributed.mean_over_ranks({k: float(v) / max(count, 1) for k, v in sums.items()}))
        items_seen *= self.distributed.world_size
        val = distributed.broadcast_object(self.validate() if self.distributed.is_main else None)
        self.step_scheduler(val["val_dice"])
        row.update(
            {
                "val_dice": val["val_dice"],
                **val.get("log", {}),  # further per-epoch validation columns (e.g. Dice per organ)
                "train_seconds": round(train_seconds, 3),
                "epoch_seconds": round(time.perf_counter() - start, 3),
                f"train_{self.item_name}": items_seen,
            }
        )
        return row

    def fit(self, continue_training: bool = False, progress: bool = True) -> dict:
        """Train (or resume) to ``config.epochs``; one process at a time per output folder."""
        if not self.distributed.is_main:  # rank 0 holds the lock for the job
            return self._fit(continue_training, progress)
        with self.folder.held(f"lw_train {self.fold_name} -tr {self.name()}"):
            return self._fit(continue_training, progress)

    def _fit(self, continue_training: bool, progress: bool) -> dict:
        self.progress = progress
        self.initialize()
        latest = self.folder.latest
        if continue_training:
            if not latest.is_file():
                raise LiverwildError(f"--continue: no {latest} to continue from; start without --continue")
            self.folder.check_same_run(self.config.to_json(), self.config_fields(), self.data_record())
            self.load_checkpoint(latest)
            logger.info(f"continuing {self.output} after epoch {self.start_epoch - 1}")
        elif latest.is_file():  # the same command again: reuse or resume
            self.folder.check_same_run(self.config.to_json(), self.config_fields(), self.data_record())
            self.load_checkpoint(latest)
            if self.start_epoch >= self.config.epochs and self.folder.final.is_file():
                logger.info(f"{self.output} already holds this finished run: nothing to do")
                return self.summary()
            logger.info(f"{self.output} holds an unfinished run: resuming after epoch {self.start_epoch - 1}")
        main = self.distributed.is_main
        if main:
            self.folder.write_config(self.describe_run())
            if self.distributed.enabled:
                job = distributed.describe_job(self.distributed)
                per = f"{self.config.batch_size} items per process, global batch {self.global_batch_size}"
                logger.info(f"{job['processes']} processes ({job['backend']}): {per}")
        distributed.barrier()  # every rank has read the checkpoint before rank 0 writes a new one
        for epoch in range(self.start_epoch, self.config.epochs):
            row = self.run_epoch(epoch)
            self.history.append(row)
            improved = row["val_dice"] > self.best_dice
            if improved:
                self.best_dice = row["val_dice"]
            self.start_epoch = epoch + 1
            if main:
                self.folder.save(self.checkpoint_state(), "checkpoint_latest.pth")
                if improved:
                    self.folder.save(self.checkpoint_state(), "checkpoint_best.pth")
                self.folder.write_log(self.history)
                logger.info(
                    f"epoch {epoch}: loss {row.get('loss', float('nan')):.4f}  val Dice {row['val_dice']:.4f}  "
                    f"lr {row['lr']:.2e}  {row['epoch_seconds']:.1f} s"
                )
        if main:
            self.folder.save(self.checkpoint_state(), "checkpoint_final.pth")
        distributed.barrier()
        return self.summary()

    def summary(self) -> dict:  # what fit returns
        return {"output": str(self.output), "best_val_dice": self.best_dice, "epochs": len(self.history)}

    # ---- artefacts (liverwild.training.run_state) -------------------------------------------------

    @functools.cached_property
    def software(self) -> dict:
        """``git_revision`` and ``versions`` of the code that trains (read once per run)."""
        return provenance_fields(torch=torch.__version__)

    def describe_run(self) -> dict:
        return run_state.run_description(self)

    def data_record(self) -> dict:
        """What the run trains on: each source's cache (its data identifier: plans, normalisation, slice
        size, augmentation, teacher) and the fold's cases — a checkpoint is continued only on the same."""
        return {"caches": {source: self.data_identifier(source) for source in self.fold["sources"]}, "fold": self.fold}

    def checkpoint_state(self) -> dict:
        return run_state.checkpoint_state(self)

    def load_checkpoint(self, path) -> None:
        run_state.restore(self, load_checkpoint(path, map_location=self.device))
