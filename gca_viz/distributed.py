"""Scale-out under ``torchrun``: process group set-up and a gather that keeps gradients.

With ``K`` ranks each encoding ``B/K`` samples of a global batch of ``B``, the GCA plan
must span the whole batch (``gca-math.md`` section 1: the cost is ``B x B``). Every rank
therefore gathers all embeddings (:func:`gather_with_grad`), computes the same global loss,
and back-propagates into its own slice only; summing parameter gradients over ranks
(:func:`all_reduce_gradients`) then gives exactly the single-process gradient of the global
batch. Gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: ``rank`` of ``world_size`` (1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment, if any.

    Reads ``WORLD_SIZE``, ``RANK`` and ``LOCAL_RANK``; uses NCCL for CUDA devices and gloo
    otherwise. Returns a single-process :class:`DistInfo` when ``WORLD_SIZE`` is unset or 1.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


class _GatherKeepGrad(torch.autograd.Function):
    """All-gather whose backward returns this rank's slice of the incoming gradient.

    Every rank computes the same global loss, so the gradient that reaches this rank's slice
    is already the full ``dL/dz_rank``: no collective is needed in the backward pass."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        world = dist.get_world_size()
        parts = [torch.empty_like(tensor) for _ in range(world)]
        dist.all_gather(parts, tensor.contiguous())
        ctx.rank, ctx.rows = dist.get_rank(), tensor.shape[0]
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        start = ctx.rank * ctx.rows
        return grad[start : start + ctx.rows]


def gather_with_grad(z: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """``(B/K, d)`` local rows -> ``(B, d)`` global rows in rank order, differentiable."""
    if not info.enabled:
        return z
    out = _GatherKeepGrad.apply(z)
    assert isinstance(out, torch.Tensor)
    return out


def all_reduce_gradients(params: Any, info: DistInfo) -> None:
    """Sum every parameter's gradient over ranks (each rank holds its slice's share)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


def all_reduce_buffers_mean(module: torch.nn.Module, info: DistInfo) -> None:
    """Average floating-point buffers (batch-norm running statistics) over ranks."""
    if not info.enabled:
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b, op=dist.ReduceOp.SUM)
            b.div_(info.world_size)


def shutdown(info: DistInfo) -> None:
    """Leave the process group (no-op when not distributed)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
