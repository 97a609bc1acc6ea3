"""torch.distributed as launched by ``torchrun``: who this process is, the process group, sharding, and
collectives that are no-ops in a single process.

``torchrun --nproc_per_node N`` (or with ``--nnodes``/``--rdzv_endpoint`` across nodes) sets ``RANK``,
``LOCAL_RANK`` and ``WORLD_SIZE``; :func:`distributed_session` joins the process group (NCCL on CUDA,
gloo on CPU) and pins each process to ``cuda:LOCAL_RANK``. A plain ``python``/console-script run is
rank 0 of a world of 1 and every helper below does nothing.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from .device import resolve_device
from .errors import ConfigurationError


@dataclass(frozen=True)
class DistributedContext:
    """This process's place in the job: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, items: list) -> list:
        """This rank's share of ``items``: every ``world_size``-th item from position ``rank``."""
        return list(items)[self.rank :: self.world_size]


def describe_job(context: DistributedContext | None = None) -> dict:
    """How a job runs, for its records: ``{"processes", "backend", "launcher"}`` (backend ``None`` and
    launcher ``single process`` outside a process group)."""
    context = context or current()
    backend = str(dist.get_backend()) if dist.is_available() and dist.is_initialized() else None
    return {
        "processes": context.world_size,
        "backend": backend,
        "launcher": "torchrun" if context.enabled else "single process",
    }


def process_rank() -> int:
    """This process's global rank from ``torchrun``'s environment (0 outside torchrun); valid before
    and after the process group exists."""
    return int(os.environ.get("RANK", "0"))


def launched_by_torchrun() -> bool:
    """True in a process of a multi-process ``torchrun`` job."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current() -> DistributedContext:
    """The context of the initialised process group, or rank 0 of 1."""
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))
    return DistributedContext()


@contextlib.contextmanager
def distributed_session(device="auto"):
    """Yield ``(context, device)``; under ``torchrun`` join the process group for the block (and leave
    it after, when this call joined it). On CUDA each process takes ``cuda:LOCAL_RANK`` and NCCL; on CPU
    (and MPS) gloo."""
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        dev = resolve_device(device)
        context = current()
        if context.enabled and dev.type == "cuda" and dev.index is None:
            dev = torch.device("cuda", context.local_rank)
        yield context, dev
        return
    if not dist.is_available():
        raise ConfigurationError("this torch build has no torch.distributed: run without torchrun")
    for name in ("RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        if name not in os.environ:
            raise ConfigurationError(f"WORLD_SIZE is set but {name} is not: launch with torchrun")
    dev = resolve_device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ["LOCAL_RANK"]))
        torch.cuda.set_device(dev)
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    context = current()
    if not context.is_main:  # one voice per job: the other ranks report only warnings and errors
        logging.getLogger("liverwild").setLevel(logging.WARNING)
    try:
        yield context, dev
    finally:
        dist.destroy_process_group()


# ---- collectives (no-ops in one process) --------------------------------------------------------


def barrier() -> None:
    if current().enabled:
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """``obj`` of rank ``src`` on every rank (picklable objects)."""
    if not current().enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def gather_objects(obj) -> list:
    """``[obj of rank 0, obj of rank 1, ...]`` on every rank."""
    context = current()
    if not context.enabled:
        return [obj]
    out: list = [None] * context.world_size
    dist.all_gather_object(out, obj)
    return out


def mean_over_ranks(values: dict) -> dict:
    """The average over ranks of a ``{name: float}`` with the same keys on every rank."""
    if not current().enabled or not values:
        return values
    keys = sorted(values)
    t = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(t)
    return {k: float(v) / current().world_size for k, v in zip(keys, t)}


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) with its adjoint: the gradient of every rank's copy of the sum is summed back
    to each rank's share."""

    @staticmethod
    def forward(ctx, t):
        out = t.clone()
        dist.all_reduce(out)
        return out

    @staticmethod
    def backward(ctx, grad):
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def global_sum(t: torch.Tensor) -> torch.Tensor:
    """The sum of ``t`` over ranks, differentiable: a loss built on it back-propagates to every
    rank's share, so batch-level ratios (Tversky, IoU) equal those of one process on the whole batch
    once DDP has averaged the gradients."""
    if not current().enabled:
        return t
    return _SumOverRanks.apply(t)


# ---- BatchNorm over the global batch -------------------------------------------------------------


class GlobalBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm whose training statistics are those of the global batch (all ranks), on any backend —
    torch's SyncBatchNorm needs GPUs, this also runs on CPU with gloo. With one process it is
    ``nn.BatchNorm2d``. Same parameters, buffers and state-dict keys."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and current().enabled):
            return super().forward(x)
        xf, c = x.float(), x.shape[1]
        shape = (1, c, 1, 1)
        count = torch.full((1,), x.numel() / c, dtype=torch.float32, device=x.device)
        sums = global_sum(torch.cat([xf.sum(dim=(0, 2, 3)), count]))  # two passes: no cancellation
        n = sums[c]
        mean = sums[:c] / n
        var = global_sum((xf - mean.view(shape)).square().sum(dim=(0, 2, 3))) / n  # biased, as BN normalises
        if self.track_running_stats and self.running_mean is not None and self.running_var is not None:
            with torch.no_grad():
                if self.num_batches_tracked is not None:
                    self.num_batches_tracked.add_(1)
                if self.momentum is not None:
                    factor = self.momentum
                else:  # cumulative average, as nn.BatchNorm2d
                    factor = 1.0 / float(self.num_batches_tracked) if self.num_batches_tracked is not None else 0.0
                self.running_mean.lerp_(mean.detach(), factor)
                self.running_var.lerp_(var.detach() * n / (n - 1).clamp_min(1), factor)
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def use_global_batchnorm(module: nn.Module) -> nn.Module:
    """Turn, in place, every ``nn.BatchNorm2d`` of ``module`` into :class:`GlobalBatchNorm2d`."""
    for child in module.modules():
        if type(child) is nn.BatchNorm2d:
            child.__class__ = GlobalBatchNorm2d  # same attributes and state; only forward differs
    return module


def data_parallel(network: nn.Module, context: DistributedContext, device: torch.device) -> nn.Module:
    """What a training step calls under torchrun: ``network`` with BatchNorm over the global batch, in the
    DDP wrapper that averages gradients; ``network`` itself in one process."""
    if not context.enabled:
        return network
    from torch.nn.parallel import DistributedDataParallel

    use_global_batchnorm(network)
    return DistributedDataParallel(network, device_ids=[device] if device.type == "cuda" else None)
