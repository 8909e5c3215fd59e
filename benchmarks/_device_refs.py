"""Reference solvers and timing helpers for the ``--device`` modes of the benchmarks.

* :func:`bare_loop`: a kernel-domain Sinkhorn in plain torch on the device, the kernel
  ``K = exp(-C/ε)``, ``T`` sweeps ``u = a / (K v)``, ``v = b / (K^T u)`` and the plan
  ``u_i K_ij v_j``; no validation, no stabilisation, no residuals: the least any
  kernel-domain solver does.
* :class:`GraphedLoop`: the same fixed loop captured once in a CUDA graph and replayed (one
  launch for the whole solve); CUDA only.
* :func:`pot_torch`: POT's ``ot.sinkhorn`` on torch tensors (its torch backend, on the
  tensors' device), ``stopThr=0`` so that it runs every sweep.
* :func:`nt_xent`: SimCLR's NT-Xent written plainly (``cross_entropy``), the reference of
  a loss's cost on a device.
* :func:`ott_gca_ince`: GCA-INCE's loss and gradient in OTT-JAX, jitted.
* :func:`ott_sinkhorn`: OTT-JAX's ``Sinkhorn`` (kernel or log-sum-exp updates), jitted,
  exactly ``T`` sweeps, on JAX's device of the same kind; when ``ott-jax`` (and JAX's GPU
  build, for CUDA) is installed, else the reason it is not.
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


def _ott(device: torch.device) -> tuple[Any, ...] | str:
    """OTT-JAX's modules ``(jax, jax.numpy, geometry, linear_problem, sinkhorn)``, or why
    they cannot serve ``device`` (not installed; JAX built for another kind of device)."""
    try:
        import jax
        import jax.numpy as jnp
        from ott.geometry import geometry
        from ott.problems.linear import linear_problem
        from ott.solvers.linear import sinkhorn as ott_sk
    except ImportError:
        return "ott-jax is not installed"
    want = "gpu" if device.type == "cuda" else "cpu"
    if jax.default_backend() != want:
        return f"JAX runs on {jax.default_backend()}, not {want} (install JAX's {want} build)"
    return jax, jnp, geometry, linear_problem, ott_sk


def ott_sinkhorn(
    C: torch.Tensor, eps: float, n_iter: int, lse_mode: bool
) -> Callable[[], Any] | str:
    """A call running OTT-JAX's Sinkhorn on ``C`` (uniform marginals, ``n_iter`` sweeps,
    jitted, compiled here) and waiting for its plan; or why it cannot run here.

    ``C`` is copied once to JAX's default device, which must be of ``C``'s kind (a GPU for
    a CUDA tensor); float64 turns on JAX's 64-bit mode."""
    ott = _ott(C.device)
    if isinstance(ott, str):
        return ott
    jax, jnp, geometry, linear_problem, ott_sk = ott
    if C.dtype == torch.float64:
        jax.config.update("jax_enable_x64", True)
    cost = jnp.asarray(C.detach().cpu().numpy())
    n, m = cost.shape
    a, b = jnp.full((n,), 1.0 / n, cost.dtype), jnp.full((m,), 1.0 / m, cost.dtype)
    solver = ott_sk.Sinkhorn(
        lse_mode=lse_mode,
        threshold=0.0,
        inner_iterations=n_iter,  # one convergence check, after the n_iter sweeps
        min_iterations=n_iter,
        max_iterations=n_iter,
    )

    @jax.jit
    def solve(cost: Any) -> Any:
        problem = linear_problem.LinearProblem(geometry.Geometry(cost, epsilon=eps), a, b)
        return solver(problem).matrix

    solve(cost).block_until_ready()  # compile

    def call() -> Any:
        return solve(cost).block_until_ready()

    return call


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """Reference only: SimCLR's NT-Xent, ``-log softmax`` of each view's partner among the
    other ``2N - 1`` views (cosine similarities / temperature), averaged over ``2N`` rows."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    n2 = z.shape[0]
    logits = (z @ z.T) / temperature  # (2N, 2N)
    logits = logits.masked_fill(torch.eye(n2, dtype=torch.bool, device=z.device), float("-inf"))
    partner = (torch.arange(n2, device=z.device) + n2 // 2) % n2
    return torch.nn.functional.cross_entropy(logits, partner)


def ott_gca_ince(
    z1: torch.Tensor, z2: torch.Tensor, eps: float = 0.5, n_iter: int = 10
) -> Callable[[], Any] | str:
    """A call timing GCA-INCE's loss and its gradient in OTT-JAX (joint layout, the
    ``(2N, 2N)`` cosine cost with its diagonal excluded, ``n_iter`` log-domain sweeps,
    differentiated through the unrolled sweeps like ours, jitted, compiled here), on copies
    of ``z1``, ``z2`` on JAX's device; or why it cannot run here."""
    ott = _ott(z1.device)
    if isinstance(ott, str):
        return ott
    jax, jnp, geometry, linear_problem, ott_sk = ott
    solver = ott_sk.Sinkhorn(
        threshold=0.0,
        inner_iterations=n_iter,
        min_iterations=n_iter,
        max_iterations=n_iter,
        implicit_diff=None,  # backpropagate through the sweeps
    )

    def loss(a: Any, b: Any) -> Any:
        z = jnp.concatenate([a, b])
        z = z / jnp.linalg.norm(z, axis=1, keepdims=True)
        n2 = z.shape[0]
        cost = jnp.where(jnp.eye(n2, dtype=bool), jnp.inf, 1.0 - z @ z.T)
        mu = jnp.full((n2,), 1.0 / n2, z.dtype)
        problem = linear_problem.LinearProblem(geometry.Geometry(cost, epsilon=eps), mu, mu)
        out = solver(problem)
        idx = jnp.arange(n2)
        pos = (idx + n2 // 2) % n2
        log_p = (out.f[idx] + out.g[pos] - cost[idx, pos]) / eps
        return -(log_p + jnp.log(n2)).mean()

    step = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    a, b = (jnp.asarray(z.detach().cpu().numpy()) for z in (z1, z2))
    jax.block_until_ready(step(a, b))  # compile

    def call() -> Any:
        return jax.block_until_ready(step(a, b))

    return call


def graphed_loss(
    loss: torch.nn.Module, z1: torch.Tensor, z2: torch.Tensor
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """``loss`` with its forward and backward captured in CUDA graphs
    (``torch.cuda.make_graphed_callables``); CUDA only."""
    sample = (z1.detach().clone().requires_grad_(), z2.detach().clone().requires_grad_())
    return torch.cuda.make_graphed_callables(loss, sample)
