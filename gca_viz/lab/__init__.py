r"""The mathematics behind the plan lab and the entropy pages (no UI here).

A *batch* (:class:`Batch`) is ``N`` paired embeddings ``z'_i, z''_i`` (synthetic points,
data through an encoder) or a stored cost matrix (a run's snapshot). From it:

* :func:`half_steps`: every Sinkhorn half-step ``P^(0) = K, P^(1), ..., P^(2T)`` with the
  curve ``KL(P_tgt || P^(k))``, which never increases (``docs/math.md`` section 4);
* :func:`method_losses`: the value of every loss of :data:`gca_viz.losses.LOSSES`;
* :func:`solve`: everything the plan lab shows for one setting;
* :func:`cell_info`, :func:`downsample`: what the pages need to inspect and draw matrices;
* :func:`sweep_epsilon`, :func:`sweep_iterations`: plan entropy, sparsity, distance to the
  exact plan, iterations to tolerance, contraction and losses as ``ε`` or ``T`` varies.

Public API::

    from gca_viz import lab

    batch = lab.synthetic_batch(n=64, noise=0.1, seed=0)
    sol = lab.solve(batch, epsilon=0.1, n_iter=10)  # cost, kernel, P^(k), losses
    sol.steps.kl  # KL(P_tgt || P^(k)) / n, non-increasing in k
    sweep = lab.sweep_epsilon(batch.cost_matrix(), lab.log_epsilons(0.02, 2.0, 12))

Submodules: :mod:`~gca_viz.lab.batches`, :mod:`~gca_viz.lab.plans`,
:mod:`~gca_viz.lab.sweeps`, :mod:`~gca_viz.lab.iterations`.
"""

from gca_viz.lab.batches import (
    Batch,
    TrainedEncoder,
    checkpoint_runs,
    data_batch,
    load_weights,
    snapshot_batch,
    snapshot_runs,
    sort_by_label,
    synthetic_batch,
    trained_encoder,
)
from gca_viz.lab.iterations import IterationSweep, sweep_iterations
from gca_viz.lab.plans import (
    HALF_STEP_LATEX,
    MONOTONE_LATEX,
    CellInfo,
    HalfSteps,
    LabSolution,
    MethodLoss,
    cell_info,
    display_factor,
    downsample,
    generalized_kl,
    half_steps,
    largest_rise,
    method_losses,
    method_losses_from_cost,
    solve,
)
from gca_viz.lab.sweeps import (
    CONTRACTION_LATEX,
    SPARSITY_LATEX,
    SUPPORT_THRESHOLD,
    EpsilonSweep,
    l1_distance,
    log_epsilons,
    rough_contraction,
    support_fraction,
    sweep_epsilon,
    to_csv,
    top_mass,
)

__all__ = [
    "CONTRACTION_LATEX",
    "HALF_STEP_LATEX",
    "MONOTONE_LATEX",
    "SPARSITY_LATEX",
    "SUPPORT_THRESHOLD",
    "Batch",
    "CellInfo",
    "EpsilonSweep",
    "HalfSteps",
    "IterationSweep",
    "LabSolution",
    "MethodLoss",
    "TrainedEncoder",
    "cell_info",
    "checkpoint_runs",
    "data_batch",
    "display_factor",
    "downsample",
    "generalized_kl",
    "half_steps",
    "l1_distance",
    "largest_rise",
    "load_weights",
    "log_epsilons",
    "method_losses",
    "method_losses_from_cost",
    "rough_contraction",
    "snapshot_batch",
    "snapshot_runs",
    "solve",
    "sort_by_label",
    "support_fraction",
    "sweep_epsilon",
    "sweep_iterations",
    "synthetic_batch",
    "to_csv",
    "top_mass",
    "trained_encoder",
]
