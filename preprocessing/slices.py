"""Canonical axial slice stacks at the network's input size (torch, antialiased bilinear)."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def resize_stack(stack: np.ndarray, size, mode: str = "bilinear", batch: int = 64) -> np.ndarray:
    """Resize every ``(Z, H, W)`` slice to ``size`` (h, w). Antialiased when shrinking."""
    size = tuple(int(s) for s in size)
    if stack.shape[1:] == size:
        return stack.astype(np.float32, copy=False)
    out = np.empty((stack.shape[0], *size), np.float32)
    antialias = mode == "bilinear" and (stack.shape[1] > size[0] or stack.shape[2] > size[1])
    with torch.inference_mode():
        for start in range(0, stack.shape[0], batch):
            chunk = torch.from_numpy(np.ascontiguousarray(stack[start : start + batch], dtype=np.float32))[:, None]
            resized = F.interpolate(
                chunk,
                size=size,
                mode=mode,
                align_corners=None if mode.startswith("nearest") else False,
                antialias=antialias,
            )
            out[start : start + batch] = resized[:, 0].numpy()
    return out


def resize_label_stack(labels: np.ndarray, size) -> np.ndarray:
    """Binary masks resized by bilinear interpolation of the mask and a 0.5 threshold (smoother than
    nearest neighbour, same area in expectation). Returns uint8 ``(Z, h, w)``."""
    return (resize_stack((labels > 0).astype(np.float32), size) >= 0.5).astype(np.uint8)


def resize_label_map_stack(labels: np.ndarray, size) -> np.ndarray:
    """Multi-class label maps ``(Z, H, W)`` (values 0–255) resized by nearest neighbour: no value is
    invented between classes. Returns uint8 ``(Z, h, w)``."""
    if labels.size and (labels.min() < 0 or labels.max() > 255):
        raise ValueError(f"label values must lie in 0..255, not {labels.min()}..{labels.max()}")
    return np.rint(resize_stack(labels.astype(np.float32), size, mode="nearest-exact")).astype(np.uint8)
