"""Trainer configuration: the paper's recipe as defaults, every value overridable."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace


@dataclass
class TrainerConfig:
    epochs: int = 150
    batch_size: int = 8
    lr: float = 1e-4
    weight_decay: float = 1e-5
    plateau_patience: int = 10  # epochs without validation-Dice improvement
    plateau_factor: float = 0.1  # the paper does not give it: torch's default
    loss_weights: dict = field(
        default_factory=lambda: {"distillation": 1.0, "focal": 1.0, "tversky": 1.0, "log_iou": 1.0, "entropy": 0.01}
    )  # Table 4: entropy values in [0, 0.02) → small weight
    focal_alpha: float = 0.5
    focal_gamma: float = 3.0
    tversky_alpha: float = 0.5  # not given in the paper
    tversky_beta: float = 0.5
    b_self: float = 0.55
    b_pos: float = 0.5
    b_neg: float = 0.6
    sampling: str = "neighbours"  # neighbours | neighbours2 | two_negatives
    code_channels: int = 70
    head_dropout: float = 0.1
    decoder_channels: tuple = (70, 40, 20, 10, 5)
    decoder_dropout: float = 0.3
    max_scans_per_source: int | None = None  # Table 4 ablation: 5 / 10 / 15 training scans per source
    use_augmented_views: bool = True
    augmentation: str = "cached"  # cached: the K views made at preprocessing; online: augment on the fly
    # and run the frozen teacher in the training loop (as the paper)
    organ_classes: list | None = None  # OrganCompetitionTrainer: the classes, liver first (names of
    # liverwild.datasets.organs.COMPETING_CLASSES); None: the liver and every class all sources' organ maps name
    steps_per_epoch: int | None = None  # None: one pass over the training slices
    val_batch_size: int = 32
    num_workers: int | None = None  # None: 0 on CPU, up to 8 loader processes on GPU
    amp: bool = True  # mixed precision on GPU (no effect on CPU)
    compile: bool = False  # torch.compile the training forward (GPU: fewer kernel launches; compiles first)
    seed: int = 0
    # image baselines (SupervisedUNet, MASF, TaskAug, DualNorm, DomainRandomization): the 2D U-Net
    unet_channels: int = 32  # channels of the first level (doubled per level, nnU-Net's 32)
    unet_depth: int = 4  # poolings: 224 → 14
    unet_dropout: float = 0.0
    # episodic baselines (MASF, TaskAug)
    inner_lr: float | None = None  # first-order inner step size α; None: lr
    inner_clip: float = 2.0  # the inner gradient is clipped to this global norm
    global_weight: float = 1.0  # β1: class alignment (symmetric KL of soft class labels)
    local_weight: float = 0.1  # β2: triplet clustering (MASF) / centroid-cosine alignment (TaskAug)
    temperature: float = 2.0  # τ of the soft class labels (also MultiModalKDTrainer's T)
    triplet_margin: float = 0.5  # ξ, on unit-length embeddings
    pixels_per_class: int = 64  # pixels sampled per class and domain for the metric terms
    embedding_channels: int = 32  # width of the metric embedding M_φ
    # MultiModalKDTrainer (Dou et al., TMI 2020): weight of the CT/MR knowledge-distillation loss
    kd_weight: float = 0.5
    # domain randomisation
    background_classes: int = 4  # intensity classes split off the unlabelled background
    # the 3d configuration (UNet3DTrainer, Siamese3DTrainer, SupervisedContrastive3DTrainer); their recipe
    # (Trainer.recipe) sets epochs 500, batch 4, lr 1e-3, Adam with polynomial decay
    unet3d_channels: int = 16  # channels of the first 3D U-Net level (doubled per level)
    unet3d_depth: int = 4  # poolings: 64 × 128 × 128 → 4 × 8 × 8
    poly_power: float = 0.9  # lr · (1 − epoch / epochs) ** power
    feature_weight: float = 0.1  # λ: Dice + λ · feature loss; measured choice, see documentation/multi_organ_3d.md
    feature_hidden: int = 256  # projection/prediction MLP width (ablation's best; implementation details say 64)
    feature_layers: int = 3  # the last N decoder hidden layers (multi-resolution context aggregation)
    feature_layer_weights: list | None = None  # w_l, one per layer (finest last); None: 1 each (the paper)
    voxel_samples: int = 1700  # voxels sampled per layer and step
    false_negative_samples: int = 1000  # of which at most this many are voxels the network still gets wrong
    scl_temperature: float = 0.1  # the supervised-contrastive row's temperature

    def updated(self, **changes) -> TrainerConfig:
        if "loss_weights" in changes:
            changes["loss_weights"] = {**self.loss_weights, **changes["loss_weights"]}
        return replace(self, **changes)

    def to_json(self) -> dict:
        d = asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d

    def assigned(self, assignments) -> TrainerConfig:
        """Apply ``KEY=VALUE`` strings (VALUE parsed as JSON, else kept as text), as ``--set`` gives them."""
        return self.updated(**self.parse_assignments(assignments))

    @classmethod
    def parse_assignments(cls, assignments) -> dict:
        """``KEY=VALUE`` strings → ``{field: value}`` (VALUE parsed as JSON, else kept as text); an unknown
        KEY is an error listing the fields."""
        import json

        from ..errors import ConfigurationError

        names = {f.name for f in fields(cls)}
        changes = {}
        for item in assignments or []:
            key, sep, value = item.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in names:
                raise ConfigurationError(
                    f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(sorted(names))}"
                )
            try:
                changes[key] = json.loads(value)
            except json.JSONDecodeError:
                changes[key] = value
        return changes

    @classmethod
    def from_json(cls, d: dict) -> TrainerConfig:
        names = {f.name for f in fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        if "decoder_channels" in d:
            d["decoder_channels"] = tuple(d["decoder_channels"])
        return cls(**d)
