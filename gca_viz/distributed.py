"""Scale-out under ``torchrun``: process group set-up and a gather that keeps gradients.

With ``K`` ranks each encoding ``B/K`` samples of a global batch of ``B``, the GCA plan
must span the whole batch (``docs/math.md`` section 1: the cost is ``B x B``). Every rank
therefore gathers all embeddings (:func:`gather_with_grad`), computes the same global loss,
and back-propagates into its own slice only; summing parameter gradients over ranks
(:func:`all_reduce_gradients`) then gives exactly the single-process gradient of the global
batch (under ``DistributedDataParallel``, which averages gradients, ``gather_with_grad(...,
ddp=True)`` sums the embeddings' gradients instead). Batch norm layers become
:class:`GlobalBatchNorm`, whose statistics also span the global batch
(``torch.nn.SyncBatchNorm`` does this only on GPUs). Gloo on CPU, NCCL on GPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


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


def current() -> DistInfo:
    """This process's place without joining anything: the process group's rank and size
    when one is initialised, else what ``torchrun`` put in the environment."""
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), local)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return DistInfo(int(os.environ.get("RANK", "0")), world, local) if world > 1 else DistInfo()


class _GatherKeepGrad(torch.autograd.Function):
    """All-gather whose backward returns this rank's rows of the incoming gradient.

    Every rank computes the same global loss, so the gradient that reaches this rank's rows
    is already the full ``dL/dz_rank``: no collective is needed in the backward pass, unless
    ``summed`` (for DistributedDataParallel, which averages the parameter gradients over
    ranks): then the incoming gradient is summed over ranks first, ``K dL/dz_rank``, and
    DDP's average of ``K`` such terms is the global batch's gradient."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor, summed: bool) -> torch.Tensor:
        rows = _row_counts(tensor)
        rank, top = dist.get_rank(), max(rows)
        local = tensor.contiguous()
        if local.shape[0] < top:  # uneven batches: pad to the largest, cut after
            pad = local.new_zeros((top - local.shape[0], *local.shape[1:]))
            local = torch.cat([local, pad])
        parts = [torch.empty_like(local) for _ in rows]
        dist.all_gather(parts, local)
        ctx.start, ctx.rows, ctx.summed = sum(rows[:rank]), rows[rank], summed
        return torch.cat([part[:r] for part, r in zip(parts, rows, strict=True)], dim=0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        if ctx.summed:
            grad = grad.contiguous().clone()
            dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        return grad[ctx.start : ctx.start + ctx.rows], None


def _row_counts(tensor: torch.Tensor) -> list[int]:
    """Every rank's row count (one small all-gather and one read); ``ValueError`` naming
    each rank's shape when the ranks' rows differ in shape (they cannot be stacked)."""
    trailing = tensor.shape[1:].numel() if tensor.dim() > 1 else 0
    mine = torch.tensor([tensor.dim(), tensor.shape[0], trailing], device=tensor.device)
    every = [torch.empty_like(mine) for _ in range(dist.get_world_size())]
    dist.all_gather(every, mine)
    shapes = torch.stack(every).tolist()  # (K, 3): ndim, rows, trailing size
    if any(s[0] != shapes[0][0] or s[2] != shapes[0][2] for s in shapes):
        raise ValueError(
            "z: every rank must gather rows of one shape; got (ndim, rows, size of a row) "
            + ", ".join(f"rank {r}: {tuple(s)}" for r, s in enumerate(shapes))
        )
    return [int(s[1]) for s in shapes]


class _AllReduceSum(torch.autograd.Function):
    """Differentiable sum over ranks: the gradient of a sum is the sum of the gradients."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        out = tensor.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        out = grad.clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out


def gather_with_grad(z: torch.Tensor, info: DistInfo, *, ddp: bool = False) -> torch.Tensor:
    """``(B_k, d)`` local rows of each rank ``k`` -> ``(B, d)`` global rows in rank order,
    ``B = sum_k B_k`` (the ranks' batches may differ in size), differentiable.

    The gradient that flows back to ``z`` is ``dL/dz`` of the global loss at this rank's rows.
    Two ways to train with it on ``K`` ranks:

    * a plain model: after ``backward``, :func:`all_reduce_gradients` sums the parameter
      gradients over ranks, which gives the single-process gradient of the global batch
      (what :class:`gca_viz.train.Trainer` does);
    * a model wrapped in ``torch.nn.parallel.DistributedDataParallel``, which averages the
      gradients over ranks instead: pass ``ddp=True``, and the backward sums ``dL/dz`` over
      ranks first (one all-reduce of ``(B, d)``), so that DDP's average is the same
      gradient. Without it, DDP's gradients are ``1/K`` of the global batch's.

    Raises:
        ValueError: naming each rank's shape, if the ranks' rows differ in shape.
    """
    if not info.enabled:
        return z
    out = _GatherKeepGrad.apply(z, ddp)
    assert isinstance(out, torch.Tensor)
    return out


def all_reduce_gradients(params: Any, info: DistInfo) -> None:
    """Sum every parameter's gradient over ranks (each rank holds its slice's share)."""
    if not info.enabled:
        return
    for p in params:
        if p.grad is not None:
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    r"""Batch norm over the global batch of all ranks, on any device and backend.

    .. math::
        y = \frac{x - \mathbb E_B[x]}{\sqrt{\mathrm{Var}_B[x] + \epsilon}}\,\gamma + \beta

    where ``E_B`` and ``Var_B`` (biased) run over the ``B`` samples of every rank (and the
    spatial positions), from all-reduced sums ``sum x`` and ``sum x^2``; the all-reduce is
    differentiable, so gradients account for every rank's use of the statistics. Outside a
    process group, or in eval mode, it is an ordinary batch norm.
    """

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2-D input (B, C, ...), got {x.dim()}-D")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not (self.training and dist.is_initialized() and dist.get_world_size() > 1):
            out: torch.Tensor = super().forward(x)
            return out
        channels = x.shape[1]
        dims = [0, *range(2, x.dim())]
        count = x.new_tensor([x.numel() / channels])
        local = torch.cat([x.sum(dims), (x * x).sum(dims), count])  # (2C + 1,)
        total: torch.Tensor = _AllReduceSum.apply(local)  # (2C + 1,), differentiable
        n = total[-1]
        mean = total[:channels] / n  # (C,)
        var = total[channels : 2 * channels] / n - mean * mean  # (C,) biased
        if self.track_running_stats and self.running_mean is not None:
            assert self.running_var is not None and self.num_batches_tracked is not None
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                # momentum None: the cumulative average, as torch's batch norm
                m = self.momentum if self.momentum is not None else 1 / self.num_batches_tracked
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))
        shape = [1, channels] + [1] * (x.dim() - 2)
        y: torch.Tensor = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Replace every ``BatchNorm1d/2d`` in ``module`` by a :class:`GlobalBatchNorm` with the
    same parameters and running statistics (in place; returns ``module``, or the new layer
    when ``module`` is itself a batch norm)."""
    if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        new = GlobalBatchNorm(
            module.num_features,
            module.eps,
            module.momentum,
            module.affine,
            module.track_running_stats,
        )
        new.load_state_dict(module.state_dict())
        new.train(module.training)
        like = next(iter(module.state_dict().values()), None)  # (none without weights, stats)
        return new if like is None else new.to(device=like.device, dtype=like.dtype)
    for name, child in module.named_children():
        setattr(module, name, convert_batchnorm(child))
    return module


def shutdown(info: DistInfo) -> None:
    """Leave the process group (no-op when not distributed)."""
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()
