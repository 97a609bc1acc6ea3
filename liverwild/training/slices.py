"""The ``2d`` family: :class:`SliceTrainer`, the paper's network on a frozen teacher's features of 2D
slices, trained with contrastive distillation, focal, Tversky, −log IoU and entropy terms (RAdam,
reduce-on-plateau on the validation Dice), and the base of every 2D baseline (which override
``build_network``, ``train_step`` and ``validation_logits``).

Data: the ``2d`` caches of the fold's sources (slices, labels and the teacher's features of the cached
augmented views), or online augmentation with the teacher run in the loop. Validation: 3D Dice of each
held-out source case at cache resolution (view 0).
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import torch
from torch import nn

from planning.plans import Plans

from ..backbones import describe_teacher, slice_context, unchanged_weights
from ..device import autocast
from ..errors import ConfigurationError, LiverwildError
from ..evaluation.metrics import dice_from_counts
from .base import TrainerBase
from .config import SliceTrainerConfig
from .data import SliceDataset, load_cases


def plans_identifier(plans: Plans) -> str:
    """What must agree across the sources of a fold: teacher (architecture, weights, input scaling,
    tap, slice context) and the view count. ``lwPlans_<teacher>_<weights>_<K>v_<hash of the teacher config>``."""
    b = plans.teacher().to_json()
    teacher = {k: b.get(k) for k in ("name", "weights_tag", "input", "tap")}
    if b.get("context"):
        teacher["context"] = b["context"]
    digest = hashlib.sha256(json.dumps(teacher, sort_keys=True).encode()).hexdigest()[:6]
    label = (b.get("teacher") or b["name"]).replace("/", "-")
    return f"lwPlans_{label}_{b.get('weights_tag')}_{plans.views}v_{digest}"


class SliceTrainer(TrainerBase[SliceTrainerConfig]):
    """Trains one fold on the ``2d`` caches (see the module docstring); subclasses narrow
    ``config_groups`` when they read less of :class:`~.config.SliceTrainerConfig`."""

    config_class = SliceTrainerConfig
    # the paper's method: network on teacher features, distillation and segmentation losses,
    # reduce-on-plateau, cached or online augmentation
    config_groups = frozenset({"loop", "plateau", "segmentation", "distillation", "augmentation", "cached_views"})
    configuration = "2d"
    item_name = "slices"

    def plans_identifier(self) -> str:
        """The plans part of the output folder's name (what must agree across the fold's sources)."""
        return plans_identifier(self.teacher_plans)

    @property
    def teacher_plans(self) -> Plans:
        """The first source's plans: teacher, view count and augmentation agree across the sources."""
        return next(iter(self.plans.values()))

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
        c = self.config
        if c.augmentation == "online":
            from .data import OnlineAugmentedSliceDataset

            if slice_context(self.teacher_plans.backbone) != "slice":
                raise ConfigurationError(
                    "augmentation 'online' augments single slices, but the sources were preprocessed with the "
                    "teacher's 'neighbours' slice context: train with the cached views (augmentation 'cached')"
                )

            self.train_set = OnlineAugmentedSliceDataset(
                train, self.teacher_plans.augmentation, c.sampling, c.seed, c.positive_pairs
            )
        elif c.augmentation == "cached":
            self.train_set = SliceDataset(train, c.sampling, c.seed, c.use_augmented_views, c.positive_pairs)
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
            teacher = unchanged_weights(plans.teacher())  # the weights the cached features came from
            self.teacher = FrozenBackbone.from_config(teacher, plans.slice_size[0]).to(self.device)
        positives, negatives = batch["positive_slices"], batch["negative_slices"]
        b, p, n = positives.shape[0], positives.shape[1], negatives.shape[1]
        stack = torch.cat([batch["slice"], positives.flatten(0, 1), negatives.flatten(0, 1)])
        with autocast(self.device, self.config.amp):
            features = self.teacher(stack).float()
        return {
            "features": features[:b],
            "slice": batch["slice"],
            "label": batch["label"],
            "positives": features[b : b + b * p].unflatten(0, (b, p)),
            "negatives": features[b + b * p :].unflatten(0, (b, n)),
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

    def train_step(self, batch: dict) -> dict:
        weights = self.config.loss_weights
        feats, slices, labels = batch["features"], batch["slice"], batch["label"]
        with autocast(self.device, self.config.amp):
            logits, code = self.model(feats, slices)
            terms = {}
            if weights.get("distillation", 0):
                head = self.distillation_head()
                pairs = {
                    kind: [(f[:, j], head(f[:, j])) for j in range(f.shape[1])]
                    for kind, f in (("positives", batch["positives"]), ("negatives", batch["negatives"]))
                }
                terms["distillation"], sims = self.losses["distillation"](
                    feats, code, pairs["positives"], pairs["negatives"]
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

    def model_description(self) -> dict:
        """What prediction needs besides the network and the plans, kept in ``config.json`` and in every
        checkpoint: the configuration, the input it was trained on (2D: the teacher)."""
        return {
            "configuration": self.configuration,
            "backbone_weights": self.teacher_plans.teacher().weights_tag,
            "teacher": describe_teacher(self.teacher_plans.teacher()),
        }
