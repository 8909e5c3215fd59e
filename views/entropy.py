"""Entropy and iterations: how ε and the number of Sinkhorn sweeps T shape the plan, the
speed of convergence and the losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import streamlit as st

import ui
from gca_viz import lab, ot
from gca_viz.figures import plans as figs
from gca_viz.losses.stages import RELAX_A, RELAX_B
from gca_viz.targets import TARGETS
from views import _live_chart as live_chart

SOURCES = {
    "synthetic": "Synthetic pairs on the sphere",
    "digits": "Digits through a random encoder",
    "multidomain_digits": "Multi-domain digits through a random encoder",
}
TOLERANCES = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9)
C = figs.COLORS


@st.cache_data(max_entries=8, show_spinner="Embedding the batch...")
def load_batch(source: str, n: int, seed: int, noise: float, augment: str) -> lab.Batch:
    if source == "synthetic":
        return lab.synthetic_batch(n, noise=noise, seed=seed)
    return lab.data_batch(source, n, seed, augment=augment)


def _problem(batch: lab.Batch, target: str, gamma: float) -> tuple[Any, Any]:
    """The cross-layout cost and the target plan of the batch."""
    params = {"gamma": gamma} if target == "class" else {}
    return batch.cost_matrix("cross"), batch.target(target, "cross", **params)


@st.cache_data(max_entries=16, show_spinner="Sweeping ε...")
def epsilon_sweep(
    batch_key: tuple[Any, ...],
    _batch: lab.Batch,
    target: str,
    gamma: float,
    eps_min: float,
    eps_max: float,
    num: int,
    **settings: Any,
) -> lab.EpsilonSweep:
    cost, tgt = _problem(_batch, target, gamma)
    return lab.sweep_epsilon(cost, lab.log_epsilons(eps_min, eps_max, num), target=tgt, **settings)


@st.cache_data(max_entries=16, show_spinner="Sweeping T...")
def iteration_sweep(
    batch_key: tuple[Any, ...],
    _batch: lab.Batch,
    target: str,
    gamma: float,
    epsilon: float,
    t_max: int,
) -> lab.IterationSweep:
    cost, tgt = _problem(_batch, target, gamma)
    return lab.sweep_iterations(cost, epsilon, np.arange(1, t_max + 1), target=tgt)


live_chart.load_plotly()
ui.title("Entropy and iterations")
ui.intro(
    "The same $\\varepsilon$ is InfoNCE's temperature and the entropic regulariser of optimal "
    "transport. As $\\varepsilon \\to 0$ the plan sharpens towards the exact transport plan "
    "(a permutation for pairs), but Sinkhorn needs ever more sweeps; as $\\varepsilon$ grows "
    "the plan blurs, Sinkhorn converges in a few sweeps and GCA-INCE and INCE coincide. "
    "Every point below is computed on one batch, so you can see the trade-off directly."
)
st.latex(ot.SINKHORN_LATEX)

# The sweeps' ranges first and open; the batch, the marginals' weights and the solver's
# tolerance folded in lecture mode (the first screen shows the page, not only controls).
with ui.controls("Sweeps"):
    eps_min = ui.epsilon("ent_eps_min", 0.02, what="the smallest of the sweep")
    eps_max = ui.epsilon("ent_eps_max", 2.0, what="the largest of the sweep")
    if eps_min > eps_max:  # swapped ends: sweep between them rather than stop the page
        st.warning(
            f"ε, the smallest of the sweep ({eps_min:g}), is above ε, the largest of the "
            f"sweep ({eps_max:g}): the sweep runs from {eps_max:g} to {eps_min:g}.",
            icon=":material/swap_vert:",
        )
        eps_min, eps_max = eps_max, eps_min
    elif eps_min == eps_max:
        st.warning(
            f"The sweep needs two different values of ε (both are {eps_min:g}): it runs "
            f"from {eps_min:g} to {10 * eps_min:g}.",
            icon=":material/swap_vert:",
        )
        eps_max = 10 * eps_min
    num = ui.slider("values of ε (log-spaced)", "ent_num", 4, 30, 12)
    n_iter = ui.slider("T of GCA-INCE (sweeps)", "ent_T_loss", 1, 50, 10)
    t_max = ui.slider("T sweep: the largest T", "ent_T", 2, 100, 30)
    eps_t = ui.epsilon("ent_eps_T", 0.1, what="fixed for the T sweep")

with ui.controls("Batch, marginals and solver", folded=True):
    source = ui.select("Source", "ent_source", list(SOURCES), "synthetic", format_func=SOURCES.get)
    n = ui.slider("Samples N", "ent_n", 8, 256, 48, step=8)
    seed = ui.number("Seed", "ent_seed", 0, min_value=0, step=1)
    noise, augment = 0.1, "standard"
    if source == "synthetic":
        noise = ui.slider("View noise σ", "ent_noise", 0.0, 1.0, 0.1, step=0.05)
    else:
        augment = ui.select("Augmentation", "ent_aug", ["none", "standard", "extreme"], "standard")
    target = ui.select(
        "Target plan P_tgt",
        "ent_target",
        ["pairs", "class"],
        "pairs",
        format_func={"pairs": "augmentation pairs", "class": "class prior γ"}.get,
    )
    gamma = 0.0
    if target == "class":
        gamma = ui.param_slider(TARGETS["class"].params[0], "ent_gamma")
    lam1 = ui.relaxation("ent_l1", 0.2, param=RELAX_A)
    lam2 = ui.relaxation("ent_l2", 0.2, param=RELAX_B)
    tol = ui.select_slider(
        "tolerance (relative marginal error)",
        "ent_tol",
        TOLERANCES,
        1e-6,
        format_func=lambda v: f"{v:.0e}",
    )
    cap = ui.select("sweep cap", "ent_cap", [100, 300, 1000, 3000], 1000)

with ui.guard("Batch"):
    batch = load_batch(source, n, int(seed), noise, augment)
batch_key = (source, n, int(seed), noise, augment)
with ui.guard("Sweep over ε"):
    sweep = epsilon_sweep(
        batch_key,
        batch,
        target,
        gamma,
        eps_min,
        eps_max,
        num,
        n_iter=n_iter,
        tol=tol,
        max_iter=cap,
        relax_a=lam1,
        relax_b=lam2,
    )
with ui.guard("Sweep over T"):
    t_sweep = iteration_sweep(batch_key, batch, target, gamma, eps_t, t_max)
st.caption(f"Batch: {batch.source}. Plans are {sweep.n_rows} × {sweep.n_cols}, float64.")
eps = sweep.epsilons
x_eps = "ε (log scale)"

# ------------------------------------------------------------------------ the plan

st.subheader("The plan: entropy and sparsity")
st.latex(lab.SPARSITY_LATEX)
a, b = ui.wrapping("ent_wrap_1", 360).columns(2)
with a:
    log_n, log_nm = np.log(sweep.n_rows), np.log(sweep.n_rows * sweep.n_cols)
    references = {"log nm: uniform plan": log_nm, "log n: a permutation": log_n}
    if not np.isclose(sweep.exact_entropy, log_n):
        references["exact plan P*₀"] = sweep.exact_entropy
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {"H(P_ε)": sweep.entropy},
            title="Plan entropy",
            x_title=x_eps,
            y_title="H (nats)",
            colors={"H(P_ε)": C["gca"]},
            references=references,
        ),
        key="ent_chart_entropy",
    )
    st.caption("The entropy rises with ε from the exact plan's towards the uniform plan's.")
with b:
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {
                "mass on the n largest entries": sweep.top_mass,
                "share of entries ≥ 10⁻³ max": sweep.support,
            },
            title="Sparsity",
            x_title=x_eps,
            y_title="fraction",
        ),
        key="ent_chart_sparsity",
    )
    st.caption("Small ε concentrates the mass on a few entries per row; large ε spreads it.")
live_chart.live_chart(
    figs.sweep_chart(
        eps,
        {"‖P_ε − P*₀‖₁": sweep.distance},
        title="Distance to the exact plan P*₀ (ε → 0)",
        x_title=x_eps,
        y_title="L1 distance of the normalised plans",
        log_y=True,
        colors={"‖P_ε − P*₀‖₁": C["row"]},
    ),
    key="ent_chart_distance",
)
st.caption("The entropic plan tends to the exact (unregularised) transport plan as ε → 0.")

# ------------------------------------------------------------------- convergence

st.subheader("Convergence: sweeps to tolerance and contraction")
st.latex(lab.CONTRACTION_LATEX)
a, b = ui.wrapping("ent_wrap_2", 360).columns(2)
with a:
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {f"sweeps to {tol:.0e}": sweep.iterations},
            title="Sweeps to tolerance",
            x_title=x_eps,
            y_title="sweeps",
            log_y=True,
            colors={f"sweeps to {tol:.0e}": C["col"]},
            ceiling=(cap, f"not reached in {cap} sweeps"),
        ),
        key="ent_chart_iterations",
    )
    missing = int(np.isnan(sweep.iterations).sum())
    # (it said "until ε is so small ... the first sweep is already exact" beside a chart
    # whose three smallest ε hit the cap: the turn is only told where the chart shows it)
    counts = np.where(np.isnan(sweep.iterations), np.inf, sweep.iterations)
    peak = int(np.argmax(counts))
    turn = (
        f", up to ε = {eps[peak]:.3g}; below it fewer again: each row puts its mass on its "
        "nearest column, and when those columns all differ the first sweep is already exact."
        if counts[0] < counts[peak]
        else ". Far below this range they fall again if every row's nearest column is a "
        "different one: each row then puts its mass there and the first sweep is exact."
    )
    st.caption(
        "Small ε needs many more sweeps"
        + turn
        + (
            f" {missing} value(s) of ε did not reach the tolerance within {cap} sweeps "
            "(the open triangles on the cap's line)."
            if missing
            else ""
        )
    )
with b:
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {
                "balanced, measured": sweep.contraction,
                "balanced, rough prediction tanh²(range C / 2ε)": sweep.predicted,
                "unbalanced, measured": sweep.contraction_unbalanced,
                "unbalanced, rate ρ₁ρ₂": sweep.rho,
            },
            title="Contraction per sweep",
            x_title=x_eps,
            y_title="eₜ₊₁ / eₜ",  # (longer, it was cut in lecture mode; the title says what)
            dashed=("balanced, rough prediction tanh²(range C / 2ε)", "unbalanced, rate ρ₁ρ₂"),
            points=("unbalanced, measured",),  # dots on the rate's line (a line hid it)
            colors={
                "balanced, measured": C["row"],
                "balanced, rough prediction tanh²(range C / 2ε)": C["row"],
                "unbalanced, measured": C["unbalanced"],
                "unbalanced, rate ρ₁ρ₂": C["unbalanced"],
            },
            height=380,
        ),
        key="ent_chart_contraction",
    )
    # (it said "exactly ρ₁ρ₂" beside a table row of 0.5425 against 0.5478: the measured rate
    # nears ρ₁ρ₂ only as the error's constant part takes over, and reads the rounding floor
    # where the error gets there in a few sweeps)
    gap = sweep.unbalanced_gap()
    st.caption(
        f"Relaxed marginals (λ₁ = {lam1:g}, λ₂ = {lam2:g}) contract by ρ₁ρ₂ per sweep near "
        "the solution, whatever the cost"
        + (
            f" (measured within {gap:.1%} of it here)"
            if gap is not None
            else " (too fast to measure here: the error reaches rounding within a few sweeps)"
        )
        + "; the balanced rate tends to 1 as ε → 0. The tanh² bound is loose but shows the "
        "trend."
    )
live_chart.live_chart(figs.error_curves(eps, sweep.errors, tol=tol), key="ent_chart_errors")
st.caption(
    "Sweeps on a linear axis, the error on a log axis: linear (geometric) convergence, "
    "error ≈ c·rᵗ, is a straight line here, and a steeper line is a smaller rate r."
)

# ------------------------------------------------------------------------ losses

st.subheader("Losses")
ince_name = "INCE = KL(P_tgt‖P⁽¹⁾)/N"  # (the N samples' cross-view plan: N rows)
gca_name = f"GCA-INCE = KL(P_tgt‖P⁽²ᵀ⁾)/N, T = {sweep.n_iter}"
a, b = ui.wrapping("ent_wrap_3", 360).columns(2)
with a:
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {gca_name: sweep.gca_ince, ince_name: sweep.ince},  # INCE dashed, on top
            title="INCE and GCA-INCE on this batch",
            x_title=x_eps,
            y_title="loss per row (nats)",
            dashed=(ince_name,),
            colors={ince_name: C["ince"], gca_name: C["gca"]},
        ),
        key="ent_chart_losses",
    )
    st.caption(
        "Both losses grow with ε: a warmer softmax puts less mass on the positives. At this "
        "scale the two curves nearly coincide (INCE dashed); the chart beside shows their gap."
    )
with b:
    live_chart.live_chart(
        figs.sweep_chart(
            eps,
            {"INCE − GCA-INCE": sweep.ince - sweep.gca_ince},
            title="What the extra sweeps gain",
            x_title=x_eps,
            y_title="INCE − GCA-INCE (nats)",
            log_y=True,
            colors={"INCE − GCA-INCE": C["gca"]},
        ),
        key="ent_chart_loss_gap",
    )
    st.caption(
        "The gap is never negative (the monotone-alignment theorem) and closes at large ε, "
        "where one row step nearly converges."
    )

# --------------------------------------------------------------------- T sweep

st.subheader(f"More sweeps at ε = {t_sweep.epsilon:g}")
its = t_sweep.iterations
# (plain text: two "P*₀" in one caption read as markdown italics, the stars gone)
distances_note, loss_note = (note.replace("*", "\\*") for note in t_sweep.describe())
a, b = ui.wrapping("ent_wrap_4", 360).columns(2)
with a:
    live_chart.live_chart(
        figs.sweep_chart(
            its,
            {
                "to the converged plan P_ε": t_sweep.distance_converged,
                "to the exact plan P*₀": t_sweep.distance_exact,
                "relative marginal error": t_sweep.marginal_error,
            },
            title="P⁽²ᵀ⁾ approaching the entropic plan",
            x_title="T (sweeps)",
            y_title="L1 distance / error",
            log_x=False,
            log_y=True,
            # dashed: at a small ε it lies on the distance to P_ε and hid that line
            dashed=("relative marginal error",),
        ),
        key="ent_chart_T_distance",
    )
    st.caption(distances_note)
with b:
    live_chart.live_chart(
        figs.sweep_chart(
            its,
            {"GCA-INCE(T)": t_sweep.gca_ince},
            title="GCA-INCE against T",
            x_title="T (sweeps)",
            y_title="loss per row (nats)",
            log_x=False,
            colors={"GCA-INCE(T)": C["gca"]},
            references={"INCE (one row step)": t_sweep.ince, "converged": t_sweep.converged_loss},
        ),
        key="ent_chart_T_loss",
    )
    st.caption(loss_note)

# ------------------------------------------------------------------------ tables

st.subheader("The numbers")
table = sweep.columns()
# Two tables, the plans' numbers and the solver's, each led by ε and the two losses beside
# it: in one table of twelve columns the last ones ran off the page at 1440 px (and off a
# projector's at 1024 px).
speed = [k for k in table if k.startswith(("iterations", "contraction", "rho"))]
lead = ["epsilon", "ince", *[k for k in table if k.startswith("gca_ince")]]
for keys in ([*lead, *[k for k in table if k not in lead and k not in speed]], ["epsilon", *speed]):
    ui.table({lab.sweeps.column_label(k): np.round(table[k], 4) for k in keys})
c1, c2 = st.columns(2)
c1.download_button(
    "Download the ε sweep (.csv)",
    lambda: lab.to_csv(table),  # made on click: no stale file URL when the page reruns
    file_name="epsilon_sweep.csv",
    mime="text/csv",
    on_click="ignore",
)
c2.download_button(
    "Download the T sweep (.csv)",
    lambda: lab.to_csv(t_sweep.columns()),
    file_name="iteration_sweep.csv",
    mime="text/csv",
    on_click="ignore",
)

ui.show_code(lab.sweep_epsilon, lab.sweep_iterations, lab.top_mass, lab.rough_contraction)
