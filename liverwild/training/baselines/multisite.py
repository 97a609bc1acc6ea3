"""Domain-specific BatchNorm for labelled multi-source training: MS-Net (Liu, Dou et al., TMI 2020) and
unpaired CT/MR learning with knowledge distillation (Dou, Liu et al., TMI 2020) (follows / deviates: the
trainers' docstrings)."""

from __future__ import annotations

import math

import torch

from ...device import autocast
from ...errors import ConfigurationError
from ...losses.alignment import modality_distillation_loss
from ...nets import DomainNormUNet2d
from ..images import DomainBalancedBatchSampler
from ..registry import register_trainer
from .supervised import SupervisedUNetTrainer

MODALITIES = ("CT", "MR")


@register_trainer
class MultiSiteNormTrainer(SupervisedUNetTrainer):
    """MS-Net — multi-site training with site-specific normalisation (Liu, Dou et al., TMI 2020).

    The baselines' 2D U-Net with shared convolution kernels and one BatchNorm per site in every
    normalisation layer (:class:`~liverwild.nets.DomainNormUNet2d`); a site is a source dataset of the
    fold. Each step draws ``batch_size`` slices of every site (MS-Net feeds a mini-batch of every site
    per iteration) and normalises each slice with its own site's BatchNorm: in training with the
    statistics of that site's part of the batch, whose running statistics alone move. The objective is
    the sum over the sites of each site's segmentation loss.

    At prediction the site is an unseen one: every slice goes through every branch and keeps the output
    of the branch whose running statistics are nearest to the slice's own (DualNorm's rule,
    ``DomainNormUNet2d``'s ``"auto"``). Validation on the sources' held-out cases chooses the same way,
    so the best checkpoint is judged as it will be used. The choice relies on running statistics that
    have caught up with the weights; after a few fast steps they have not (documentation/baselines.md).

    Deviations: MS-Net's site-specific auxiliary branches and the knowledge transfer from them to the
    universal network are left out — only its domain-specific BatchNorm is kept. MS-Net tests on the
    sites it trained on, each with its own BatchNorm; the nearest-statistics choice for an unseen site
    is Zhou et al.'s (CVPR 2022). The segmentation loss is the method's (focal + Tversky + −log IoU +
    entropy) and the network the baselines' U-Net, as for every baseline.

    Not under torchrun: each site's slices are normalised by their own BatchNorm over a part of the
    batch, which torchrun's global-batch BatchNorm (one statistic over every process's share) does not do.
    """

    network: DomainNormUNet2d  # one BatchNorm branch per domain, chosen per batch or per slice

    supports_distributed = False

    def branch_key(self, source: str) -> str:
        """The normalisation branch a source's slices go through: one per site."""
        return source

    def build_datasets(self):
        super().build_datasets()
        keys = [self.branch_key(s) for s in self.sources]
        self.branches = list(dict.fromkeys(keys))  # branch names, in the order the sources first name them
        self.branch_of_source = torch.tensor([self.branches.index(k) for k in keys])
        self.item_branches = self.branch_of_source.numpy()[self.train_set.domains]

    def build_network(self) -> torch.nn.Module:
        c = self.config
        return DomainNormUNet2d(1, c.unet_channels, c.unet_depth, c.unet_dropout, n_domains=len(self.branches))

    def batch_sampler(self, epoch: int):
        """``batch_size`` slices of every branch per step; an epoch is one pass over the training slices
        (or ``steps_per_epoch`` steps)."""
        per_branch, n = self.config.batch_size, len(self.branches)
        steps = self.config.steps_per_epoch or max(1, math.ceil(len(self.train_set) / (per_branch * n)))
        sampler = DomainBalancedBatchSampler(self.item_branches, per_branch, steps, self.config.seed)
        sampler.epoch = epoch
        return sampler

    def extra_terms(self, logits: torch.Tensor, labels: torch.Tensor, branches: torch.Tensor) -> dict:
        """``{name: (weight, loss)}`` added to the branches' segmentation losses (none here)."""
        return {}

    def train_step(self, batch: dict) -> dict:
        x, y = batch["slice"], batch["label"]
        branches = self.branch_of_source.to(x.device)[batch["domain"]]
        self.network.set_branch(branches)
        with autocast(self.device, self.config.amp):
            logits = self.model(x)
            terms = {
                f"seg_{self.branches[b]}": self.segmentation_loss(logits[branches == b], y[branches == b])
                for b in torch.unique(branches).tolist()
            }
            total = torch.stack(list(terms.values())).sum()
            for name, (weight, value) in self.extra_terms(logits, y, branches).items():
                terms[name] = value
                total = total + weight * value
        self.optimize(total)
        self.network.set_branch("auto")
        return self.loss_stats(total, terms)

    def validation_logits(self, case, start: int, stop: int, slices: torch.Tensor) -> torch.Tensor:
        self.network.set_branch("auto")
        return self.network(slices)

    def model_description(self) -> dict:
        """Also the branch names, in branch order (``config.json``, checkpoints)."""
        return {**super().model_description(), "normalisation_branches": list(self.branches)}


