r"""Optimal-transport core: cost matrices, entropic Sinkhorn (balanced and unbalanced), exact OT.

Notation follows ``docs/math.md`` (sections 1, 2 and 8):

* ``C`` is an ``(n, m)`` cost matrix, ``ε > 0`` the entropic regulariser and
  ``K = exp(-C / ε)`` the Gibbs kernel.
* ``μ = a`` (length ``n``) and ``ν = b`` (length ``m``) are the marginals.
* ``f``, ``g`` are the dual potentials; every plan is formed in the log domain as
  ``P_ij = exp((f_i + g_j - C_ij) / ε)``.
* Half-steps are numbered ``P^(0) = K``, ``P^(1)`` (first row step, the InfoNCE plan),
  ``P^(2)`` (first column step), ...; ``n_iter = T`` sweeps are ``2T`` half-steps.

Public API::

    from gca_viz.ot import cosine_cost, sqeuclidean_cost, sinkhorn, exact_ot
    from gca_viz.ot import row_projection  # one row half-step (the InfoNCE plan)
    from gca_viz.ot import cuda_graphs  # opt-in: fixed-iteration CUDA solves as graphs

Everything accepts torch tensors (any device, float32 or float64) and numpy arrays, and
returns the type it was given. The solver is differentiable through its unrolled iterations.

One concern per module: ``costs`` (the cost matrices), ``result`` (:class:`SinkhornResult`),
``solver`` (:func:`sinkhorn` and the log-domain engine), ``projection``
(:func:`row_projection`), ``exact`` (:func:`exact_ot`); and privately ``_checks``
(validation), ``_xp`` (the numpy/torch namespace every algorithm is written against),
``_problem`` (a validated problem and the shared steps), ``_absorb`` (the absorbing
engine), ``_loop`` (its loop between absorptions), ``_halfsteps`` (that loop as one
autograd node) and ``_graph`` (fixed-iteration CUDA solves captured as graphs).

References:
    Cuturi (2013), Sinkhorn distances: lightspeed computation of optimal transport. NeurIPS.
    Chizat, Peyré, Schmitzer, Vialard (2018), Scaling algorithms for unbalanced optimal
    transport problems. Math. Comp.
    Schmitzer (2019), Stabilized sparse scaling algorithms for entropy regularized transport
    problems. SIAM J. Sci. Comput.
    Peyré and Cuturi (2019), Computational optimal transport, chapter 4.
    Chen, Lin, Liu, Xiao, Dyer (2024), Your contrastive learning problem is secretly a
    distribution alignment problem. NeurIPS.
"""

# Private names other modules and the tests import keep their old address.
from gca_viz.ot._absorb import _AbsorbState as _AbsorbState
from gca_viz.ot._absorb import _row_range as _row_range
from gca_viz.ot._checks import _check_cost_values as _check_cost_values
from gca_viz.ot._checks import _check_epsilon as _check_epsilon
from gca_viz.ot._checks import _real as _real
from gca_viz.ot._graph import clear_cuda_graphs, cuda_graphs
from gca_viz.ot._halfsteps import _FusedHalfSteps as _FusedHalfSteps
from gca_viz.ot._loop import _Stretch as _Stretch
from gca_viz.ot._loop import _stretch as _stretch
from gca_viz.ot._problem import _log_plan as _log_plan
from gca_viz.ot._xp import Array
from gca_viz.ot.costs import cosine_cost, sqeuclidean_cost
from gca_viz.ot.exact import exact_ot
from gca_viz.ot.projection import row_projection
from gca_viz.ot.result import SinkhornResult
from gca_viz.ot.solver import LOG_UPDATE_LATEX, SINKHORN_LATEX, UNBALANCED_LATEX, sinkhorn

__all__ = [
    "LOG_UPDATE_LATEX",
    "SINKHORN_LATEX",
    "UNBALANCED_LATEX",
    "Array",
    "SinkhornResult",
    "clear_cuda_graphs",
    "cosine_cost",
    "cuda_graphs",
    "exact_ot",
    "row_projection",
    "sinkhorn",
    "sqeuclidean_cost",
]
