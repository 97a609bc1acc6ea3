"""Optional int8 teacher for CPU inference: dynamic quantisation of the teacher's linear layers.

Weights are stored as int8 (one scale per output channel); activations are quantised per batch at
run time. In a ViT the linear layers (attention projections and MLPs) carry almost all of the work,
so the forward runs about 1.3–1.5× faster on CPU (``benchmarks/bench_predict.py --int8``). Off by
default: the float32 teacher is the reference, and the benchmark prints the masks' agreement.

This uses torch's eager dynamic quantisation (``torch.ao.quantization.quantize_dynamic``), which
torch marks as deprecated in favour of torchao; torchao's int8 path was slower than float32 in eager
CPU mode when measured here, so the torch one is used while it exists. If a future torch removes it,
the option fails with a clear message instead of silently running in float32.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from ..errors import ConfigurationError
from .frozen import FrozenBackbone


def quantize_teacher_int8(backbone: FrozenBackbone) -> FrozenBackbone:
    """Quantise, in place, the ``nn.Linear`` layers of a frozen teacher to int8.

    CPU only. A teacher without linear layers (a CNN such as EfficientNet-Lite0) has nothing to
    quantise and is refused, so that ``--int8-teacher`` never claims a speed-up it does not give.
    """
    linear = sum(isinstance(m, nn.Linear) for m in backbone.model.modules())
    if not linear:
        raise ConfigurationError(
            "--int8-teacher quantises the teacher's linear layers (transformer teachers such as "
            "dino-vits16); this teacher has none: run without --int8-teacher"
        )
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:  # pragma: no cover - depends on the torch version
        raise ConfigurationError(
            f"--int8-teacher needs torch.ao.quantization.quantize_dynamic, which torch {torch.__version__} "
            "does not have: run without --int8-teacher"
        ) from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        spec = {nn.Linear: per_channel_dynamic_qconfig}
        backbone.model = quantize_dynamic(backbone.model, spec, dtype=torch.qint8, inplace=True)
    return backbone
