r"""Fixed-iteration solves replayed from a captured CUDA graph (opt-in, see :func:`cuda_graphs`).

On a GPU a solve of ``T`` sweeps launches some ten kernels per sweep, each a few
microseconds of work at ``n <= 4096``: the solve is bound by the launches, not the GPU. On
CUDA without ``tol``, ``history`` or autograd, the absorbing engine's operations after the
validation depend only on the problem's shape, dtype, ``ε``, ``ρ1``, ``ρ2``, ``T`` and two
decisions the validation makes on the host (start from ``f = 0``; absorb on a schedule):
the device path reads nothing while it iterates (:mod:`gca_viz.ot._loop`). Such a solve
can be captured once in a CUDA graph and replayed as one launch.

A problem is captured the second time its key is seen (a page that moves ``ε`` does not
pay a capture per value; a loop of solves without autograd, or a benchmark, replays from
its second call). The key also holds what changes the captured kernels besides the
problem: inference mode, autocast and TF32 matrix products. A replay copies ``C``, ``μ``,
``ν`` into the graph's input buffers and clones its outputs, under a lock, and the next
replay's copies wait on the device for the last one's clones (an event), so two threads
never share a replay's buffers, whatever their streams. The last :data:`_KEEP` graphs are
kept. If a capture fails, the key is solved eagerly from then on, with one warning.

Under autograd (a loss in training) the solve is one autograd node whose forward replays
the graph of the solve without autograd, and whose backward replays a second graph that
recomputes the solve with autograd from the node's saved inputs and differentiates it
(:class:`_Replayed`): the gradient is the eager unrolled one, and each backward reads its
own forward's inputs, so a loss that solves the same shape twice before its backward is
safe. (Replaying a captured forward's saved scalings instead would let the second forward
overwrite the first's.) The price is one more solve on the device per step, which is the
cheap part where launches dominate (``n <= 4096``).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

import torch

from gca_viz._validate import user_stacklevel
from gca_viz.ot._absorb import _absorb_bound, _solve_absorb, _Solved, _start_kind
from gca_viz.ot._halfsteps import first_order_only
from gca_viz.ot._problem import _Problem

_KEEP = 4  # captured graphs kept, least recently used dropped first
_DEVICES = ("cuda",)  # device types whose solves are captured
_ENV = "GCA_CUDA_GRAPHS"

_ENABLED = os.environ.get(_ENV, "0").strip().lower() in ("1", "true", "yes", "on")
_SWITCH: ContextVar[bool | None] = ContextVar("gca_viz_ot_cuda_graphs", default=None)
_SEEN_MAX = 64  # keys seen once that are remembered (oldest forgotten first)
_lock = threading.Lock()
_graphs: OrderedDict[tuple[Any, ...], _Captured | _CapturedGrad] = OrderedDict()
_seen: OrderedDict[tuple[Any, ...], None] = OrderedDict()  # keys seen once
_failed: OrderedDict[tuple[Any, ...], None] = OrderedDict()  # keys CUDA refused to capture


def enabled() -> bool:
    """Whether fixed-iteration CUDA solves replay captured graphs here: the innermost
    :func:`cuda_graphs` block of this thread (or task), else ``GCA_CUDA_GRAPHS``."""
    switch = _SWITCH.get()
    return _ENABLED if switch is None else switch


@contextmanager
def cuda_graphs(on: bool = True) -> Iterator[None]:
    """Within the block (in this thread or task only: a context variable),
    fixed-iteration solves on CUDA (no ``tol``, no ``history``) are captured in CUDA
    graphs and replayed (``on=False``: always eager); under autograd, the solve's backward
    too (:class:`_Replayed`), so a training step of a GCA loss replays both.

    Off by default; ``GCA_CUDA_GRAPHS=1`` in the environment turns it on for the process.
    The plan, potentials and residuals are those of the eager solve (the same operations,
    replayed). Example::

        with gca_viz.ot.cuda_graphs():
            for batch in loader:
                res = sinkhorn(cosine_cost(z1, z2), epsilon=0.5, n_iter=100)
    """
    token = _SWITCH.set(bool(on))
    try:
        yield
    finally:
        _SWITCH.reset(token)


def clear_cuda_graphs() -> None:
    """Drop every captured graph (their memory goes back to torch's caching allocator)."""
    with _lock:
        _graphs.clear()
        _seen.clear()
        _failed.clear()


def applies(p: _Problem, tol: float, history: bool) -> bool:
    """Whether a solve of ``p`` may replay a graph: enabled, CUDA, the absorbing engine's
    fixed iterations (no ``tol``, no ``history``), no ``torch.func`` transform."""
    return (
        enabled()
        and tol == 0
        and not history
        and isinstance(p.C, torch.Tensor)
        and p.C.device.type in _DEVICES
        and not p.ns.host
        and not p.transformed
    )


def solve(p: _Problem, n_iter: int) -> _Solved | None:
    """The solve of ``p`` (``n_iter`` sweeps) replayed from its graph (under autograd, a
    :class:`_Replayed` node), or ``None`` to solve eagerly: first sight of the problem's
    key, or a capture that failed."""
    bound = _absorb_bound(p.ns, p.C)
    from_zero, tame = _start_kind(p, bound)
    needs = _needs(p)
    key = (
        tuple(p.C.shape),
        p.C.dtype,
        p.C.device,
        p.eps,
        p.rho_a,
        p.rho_b,
        p.lam_a,
        p.lam_b,
        n_iter,
        from_zero,
        tame,
        needs,
        torch.is_inference_mode_enabled(),
        torch.is_autocast_enabled(p.C.device.type),
        torch.backends.cuda.matmul.allow_tf32,
    )
    with _lock:
        if key in _failed:
            return None
        if key not in _graphs:
            if key not in _seen:  # first sight: remember it, solve eagerly
                _seen[key] = None
                while len(_seen) > _SEEN_MAX:
                    _seen.popitem(last=False)
                return None
            del _seen[key]
            captured = _capture(p, n_iter, needs)
            if captured is None:
                _failed[key] = None
                while len(_failed) > _SEEN_MAX:
                    _failed.popitem(last=False)
                return None
            _graphs[key] = captured
            while len(_graphs) > _KEEP:
                _graphs.popitem(last=False)
        _graphs.move_to_end(key)
        entry = _graphs[key]
        if isinstance(entry, _Captured):
            f, g, errors, plan, ok = entry.run((p.C, p.mu, p.nu))
            return _Solved(f, g, [errors], [], plan, ok)
        f, g, errors, ok = _Replayed.apply(p.C, p.mu, p.nu, entry)
        return _Solved(f, g, [errors], [], None, ok)  # (the plan: from f, g under autograd)


def _needs(p: _Problem) -> tuple[bool, bool, bool] | None:
    """Which of ``C``, ``μ``, ``ν`` autograd follows, or ``None`` without autograd."""
    if not p.needs_grad:
        return None
    return (p.C.requires_grad, p.mu.requires_grad, p.nu.requires_grad)


@dataclass
class _Captured:
    """A captured computation: its replay, its input buffers and its output buffers."""

    replay_graph: Callable[[], Any]
    inputs: tuple[torch.Tensor, ...]
    outputs: tuple[torch.Tensor, ...]

    done: Any = None  # CUDA: an event recorded after the last replay's clones

    def run(self, values: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Copy ``values`` in, replay, clone the outputs out (call under the lock)."""
        device = values[0].device
        if self.done is not None:  # a replay from another stream may still be reading
            torch.cuda.current_stream(device).wait_event(self.done)
        with torch.no_grad():
            for buffer, x in zip(self.inputs, values, strict=True):
                buffer.copy_(x)
            self.replay_graph()
            out = tuple(x.clone() for x in self.outputs)
        if device.type == "cuda":
            self.done = torch.cuda.Event()
            self.done.record(torch.cuda.current_stream(device))
        return out


@dataclass
class _CapturedGrad:
    """A solve under autograd: the graph of its forward (without autograd) and the graph of
    its backward (the solve recomputed with autograd, then differentiated)."""

    forward: _Captured  # (C, μ, ν) -> f, g, residuals, plan, flag
    backward: _Captured  # (C, μ, ν, f̄, ḡ) -> the gradients of the inputs in `needs`
    needs: tuple[bool, bool, bool]  # whether C, μ, ν need a gradient


class _Replayed(torch.autograd.Function):
    r"""A fixed-iteration solve under autograd, replayed: ``(C, μ, ν) -> (f, g, residuals,
    flag)``.

    Forward replays the solve's graph without autograd. Backward copies this node's saved
    ``C``, ``μ``, ``ν`` and the incoming ``f̄``, ``ḡ`` into the backward graph's buffers and
    replays it: the same ``T`` sweeps recomputed with autograd (a
    :class:`~gca_viz.ot._halfsteps._FusedHalfSteps` node per stretch, as eagerly) and
    differentiated, ``C̄ = ∂(⟨f̄, f⟩ + ⟨ḡ, g⟩) / ∂C`` (likewise ``μ̄``, ``ν̄``). As the
    eager engine's, the backward is first order only: a second derivative raises.
    """

    @staticmethod
    def forward(
        ctx: Any, C: torch.Tensor, mu: torch.Tensor, nu: torch.Tensor, entry: _CapturedGrad
    ) -> tuple[torch.Tensor, ...]:
        f, g, errors, _plan, ok = entry.forward.run((C, mu, nu))
        ctx.entry = entry
        ctx.save_for_backward(C, mu, nu)
        ctx.mark_non_differentiable(errors, ok)
        return f, g, errors, ok

    @staticmethod
    def backward(ctx: Any, gf: torch.Tensor, gg: torch.Tensor, *_: Any) -> tuple[Any, ...]:
        C, mu, nu = ctx.saved_tensors
        entry: _CapturedGrad = ctx.entry
        with _lock:
            grads = iter(entry.backward.run((C, mu, nu, gf, gg)))
        out = tuple(next(grads) if need else None for need in entry.needs)
        return (*first_order_only(out, (C, mu, nu, gf, gg)), None)


def _fixed(p: _Problem, n_iter: int) -> tuple[torch.Tensor, ...]:
    """The absorbing engine's ``n_iter`` sweeps as the tensors a graph returns."""
    solved = _solve_absorb(p, n_iter, 0.0, False)
    ok = solved.ok if isinstance(solved.ok, torch.Tensor) else torch.tensor(bool(solved.ok))
    return solved.f, solved.g, torch.cat(solved.errors), solved.plan, ok


def _gradients(
    p: _Problem, n_iter: int, incoming: tuple[torch.Tensor, torch.Tensor]
) -> tuple[torch.Tensor, ...]:
    """The solve of ``p`` recomputed with autograd and differentiated: the gradients of
    ``⟨f̄, f⟩ + ⟨ḡ, g⟩`` for the inputs of ``p`` that require one (``incoming = (f̄, ḡ)``)."""
    with torch.enable_grad():
        solved = _solve_absorb(p, n_iter, 0.0, False)
        wrt = [x for x in (p.C, p.mu, p.nu) if x.requires_grad]
        got = torch.autograd.grad((solved.f, solved.g), wrt, incoming, allow_unused=True)
    return tuple(torch.zeros_like(x) if d is None else d for d, x in zip(got, wrt, strict=True))


def _record(
    run: Callable[[], tuple[torch.Tensor, ...]], inputs: tuple[torch.Tensor, ...]
) -> tuple[Callable[[], Any], tuple[torch.Tensor, ...]]:
    """Capture ``run`` in a CUDA graph: its replay and the tensors it writes. ``run`` may
    read no tensor but ``inputs`` and those it makes (a graph replays fixed addresses).

    It runs once on a side stream first (CUDA libraries allocate their workspaces on a
    first call, which a capture may not do)."""
    device = inputs[0].device
    side = torch.cuda.Stream(device=device)
    side.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(side):
        run()
    torch.cuda.current_stream(device).wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph, capture_error_mode="thread_local"):
        outputs = run()
    return graph.replay, outputs


def _buffers(p: _Problem, needs: tuple[bool, bool, bool] | None) -> _Problem:
    """``p`` on new input buffers (leaves that require a gradient as ``needs`` says). The
    row minima the validation may hand over are this call's tensor, not a buffer: the graph
    recomputes them from its own ``C``."""
    want = needs or (False, False, False)
    with torch.inference_mode(False):  # buffers any later replay may write into
        C, mu, nu = (
            x.detach().clone().requires_grad_(w)
            for x, w in zip((p.C, p.mu, p.nu), want, strict=True)
        )
    assert p.checked is not None
    return replace(p, C=C, mu=mu, nu=nu, checked=replace(p.checked, row_min=None))


def _capture_solve(p: _Problem, n_iter: int) -> _Captured:
    """The solve of ``p`` without autograd, captured on buffers of its shape."""
    static = _buffers(p, None)
    inputs = (static.C, static.mu, static.nu)
    with torch.no_grad():
        replay, outputs = _record(lambda: _fixed(static, n_iter), inputs)
    return _Captured(replay, inputs, outputs)


def _capture(
    p: _Problem, n_iter: int, needs: tuple[bool, bool, bool] | None
) -> _Captured | _CapturedGrad | None:
    """Capture the solve of ``p`` (under autograd: its forward and its backward); ``None``
    (and one warning) if a capture fails."""
    try:
        forward = _capture_solve(p, n_iter)
        if needs is None:
            return forward
        static = _buffers(p, needs)
        with torch.inference_mode(False):
            incoming = (torch.ones_like(static.mu), torch.ones_like(static.nu))  # f̄, ḡ
        inputs = (static.C, static.mu, static.nu, *incoming)
        replay, outputs = _record(lambda: _gradients(static, n_iter, incoming), inputs)
        return _CapturedGrad(forward, _Captured(replay, inputs, outputs), needs)
    except Exception as exc:  # any refusal: this key is solved eagerly, said once
        warnings.warn(
            f"gca_viz.ot: could not capture a CUDA graph for a solve of shape "
            f"{tuple(p.C.shape)} ({type(exc).__name__}: {exc}); it runs eagerly",
            RuntimeWarning,
            stacklevel=user_stacklevel(),  # (a loss reaches here through more frames)
        )
        return None
