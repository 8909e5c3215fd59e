r"""One row half-step of Sinkhorn: the KL projection onto the row marginal (InfoNCE's plan)."""

from __future__ import annotations

import warnings

import torch

from gca_viz.ot._checks import (
    _check_epsilon,
    _check_problem,
    _check_relax,
    _check_solution,
    _cost_matrix,
    _marginal,
    _numpy_result,
    _problem_namespace,
    _to_tensor,
    _trusted_for,
)
from gca_viz.ot._problem import _Problem, _rho
from gca_viz.ot._xp import Array, output


def row_projection(
    cost: Array,
    a: Array | None = None,
    *given: Array,
    g: Array | None = None,
    epsilon: float,
    relax_a: float | None = None,
) -> tuple[Array, Array]:
    r"""One row half-step: the KL projection of ``exp((g_j - C_ij)/ε)`` onto ``P 1 = μ``.

    .. math::
        f_i = \rho_1\big(\varepsilon\log\mu_i - \varepsilon\,\mathrm{LSE}_j
            \tfrac{g_j - C_{ij}}{\varepsilon}\big), \qquad
        \log P_{ij} = (f_i + g_j - C_{ij}) / \varepsilon

    where ``ρ1 = λ1 / (λ1 + ε)`` (1 for a hard row marginal, ``relax_a=None``). With
    ``g = 0`` this is ``P^(1)_ij = μ_i softmax_j(-C_ij / ε)``, the InfoNCE plan; with the
    column potential ``g^(t-1)`` of sweep ``t - 1`` it is the half-step ``P^(2t-1)`` of
    :func:`sinkhorn`. Reads from a GPU twice (the validation, the result's check).

    Args:
        cost: ``(n, m)`` cost ``C`` (``+inf`` for excluded pairs).
        a: ``(n,)`` row marginal ``μ`` (default ``1/n``).
        g: ``(m,)`` column potential (default 0), by name: as the third positional
            argument it is deprecated (where :func:`sinkhorn` takes the column marginal
            ``b``, so ``row_projection(C, a, b)`` read ``b`` as a potential).
        epsilon: ``ε > 0``.
        relax_a: ``λ1 > 0`` for a relaxed row marginal, ``None`` for a hard one.

    Returns:
        ``(log_plan, f)``: the ``(n, m)`` log-plan and the ``(n,)`` row potential, of the
        type of ``cost``; differentiable.

    Raises:
        ValueError: as :func:`sinkhorn`, for the parameters it shares.
    """
    if given:
        if len(given) > 1 or g is not None:
            raise TypeError("row_projection takes cost and a by position; pass g=... by name")
        warnings.warn(
            "row_projection(cost, a, g): pass the column potential by name, g=... (the third "
            "argument of sinkhorn is the column marginal b, not a potential)",
            DeprecationWarning,
            stacklevel=2,
        )
        g = given[0]
    as_numpy = _numpy_result(cost, a=a, g=g)
    C = _cost_matrix(cost)
    n, m = C.shape
    eps = _check_epsilon(epsilon, C.dtype)
    mu = _marginal(a, "a", n, C)
    lam_a = _check_relax(relax_a, "relax_a")
    g_t = torch.zeros(m, dtype=C.dtype, device=C.device) if g is None else _to_tensor(g, "g", C)
    if g_t.shape != (m,):
        raise ValueError(f"g must be a vector of shape ({m},), got shape {tuple(g_t.shape)}")
    ns = _problem_namespace(C, mu, g_t)
    Cn, mun, gn = ns.native(C), ns.native(mu), ns.native(g_t)
    vectors = [] if g is None else [("g", gn)]
    _check_problem(ns, Cn, [("a", mun, a is not None)], vectors)  # one read
    p = _Problem(ns, Cn, mun, mun, eps, _rho(lam_a, eps), 1.0, lam_a, None)
    with ns.quiet():
        scores = p.scores_rows(gn)  # (n, m): (g_j - C_ij) / ε
        f = p.row_step(ns.logsumexp(scores, axis=1))  # (n,)
        log_plan = scores + (f / eps)[:, None]
    if _trusted_for(Cn) is None:  # (a trusting caller checks what it computes from them)
        _check_solution(ns, eps, C.dtype, [f, gn])
    return output(log_plan, as_numpy), output(f, as_numpy)