@register_trainer
class MultiModalKDTrainer(MultiSiteNormTrainer):
    """Unpaired multi-modal learning with knowledge distillation (Dou, Liu et al., TMI 2020), for CT and
    MR sources.

    Shared convolution kernels and one BatchNorm branch per modality — the modality of each slice's
    source dataset (its plans' ``modality``); sources of one modality share its branch. Each step draws
    ``batch_size`` slices of each modality. Objective: ``L_seg(CT) + L_seg(MR) + kd_weight · L_kd`` with

        ``L_kd = (1/C) Σ_c [KL(p_c^CT ‖ p_c^MR) + KL(p_c^MR ‖ p_c^CT)]``,  ``p_c^m = softmax(z_c^m / T)``,

    ``z_c^m`` the mean logits over the pixels labelled ``c`` (background, liver) in modality ``m``'s slices
    of the batch (:func:`~liverwild.losses.alignment.modality_distillation_loss`). The network's one liver
    logit ``l`` is the two-class softmax of ``[0, l]`` (``σ(l) = softmax([0, l])₁``), so ``z_c^m =
    [0, mean l]``; ``[−l/2, l/2]`` gives the same softmax. ``T`` = ``temperature`` = 2 and ``kd_weight`` =
    0.5, the reference code's values. A fold whose sources are all one modality is refused.

    At prediction (and validation) each slice keeps the branch whose running statistics are nearest to
    its own, as :class:`MultiSiteNormTrainer` — the paper knows each test scan's modality and uses its
    branch; ``lw_predict`` does not ask for it.

    Deviations: a class absent from one modality's part of the batch is skipped, and ``C`` counts the
    classes compared (the reference code divides by every class and compares an absent class as zero
    logits). The reference code halves each class's symmetric KL; the paper's formula, followed here,
    does not, so the code's weight 0.5 is 0.25 in these units (``--set kd_weight=0.25`` matches it). The
    segmentation loss is the method's (reference: Dice + weighted cross-entropy + L2) and the network the
    baselines' U-Net (paper: a 2D dilated residual network or a 3D U-Net).
    """

    min_sources = 2
    config_groups = MultiSiteNormTrainer.config_groups | {"modality_distillation"}

    def check_sources(self, plans: dict) -> None:
        super().check_sources(plans)
        modalities = {source: p.modality for source, p in plans.items()}
        if sorted(set(modalities.values())) != list(MODALITIES):
            raise ConfigurationError(
                f"{self.name()} learns from CT and MR sources together (its distillation loss compares the "
                f"two modalities), but fold {self.fold_name} has "
                + ", ".join(f"{s} ({m})" for s, m in modalities.items())
                + ": choose a fold with both CT and MR sources, or train MultiSiteNormTrainer"
            )

    def branch_key(self, source: str) -> str:
        return self.plans[source].modality

    def extra_terms(self, logits: torch.Tensor, labels: torch.Tensor, branches: torch.Tensor) -> dict:
        c = self.config
        return {"kd": (c.kd_weight, modality_distillation_loss(logits, labels, branches, c.temperature))}
