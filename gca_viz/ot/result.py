r"""The frozen result of :func:`gca_viz.ot.sinkhorn`: potentials, plan, diagnostics."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from gca_viz._validate import dtype_name
from gca_viz.ot._problem import _log_plan, _rho
from gca_viz.ot._xp import Array, machine_epsilon, namespace, output


@dataclass(frozen=True, eq=False)  # (compared by identity: == on tensor fields is ambiguous)
class SinkhornResult:
    r"""Output of :func:`sinkhorn`: potentials, plan and convergence diagnostics.

    Fields (``n x m`` problem; arrays are of the cost's kind, torch tensors on its device or
    numpy arrays, in the dtype it was solved in: the cost's own for float32/float64, float32
    for a torch float16/bfloat16 cost, float64 for any other dtype or a list):
        plan: ``(n, m)`` plan ``P_ij = exp((f_i + g_j - C_ij) / ε)`` after the last sweep.
        log_plan: ``(n, m)`` its logarithm (``-inf`` where ``C_ij = +inf``), exact even where
            ``plan`` underflows.
        f: ``(n,)`` row potential; g: ``(m,)`` column potential.
        errors: ``(n_iter,)`` marginal error after each sweep (detached). Balanced:
            ``||P 1 - μ||_1`` (the column marginal is exact after a column step).
            Unbalanced: ``ρ1 ||P 1 - μ̃||_1`` with ``μ̃ = μ exp(-f / λ1)`` and
            ``ρ1 = λ1 / (λ1 + ε)`` (``||P 1 - μ||_1`` for a hard row marginal): ``μ̃`` is the
            row marginal that the optimality condition of the relaxed problem demands, so
            it is 0 exactly at the solution, and to first order ``ρ1 (μ̃ - P 1)`` is how
            much the next row step moves the row sums, ``P 1 (μ̃ / P 1)^ρ1 - P 1``. The
            weight keeps the rounding of the potentials, which ``exp(-f / λ1)`` multiplies
            by ``1/λ1``, out of it: unweighted, a float32 plan exact to 4e-7 read 0.16 at
            ``λ1 = 1e-5`` (``n = 32``, ``ε = 0.5``) and ``tol`` was never met.
        n_iter: number of full sweeps performed.
        converged: whether the last error is at most ``tol`` (or, with ``tol = 0``, at most
            ``sqrt(machine eps)`` times the mass of ``μ``).
        history: ``(P^(1), ..., P^(2 n_iter))``, the plan after every half-step, when
            ``history=True``; else empty.
        cost, a, b, epsilon, relax_a, relax_b: the problem that was solved. numpy inputs
            are copies; torch inputs are the tensors passed in (no copy, as for any torch
            function), which the properties that need them read when asked (``log_plan``
            when formed on first use, ``transport_cost``, ``marginal_error``): modify them
            in place after the call and those properties describe another problem.

    The scalar properties (``mass``, ``marginal_error``, ``entropy``, ``transport_cost``) are
    detached Python floats, for reports. For a differentiable ``<P, C>`` (as POT's
    ``sinkhorn2``) form it from the plan: ``(res.plan * C).sum()``, or with ``+inf`` entries
    ``torch.where(res.plan > 0, res.plan * C, 0).sum()``. Results compare by identity.
    """

    plan: Array
    f: Array
    g: Array
    errors: Array
    n_iter: int
    converged: bool
    history: tuple[Array, ...]
    cost: Array
    a: Array
    b: Array
    epsilon: float
    relax_a: float | None = None
    relax_b: float | None = None
    _log_plan: Array | None = field(default=None, repr=False)

    @property
    def log_plan(self) -> Array:
        """``(n, m)`` ``log P_ij = (f_i + g_j - C_ij) / ε`` (formed on first use when the
        solver produced the plan without it)."""
        if self._log_plan is None:
            ns = namespace(self.cost, self.f, self.g)
            C, f, g = (ns.native(x) for x in (self.cost, self.f, self.g))
            with ns.quiet():
                log_plan = _log_plan(ns, C, f, g, self.epsilon)
            as_numpy = isinstance(self.plan, np.ndarray)
            object.__setattr__(self, "_log_plan", output(log_plan, as_numpy))
        return self._log_plan  # type: ignore[return-value]

    def __repr__(self) -> str:
        """One line: the problem's shape and kind, ``ε``, the sweeps, convergence, the last
        marginal error, the mass and the array type (the arrays themselves are fields)."""
        n, m = self.plan.shape
        kind = "balanced" if self.relax_a is None and self.relax_b is None else "unbalanced"
        errors = output(self.errors, as_numpy=True)
        last = f"{float(errors[-1]):.3g}" if len(errors) else "n/a"
        lib = "numpy" if isinstance(self.plan, np.ndarray) else f"torch {self.plan.device}"
        dtype = dtype_name(self.plan.dtype)
        return (
            f"SinkhornResult({n}x{m} {kind}, epsilon={self.epsilon:g}, n_iter={self.n_iter}, "
            f"converged={self.converged}, error={last}, mass={self.mass:.6g}, {lib} {dtype})"
        )

    @property
    def row_marginal(self) -> Array:
        """``(n,)`` row sums ``P 1``."""
        return self.plan.sum(1)

    @property
    def col_marginal(self) -> Array:
        """``(m,)`` column sums ``P^T 1``."""
        return self.plan.sum(0)

    @property
    def mass(self) -> float:
        """Total mass ``sum_ij P_ij`` (1 for balanced problems with probability marginals), a
        detached float."""
        ns = namespace(self.plan)
        return float(ns.detach(ns.native(self.plan)).sum())

    @property
    def marginal_error(self) -> float:
        """``||P 1 - μ||_1 + ||P^T 1 - ν||_1`` against the *given* marginals.

        For an unbalanced problem this measures how far the relaxation moved the
        marginals, not convergence (see ``errors``)."""
        ns = namespace(self.plan, self.a, self.b)
        p, a, b = (ns.detach(ns.native(x)) for x in (self.plan, self.a, self.b))
        return float(abs(p.sum(1) - a).sum() + abs(p.sum(0) - b).sum())

    @property
    def entropy(self) -> float:
        r"""``H(P) = -sum_ij P_ij (log P_ij - 1)`` (``docs/math.md`` section 2; ``0 log 0 = 0``),
        a detached float: the entropy the regulariser ``-ε H(P)`` uses, the Shannon entropy
        ``-Σ P log P`` plus the mass ``Σ P`` (an ``8 x 8`` plan of mass 1 can read 5.04,
        above ``log 64 = 4.16``). :func:`gca_viz.metrics.plan_entropy` and a loss's
        ``diagnostics["entropy"]`` are the Shannon entropy of the plan normalised to mass 1."""
        ns = namespace(self.plan)
        p = ns.detach(ns.native(self.plan))
        plogp = p * ns.xp.log(ns.xp.where(p > 0, p, 1.0))  # (0 where P_ij = 0)
        return float(-(plogp - p).sum())

    @property
    def transport_cost(self) -> float:
        """``<P, C> = sum_ij P_ij C_ij`` (entries with ``C_ij = +inf`` carry no mass), a
        detached float: ``(plan * cost).sum()`` is the differentiable one."""
        ns = namespace(self.plan, self.cost)
        p, c = (ns.detach(ns.native(x)) for x in (self.plan, self.cost))
        with ns.quiet():  # 0 * inf: masked
            return float(ns.xp.where(p > 0, p * c, 0.0).sum())

    @property
    def rho(self) -> tuple[float, float]:
        """``(ρ1, ρ2)`` with ``ρ = λ / (λ + ε)``; 1 for a hard marginal."""
        return (_rho(self.relax_a, self.epsilon), _rho(self.relax_b, self.epsilon))

    @property
    def rounding_floor(self) -> float:
        """The marginal error below which :attr:`errors` is rounding, not convergence:
        ``100 · eps · mass``, ``eps`` the plan's machine epsilon."""
        return 100 * machine_epsilon(self.plan) * max(self.mass, 1e-300)

    @property
    def contraction(self) -> float:
        """Measured contraction per sweep: the median ratio ``errors[t+1] / errors[t]`` over the
        second half of the sweeps before the errors reach rounding level
        (:attr:`rounding_floor`; ratios whose errors sit there are skipped).

        For unbalanced problems this tends to ``ρ1 ρ2`` (``docs/math.md`` section 4); ``nan`` when
        fewer than two usable sweeps exist. (Over the second half of all the sweeps, a solve
        run far past convergence had no ratio left and said ``nan``, a library user found:
        0.878 at 200 sweeps, ``nan`` at 400.)"""
        err = [float(e) for e in output(self.errors, as_numpy=True)]
        floor = self.rounding_floor
        above = [t for t, e in enumerate(err) if e > floor]
        last = above[-1] if above else -1  # the last sweep above rounding level
        ratios = [
            err[t + 1] / err[t]
            for t in range((last + 1) // 2, last)
            if err[t + 1] > floor and err[t] > floor
        ]
        return float(np.median(ratios)) if ratios else math.nan
