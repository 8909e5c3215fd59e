r"""The absorbing engine: Schmitzer's stabilised kernel-domain Sinkhorn.

State: absorbed potentials ``f``, ``g``, the kernel ``K~ = exp((f + g - C)/ε)`` and
scalings ``u``, ``v``; the true potentials are ``f + ε log u`` and ``g + ε log v``. A row
step is ``u = (μ_eff / (K~ v))^ρ1`` with ``μ_eff = μ exp(-f/λ1)`` (``μ`` if hard): the
log-domain update rewritten with ``LSE_j((g_j + ε log v_j - C_ij)/ε) = log(K~ v)_i - f_i/ε``.
The half-steps between two absorptions run as one stretch (:mod:`gca_viz.ot._loop`);
under autograd a stretch is one :class:`~gca_viz.ot._halfsteps._FusedHalfSteps` node.

Reference: Schmitzer (2019), Stabilized sparse scaling algorithms for entropy regularized
transport problems. SIAM J. Sci. Comput.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import torch

from gca_viz.ot._halfsteps import _FusedHalfSteps
from gca_viz.ot._loop import _advance, _Stretch
from gca_viz.ot._problem import _log_plan, _Problem
from gca_viz.ot._xp import Namespace

# Scalings u = exp((F - f)/ε) are absorbed into the potentials once |log u| exceeds this
# bound, so kernel-domain steps never overflow and never lose the plan to underflow: the
# products K~ v stay below n e^bound (float32: 2.4e17 n against a maximum of 3.4e38), and a
# product below sqrt(tiny) is redone by log-sum-exp (see _loop._check_step).
_ABSORB_LOG_BOUND = {64: 50.0, 32: 40.0}  # by the dtype's bits; 20 for smaller ones
# On a device, where absorbing on demand would read the device, a problem whose exp(-C/ε)
# spans more than e^(bound/2) is absorbed after its first sweep and every this many sweeps.
_DEVICE_ABSORB_EVERY = 8


def _absorb_bound(ns: Namespace, C: Any) -> float:
    """The bound on ``|log u|``, ``|log v|`` for the dtype of ``C``."""
    return _ABSORB_LOG_BOUND.get(ns.finfo(C).bits, 20.0)


class _Solved(NamedTuple):
    """What an engine returns (arrays of the problem's namespace)."""

    f: Any  # (n,)
    g: Any  # (m,)
    errors: list[Any]  # residuals, in (k,) chunks
    plans: list[Any]  # the plan after every half-step (history), else empty
    plan: Any  # the plan when formed without autograd, else None
    ok: Any  # device path: a 0-d flag, false if a kernel step left its bounds


class _AbsorbState:
    """Mutable state of the absorbing engine (potentials, kernel, scalings)."""

    def __init__(self, p: _Problem, f: Any, g: Any, row_max: Any, f_is_zero: bool = False) -> None:
        """Start from potentials ``f``, ``g = 0`` (``f = 0`` too if ``f_is_zero``) and
        scalings ``u = v = 1``. ``row_max``: ``(n,)`` each row's ``max_j C_ij``, or a
        bound on all of them, for a lower bound on ``log K~``."""
        self.p, self.ns = p, p.ns
        self.f, self.g = f, g
        self.row_max = row_max
        self.u = p.ns.xp.ones_like(f)
        self.v = p.ns.xp.ones_like(g)
        self.ok: Any = True if p.ns.host else torch.ones((), dtype=torch.bool, device=f.device)
        self._rebuild(g_is_zero=True, f_is_zero=f_is_zero)

    def _rebuild(self, g_is_zero: bool = False, f_is_zero: bool = False) -> None:
        """``K~ = exp((f_i + g_j - C_ij)/ε)`` in a new ``(n, m)`` matrix: the exponents (one
        pass per non-zero term, see :func:`_log_plan`) and an exp, with the entries below the
        smallest normal number set to 0 when a cheap lower bound says some exponent may fall
        below its log (subnormal operands slow BLAS down by an order of magnitude and carry no
        mass worth keeping). The bound ``min_ij (f_i + g_j - C_ij) >= min_i (f_i - max_j C_ij)
        + min_j g_j`` (exact for ``g = 0``) is read on the host; a device always zeroes.

        Without that pass the exp is taken in base 2, ``K~ = 2^((f_i + g_j - C_ij)/(ε ln 2))``:
        the scale folds into the first pass, and numpy's ``exp2`` costs half of its ``exp``
        in float32. (``exp2`` is slow on ``-inf`` and on underflow, which ``exp`` is not.)"""
        p, ns = self.p, self.ns
        xp = ns.xp
        tiny = ns.finfo(p.C).tiny
        small = True
        if ns.host:
            lowest = xp.amin(ns.detach(self.f) - self.row_max)
            if not g_is_zero:
                lowest = lowest + xp.amin(ns.detach(self.g))
            small = not float(lowest) / p.eps >= math.log(tiny)  # (also for NaN and -inf)
        f = None if f_is_zero else self.f
        g = None if g_is_zero else self.g
        if small:
            self.K = ns.exp_floor_(_log_plan(ns, p.C, f, g, p.eps), tiny)
        else:
            self.K = ns.exp2_(_log_plan(ns, p.C, f, g, p.eps * math.log(2.0)))
        self.mu_eff = p.row_target(self.f)
        self.nu_eff = p.col_target(self.g)

    def absorb(self) -> None:
        """Move the scalings into the potentials: ``f += ε log u``, ``g += ε log v``."""
        xp, eps = self.ns.xp, self.p.eps
        self.f = self.f + eps * xp.log(self.u)
        self.g = self.g + eps * xp.log(self.v)
        self.u, self.v = xp.ones_like(self.u), xp.ones_like(self.v)
        self._rebuild()

    def recover_rows(self) -> None:
        """The kernel-domain row step underflowed: redo it by log-sum-exp, then absorb."""
        xp = self.ns.xp
        g_true = self.g + self.p.eps * xp.log(self.v)
        self.f, self.g = self.p.row_step(self.p.lse_rows(g_true)), g_true
        self.u, self.v = xp.ones_like(self.u), xp.ones_like(self.v)
        self._rebuild()

    def recover_cols(self) -> None:
        """The kernel-domain column step underflowed: redo it by log-sum-exp, then absorb."""
        xp = self.ns.xp
        f_true = self.f + self.p.eps * xp.log(self.u)
        self.f, self.g = f_true, self.p.col_step(self.p.lse_cols(f_true))
        self.u, self.v = xp.ones_like(self.u), xp.ones_like(self.v)
        self._rebuild()

    def plan(self) -> Any:
        """Current plan ``u_i K~_ij v_j`` (one broadcast per op)."""
        plan = self.K * self.v[None, :]
        plan *= self.u[:, None]
        return plan


def _row_range(ns: Namespace, C: Any) -> tuple[Any, Any]:
    """Each row's minimum and maximum of ``C``, ``(n,)`` each."""
    Cd = ns.detach(C)
    return ns.xp.amin(Cd, axis=1), ns.xp.amax(Cd, axis=1)


def _start_kind(p: _Problem, bound: float) -> tuple[bool, bool]:
    """``(from_zero, tame)``: whether every entry of ``exp(-C/ε)`` lies in
    ``[e^-bound, e^bound]`` (the engine starts from ``f = 0``), and whether the problem is
    tame (no scheduled absorption on a device): every entry of ``exp(-C/ε)`` (finite ones,
    on a device) within ``e^±bound/2``. Decided from the validation's host values."""
    chk = p.checked
    assert chk is not None
    top = chk.top
    from_zero = -bound <= -top / p.eps and -chk.lowest / p.eps <= bound
    return from_zero, (top - chk.lowest) / p.eps <= bound / 2


def _start(p: _Problem, bound: float) -> tuple[_AbsorbState, bool]:
    """The first state, and whether the problem is tame (see :func:`_start_kind`)."""
    chk = p.checked
    assert chk is not None
    xp = p.ns.xp
    top = chk.top
    g = xp.zeros_like(p.nu)  # (m,)
    from_zero, tame = _start_kind(p, bound)
    if from_zero:
        # Every entry of exp(-C/ε) lies in [e^-bound, e^bound]: start from f = 0, which
        # saves the row reductions and a pass over the matrix in the kernel's build.
        return _AbsorbState(p, xp.zeros_like(p.mu), g, top, f_is_zero=True), tame
    if chk.row_min is not None:  # the validation's row minima start it; a row's maximum
        # may be +inf, so log K~ has no lower bound and highest serves as well
        return _AbsorbState(p, chk.row_min, g, chk.highest), tame
    row_min, row_max = _row_range(p.ns, p.C)  # f = row minimum: a 1 in every row of K~
    return _AbsorbState(p, row_min, g, row_max), tame


def _solve_absorb(p: _Problem, n_iter: int, tol: float, keep: bool) -> _Solved:
    """Stabilised kernel-domain engine with absorption (same iterates as the log engine).

    The half-steps between two absorptions run in one stretch. Under autograd that stretch
    is one :class:`_FusedHalfSteps` node whose backward pass walks the recorded scalings in
    reverse and forms the kernel's gradient with a single matrix product, instead of one
    ``(n, m)`` outer product per half-step.
    """
    ns, xp, eps = p.ns, p.ns.xp, p.eps
    bound = _absorb_bound(ns, p.C)
    state, tame = _start(p, bound)
    every = None if ns.host or tame else 2 * _DEVICE_ABSORB_EVERY
    errors: list[Any] = []
    plans: list[Any] = []
    fused = p.needs_grad and not keep and not p.transformed
    lo, hi = math.exp(-bound), math.exp(bound)
    h = 0
    while True:
        stretch = _Stretch(state, h, 2 * n_iter, tol, lo, hi, errors, keep, fused, every)
        if fused:
            state.u, state.v = _FusedHalfSteps.apply(
                state.K, state.mu_eff, state.nu_eff, state.u, state.v, stretch
            )
        else:
            state.u, state.v = _advance(stretch, state.u, state.v, graph=p.needs_grad)
        h = stretch.h
        if stretch.done:
            break
        if stretch.action == "absorb":
            state.absorb()
        elif stretch.action == "recover":
            state.recover_rows() if (h - 1) % 2 == 0 else state.recover_cols()
        if keep:
            plans.append(state.plan())
    f = state.f + eps * xp.log(state.u)
    g = state.g + eps * xp.log(state.v)
    plan = None
    if not p.needs_grad:  # the kernel's memory is free: scale it into the plan u_i K~_ij v_j
        plan = state.K
        plan *= state.v[None, :]
        plan *= state.u[:, None]
    return _Solved(f, g, errors, plans, plan, state.ok)
