r"""The experiments of the "Target plans and domains" and "Noisy views" pages (no UI here).

**The α - β sweep** (``docs/math.md`` section 5). The domain prior, with ``α`` and ``β``
shares of each row's mass (:func:`gca_viz.targets.domain_target`),

.. math::
    P_{\mathrm{tgt}} = (1 - \alpha - \beta)\, I
        + \alpha\,\frac{\mathbb 1[D_i = D_j,\ i \ne j]}{n_{=}(i)}
        + \beta\,\frac{\mathbb 1[D_i \ne D_j,\ i \ne j]}{n_{\ne}(i)}

(``n_=(i)``, ``n_≠(i)``: row ``i``'s same- and other-domain samples; every row sums to 1) is
swept along ``δ = α - β`` at a fixed total ``s = α + β``:

.. math::
    \alpha = \frac{s + \delta}{2},\qquad \beta = \frac{s - \delta}{2},\qquad
    |\delta| \le s \le 1

so both shares stay ``>= 0``. ``s`` is the share of every row the prior holds and ``1 - s``
what the positive keeps, at any batch size (written per entry, the prior's row mass grew
with ``N``: 63.75 against 1 at ``N = 256`` for ``δ = 0``). The default ``s = 0.5`` is the
smallest total that covers the paper's range ``δ in [-0.5, 0.5]``: the positive keeps half
of each row, and ``δ = -0.5`` gives the other half only to other-domain samples,
``δ = 0.5`` only to same-domain ones. Each ``δ`` is one short background run of GCA-INCE
on ``multidomain_digits`` (:func:`domain_sweep_configs`, :func:`launch_domain_sweep`); the
runs are named ``"α-β sweep <k>: ..."`` so :func:`find_domain_sweep` finds them again, and
:func:`domain_sweep_results` reads their final domain and class accuracies back. One such
sweep ships with the app (:data:`SHIPPED_SWEEP`, :func:`generate_sweep`); :func:`shipped_sweep`
opens it in a store of its own.

**Noisy views** (``docs/math.md`` sections 4 and 7). :func:`graded_corruption` and
:func:`augment_at` make one view per sample whose corruption strength varies from sample to
sample; :func:`corruption_mass_correlation` solves GCA-UOT's unbalanced plan between clean
and corrupted embeddings and correlates each positive pair's strength with the mass the plan
keeps on it. :func:`noisy_pair_configs` and :func:`noisy_comparison` compare INCE and
GCA-UOT trained on noisy pairs (half of the positive pairs mismatched) on clean and corrupted
test data;
:func:`encoder_accuracies` evaluates a run's final encoder on corrupted test data later;
:class:`CorruptionProbe` keeps it and its fitted classifiers to score many severities.

Submodules: :mod:`~gca_viz.experiments.domains` (the α - β sweep),
:mod:`~gca_viz.experiments.designer` (the target designer's measures on one batch),
:mod:`~gca_viz.experiments.noisy` (noisy views),
:mod:`~gca_viz.experiments.noisy_sweep` (the noisy-views sweep's results),
:mod:`~gca_viz.experiments.stats`.

Public API::

    from gca_viz import experiments as ex

    ids = ex.launch_domain_sweep(store)  # 5 background runs, α - β = -0.5 .. 0.5 (shares)
    rows = ex.domain_sweep_results(store, ex.find_domain_sweep(store))
    fit = ex.trend([r.delta for r in rows], [r.domain_acc for r in rows])
    res = ex.corruption_mass_correlation(z_clean, z_corrupted, strength, epsilon=0.5)
    res.spearman, res.pearson  # strength vs P_ii / mean_i P_ii
"""

from gca_viz.experiments.designer import (
    FormulaGap,
    GroupPull,
    block_mass,
    formula_gap,
    group_pull,
    loss_pull,
    read_matrix,
    sort_by_domain,
    sweep_pull,
)
from gca_viz.experiments.domains import (
    ALPHA_BETA_LATEX,
    PAPER_CLASS_ACC,
    PAPER_DOMAIN_ACC,
    PAPER_LABEL,
    SHIPPED_SWEEP,
    SWEEP_DELTAS,
    SWEEP_PREFIX,
    SWEEP_TOTAL,
    SweepRow,
    alpha_beta,
    domain_sweep_configs,
    domain_sweep_results,
    domain_sweeps,
    embedding_domain_accuracy,
    find_domain_sweep,
    generate_sweep,
    launch_domain_sweep,
    pixel_baseline,
    run_embedding_domain_accuracy,
    shipped_pixel_baseline,
    shipped_sweep,
    sweep_run_name,
)
from gca_viz.experiments.noisy import (
    AUGMENT_LATEX,
    NOISY_DEMOS,
    NOISY_METRICS,
    NOISY_PREFIX,
    PAPER_NOISY,
    UOT_MASS_LATEX,
    ComparisonRow,
    CorruptionMass,
    CorruptionProbe,
    GradedViews,
    augment_at,
    augmented_views,
    corruption_mass_correlation,
    demo_runs,
    embed_views,
    encoder_accuracies,
    graded_corruption,
    launch_noisy_pair,
    noisy_comparison,
    noisy_pair_configs,
    noisy_pairs,
    random_encoder,
)
from gca_viz.experiments.noisy_sweep import (
    NOISY_SWEEP_FILE,
    SWEEP_METHODS,
    SWEEP_TESTS,
    NoisySweepRow,
    SweepVerdict,
    noisy_sweep_results,
    sweep_gains,
    sweep_verdict,
)
from gca_viz.experiments.stats import Trend, pearson, spearman, trend

__all__ = [
    "ALPHA_BETA_LATEX",
    "AUGMENT_LATEX",
    "NOISY_DEMOS",
    "NOISY_METRICS",
    "NOISY_PREFIX",
    "NOISY_SWEEP_FILE",
    "PAPER_CLASS_ACC",
    "PAPER_DOMAIN_ACC",
    "PAPER_LABEL",
    "PAPER_NOISY",
    "SHIPPED_SWEEP",
    "SWEEP_DELTAS",
    "SWEEP_METHODS",
    "SWEEP_PREFIX",
    "SWEEP_TESTS",
    "SWEEP_TOTAL",
    "UOT_MASS_LATEX",
    "ComparisonRow",
    "CorruptionMass",
    "CorruptionProbe",
    "FormulaGap",
    "GradedViews",
    "GroupPull",
    "NoisySweepRow",
    "SweepRow",
    "SweepVerdict",
    "Trend",
    "alpha_beta",
    "augment_at",
    "augmented_views",
    "block_mass",
    "corruption_mass_correlation",
    "demo_runs",
    "domain_sweep_configs",
    "domain_sweep_results",
    "domain_sweeps",
    "embed_views",
    "embedding_domain_accuracy",
    "encoder_accuracies",
    "find_domain_sweep",
    "formula_gap",
    "generate_sweep",
    "graded_corruption",
    "group_pull",
    "launch_domain_sweep",
    "launch_noisy_pair",
    "loss_pull",
    "noisy_comparison",
    "noisy_pair_configs",
    "noisy_pairs",
    "noisy_sweep_results",
    "pearson",
    "pixel_baseline",
    "random_encoder",
    "read_matrix",
    "run_embedding_domain_accuracy",
    "shipped_pixel_baseline",
    "shipped_sweep",
    "sort_by_domain",
    "spearman",
    "sweep_gains",
    "sweep_pull",
    "sweep_run_name",
    "sweep_verdict",
    "trend",
]
