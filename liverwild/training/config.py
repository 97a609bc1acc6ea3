"""Trainer configuration: the paper's recipe as defaults, every value overridable."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass
class TrainerConfig:
    epochs: int = 150
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    plateau_patience: int = 10              # epochs without validation-Dice improvement
    plateau_factor: float = 0.1             # the paper does not give it: torch's default
    loss_weights: dict = field(default_factory=lambda: {
        "distillation": 1.0, "focal": 1.0, "tversky": 1.0, "log_iou": 1.0,
        "entropy": 0.01})                   # Table 4: entropy values in [0, 0.02) → small weight
    focal_alpha: float = 0.5
    focal_gamma: float = 3.0
    tversky_alpha: float = 0.5              # not given in the paper
    tversky_beta: float = 0.5
    b_self: float = 0.55
    b_pos: float = 0.5
    b_neg: float = 0.6
    sampling: str = "neighbours"            # neighbours | neighbours2 | two_negatives
    code_channels: int = 70
    head_dropout: float = 0.1
    decoder_channels: tuple = (70, 40, 20, 10, 5)
    decoder_dropout: float = 0.3
    max_scans_per_source: int | None = None  # Table 4 ablation: 5 / 10 / 15 training scans per source
    use_augmented_views: bool = True
    augmentation: str = "cached"            # cached: the K views made at preprocessing; online: augment on the fly
                                            # and run the frozen teacher in the training loop (as the paper)
    steps_per_epoch: int | None = None      # None: one pass over the training slices
    val_batch_size: int = 32
    num_workers: int | None = None        # None: 0 on CPU, up to 8 loader processes on GPU
    amp: bool = True                        # mixed precision on GPU (no effect on CPU)
    seed: int = 0

    def updated(self, **changes) -> "TrainerConfig":
        if "loss_weights" in changes:
            changes["loss_weights"] = {**self.loss_weights, **changes["loss_weights"]}
        return replace(self, **changes)

    def to_json(self) -> dict:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    @classmethod
    def from_json(cls, d: dict) -> "TrainerConfig":
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)
