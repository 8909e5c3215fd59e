r"""A stretch of kernel-domain half-steps between two absorptions (the absorbing engine's loop).

With the stabilised kernel ``K~ = exp((f_i + g_j - C_ij)/ε)`` of the absorbed potentials,
a row step is ``u = (μ_eff / K~ v)^ρ1`` and a column step ``v = (ν_eff / K~^T u)^ρ2``
(``μ_eff = μ exp(-f/λ1)``, or ``μ`` for a hard marginal). Every row step after the first
also yields the residual of the sweep just finished, ``||u * (K~ v) - μ_target||_1`` (times
``ρ1`` for a relaxed row marginal), from the product it computes anyway.

What ends a stretch is decided by a watch:

* on the host (:class:`_HostWatch`), from each half-step's scaling, read at once (free on
  the CPU): "absorb" when a scaling leaves its bounds, "recover" when a product fell below
  ``sqrt(tiny)`` (the step is then redone by log-sum-exp);
* on a device (:class:`_DeviceWatch`), without reading anything: absorptions follow a fixed
  schedule, and the products and scalings are folded into a flag on the device that the
  solver reads once, with its result. A false flag makes the solver redo the problem with
  the log-domain engine.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from gca_viz.ot._xp import Namespace

if TYPE_CHECKING:
    from gca_viz.ot._absorb import _AbsorbState

_RESIDUAL_BATCH = 32  # sweeps whose residuals are formed together, without a tolerance
_TOL_EVERY = 8  # on a device, sweeps between two reads of the residual when tol > 0


@dataclass
class _Stretch:
    """Control and record of a stretch of kernel-domain half-steps (no absorption inside).

    Half-step ``h`` (counted over the whole solve from 0) is a row step when ``h`` is even.
    """

    state: _AbsorbState
    h: int  # half-steps done so far
    max_half: int  # 2 T
    tol: float
    lo: float  # bounds on the scalings before an absorption (host)
    hi: float
    errors: list[Any]  # residuals, one (k,) array per batch of finished sweeps
    single: bool  # stop after one half-step (to record the history)
    record: bool  # keep the steps for _FusedHalfSteps.backward
    every: int | None = None  # device: absorb after the 2nd half-step and every `every`
    action: str = "ok"  # "ok", or what the last half-step needs: "absorb" / "recover"
    done: bool = False
    # (row step?, input scaling, product, output scaling) per half-step, for the backward
    steps: list[tuple[bool, Any, Any, Any]] = field(default_factory=list)


def _advance(stretch: _Stretch, u: Any, v: Any, graph: bool) -> tuple[Any, Any]:
    """Half-steps until the last sweep, the tolerance, or a half-step that needs an
    absorption (it is kept) or a log-sum-exp recovery (it is dropped: the caller redoes it).

    ``graph``: autograd follows the products (the history path under autograd). Otherwise
    the stretch runs without autograd in the problem's namespace: numpy for a plain CPU
    problem (its BLAS matrix-vector product is 2x faster here than ``torch.mv``, its small
    vector operations a fraction of torch's dispatch), torch for a torch problem. A torch
    problem on the CPU (a loss's) once ran its stretch in numpy too; numpy's BLAS threads,
    spinning after each product, then took the cores from torch's next operations:
    GCA-INCE at N = 512 on 2 cores, forward and backward 32 ms that way, 16 ms in torch
    (``ince``: 10 ms). One namespace per problem also gives a loss the same operations with
    and without autograd.
    """
    ns = stretch.state.ns
    if graph:
        mv, mv_t = ns.mv(stretch.state.K)
        return _stretch(stretch, u, v, mv, mv_t, ns)
    mv, mv_t = ns.mv(ns.detach(stretch.state.K))
    with ns.quiet(), ns.no_grad():
        return _stretch(stretch, u, v, mv, mv_t, ns)


def _stretch(
    stretch: _Stretch,
    u: Any,
    v: Any,
    mv: Callable[[Any], Any],
    mv_t: Callable[[Any], Any],
    ns: Namespace,
) -> tuple[Any, Any]:
    """The loop of :func:`_advance` in namespace ``ns``; ``mv``, ``mv_t`` are the products
    with ``K~`` and ``K~^T``.

    Each half-step is a product and a few vector operations (plus the residual once per
    sweep); the loop keeps everything in locals, since at ``n = 1024`` Python's own
    overhead per half-step is comparable to the vector operations."""
    st, p = stretch.state, stretch.state.p
    xp = ns.xp
    mu_eff, nu_eff, f, mu = (ns.native(x) for x in (st.mu_eff, st.nu_eff, st.f, p.mu))
    rho_a, rho_b, lam_a, eps = p.rho_a, p.rho_b, p.lam_a, p.eps
    h, max_half, tol, errors = stretch.h, stretch.max_half, stretch.tol, stretch.errors
    steps = stretch.steps if stretch.record else None
    watch = (_HostWatch if ns.host else _DeviceWatch)(stretch, ns, mu_eff, nu_eff)
    # The row sums u * (K~ v) of each sweep go into a row of a small buffer, and the
    # residuals of a batch of sweeps are formed together (one call per sweep instead of
    # four, no kept vectors). With a tolerance, a batch is one sweep on the host.
    size = _RESIDUAL_BATCH if tol == 0 else (1 if ns.host else _TOL_EVERY)
    sums = ns.empty((size, mu.shape[0]), like=mu)
    scalings = None if lam_a is None else ns.empty((size, mu.shape[0]), like=mu)
    pending = 0  # rows of the buffers in use
    # under torch.func's forward mode (jacfwd, hessian) the residuals' out= products refuse
    # the dual vectors: they take the values alone there
    bare = ns.detach if p.transformed else _same

    def flush(read: bool) -> bool:
        """Append the pending residuals; with ``read``, whether one is within ``tol``."""
        nonlocal pending
        if not pending:
            return False
        with ns.no_grad():
            rows = sums[:pending]
            if scalings is None:
                rows -= mu
            else:  # μ exp(-f_true / λ1) with f_true = f + ε log u, weighted by ρ1
                rows -= mu * xp.exp(-(ns.detach(f) + eps * xp.log(scalings[:pending])) / lam_a)
                rows *= rho_a  # (see SinkhornResult.errors)
            errors.append(xp.abs(rows, out=rows).sum(axis=1))
        pending = 0
        return read and ns.floats([xp.amin(errors[-1])])[0] <= tol

    action = "ok"
    while True:
        if h % 2 == 0:
            s = mv(v)  # (n,) = (K~ v)_i
            if h > 0:  # residual of the sweep just finished: P 1 = u * (K~ v)
                with ns.no_grad():  # (forward mode is not off in no_grad: the values)
                    ut = bare(u)
                    xp.multiply(ut, bare(s), out=sums[pending])
                    if scalings is not None:
                        scalings[pending] = ut
                pending += 1
                met = pending == size and flush(read=tol > 0)
                if h == max_half or met:
                    flush(read=False)
                    watch.close()
                    stretch.h, stretch.action, stretch.done = h, action, True
                    return u, v
            new = _scale(mu_eff, s, rho_a)
            step = (True, v, s, new)
        else:
            r = mv_t(u)  # (m,) = (K~^T u)_j
            new = _scale(nu_eff, r, rho_b)
            step = (False, u, r, new)
        h += 1
        action = watch.check(step[2], new, step[0], h)
        if action == "recover":
            break
        if steps is not None:
            steps.append(step)
        u, v = (new, v) if step[0] else (u, new)
        if action != "ok" or stretch.single:
            break
    flush(read=False)
    watch.close()
    stretch.h, stretch.action = h, action
    return u, v


def _scale(target: Any, prod: Any, rho: float) -> Any:
    """Kernel-domain scaling ``(target / prod)^ρ``."""
    ratio = target / prod
    return ratio if rho == 1.0 else ratio**rho


class _HostWatch:
    """Reads each half-step's scaling and says what it needs: "ok", "absorb" (a scaling
    left ``[lo, hi]``) or "recover" (see :func:`_check_step`).

    A hard step (``ρ = 1``) whose largest entry is within ``top`` (:func:`_hard_bound`,
    which also keeps every product ``>= floor``) is "ok" after this one reduction: a small
    scaling is harmless (floating point keeps its relative precision) and makes the next
    product small, so the next half-step's scaling leaves the bounds through the top."""

    def __init__(self, stretch: _Stretch, ns: Namespace, mu_eff: Any, nu_eff: Any) -> None:
        p = stretch.state.p
        self.ns, self.lo, hi = ns, stretch.lo, stretch.hi
        self.floor = math.sqrt(ns.finfo(mu_eff).tiny)
        self.rho = (p.rho_a, p.rho_b)
        # A hard step's bound: u = μ / s <= min(hi, min μ / floor) also keeps s >= floor.
        self.top = tuple(
            _hard_bound(ns, target, hi, self.floor) if rho == 1.0 else hi
            for target, rho in ((mu_eff, p.rho_a), (nu_eff, p.rho_b))
        )

    def check(self, prod: Any, new: Any, row: bool, h: int) -> str:
        rho, top = self.rho[not row], self.top[not row]
        largest = self.ns.peak(new)
        if rho == 1.0 and largest <= top:  # (False for NaN)
            return "ok"
        return _check_step(self.ns, prod, new, float(largest), self.lo, top, self.floor)

    def close(self) -> None:
        pass


class _DeviceWatch:
    """Reads nothing: asks for an absorption on the stretch's schedule, keeps the products
    and scalings, and at the end of the stretch folds into the state's flag whether every
    product stayed ``>= sqrt(tiny)`` and every scaling positive and finite (NaN fails)."""

    def __init__(self, stretch: _Stretch, ns: Namespace, mu_eff: Any, nu_eff: Any) -> None:
        self.stretch = stretch
        self.floor = math.sqrt(ns.finfo(mu_eff).tiny)
        self.prods: list[torch.Tensor] = []
        self.news: list[torch.Tensor] = []

    def check(self, prod: Any, new: Any, row: bool, h: int) -> str:
        self.prods.append(prod)
        self.news.append(new)
        every, last = self.stretch.every, self.stretch.max_half
        return "absorb" if every and h < last and (h == 2 or h % every == 0) else "ok"

    def close(self) -> None:
        if not self.news:
            return
        with torch.no_grad():
            prods, news = torch.cat(self.prods), torch.cat(self.news)
            ok = (prods.amin() >= self.floor) & (news.amin() > 0) & (news.amax() < math.inf)
            state = self.stretch.state
            state.ok = state.ok & ok


def _hard_bound(ns: Namespace, target: Any, hi: float, floor: float) -> float:
    """Upper bound on a hard step's scaling ``u = μ / s``: ``hi``, lowered to
    ``min μ / floor`` where that is smaller (small marginals, float32), so that ``u <= bound``
    implies ``s >= floor`` (at least 1, so that a scaling of 1 after an absorption is in it)."""
    smallest = float(ns.xp.amin(ns.detach(target)))
    return max(1.0, min(hi, smallest / floor))


def _check_step(
    ns: Namespace, prod: Any, scaling: Any, hi_x: float, lo: float, hi: float, floor: float
) -> str:
    """What a kernel-domain half-step needs next, given its scaling's largest entry
    ``hi_x``: ``"ok"``, ``"absorb"`` (a scaling left ``[lo, hi]``) or ``"recover"``: redo
    the step by log-sum-exp because a scaling is 0 or not finite, or a product fell below
    ``floor = sqrt(tiny)``, where ``1/prod`` and its derivative ``-1/prod^2`` overflow."""
    xp = ns.xp
    lo_x = float(xp.amin(ns.detach(scaling)))
    if not (float(xp.amin(ns.detach(prod))) >= floor and 0 < lo_x and hi_x < math.inf):
        return "recover"  # (NaN fails every comparison and lands here too)
    return "ok" if lo <= lo_x and hi_x <= hi else "absorb"


def _same(x: Any) -> Any:
    return x
