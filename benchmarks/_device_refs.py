"""Reference solvers and timing helpers for the ``--device`` modes of the benchmarks.

* :func:`bare_loop`: a kernel-domain Sinkhorn in plain torch on the device, the kernel
  ``K = exp(-C/ε)``, ``T`` sweeps ``u = a / (K v)``, ``v = b / (K^T u)`` and the plan
  ``u_i K_ij v_j``; no validation, no stabilisation, no residuals: the least any
  kernel-domain solver does.
* :class:`GraphedLoop`: the same fixed loop captured once in a CUDA graph and replayed (one
  launch for the whole solve); CUDA only.
* :func:`pot_torch`: POT's ``ot.sinkhorn`` on torch tensors (its torch backend, on the
  tensors' device), ``stopThr=0`` so that it runs every sweep.
* :func:`time_ms`: the median wall time of a call, synchronising the device around it.
* :func:`device_reads`: the synchronisations a call makes on CUDA
  (``torch.cuda.set_sync_debug_mode``); ``None`` elsewhere.
"""

from __future__ import annotations

import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch

from gca_viz.device import cuda_syncs


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_ms(call: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Median wall time in ms of ``call`` over ``repeats`` runs after one warm-up."""
    call()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        call()
        sync(device)
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def device_reads(call: Callable[[], Any], device: torch.device) -> int | None:
    """Host synchronisations of one call on CUDA (:func:`gca_viz.device.cuda_syncs`),
    else ``None``."""
    return cuda_syncs(call) if device.type == "cuda" else None


def bare_loop(C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float, n_iter: int):
    """``(n, m)`` plan after ``n_iter`` kernel-domain sweeps (no checks; see the module)."""
    K = torch.exp(C / -eps)  # (n, m)
    v = torch.ones_like(b)
    for _ in range(n_iter):
        u = a / torch.mv(K, v)  # (n,)
        v = b / torch.mv(K.T, u)  # (m,)
    return K.mul_(v[None, :]).mul_(u[:, None])


class GraphedLoop:
    """:func:`bare_loop` on fixed input buffers, captured in a CUDA graph; call to replay."""

    def __init__(self, C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float, n_iter: int):
        if C.device.type != "cuda":
            raise ValueError("a CUDA graph needs a CUDA tensor")
        self.inputs = (C.clone(), a.clone(), b.clone())
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):  # warm-up outside the capture, as CUDA graphs need
            for _ in range(2):
                bare_loop(*self.inputs, eps, n_iter)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.plan = bare_loop(*self.inputs, eps, n_iter)

    def __call__(self) -> torch.Tensor:
        self.graph.replay()
        return self.plan


def pot_torch(
    C: torch.Tensor, a: torch.Tensor, b: torch.Tensor, eps: float, n_iter: int, method: str
):
    """POT's Sinkhorn on torch tensors (its torch backend), every sweep run."""
    import ot

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (it warns that it did not converge)
        return ot.sinkhorn(a, b, C, eps, method=method, numItermax=n_iter, stopThr=0.0)


def graphed_loss(
    loss: torch.nn.Module, z1: torch.Tensor, z2: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss`` with its forward and backward captured in CUDA graphs
    (``torch.cuda.make_graphed_callables``); CUDA only."""
    sample = (z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_())
    return torch.cuda.make_graphed_callables(loss, sample)
