"""Networks: the distillation head, the upsampling decoder and the full segmentation model; the 2D
U-Nets of the image baselines (plain, or with a BatchNorm per domain) and the 3D U-Net of the ``3d``
configuration; ``build_network`` rebuilds any of them from its saved ``config``."""

from .decoder import UpsamplingDecoder
from .head import DistillationHead
from .model import ContrastiveDistillationNet, SegmentationPipeline, count_trainable, liver_logits
from .unet import DomainBatchNorm2d, DomainNormUNet2d, DualBatchNorm2d, DualNormUNet2d, UNet2d
from .unet3d import UNet3d

# image networks by name
ARCHITECTURES = {net.architecture: net for net in (UNet2d, DomainNormUNet2d, DualNormUNet2d, UNet3d)}


def uses_teacher(config: dict) -> bool:
    """True when the network segments from frozen-teacher features (the distillation model)."""
    return config.get("architecture", "contrastive_distillation") == "contrastive_distillation"


def build_network(config: dict):
    """The network a checkpoint's ``network_config`` describes (untrained weights)."""
    kwargs = {k: v for k, v in config.items() if k != "architecture"}
    if uses_teacher(config):
        return ContrastiveDistillationNet(**{**kwargs, "decoder_channels": tuple(kwargs["decoder_channels"])})
    architecture = config["architecture"]
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown network architecture {architecture!r}; known: contrastive_distillation, "
            + ", ".join(ARCHITECTURES)
        )
    return ARCHITECTURES[architecture](**kwargs)


__all__ = [
    "DistillationHead",
    "UpsamplingDecoder",
    "ContrastiveDistillationNet",
    "SegmentationPipeline",
    "count_trainable",
    "liver_logits",
    "UNet2d",
    "UNet3d",
    "DualNormUNet2d",
    "DualBatchNorm2d",
    "DomainNormUNet2d",
    "DomainBatchNorm2d",
    "build_network",
    "uses_teacher",
]
