r"""The story page and the loss composer: the paper's argument as functions of a batch.

From InfoNCE to optimal transport in five steps (``docs/math.md`` sections 2 to 4), each a
function that returns the numbers the page shows beside the formula it renders:

1. :func:`ince_as_kl`: InfoNCE equals ``KL(I || P^(1)) / N``, two independent computations.
2. :func:`monotone_alignment`: every Sinkhorn half-step lowers ``KL(P_tgt || P^(k))``, with
   the Pythagorean identity behind it checked numerically.
3. :func:`alignment_repulsion`: the loss split into an alignment and a repulsion term (minus
   the dual potentials; not Wang and Isola's uniformity, :func:`gca_viz.metrics.uniformity`),
   and the hubs (unequal column sums) that the column constraint removes.
4. :func:`entropy_plan`, :func:`relaxed_marginals`: what ``ε`` and relaxed marginals do.
5. :func:`method_output`: any named method's plan and loss on the same batch.

The composer's helpers (:func:`composed_latex`, :func:`compose_on_batch`,
:func:`composed_run_config`, ...) combine any four stages of :mod:`gca_viz.losses`.

Batches come from :func:`story_batch`: by default the digits that the demo run
``demo-ince`` trained on, through its encoder (:func:`demo_batch`). Conventions:
cross-view layout, target ``I``, marginals ``μ = ν = 1`` (``P_tgt 1``), losses per row.
Submodules: :mod:`~gca_viz.story.batches`, :mod:`~gca_viz.story.steps`,
:mod:`~gca_viz.story.composer`.

    from gca_viz import story
    batch = story.story_batch("synthetic", n=32)
    check = story.ince_as_kl(batch.z1, batch.z2, epsilon=0.2)
    check.infonce, check.kl  # equal to rounding
"""

from gca_viz.story.batches import (
    SOURCES,
    STORY_RUN,
    demo_batch,
    embeddings_from_cost,
    sort_by_label,
    story_batch,
)
from gca_viz.story.composer import (
    COMPOSED_LATEX,
    DOMAIN_DATASET,
    STAGE_KINDS,
    compose_on_batch,
    composed_latex,
    composed_run_config,
    describe_composition,
    matching_method,
    read_matrix,
    stage_params,
)
from gca_viz.story.steps import (
    ENTROPY_LATEX,
    GCA_LATEX,
    GINI_LATEX,
    INCE_REPULSION_LATEX,
    INFONCE_LATEX,
    KL_P1_LATEX,
    PYTHAGORAS_LATEX,
    RELAXED_LATEX,
    SPLIT_LATEX,
    AlignmentRepulsion,
    EntropyPlan,
    Hubs,
    InceAsKL,
    Monotone,
    Relaxed,
    Split,
    alignment_repulsion,
    entropy_plan,
    gini,
    hub_report,
    ince_as_kl,
    method_output,
    methods_notes,
    methods_table,
    monotone_alignment,
    relaxed_marginals,
    split_loss,
)

__all__ = [
    "COMPOSED_LATEX",
    "DOMAIN_DATASET",
    "ENTROPY_LATEX",
    "GCA_LATEX",
    "GINI_LATEX",
    "INCE_REPULSION_LATEX",
    "INFONCE_LATEX",
    "KL_P1_LATEX",
    "PYTHAGORAS_LATEX",
    "RELAXED_LATEX",
    "SOURCES",
    "SPLIT_LATEX",
    "STAGE_KINDS",
    "STORY_RUN",
    "AlignmentRepulsion",
    "EntropyPlan",
    "Hubs",
    "InceAsKL",
    "Monotone",
    "Relaxed",
    "Split",
    "alignment_repulsion",
    "compose_on_batch",
    "composed_latex",
    "composed_run_config",
    "demo_batch",
    "describe_composition",
    "embeddings_from_cost",
    "entropy_plan",
    "gini",
    "hub_report",
    "ince_as_kl",
    "matching_method",
    "method_output",
    "methods_notes",
    "methods_table",
    "monotone_alignment",
    "read_matrix",
    "relaxed_marginals",
    "sort_by_label",
    "split_loss",
    "stage_params",
    "story_batch",
]
