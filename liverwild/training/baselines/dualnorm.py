"""DualNorm (Zhou et al., CVPR 2022): style augmentation and dual BatchNorm (follows / deviates: its docstring)."""

from __future__ import annotations

import numpy as np
import torch

from ...device import autocast
from ...nets import DomainNormUNet2d
from ..images import ImageSliceDataset
from ..registry import register_trainer
from .style import INNER_POINTS, style_copies
from .supervised import SupervisedUNetTrainer


class StyleCopiesDataset(ImageSliceDataset):
    """Items add ``slice_similar`` and ``slice_dissimilar`` ``(1, H, W)``: one curve of each set drawn per
    item; the [−1, 1] mapping uses the range of the case's original slices."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.ranges: dict = {}

    def case_range(self, ci: int) -> tuple:
        if ci not in self.ranges:
            original = np.asarray(self.cases[ci].slices[0], np.float32)
            self.ranges[ci] = (float(original.min()), float(original.max()))
        return self.ranges[ci]

    def __getitem__(self, k: int) -> dict:
        rng = self.rng(k)
        image, label = self.view(k, rng)
        low, high = self.case_range(self.index[k][0])
        similar, dissimilar = style_copies(
            image,
            low,
            high,
            int(rng.integers(len(INNER_POINTS))),
            int(rng.integers(len(INNER_POINTS))),
        )
        return {
            "slice_similar": torch.from_numpy(similar)[None],
            "slice_dissimilar": torch.from_numpy(dissimilar)[None],
            "label": torch.from_numpy(label.astype(np.float32))[None],
            "domain": torch.tensor(self.domains[k]),
        }


@register_trainer
class DualNormTrainer(SupervisedUNetTrainer):
    """DualNorm — style augmentation and dual normalisation (Zhou et al., CVPR 2022), for single-source
    CT → MR generalisation.

    Every training slice comes as two copies made with fixed Bézier intensity curves (:mod:`.style`): a
    source-similar one (monotone curve, identity included) and a source-dissimilar one (mirrored curve,
    grey values inverted). The U-Net has two BatchNorms per layer: branch 0 normalises the similar copies,
    branch 1 the dissimilar ones; both copies' segmentation losses are summed. At test time each slice
    goes through both branches and keeps the output of the branch whose running BatchNorm statistics are
    nearest to the slice's own (:class:`~liverwild.nets.DualNormUNet2d`).

    Deviations: the reference code normalises each volume to [−1, 1] by its minimum and maximum; here the
    copies are made on that scale from the cached z-scored slices (the case's range) and mapped back, so
    the network sees the same z-scored inputs as every other trainer. The reference chooses the branch
    with the statistics of a whole test batch; here each slice is judged on its own, so a prediction does
    not depend on the batch size.

    Not under torchrun: each step runs the network twice (once per BatchNorm branch) before one
    backward pass, which DistributedDataParallel does not synchronise.
    """

    network: DomainNormUNet2d  # one BatchNorm branch per domain, chosen per batch or per slice

    supports_distributed = False
    dataset_class = StyleCopiesDataset

    def build_network(self) -> torch.nn.Module:
        from ...nets import DualNormUNet2d

        c = self.config
        return DualNormUNet2d(1, c.unet_channels, c.unet_depth, c.unet_dropout)

    def train_step(self, batch: dict) -> dict:
        losses = {}
        with autocast(self.device, self.config.amp):
            for branch, key in ((0, "similar"), (1, "dissimilar")):
                self.network.set_branch(branch)
                losses[key] = self.segmentation_loss(self.network(batch[f"slice_{key}"]), batch["label"])
            total = losses["similar"] + losses["dissimilar"]
        self.optimize(total)
        self.network.set_branch("auto")
        return self.loss_stats(total, losses)

    def validation_logits(self, case, start: int, stop: int, slices: torch.Tensor) -> torch.Tensor:
        self.network.set_branch("auto")
        return self.network(slices)
