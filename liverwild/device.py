"""One code path for cpu, cuda and mps: device choice, mixed precision, CPU threads."""

from __future__ import annotations

import contextlib
import os

import torch

from .errors import ConfigurationError


def resolve_device(name: str | None = "auto") -> torch.device:
    """'auto' → cuda, then mps, then cpu. An unavailable explicit choice is an error."""
    if isinstance(name, torch.device):
        return name
    name = (name or "auto").lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigurationError("--device cuda was asked for but no CUDA GPU is available (use --device cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigurationError("--device mps was asked for but MPS is not available (use --device cpu)")
    if name not in ("cpu", "mps") and not name.startswith("cuda"):
        raise ConfigurationError(f"unknown device {name!r}: use auto, cpu, cuda, cuda:N or mps")
    return torch.device(name)


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision on GPU (bfloat16 where supported, else float16); a no-op on CPU."""
    if not enabled or device.type == "cpu":
        return contextlib.nullcontext()
    if device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast(device.type, dtype=torch.float16)


def configure_cpu_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: $LW_THREADS, else the cores shared among the processes
    ``torchrun`` started on this node). Returns the number set."""
    processes = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
    threads = threads or int(os.environ.get("LW_THREADS", 0)) or max(1, (os.cpu_count() or 1) // processes)
    torch.set_num_threads(threads)
    return threads


def describe_device(device: torch.device) -> str:
    """The device in words, for provenance: ``cpu (x86_64, 2 cores)``, ``cuda:0 (NVIDIA H100 80GB HBM3)``."""
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return f"cuda:{index} ({torch.cuda.get_device_name(index)})"
    if device.type == "cpu":
        import platform

        return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"
    return str(device)
