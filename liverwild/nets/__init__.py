"""Networks: the distillation head, the upsampling decoder and the full segmentation model."""
from .decoder import UpsamplingDecoder
from .head import DistillationHead
from .model import ContrastiveDistillationNet, SegmentationPipeline, count_trainable

__all__ = ["DistillationHead", "UpsamplingDecoder", "ContrastiveDistillationNet", "SegmentationPipeline",
           "count_trainable"]
