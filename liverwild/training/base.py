"""The base trainer: a fixed training loop with small, overridable hooks.

Hooks (override one in a subclass to make a variant): ``check_sources``, ``plans_identifier``,
``build_datasets``, ``build_network``, ``build_losses``, ``build_optimizer``, ``build_scheduler``,
``step_scheduler``, ``select_training_cases``, ``batch_sampler``, ``prepare_batch``, ``train_step``,
``validation_logits``, ``validate``, ``model_description``. A trainer's ``recipe`` holds its own defaults
(:meth:`Trainer.default_config`; a user's settings override them), its ``overrides`` what it always
changes (the ablations), its ``config_groups`` which configuration fields it reads (groups of
:data:`~.config.FIELD_GROUPS`): a setting outside them, or one its overrides replace, is refused
(:meth:`Trainer.check_changes`).
Everything else — data, seeding, mixed precision, logging, checkpoints, resumption, and
DistributedDataParallel under ``torchrun`` — lives here once.

Under ``torchrun --nproc_per_node N`` every process draws the same global batches of
``batch_size × N`` items and trains on its own ``batch_size`` of each (:class:`ShardedBatches`), through
``self.model`` (the DDP wrapper of ``self.network``), with BatchNorm statistics and the batch-level
Tversky / IoU counts taken over the global batch: the weights follow one process with batch
``batch_size × N`` (up to float rounding; dropout masks differ per process). Rank 0 validates and
writes every artefact; the others wait for it. ``self.model`` is ``self.network`` in one process.

Output folder ``$LW_results/<fold>/<trainer>__<plans id>/``: ``config.json`` (resolved configuration,
fold, datasets, plans), ``checkpoint_latest.pth`` (every epoch), ``checkpoint_best.pth`` (best
validation Dice), ``checkpoint_final.pth``, ``log.json`` / ``log.csv`` (one row per epoch) and
``progress.png``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from planning.plans import Plans, load_plans

from .. import distributed
from ..atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from ..backbones import describe_teacher, slice_context
from ..checkpoints import load_checkpoint
from ..device import autocast, resolve_device
from ..errors import ConfigurationError, LiverwildError
from ..evaluation.metrics import dice_from_counts
from ..log import get_logger
from ..revision import provenance_fields
from .config import FIELD_GROUPS, TrainerConfig, setting_names
from .data import SliceDataset, TrainingSet, load_cases
from .logging import plot_progress, write_log

logger = get_logger(__name__)

EXECUTION_FIELDS = frozenset({"num_workers", "val_batch_size", "compile"})  # how, not what, is trained


def plans_identifier(plans: Plans) -> str:
    """What must agree across the sources of a fold: teacher (architecture, weights, input scaling,
    tap, slice context) and the view count. ``lwPlans_<teacher>_<weights>_<K>v_<hash of the teacher config>``."""
    b = plans.backbone
    teacher = {k: b.get(k) for k in ("name", "weights_tag", "input", "tap")}
    if b.get("context"):
        teacher["context"] = b["context"]
    digest = hashlib.sha256(json.dumps(teacher, sort_keys=True).encode()).hexdigest()[:6]
    label = (b.get("teacher") or b["name"]).replace("/", "-")
    return f"lwPlans_{label}_{b.get('weights_tag')}_{plans.views}v_{digest}"


class Trainer:
    """Trains one fold from ``splits.json`` on cached features. Subclasses set ``recipe`` (their default
    configuration), ``overrides`` (config changes they always make) or override one hook, and extend
    ``config_groups`` when they read more of the configuration (or narrow it when they read less)."""

    recipe: dict = {}  # this trainer's defaults, over TrainerConfig's; what the user sets wins
    overrides: dict = {}  # always applied (e.g. an ablation's missing loss term); a user's other value is refused
    # the configuration fields it reads, as groups of FIELD_GROUPS (the paper's method: network on teacher
    # features, distillation and segmentation losses, reduce-on-plateau, cached or online augmentation)
    config_groups: frozenset[str] = frozenset(
        {"loop", "plateau", "segmentation", "distillation", "augmentation", "cached_views"}
    )
    quick: dict = {"epochs": 2, "steps_per_epoch": 4, "batch_size": 4}  # lw_experiment --quick
    configuration = "2d"  # the cache it trains on: "2d" (slices and teacher features) or "3d" (volumes)
    item_name = "slices"  # what one training item is (the log's train_<item_name> column)
    min_sources = 1  # source datasets a fold needs for this trainer
    supports_distributed = True  # trains under torchrun with DDP (False: say why in the class docstring)
    # made by initialize(); subclasses may narrow these types to what their hooks build
    network: nn.Module  # the trainable network, whose weights the checkpoints keep
    model: Callable[..., Any]  # what a training step calls: the network, its DDP wrapper or its compiled form
    train_set: TrainingSet

    def __init__(
        self,
        fold_name: str,
        fold: dict,
        preprocessed_root,
        results_root,
        config: TrainerConfig | None = None,
        device="auto",
    ):
        self.fold_name, self.fold = fold_name, fold
        self.preprocessed_root, self.results_root = Path(preprocessed_root), Path(results_root)
        base = config or self.default_config()
        self.config = base.updated(**self.overrides) if self.overrides else base
        self.device = resolve_device(device) if not isinstance(device, torch.device) else device
        self.distributed = distributed.current()
        self.plans = self._load_plans()
        self.plans_id = self.plans_identifier()
        self.output = self.results_root / fold_name / f"{self.name()}__{self.plans_id}"
        self.history: list[dict] = []
        self.best_dice, self.start_epoch = -1.0, 0

    @classmethod
    def name(cls) -> str:
        return cls.__name__

    @classmethod
    def default_config(cls) -> TrainerConfig:
        """This trainer's configuration before a user changes anything: TrainerConfig's defaults, then
        the trainer's ``recipe`` and ``overrides``. ``lw_train`` and ``lw_experiment`` start from it."""
        return TrainerConfig().updated(**cls.recipe, **cls.overrides)

    @classmethod
    def config_fields(cls) -> frozenset[str]:
        """The configuration fields this trainer reads (``loss_weights.<term>`` for one loss weight)."""
        return frozenset(name for group in cls.config_groups for name in FIELD_GROUPS[group])

    @classmethod
    def check_changes(cls, changes: dict) -> None:
        """Refuse configuration changes (``--set`` and the command's options) this trainer would not act on:
        a field it does not read (another family's, e.g. a 3d trainer's ``unet3d_depth`` for a 2D trainer),
        and a value its ``overrides`` would replace. One line naming the trainer and the fields."""
        from .trainers import TRAINERS

        unread = [name for name in setting_names(changes) if name not in cls.config_fields()]
        if unread:

            def readers(name: str) -> str:
                names = sorted(t for t, c in TRAINERS.items() if name in c.config_fields())
                shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if len(names) > 4 else "")
                return f"{name} (read by {shown or 'no trainer'})"

            them = "it" if len(unread) == 1 else "them"
            raise ConfigurationError(
                f"{cls.name()} does not read {', '.join(readers(n) for n in unread)}: setting {them} would "
                f"change nothing; drop {them} or choose a trainer that reads {them}"
            )
        clashes = []
        for key, value in changes.items():
            if key not in cls.overrides:
                continue
            fixed = cls.overrides[key]
            if isinstance(fixed, dict) and isinstance(value, dict):
                clashes += [f"{key}.{k} = {json.dumps(fixed[k])}" for k in value if k in fixed and value[k] != fixed[k]]
            elif value != fixed:
                clashes.append(f"{key} = {json.dumps(fixed)}")
        if clashes:
            parent = next((b.__name__ for b in cls.__mro__[1:] if b.__name__ in TRAINERS), "another trainer")
            raise ConfigurationError(
                f"{cls.name()} always sets {', '.join(clashes)} (what makes it this variant): drop that setting, "
                f"or train {parent}"
            )

    def plans_identifier(self) -> str:
        """The plans part of the output folder's name (what must agree across the fold's sources)."""
        return plans_identifier(self.teacher_plans)

    @property
    def teacher_plans(self) -> Plans:
        """The first source's plans: teacher, view count and augmentation agree across the sources."""
        return next(iter(self.plans.values()))

    def plans_json(self) -> dict:
        """``{source: plans as JSON}``, as ``config.json`` and the checkpoints keep them."""
        return {source: plans.to_json() for source, plans in self.plans.items()}

    # ---- set-up ----------------------------------------------------------------------------------

    def _load_plans(self) -> dict[str, Plans]:
        plans = {}
        for source in self.fold["sources"]:
            path = self.preprocessed_root / source / "plans.json"
            if not path.is_file():
                raise LiverwildError(f"{path}: missing; run lw_plan_and_preprocess -d {source}")
            plans[source] = load_plans(path)
        self.check_sources(plans)
        return plans

    def check_sources(self, plans: dict[str, Plans]) -> None:
        """Refuse a fold whose sources cannot train together (2D: different teachers or view counts)."""
        ids = {s: plans_identifier(p) for s, p in plans.items()}
        if len(set(ids.values())) > 1:
            raise LiverwildError(
                "the fold's sources were preprocessed with different teachers (backbone, weights, "
                f"feature tap) or view counts ({', '.join(f'{s}: {i}' for s, i in ids.items())}); re-run "
                "lw_plan_and_preprocess -d " + " ".join(plans) + " with the same --backbone, "
                "--backbone-weights, --feature-tap and --views"
            )

    def data_identifier(self, source: str) -> str:
        """The cache of ``source`` this trainer reads (its folder below the dataset's preprocessed one)."""
        return self.plans[source].data_identifier()

    def select_training_cases(self, source: str, cases: list) -> list:
        """The training cases of one source (the Table 4 ablation caps their number)."""
        cap = self.config.max_scans_per_source
        return cases[:cap] if cap else cases

    def fold_cases(self) -> tuple:
        """``(training cases, their source index, {source: validation cases})`` of the fold, from the cache."""
        train, domains, val = [], [], {}
        for index, source in enumerate(self.fold["sources"]):
            data_id = self.data_identifier(source)
            names = self.select_training_cases(source, list(self.fold["train"].get(source, [])))
            cases = load_cases(self.preprocessed_root, source, data_id, names)
            train += cases
            domains += [index] * len(cases)
            val[source] = load_cases(self.preprocessed_root, source, data_id, list(self.fold["val"].get(source, [])))
        if not train:
            raise LiverwildError(f"fold {self.fold_name} has no training cases")
        return train, domains, val

    def build_datasets(self):
        train, _, self.val_cases = self.fold_cases()
        if self.config.augmentation == "online":
            from .data import OnlineAugmentedSliceDataset

            if slice_context(self.teacher_plans.backbone) != "slice":
                raise ConfigurationError(
                    "augmentation 'online' augments single slices, but the sources were preprocessed with the "
                    "teacher's 'neighbours' slice context: train with the cached views (augmentation 'cached')"
                )

            self.train_set = OnlineAugmentedSliceDataset(
                train, self.teacher_plans.augmentation, self.config.sampling, self.config.seed
            )
        elif self.config.augmentation == "cached":
            self.train_set = SliceDataset(
                train, self.config.sampling, self.config.seed, self.config.use_augmented_views
            )
        else:
            raise LiverwildError(f"augmentation must be 'cached' or 'online', not {self.config.augmentation!r}")
        self.feature_channels = int(train[0].features.shape[2])

    def build_network(self) -> torch.nn.Module:
        from ..nets import ContrastiveDistillationNet

        c = self.config
        return ContrastiveDistillationNet(
            self.feature_channels,
            c.code_channels,
            c.head_dropout,
            c.decoder_channels,
            c.decoder_dropout,
            int(self.train_set.cases[0].slices.shape[-1]),
            self.output_classes(),
        )

    def output_classes(self) -> list[str] | None:
        """The decoder's classes after background (``None``: one liver logit, the paper's output)."""
        return None

    def build_losses(self) -> dict:
        """The contrastive distillation loss and :meth:`segmentation_losses`."""
        from .. import losses as L

        c = self.config
        return {"distillation": L.ContrastiveDistillationLoss(c.b_self, c.b_pos, c.b_neg), **self.segmentation_losses()}

    def segmentation_losses(self) -> dict:
        """The supervised and regularising losses: focal, Tversky, −log IoU, entropy."""
        from .. import losses as L

        c = self.config
        return {
            "focal": L.FocalLoss(c.focal_alpha, c.focal_gamma),
            "tversky": L.TverskyLoss(c.tversky_alpha, c.tversky_beta, over_ranks=self.distributed.enabled),
            "log_iou": L.LogIoULoss(over_ranks=self.distributed.enabled),
            "entropy": L.EntropyLoss(c.entropy_form),
        }

    def build_auxiliary(self) -> torch.nn.ModuleDict:
        """Training-only modules (trained with the network, kept in checkpoints, unused at inference)."""
        return torch.nn.ModuleDict()

    def build_optimizer(self, network):
        parameters = [*network.parameters(), *self.auxiliary.parameters()]
        return torch.optim.RAdam(parameters, lr=self.config.lr, weight_decay=self.config.weight_decay)

    def build_scheduler(self, optimizer):
        return torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=self.config.plateau_factor, patience=self.config.plateau_patience
        )

    def step_scheduler(self, val_dice: float) -> None:
        """After each epoch's validation: reduce-on-plateau on the validation Dice."""
        self.scheduler.step(val_dice)

    def initialize(self):
        torch.manual_seed(self.config.seed)
        self.build_datasets()
        self.network = self.build_network().to(self.device)
        self.auxiliary = self.build_auxiliary().to(self.device)
        self.model = self.wrap_distributed(self.network)
        if self.config.compile:
            self.model = torch.compile(self.model)
        self.losses = self.build_losses()
        self.optimizer = self.build_optimizer(self.network)
        self.scheduler = self.build_scheduler(self.optimizer)
        use_scaler = self.device.type == "cuda" and self.config.amp and not torch.cuda.is_bf16_supported()
        self.scaler = torch.amp.GradScaler("cuda", enabled=use_scaler)

    def wrap_distributed(self, network: torch.nn.Module) -> torch.nn.Module:
        """Under torchrun: BatchNorm over the global batch, and the DDP wrapper that averages gradients."""
        if not self.distributed.enabled:
            return network
        if not self.supports_distributed:
            raise LiverwildError(
                f"{self.name()} does not train under torchrun (see its documentation): run it as a single process"
            )
        from torch.nn.parallel import DistributedDataParallel

        distributed.use_global_batchnorm(network)
        return DistributedDataParallel(network, device_ids=[self.device] if self.device.type == "cuda" else None)

    # ---- one step / one validation -------------------------------------------------------------

    @torch.no_grad()
    def prepare_batch(self, batch: dict) -> dict:
        """Online augmentation: the frozen teacher turns the augmented slices into features (one batched
        forward for anchors, positives and negatives). Cached batches pass unchanged."""
        if "features" in batch:
            return batch
        if getattr(self, "teacher", None) is None:
            from ..backbones import FrozenBackbone

            plans = self.teacher_plans
            self.teacher = FrozenBackbone.from_config(plans.backbone, plans.slice_size[0]).to(self.device)
        negatives = batch["negative_slices"]
        b, n = negatives.shape[:2]
        stack = torch.cat([batch["slice"], batch["positive_slice"], negatives.flatten(0, 1)])
        with autocast(self.device, self.config.amp):
            features = self.teacher(stack).float()
        return {
            "features": features[:b],
            "slice": batch["slice"],
            "label": batch["label"],
            "positive": features[b : 2 * b],
            "negatives": features[2 * b :].unflatten(0, (b, n)),
        }

    def segmentation_terms(self, logits: torch.Tensor, labels: torch.Tensor) -> dict:
        """The supervised and regularising terms with a non-zero weight (focal, Tversky, −log IoU, entropy)."""
        weights, terms = self.config.loss_weights, {}
        for key in ("focal", "tversky", "log_iou"):
            if weights.get(key, 0):
                terms[key] = self.losses[key](logits, labels)
        if weights.get("entropy", 0):
            terms["entropy"] = self.losses["entropy"](logits)
        return terms

    def segmentation_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The weighted sum of :meth:`segmentation_terms`."""
        weights = self.config.loss_weights
        return sum(weights[k] * v for k, v in self.segmentation_terms(logits, labels).items())

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

    def train_step(self, batch: dict) -> dict:
        weights = self.config.loss_weights
        feats, slices, labels = batch["features"], batch["slice"], batch["label"]
        with autocast(self.device, self.config.amp):
            logits, code = self.model(feats, slices)
            terms = {}
            if weights.get("distillation", 0):
                head = self.distillation_head()
                positive_code = head(batch["positive"])
                negatives = batch["negatives"]
                negative_pairs = [(negatives[:, j], head(negatives[:, j])) for j in range(negatives.shape[1])]
                terms["distillation"], sims = self.losses["distillation"](
                    feats, code, [(batch["positive"], positive_code)], negative_pairs
                )
            else:
                sims = {}
            terms.update(self.segmentation_terms(logits, labels))
            total = sum(weights[k] * v for k, v in terms.items())
        self.optimize(total)
        return self.loss_stats(total, terms) | {k: v.detach() for k, v in sims.items() if k.startswith("sim_")}

    def validation_logits(self, case, start: int, stop: int, slices: torch.Tensor) -> torch.Tensor:
        """Logits ``(n, 1, H, W)`` of the original slices ``start:stop`` of a cached validation case."""
        feats = torch.from_numpy(np.array(case.features[0, start:stop], np.float32)).to(self.device)  # a copy
        return self.network(feats, slices)[0]

    @torch.no_grad()
    def validate(self) -> dict:
        """Mean 3D Dice over the held-out source cases (slices at cache resolution, view 0)."""
        self.network.eval()
        dices = {}
        for source, cases in self.val_cases.items():
            for case in cases:
                inter = pred_sum = ref_sum = 0.0
                for start in range(0, case.n_slices, self.config.val_batch_size):
                    stop = min(start + self.config.val_batch_size, case.n_slices)
                    slices = torch.from_numpy(np.asarray(case.slices[0, start:stop], np.float32))[:, None].to(
                        self.device
                    )
                    with autocast(self.device, self.config.amp):
                        logits = self.validation_logits(case, start, stop, slices)
                    pred = (logits.float() > 0).cpu().numpy()[:, 0]
                    ref = np.asarray(case.labels[0, start:stop]) > 0
                    inter += float((pred & ref).sum())
                    pred_sum += float(pred.sum())
                    ref_sum += float(ref.sum())
                dices[f"{source}/{case.name}"] = dice_from_counts(inter, pred_sum, ref_sum)
        self.network.train()
        return {"val_dice": float(np.mean(list(dices.values()))) if dices else float("nan"), "val_cases": dices}

    def distillation_head(self) -> nn.Module:
        """The network's distillation head C (the contrastive loss compares its codes)."""
        head = getattr(self.network, "head", None)
        if not isinstance(head, nn.Module):
            raise ConfigurationError(f"{self.name()}: its network has no distillation head for the distillation loss")
        return head

    # ---- the loop --------------------------------------------------------------------------------

    @property
    def global_batch_size(self) -> int:
        """Items per optimiser step over all processes: ``batch_size × world size``."""
        return self.config.batch_size * self.distributed.world_size

    def batch_sampler(self, epoch: int):
        """The global batches of one epoch (lists of item indices): shuffled slices, ``steps_per_epoch``
        batches or one pass."""
        generator = torch.Generator().manual_seed(self.config.seed * 100003 + epoch)
        size = self.global_batch_size
        n = self.config.steps_per_epoch * size if self.config.steps_per_epoch else None
        sampler = RandomSampler(
            self.train_set, replacement=n is not None and n > len(self.train_set), num_samples=n, generator=generator
        )
        return BatchSampler(sampler, size, drop_last=True)

    def loader(self, epoch: int) -> DataLoader:
        self.train_set.epoch = epoch
        batches = self.batch_sampler(epoch)
        if self.distributed.enabled:
            batches = ShardedBatches(batches, self.distributed)
        workers = self.config.num_workers
        if workers is None:
            import os

            workers = 0 if self.device.type == "cpu" else min(8, max(1, (os.cpu_count() or 2) - 1))
        return DataLoader(
            self.train_set,
            batch_sampler=batches,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def run_epoch(self, epoch: int) -> dict:
        from tqdm import tqdm

        rank_offset = 7919 * self.distributed.rank  # each process its own dropout masks
        torch.manual_seed(self.config.seed * 100003 + epoch + rank_offset)  # same per epoch on resume
        self.network.train()
        sums: dict = {}  # tensors on the device (floats from trainers that give floats)
        count, slices_seen, start = 0, 0, time.perf_counter()
        show = self.progress and self.distributed.is_main
        for batch in tqdm(self.loader(epoch), desc=f"epoch {epoch}", leave=False, disable=not show):
            batch = self.prepare_batch({k: v.to(self.device, non_blocking=True) for k, v in batch.items()})
            slices_seen += len(next(iter(batch.values())))
            stats = self.train_step(batch)
            for k, v in stats.items():
                sums[k] = sums.get(k, 0.0) + v
            count += 1
        train_seconds = time.perf_counter() - start
        row = {"epoch": epoch, "lr": self.optimizer.param_groups[0]["lr"]}
        row.update(distributed.mean_over_ranks({k: float(v) / max(count, 1) for k, v in sums.items()}))
        slices_seen *= self.distributed.world_size
        val = distributed.broadcast_object(self.validate() if self.distributed.is_main else None)
        self.step_scheduler(val["val_dice"])
        row.update(
            {
                "val_dice": val["val_dice"],
                **val.get("log", {}),  # further per-epoch validation columns (e.g. Dice per organ)
                "train_seconds": round(train_seconds, 3),
                "epoch_seconds": round(time.perf_counter() - start, 3),
                f"train_{self.item_name}": slices_seen,
            }
        )
        return row

    def fit(self, continue_training: bool = False, progress: bool = True) -> dict:
        """Train (or resume) to ``config.epochs``; one process at a time per output folder."""
        from ..locking import folder_lock

        self.output.mkdir(parents=True, exist_ok=True)
        if not self.distributed.is_main:  # rank 0 holds the lock for the job
            return self._fit(continue_training, progress)
        with folder_lock(self.output, f"lw_train {self.fold_name} -tr {self.name()}"):
            return self._fit(continue_training, progress)

    def _fit(self, continue_training: bool, progress: bool) -> dict:
        self.progress = progress
        if self.distributed.is_main:  # holds the folder's lock: what a killed run left half-written goes
            remove_stale_temporaries(self.output)
        self.initialize()
        if continue_training:
            latest = self.output / "checkpoint_latest.pth"
            if not latest.is_file():
                raise LiverwildError(f"--continue: no {latest} to continue from; start without --continue")
            self.load_checkpoint(latest)
            logger.info(f"continuing {self.output} after epoch {self.start_epoch - 1}")
        elif (self.output / "checkpoint_latest.pth").is_file():  # the same command again: reuse or resume
            self.check_same_configuration(self.output / "checkpoint_latest.pth")
            self.load_checkpoint(self.output / "checkpoint_latest.pth")
            if self.start_epoch >= self.config.epochs and (self.output / "checkpoint_final.pth").is_file():
                logger.info(f"{self.output} already holds this finished run: nothing to do")
                return {"output": str(self.output), "best_val_dice": self.best_dice, "epochs": len(self.history)}
            logger.info(f"{self.output} holds an unfinished run: resuming after epoch {self.start_epoch - 1}")
        main = self.distributed.is_main
        if main:
            self.write_config()
            if self.distributed.enabled:
                job = distributed.describe_job(self.distributed)
                logger.info(
                    f"{job['processes']} processes ({job['backend']}): {self.config.batch_size} items per process, "
                    f"global batch {self.global_batch_size}"
                )
        distributed.barrier()  # every rank has read the checkpoint before rank 0 writes a new one
        for epoch in range(self.start_epoch, self.config.epochs):
            row = self.run_epoch(epoch)
            self.history.append(row)
            improved = row["val_dice"] > self.best_dice
            if improved:
                self.best_dice = row["val_dice"]
            self.start_epoch = epoch + 1
            if main:
                self.save_checkpoint("checkpoint_latest.pth")
                if improved:
                    self.save_checkpoint("checkpoint_best.pth")
                write_log(self.history, self.output)
                plot_progress(self.history, self.output / "progress.png")
                logger.info(
                    f"epoch {epoch}: loss {row.get('loss', float('nan')):.4f}  val Dice {row['val_dice']:.4f}  "
                    f"lr {row['lr']:.2e}  {row['epoch_seconds']:.1f} s"
                )
        if main:
            self.save_checkpoint("checkpoint_final.pth")
        distributed.barrier()
        return {"output": str(self.output), "best_val_dice": self.best_dice, "epochs": len(self.history)}

    # ---- artefacts -------------------------------------------------------------------------------

    def model_description(self) -> dict:
        """What prediction needs besides the network and the plans, kept in ``config.json`` and in every
        checkpoint: the configuration, the input it was trained on (2D: the teacher)."""
        return {
            "configuration": self.configuration,
            "backbone_weights": self.teacher_plans.backbone.get("weights_tag"),
            "teacher": describe_teacher(self.teacher_plans.backbone),
        }

    @functools.cached_property
    def software(self) -> dict:
        """``git_revision`` and ``versions`` of the code that trains (read once per run), kept in
        ``config.json`` and in every checkpoint."""
        return provenance_fields(torch=torch.__version__)

    def write_config(self):
        write_json_atomic(
            self.output / "config.json",
            {
                "trainer": self.name(),
                "fold_name": self.fold_name,
                "fold": self.fold,
                "config": self.config.to_json(),
                "network": self.network.config,
                "trainable_parameters": sum(p.numel() for p in self.network.parameters() if p.requires_grad),
                "plans_identifier": self.plans_id,
                "plans": self.plans_json(),
                "device": str(self.device),
                "job": {**distributed.describe_job(self.distributed), "global_batch_size": self.global_batch_size},
                **self.software,
                **self.model_description(),
                "notes": list(getattr(self, "notes", [])),
            },
        )

    def checkpoint_state(self) -> dict:
        return {
            **self.model_description(),
            "trainer": self.name(),
            "network": self.network.state_dict(),
            "network_config": self.network.config,
            "auxiliary": self.auxiliary.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "epochs_done": self.start_epoch,
            "best_dice": self.best_dice,
            "history": self.history,
            "config": self.config.to_json(),
            "plans": self.plans_json(),
            "fold_name": self.fold_name,
            **self.software,
        }

    def save_checkpoint(self, name: str):
        """Atomic save; a write that fails (disk full) leaves the previous checkpoint, never a partial one."""
        path = self.output / name
        try:
            with atomic_path(path, ".pth") as tmp:
                torch.save(self.checkpoint_state(), tmp)
        except RuntimeError as exc:  # torch's zip writer reports a full disk this way
            raise LiverwildError(
                f"{path}: cannot be written — {str(exc).splitlines()[0]} (disk full or file-size "
                "limit?); the previous checkpoint is kept"
            ) from exc

    def check_same_configuration(self, path) -> None:
        """A re-run may extend ``epochs``; any other change of a field this trainer reads needs a new folder
        (fields it does not read change nothing, and are not compared)."""

        def values(config: dict) -> dict:
            flat = {k: v for k, v in config.items() if k != "loss_weights"}
            return flat | {f"loss_weights.{t}": w for t, w in (config.get("loss_weights") or {}).items()}

        previous = values(load_checkpoint(path).get("config", {}))
        ignore = {"epochs", *EXECUTION_FIELDS}  # how, not what, is trained
        read = self.config_fields() - ignore
        changed = sorted(k for k, v in values(self.config.to_json()).items() if k in read and previous.get(k, v) != v)
        if changed:
            raise LiverwildError(
                f"{self.output} holds a run trained with another configuration ({', '.join(changed)} "
                "differ): remove the folder, or change the seed, to train this one"
            )

    def load_checkpoint(self, path):
        state = load_checkpoint(path, map_location=self.device)
        self.network.load_state_dict(state["network"])
        self.auxiliary.load_state_dict(state.get("auxiliary", {}))
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.start_epoch, self.best_dice, self.history = state["epochs_done"], state["best_dice"], state["history"]


class ShardedBatches:
    """This process's share of every global batch: the ``rank``-th of ``world_size`` equal contiguous
    slices (the global batches come from one seeded sampler, the same on every rank)."""

    def __init__(self, batches, context: distributed.DistributedContext):
        self.batches, self.context = batches, context

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        world, rank = self.context.world_size, self.context.rank
        for batch in self.batches:
            if len(batch) % world:
                raise LiverwildError(f"a global batch of {len(batch)} items does not split over {world} processes")
            size = len(batch) // world
            yield batch[rank * size : (rank + 1) * size]
