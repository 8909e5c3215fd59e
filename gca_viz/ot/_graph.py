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

Under autograd the solve stays eager: a captured backward would read the forward's saved
scalings from the graph's own memory, which a second forward of the same shape before the
backward (a loss that solves twice) would overwrite.
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

from gca_viz.ot._absorb import _absorb_bound, _solve_absorb, _Solved, _start_kind
from gca_viz.ot._problem import _Problem

_KEEP = 4  # captured graphs kept, least recently used dropped first
_DEVICES = ("cuda",)  # device types whose solves are captured
_ENV = "GCA_CUDA_GRAPHS"

_ENABLED = os.environ.get(_ENV, "0").strip().lower() in ("1", "true", "yes", "on")
_SWITCH: ContextVar[bool | None] = ContextVar("gca_viz_ot_cuda_graphs", default=None)
_SEEN_MAX = 64  # keys seen once that are remembered (oldest forgotten first)
_lock = threading.Lock()
_graphs: OrderedDict[tuple[Any, ...], _Captured] = OrderedDict()
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
    fixed-iteration solves on CUDA (no ``tol``, no ``history``, no autograd) are captured
    in CUDA graphs and replayed (``on=False``: always eager).

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
    fixed iterations (no ``tol``, no ``history``) and no autograd."""
    return (
        enabled()
        and tol == 0
        and not history
        and isinstance(p.C, torch.Tensor)
        and p.C.device.type in _DEVICES
        and not p.ns.host
        and not p.needs_grad
    )


def solve(p: _Problem, n_iter: int) -> _Solved | None:
    """The solve of ``p`` (``n_iter`` sweeps) replayed from its graph, or ``None`` to solve
    eagerly: first sight of the problem's key, or a capture that failed."""
    bound = _absorb_bound(p.ns, p.C)
    from_zero, tame = _start_kind(p, bound)
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
            captured = _capture(p, n_iter)
            if captured is None:
                _failed[key] = None
                while len(_failed) > _SEEN_MAX:
                    _failed.popitem(last=False)
                return None
            _graphs[key] = captured
            while len(_graphs) > _KEEP:
                _graphs.popitem(last=False)
        _graphs.move_to_end(key)
        return _graphs[key].replay(p)


@dataclass
class _Captured:
    """A captured solve: its replay, its input buffers and its output buffers."""

    replay_graph: Callable[[], Any]
    inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # C, μ, ν
    outputs: tuple[torch.Tensor, ...]  # f, g, residuals, plan, flag

    done: Any = None  # CUDA: an event recorded after the last replay's clones

    def replay(self, p: _Problem) -> _Solved:
        """Copy the problem in, replay, clone the results out (call under the lock)."""
        if self.done is not None:  # a replay from another stream may still be reading
            torch.cuda.current_stream(p.C.device).wait_event(self.done)
        for buffer, x in zip(self.inputs, (p.C, p.mu, p.nu), strict=True):
            buffer.copy_(x)
        self.replay_graph()
        f, g, errors, plan, ok = (x.clone() for x in self.outputs)
        if p.C.device.type == "cuda":
            self.done = torch.cuda.Event()
            self.done.record(torch.cuda.current_stream(p.C.device))
        return _Solved(f, g, [errors], [], plan, ok)


def _fixed(p: _Problem, n_iter: int) -> tuple[torch.Tensor, ...]:
    """The absorbing engine's ``n_iter`` sweeps as the tensors a graph returns."""
    solved = _solve_absorb(p, n_iter, 0.0, False)
    ok = solved.ok if isinstance(solved.ok, torch.Tensor) else torch.tensor(bool(solved.ok))
    return solved.f, solved.g, torch.cat(solved.errors), solved.plan, ok


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


def _capture(p: _Problem, n_iter: int) -> _Captured | None:
    """Capture the solve of ``p`` on buffers of its shape; ``None`` (and one warning) if
    the capture fails."""
    try:
        with torch.inference_mode(False):  # buffers any later replay may write into
            inputs = (p.C.clone(), p.mu.clone(), p.nu.clone())
        assert p.checked is not None
        # The row minima the validation may hand over are this call's tensor, not a buffer:
        # the graph recomputes them from its own C.
        static = replace(p, C=inputs[0], mu=inputs[1], nu=inputs[2],
                         checked=replace(p.checked, row_min=None))  # fmt: skip
        with torch.no_grad():
            replay, outputs = _record(lambda: _fixed(static, n_iter), inputs)
        return _Captured(replay, inputs, outputs)
    except Exception as exc:  # any refusal: this key is solved eagerly, said once
        warnings.warn(
            f"gca_viz.ot: could not capture a CUDA graph for a solve of shape "
            f"{tuple(p.C.shape)} ({type(exc).__name__}: {exc}); it runs eagerly",
            RuntimeWarning,
            stacklevel=4,
        )
        return None
