r"""Entropic Sinkhorn, balanced and unbalanced: the entry point and the log-domain engine.

The absorbing engine, the default, lives in :mod:`gca_viz.ot._absorb`.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Literal

import numpy as np
import torch

from gca_viz._validate import dtype_name, nonnegative
from gca_viz.ot import _graph
from gca_viz.ot._absorb import _solve_absorb, _Solved
from gca_viz.ot._checks import (
    _check_count,
    _check_epsilon,
    _check_problem,
    _check_relax,
    _check_solution,
    _cost_matrix,
    _marginal,
    _numpy_result,
    _problem_namespace,
)
from gca_viz.ot._loop import _TOL_EVERY
from gca_viz.ot._problem import _Problem, _rho
from gca_viz.ot._xp import Array, output
from gca_viz.ot.result import SinkhornResult

SINKHORN_LATEX = (
    r"{P^\star = \arg\min_{P\,\mathbf{1} = \mu,\ P^\top \mathbf{1} = \nu}"
    r" \langle P, C\rangle - \varepsilon H(P)},\allowbreak\qquad"
    r" {P^\star_{ij} = \exp\!\big((f_i + g_j - C_{ij})/\varepsilon\big)}"
)
"""The balanced entropic OT problem solved by :func:`sinkhorn` (terms in braces are groups:
a narrow page wraps the line between them, not inside one)."""

UNBALANCED_LATEX = (
    r"P^\star = \arg\min_{P \ge 0} {\langle P, C\rangle - \varepsilon H(P)}"
    r" + {\lambda_1 \mathrm{KL}(P\mathbf{1}\,\|\,\mu)}"
    r" + {\lambda_2 \mathrm{KL}(P^\top\mathbf{1}\,\|\,\nu)}"
)
"""The unbalanced entropic OT problem solved by :func:`sinkhorn` with relaxed marginals."""

LOG_UPDATE_LATEX = (
    r"f_i \leftarrow \rho_1\big(\varepsilon\log\mu_i"
    r" - \varepsilon\,\mathrm{LSE}_j\,\tfrac{g_j - C_{ij}}{\varepsilon}\big),\quad"
    r" g_j \leftarrow \rho_2\big(\varepsilon\log\nu_j"
    r" - \varepsilon\,\mathrm{LSE}_i\,\tfrac{f_i - C_{ij}}{\varepsilon}\big),\quad"
    r" \rho = \tfrac{\lambda}{\lambda + \varepsilon}"
)
"""The log-domain Sinkhorn updates (``ρ = 1`` for a hard marginal)."""

_DEFAULT_SWEEPS = 100


def sinkhorn(
    cost: Array,
    a: Array | None = None,
    b: Array | None = None,
    *,
    epsilon: float,
    n_iter: int | None = None,
    tol: float = 0.0,
    relax_a: float | None = None,
    relax_b: float | None = None,
    history: bool = False,
    method: Literal["absorb", "log"] = "absorb",
    max_iter: int | None = None,
) -> SinkhornResult:
    r"""Entropic optimal transport by Sinkhorn iterations in the log domain.

    Balanced (``relax_a = relax_b = None``):

    .. math::
        P^\star = \arg\min_{P \mathbf 1 = \mu,\ P^\top \mathbf 1 = \nu}
            \langle P, C\rangle - \varepsilon H(P), \qquad H(P) = -\sum_{ij} P_{ij}(\log P_{ij} - 1)

    Unbalanced (a marginal with weight ``λ`` is a KL penalty instead of a constraint):

    .. math::
        P^\star = \arg\min_{P \ge 0} \langle P, C\rangle - \varepsilon H(P)
            + \lambda_1 \mathrm{KL}(P\mathbf 1 \| \mu)
            + \lambda_2 \mathrm{KL}(P^\top\mathbf 1 \| \nu)

    Each sweep is a row step then a column step on the dual potentials:

    .. math::
        f_i \leftarrow \rho_1\big(\varepsilon\log\mu_i - \varepsilon\,\mathrm{LSE}_j
            \tfrac{g_j - C_{ij}}{\varepsilon}\big), \quad
        g_j \leftarrow \rho_2\big(\varepsilon\log\nu_j - \varepsilon\,\mathrm{LSE}_i
            \tfrac{f_i - C_{ij}}{\varepsilon}\big), \quad
        P_{ij} = e^{(f_i + g_j - C_{ij})/\varepsilon}

    where:
        * ``C`` is the ``(n, m)`` cost, ``ε`` the regulariser, ``K = exp(-C/ε)``;
        * ``μ = a``, ``ν = b`` the marginals (uniform ``1/n``, ``1/m`` by default);
        * ``λ1 = relax_a``, ``λ2 = relax_b`` and ``ρ = λ / (λ + ε)``; a hard marginal has
          ``ρ = 1``. ``λ -> inf`` recovers balanced OT, ``λ -> 0`` gives ``P -> K``;
        * ``LSE`` is log-sum-exp; starting from ``g = 0``, the first row step yields the
          InfoNCE plan ``P^(1)_ij = μ_i softmax_j(-C_ij / ε)``.

    Two engines compute the same iterates (tests check that they agree to 1e-10):

    * ``method="absorb"`` (default): Schmitzer's stabilised scheme. The potentials live in
      the log domain; between absorptions each half-step is one matrix-vector product with
      the stabilised kernel ``K~_ij = exp((f_i + g_j - C_ij)/ε)`` and scalings
      ``u = exp((f' - f)/ε)``, ``v = exp((g' - g)/ε)``. Once ``|log u|`` or ``|log v|``
      exceeds a bound the scalings are absorbed into ``f``, ``g`` and ``K~`` is rebuilt;
      a step whose product would underflow is done by log-sum-exp instead. Cost per sweep:
      two passes over the kernel, the memory floor of any kernel-domain Sinkhorn. Its
      backward is hand-written and first order only: a second derivative raises. Under a
      ``torch.func`` transform (``grad``, ``jacrev``, ``jacfwd``, ``hessian``) or with dual
      tensors of ``torch.autograd.forward_ad`` it records plain autograd operations
      instead, derivatives of any order in either mode; ``torch.func.vmap`` is refused
      (one problem per call).
    * ``method="log"``: every half-step by log-sum-exp (the reference; several times slower;
      plain autograd, so derivatives of any order).

    On a GPU the solver reads from the device a fixed number of times, whatever ``n_iter``
    (at most 3 without ``tol`` and ``history``): the absorbing engine then absorbs on a
    fixed schedule and checks its steps on the device; if a step left its bounds, the
    problem is solved again by the log engine. With ``tol > 0`` it reads the residual every
    8 sweeps, so it may run up to 7 sweeps past the first one within ``tol``. The solver
    never changes torch's thread count; on a busy CPU, callers may run it inside
    :func:`gca_viz.device.torch_threads`.

    Args:
        cost: ``(n, m)`` cost matrix ``C``: a torch tensor on any device, or a numpy array
            (or a nested list). One problem per call: there is no batch dimension, and
            ``torch.func.vmap`` does not apply (the solver reads values on the host). It
            is solved in float32 or float64: a float32/float64 cost as it is; a torch
            float16/bfloat16 cost is converted to float32 (so the result is float32, not
            the cost's dtype); any other dtype (numpy float16, integers, bools, a list) to
            float64. ``+inf`` entries are forbidden pairs; ``NaN``/``-inf`` are errors.
        a: ``(n,)`` row marginal ``μ > 0``, converted to the dtype and device ``C`` is
            solved in; default ``1/n``.
        b: ``(m,)`` column marginal ``ν > 0``, likewise; default ``1/m``. Balanced OT
            needs ``sum(a) = sum(b)``: masses that agree to a relative ``1e-5`` (marginals
            normalised separately in float32) count as equal, and ``b`` is rescaled to
            the mass of ``a`` (``result.b`` is the rescaled one).
        epsilon: regulariser ``ε > 0`` (finite down to ``1e-3`` in float32 for costs in
            ``[0, 2]``).
        n_iter: number of sweeps ``T >= 1`` (``2T`` half-steps; a whole float such as
            ``3.0`` counts), at most that many with ``tol``; default 100. (``max_iter`` is
            its deprecated alias.)
        tol: if ``> 0``, stop after the first sweep whose marginal error is ``<= tol``.
            Nothing warns when ``n_iter`` sweeps end above it (or, with ``tol = 0``, above
            the default threshold): read ``result.converged``. Small ``ε`` needs many
            sweeps (thousands at ``ε = 1e-3`` for a cosine cost; the Entropy page shows
            how many). A ``tol`` below the dtype's machine epsilon times the mass
            (``1.2e-7`` in float32 for mass 1), which rounding may never let the residual
            reach, warns (``RuntimeWarning``).
        relax_a: ``λ1 > 0``, the KL weight of the row marginal; ``None`` (or ``inf``) keeps
            it a hard constraint.
        relax_b: ``λ2 > 0``, likewise for the column marginal.
        history: keep the plan after every half-step in ``result.history``.
        method: ``"absorb"`` (default) or ``"log"``, see above.

    Returns:
        A frozen :class:`SinkhornResult`. Its arrays are of the kind of ``cost`` (torch
        tensors on its device, else numpy arrays) in the dtype it was solved in (above):
        the cost's own for float32/float64.

    Raises:
        ValueError: naming the parameter, for ``epsilon <= 0`` or not finite; a cost that is
            not 2-D, empty, or holds ``NaN`` or ``-inf``; a row or column of the cost with
            no finite entry; marginals of the wrong shape, negative, zero, subnormal or
            non-finite; balanced marginals whose totals differ; ``n_iter < 1``;
            ``tol < 0``; ``relax_a``/``relax_b`` ``<= 0``; an unknown ``method``; a
            ``history`` that is not a bool; an ``epsilon`` outside the range of the cost's
            dtype or below the rounding error of the potentials (``max |f|, |g|`` times
            machine epsilon), or a solution (potentials, residuals, plan) that overflows the
            dtype.

    Example:
        >>> import torch
        >>> from gca_viz.ot import cosine_cost, sinkhorn
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> res = sinkhorn(cosine_cost(z1, z2), epsilon=0.5, n_iter=50)
        >>> bool(res.converged), tuple(res.plan.shape)
        (True, (8, 8))
    """
    as_numpy = _numpy_result(cost, a=a, b=b)
    C = _cost_matrix(cost)
    n, m = C.shape
    eps = _check_epsilon(epsilon, C.dtype)
    mu, nu = _marginal(a, "a", n, C), _marginal(b, "b", m, C)
    lam_a, lam_b = _check_relax(relax_a, "relax_a"), _check_relax(relax_b, "relax_b")
    sweeps = _sweeps(n_iter, max_iter)
    tol_f = nonnegative(tol, "tol")
    if method not in ("absorb", "log"):
        raise ValueError(f"method must be 'absorb' or 'log', got {method!r}")
    if not isinstance(history, (bool, np.bool_)):
        raise ValueError(f"history must be True or False, got {history!r}")

    ns = _problem_namespace(C, mu, nu)
    Cn, mun, nun = ns.native(C), ns.native(mu), ns.native(nu)
    marginals = [("a", mun, a is not None), ("b", nun, b is not None)]
    checked = _check_problem(ns, Cn, marginals)  # the one read of the validation
    mass, mass_b = checked.masses
    if lam_a is None and lam_b is None and not math.isclose(mass, mass_b, rel_tol=1e-5):
        raise ValueError(
            f"balanced OT needs marginals of equal mass: sum(a) = {mass:.8g} but "
            f"sum(b) = {mass_b:.8g}; rescale them or relax a marginal (relax_a / relax_b)"
        )
    if lam_a is None and lam_b is None and mass_b != mass:  # equal to 1e-5: b to a's mass
        # (else the row error could not fall below |sum a - sum b|: converged=False forever)
        nun, nu = nun * (mass / mass_b), nu * (mass / mass_b)
    floor = torch.finfo(C.dtype).eps * mass  # the marginal error rounding leaves, about
    if 0 < tol_f < floor:
        warnings.warn(
            f"tol={tol_f:g} is below what {dtype_name(C.dtype)} resolves "
            f"(its machine epsilon x the mass = {floor:.2g}): the solve may run all "
            f"{sweeps} sweeps and end with converged=False; pass tol >= {floor:.2g} or a "
            "float64 cost",
            RuntimeWarning,
            stacklevel=2,
        )
    rho_a, rho_b = _rho(lam_a, eps), _rho(lam_b, eps)
    p = _Problem(ns, Cn, mun, nun, eps, rho_a, rho_b, lam_a, lam_b, checked)
    with ns.quiet():
        solved = None
        if method == "absorb" and _graph.applies(p, tol_f, history):
            solved = _graph.solve(p, sweeps)  # replayed from a CUDA graph (opt-in)
        if solved is None:
            engine = _solve_absorb if method == "absorb" else _solve_log
            solved = engine(p, sweeps, tol_f, history)
        errors, last = _finish(p, solved, C.dtype)
        if last is None:  # a kernel step left its bounds on the device path: redo in logs
            solved = _solve_log(p, sweeps, tol_f, history)
            errors, last = _finish(p, solved, C.dtype)
        assert last is not None
        plan, log_plan = solved.plan, None  # (log_plan formed on first use)
        if plan is None:
            log_plan = p.log_plan(solved.f, solved.g)
            plan = ns.xp.exp(log_plan)
    threshold = tol_f if tol_f > 0 else math.sqrt(torch.finfo(C.dtype).eps) * mass

    def out(x: Any) -> Array:
        return output(x, as_numpy)

    def kept(x: torch.Tensor) -> Array:  # an input kept on the result (see SinkhornResult)
        return x.numpy().copy() if as_numpy else x

    return SinkhornResult(
        plan=out(plan),
        f=out(solved.f),
        g=out(solved.g),
        errors=out(errors),
        n_iter=int(errors.shape[0]),
        converged=last <= threshold,
        history=tuple(out(x) for x in solved.plans),
        cost=kept(C),  # the validated float matrix (not a bool/int/list input)
        a=kept(mu),
        b=kept(nu),
        epsilon=eps,
        relax_a=lam_a,
        relax_b=lam_b,
        _log_plan=None if log_plan is None else out(log_plan),
    )


def _sweeps(n_iter: Any, max_iter: Any) -> int:
    """The number of sweeps from ``n_iter`` or its deprecated alias ``max_iter``."""
    if max_iter is None:
        return _check_count(_DEFAULT_SWEEPS if n_iter is None else n_iter, "n_iter")
    if n_iter is not None:
        raise ValueError("pass n_iter only (max_iter is its deprecated alias), not both")
    warnings.warn(
        "sinkhorn(max_iter=...) is deprecated; use n_iter=...", DeprecationWarning, stacklevel=3
    )
    return _check_count(max_iter, "max_iter")


def _finish(p: _Problem, solved: _Solved, dtype: torch.dtype) -> tuple[Any, float | None]:
    """The ``(n_iter,)`` residuals, and in one read the last of them, after checking that
    the solution is representable (:func:`_check_solution` raises if not); ``None`` for it
    when the device path's flag says a kernel step left its bounds."""
    xp = p.ns.xp
    errors = p.ns.detach(xp.concat(solved.errors))
    got = _check_solution(
        p.ns, p.eps, dtype, [solved.f, solved.g], [errors], [errors[-1]], solved.ok
    )  # (errors[-1] covers the plan)
    return errors, None if got is None else got[0]


def _solve_log(p: _Problem, n_iter: int, tol: float, keep: bool) -> _Solved:
    """Reference engine: every half-step by log-sum-exp. With ``tol``, the residual is read
    after every sweep on the host, every ``_TOL_EVERY`` sweeps on a device."""
    ns, xp, eps = p.ns, p.ns.xp, p.eps
    f, g = xp.zeros_like(p.mu), xp.zeros_like(p.nu)
    errors: list[Any] = []
    plans: list[Any] = []
    every = 1 if ns.host else _TOL_EVERY
    lse = p.lse_rows(g)
    for t in range(n_iter + 1):
        if t > 0:  # residual of sweep t: P 1 = exp(f/ε + LSE_j((g_j - C_ij)/ε))
            with ns.no_grad():
                sums = xp.exp(ns.detach(f) / eps + ns.detach(lse))
                gap = xp.abs(sums - ns.detach(p.row_target(f))).sum().reshape(1)
                errors.append(gap if p.lam_a is None else p.rho_a * gap)
            if t == n_iter:
                break
            if tol > 0 and t % every == 0:
                if ns.floats([xp.amin(xp.concat(errors[-every:]))])[0] <= tol:
                    break
        f = p.row_step(lse)
        if keep:
            plans.append(xp.exp(p.log_plan(f, g)))
        g = p.col_step(p.lse_cols(f))
        if keep:
            plans.append(xp.exp(p.log_plan(f, g)))
        lse = p.lse_rows(g)
    return _Solved(f, g, errors, plans, None, True)
