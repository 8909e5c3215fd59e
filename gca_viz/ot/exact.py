r"""Unregularised optimal transport: the ``ε -> 0`` limit of :func:`gca_viz.ot.sinkhorn`."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from gca_viz.ot._checks import _check_problem, _cost_matrix, _marginal, _numpy_result
from gca_viz.ot._xp import Array, namespace, output


def exact_ot(cost: Array, a: Array | None = None, b: Array | None = None) -> Array:
    r"""Unregularised optimal transport plan, the ``ε -> 0`` limit of :func:`sinkhorn`.

    .. math::
        P^\star = \arg\min_{P \ge 0,\ P\mathbf 1 = \mu,\ P^\top \mathbf 1 = \nu} \langle P, C\rangle

    For a square problem with uniform marginals the optimum is a permutation scaled by
    ``1/n`` (Birkhoff), found with the Hungarian algorithm; otherwise a linear program is
    solved with HiGHS (fine up to a few hundred points a side).

    Args:
        cost: ``(n, m)`` cost; ``+inf`` marks forbidden pairs.
        a: ``(n,)`` row marginal (default uniform ``1/n``); b: ``(m,)`` likewise.

    Returns:
        ``(n, m)`` plan of the input's kind and device (no gradient), in its dtype for
        float32/float64 (float32 for a torch float16/bfloat16 cost, float64 for any other
        dtype or a list), as :func:`sinkhorn`.

    Masses that agree to a relative ``1e-5`` (marginals normalised separately in float32)
    count as equal: ``b`` is rescaled to the total of ``a`` before solving.

    Raises:
        ValueError: for invalid costs or marginals (as :func:`sinkhorn`), unequal masses, or
            when the forbidden pairs leave no feasible plan.
    """
    from scipy.optimize import linear_sum_assignment, linprog

    as_numpy = _numpy_result(cost, a=a, b=b)
    C = _cost_matrix(cost)
    n, m = C.shape
    mu, nu = _marginal(a, "a", n, C), _marginal(b, "b", m, C)
    ns = namespace(C, mu, nu)
    marginals = [("a", ns.native(mu), a is not None), ("b", ns.native(nu), b is not None)]
    sa, sb = _check_problem(ns, ns.native(C), marginals).masses
    if not math.isclose(sa, sb, rel_tol=1e-5):
        raise ValueError(f"a and b must have equal mass: {sa:.8g} != {sb:.8g}")
    c_np = C.detach().cpu().double().numpy()
    a_np, b_np = mu.detach().cpu().double().numpy(), nu.detach().cpu().double().numpy()
    if b_np.sum() != a_np.sum():  # equal within 1e-5 (float32 rounding): the LP needs exact
        b_np = b_np * (a_np.sum() / b_np.sum())
    finite = np.isfinite(c_np)
    uniform = n == m and bool(np.all(a_np == a_np[0]) and np.all(b_np == a_np[0]))
    plan = np.zeros((n, m))
    if uniform:
        lo_c, hi_c = c_np[finite].min(), c_np[finite].max()
        big = hi_c + n * (hi_c - lo_c) + 1.0  # any forbidden pair costs more than a swap
        rows, cols = linear_sum_assignment(np.where(finite, c_np, big))
        if not finite[rows, cols].all():
            raise ValueError("cost: the +inf entries leave no feasible transport plan")
        plan[rows, cols] = a_np[0]
    else:
        plan = _exact_lp(c_np, a_np, b_np, finite, linprog)
    return output(torch.from_numpy(plan).to(dtype=C.dtype, device=C.device), as_numpy)


def _exact_lp(
    c: np.ndarray, a: np.ndarray, b: np.ndarray, finite: np.ndarray, linprog: Callable[..., Any]
) -> np.ndarray:
    """Solve the transport LP over the finite entries of ``c`` (sparse constraints)."""
    from scipy.sparse import coo_matrix

    n, m = c.shape
    rows, cols = np.nonzero(finite)  # variables: one per allowed pair
    k = len(rows)
    var = np.arange(k)
    eq = coo_matrix(
        (np.ones(2 * k), (np.concatenate([rows, n + cols]), np.concatenate([var, var]))),
        shape=(n + m, k),
    ).tocsr()
    mass = a.sum()  # solve for unit mass: the solver's tolerances are absolute
    res = linprog(
        c[rows, cols], A_eq=eq, b_eq=np.concatenate([a, b]) / mass, bounds=(0, None), method="highs"
    )
    if res.status != 0:
        raise ValueError(f"cost: no feasible transport plan ({res.message})")
    plan = np.zeros((n, m))
    plan[rows, cols] = np.maximum(res.x, 0.0) * mass  # HiGHS may return -1e-8 for 0
    return plan
