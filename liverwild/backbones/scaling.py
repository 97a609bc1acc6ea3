"""How a z-scored slice becomes the input a teacher's weights were trained on.

Preprocessing ends with a per-scan z-score (the paper's supplement), so a slice has mean ≈ 0 and
s.d. ≈ 1 in the body. A pretrained teacher was trained on RGB photos in [0, 1], standardised with its
own ``pixel_mean``/``pixel_std`` (ImageNet's for DINO, 0.5/0.5 for TF EfficientNets). The rule
``zscore_as_imagenet_pixels`` reads the z-scored slice as a grey photo with ImageNet's per-channel
statistics, ``p_c = μ_c + σ_c · z``, then applies the teacher's own standardisation::

    x_c = (p_c − pixel_mean_c) / pixel_std_c  =  scale_c · z + shift_c
    scale_c = σ_c / pixel_std_c,  shift_c = (μ_c − pixel_mean_c) / pixel_std_c

For DINO (ImageNet mean/std) this is the identity — the z-scored slice goes in unchanged, as the
paper does — and for EfficientNet-Lite0 (mean = std = 0.5) it is ``x ≈ 0.45 z − 0.1``, inside the
[−1, 1] range its weights saw. Either way the teacher meets the spread of values it was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch is imported where a tensor is made: the names above are read without it
    import torch

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RULE = "zscore_as_imagenet_pixels"


def scale_and_shift(pixel_mean, pixel_std) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` tensors of shape ``(1, 3, 1, 1)`` for :data:`RULE`."""
    import torch

    mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32)
    std = torch.tensor(IMAGENET_STD, dtype=torch.float32)
    pm = torch.tensor(list(pixel_mean), dtype=torch.float32)
    ps = torch.tensor(list(pixel_std), dtype=torch.float32)
    if pm.numel() != 3 or ps.numel() != 3 or bool((ps <= 0).any()):
        raise ValueError(f"pixel_mean/pixel_std must be 3 values with std > 0, got {pixel_mean} / {pixel_std}")
    scale, shift = std / ps, (mean - pm) / ps
    return scale.view(1, 3, 1, 1), shift.view(1, 3, 1, 1)


def teacher_input(slices: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Z-scored slices ``(B, 1, H, W)`` → teacher input ``(B, 3, H, W)``."""
    x = slices.expand(-1, 3, -1, -1) if slices.shape[1] == 1 else slices
    return x * scale.to(x.dtype) + shift.to(x.dtype)


def centre_slice(x: torch.Tensor) -> torch.Tensor:
    """The slice itself ``(B, 1, H, W)`` from teacher inputs ``(B, C, H, W)``: ``C = 1`` (the slice), or
    ``C = 3`` (``neighbours`` context: below, the slice, above)."""
    return x[:, x.shape[1] // 2 :][:, :1]
