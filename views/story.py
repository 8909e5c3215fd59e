"""Story: from InfoNCE to optimal transport in five guided steps, every formula beside a
number computed live on a real batch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import streamlit as st
import torch

import ui
from gca_viz import lab, losses, ot, story
from gca_viz.figures import plans as plan_figs
from gca_viz.figures import story as figs
from gca_viz.figures.player import half_step_player
from gca_viz.losses.stages import N_ITER
from views import _live_chart as live_chart

SOURCES = {  # short: the box is a quarter of a projector's width (the caption says more)
    "demo": "Digits, trained encoder",
    "digits": "Digits, random encoder",
    "synthetic": "Synthetic pairs on the sphere",
}


def composer_query(
    name: str, eps: float, n_iter: int, source: str, n: int, seed: int
) -> dict[str, str]:
    """The Loss composer's URL settings for the method ``name`` on this page's batch: its
    four stages, its preset parameters, ``ε`` and ``T`` where its stages take them, and the
    batch (source, N, seed)."""
    method = losses.LOSSES[name]
    given = {**method.params, "epsilon": eps, "n_iter": n_iter}
    query = {f"cmp_{kind}": stage for kind, stage in method.stages.items()}
    for _, p in story.stage_params(method.stages):
        if p.name in given:
            query[f"cmp_{p.name}"] = (
                f"{given[p.name]:g}" if p.kind != "choice" else str(given[p.name])
            )
    return {**query, "cmp_source": source, "cmp_n": str(n), "cmp_seed": str(seed)}


STEPS = {
    1: "1 · InfoNCE is a KL divergence",
    2: "2 · Sinkhorn lowers it",
    3: "3 · Alignment + repulsion",
    4: "4 · ε and relaxed marginals",
    5: "5 · The method family",
}
SIZES = (8, 16, 32, 64, 128, 256)
METHODS = list(losses.LOSSES)
# Widths (px) of the methods table's columns: with its selection column, within the page at
# 1280 px with the sidebar open (820 px) and in lecture mode at 1024 px, so that every column
# is in view and rows are few lines high.
METHOD_WIDTHS = {
    "method": 90,
    "d_M": 120,
    "d_Γ": 36,
    "B": 120,
    "what it does": 250,
    "reference": 160,
}


@st.cache_data(max_entries=8, show_spinner="Embedding the batch...")
def load_batch(source: str, n: int, seed: int, _store: Any) -> lab.Batch:
    """The batch of a source (cached: the data and the encoders are deterministic)."""
    return story.story_batch(source, n, seed, _store)


def step_selector() -> int:
    """A row of step buttons whose value lives in the query string (``story_step``)."""
    if "story_step" not in st.session_state:
        raw = st.query_params.get("story_step", "1")
        chosen = ui.recall("story_step", usable=lambda s: s in STEPS)  # after a page switch
        linked = int(raw) if raw in {str(s) for s in STEPS} else 1
        st.session_state["story_step"] = linked if chosen is None else chosen
        # A link to a later step opens at that step: the title, controls and the row of steps
        # filled the first screen (all of it at 1280 x 720 in lecture mode).
        if st.session_state["story_step"] > 1:
            ui.scroll_later("story_step")
    step = int(
        st.radio(
            "Step",
            list(STEPS),
            key="story_step",
            format_func=STEPS.get,
            horizontal=True,
            label_visibility="collapsed",
            on_change=_bring_into_view,
        )
    )
    ui.remember("story_step", step, 1)
    if st.query_params.get("story_step") != str(step):
        st.query_params["story_step"] = str(step)
    return step


def next_step() -> None:
    st.session_state["story_step"] = min(int(st.session_state["story_step"]) + 1, len(STEPS))
    ui.scroll_later("story_step")


def _bring_into_view() -> None:
    """A step chosen in the row of steps starts at the top of the window, its chart on the
    first screen: in lecture mode the controls above it filled a projector's 720 px."""
    if ui.lecture():
        ui.scroll_later("story_step")


def fmt(value: float, digits: int = 6) -> str:
    return f"{value:.{digits}f}"


def heatmap(matrix: np.ndarray, title: str, log: bool, height: int = 560) -> Any:
    """A cross-view plan with its marginals, coloured by its own range (or log), the
    positive pairs (the diagonal: rows and columns are sorted by the same class order)
    outlined."""
    ones = np.ones(matrix.shape[0])
    scale = "log colour scale" if log else f"colour: own range, 0 to {float(matrix.max()):.3g}"
    marks = plan_figs.positive_marks_words(matrix.shape[0], height)
    return plan_figs.matrix_heatmap(
        matrix,
        title=f"{title}<br><sup>{scale}; {marks}: the positive pairs (i, i)</sup>",
        value_label="Pᵢⱼ",
        row_ref=ones,
        col_ref=ones,
        log=log,
        zrange=None if log else (0.0, float(matrix.max())),
        positives=np.arange(matrix.shape[0]),
        height=height,
    )


# ---------------------------------------------------------------------------- header

live_chart.load_plotly()
if ui.lecture():  # one title: the steps' row and a step's claim come up the screen
    ui.title("From InfoNCE to optimal transport, in five steps")
else:
    st.title("GCA Explorer")
    st.subheader("From InfoNCE to optimal transport, in five steps")
ui.intro(
    "Contrastive learning is secretly a distribution-alignment problem (Chen et al., NeurIPS "
    "2024). *Optimal transport* asks for the cheapest way to send mass from one set of points "
    "(here the first views) to another (the second views), a *plan* saying how much goes "
    "from each to each; *Sinkhorn* finds it by rescaling the plan's rows and columns in turn. "
    "Each step below states one fact of the paper as a formula and checks it on a real "
    "batch of paired embeddings: every number on this page is computed live, so change the "
    "batch, $N$ or $\\varepsilon$ and watch the facts hold."
)

store = ui.run_store()
with ui.wrapping("story_batch", 150):  # (at 800 px: "Digits, trained e", ε's label in 3 lines)
    c_src, c_n, c_eps, c_t = st.columns([3, 2, 2, 2])
with c_src:
    source = ui.select("Batch", "story_source", list(SOURCES), "demo", format_func=SOURCES.get)
sizes: tuple[int, ...] = SIZES
if source == "demo":  # a run that kept no encoder stored its last batch: N goes up to it
    with ui.guard("Batch"):
        stored = load_batch(source, SIZES[-1], 0, _store=store).meta.get("available")
        sizes = tuple(s for s in SIZES if not stored or s <= stored) or SIZES[:1]
if st.session_state.get("story_n", sizes[0]) not in sizes:  # (a larger N, another source)
    st.session_state["story_n"] = sizes[-1]
with c_n:
    n = ui.select_slider(
        "Pairs N",
        "story_n",
        sizes,
        min(64, sizes[-1]),
        help=f"The demo run stored its last {sizes[-1]} pairs: N goes up to that."
        if sizes != SIZES
        else None,
    )
with c_eps:
    eps = ui.epsilon("story_eps", 0.2)
with c_t:
    n_iter = ui.slider(ui.param_label(N_ITER), "story_T", 1, 50, 10)
# (folded: the step selector on the first screen; in lecture mode under the batch, where the
# ε column's typed value leaves room, not in the title's row, which the long title fills)
with ui.controls("Story settings", folded=True, place=c_src):
    seed = int(ui.number("Seed", "story_seed", 0, min_value=0, step=1))
    float64 = ui.toggle("float64 (else float32, as in training)", "story_f64", False)
    log_scale = ui.toggle("Log colour scale", "story_log", False)

with ui.guard("Batch"):
    batch = load_batch(source, int(n), seed, _store=store)
if batch.meta.get("fallback"):
    st.info(
        f"The demo run {story.STORY_RUN} is not in the run store, so this batch is the digits "
        "through a random encoder."
    )
assert batch.z1 is not None and batch.z2 is not None
dtype = torch.float64 if float64 else torch.float32
z1, z2 = batch.z1.to(dtype), batch.z2.to(dtype)
N = batch.n
capped = f" (N is capped at the {N} pairs the run stored)" if N < int(n) else ""
st.caption(f"Batch: {batch.source}{capped}. Samples sorted by class.")

step = step_selector()
ui.scroll_if_asked("story_step")  # "Next" sits at the bottom: start the step at the top

# ------------------------------------------------------------------ step 1: INCE = KL

if step == 1:
    st.header(STEPS[1])
    with ui.guard("Step 1"):
        check = story.ince_as_kl(z1, z2, eps)
    # (each pair stacks where its columns would be narrow: at 150 % zoom beside the sidebar
    # the two numbers the step is about read "2.…" and the formulas were cut. The text
    # beside the numbers, not above them: under it they began at the fold of the first
    # screen, 1366 x 768 and lecture mode at 1280 x 720 alike)
    left, right = ui.wrapping("story_wrap_s1", 360).columns([3, 2], gap="large")
    with left:
        st.markdown(
            "A batch gives a cost $C_{ij} = 1 - \\langle z'_i, z''_j\\rangle$ between the first "
            "view of sample $i$ and the second view of sample $j$, and a kernel "
            "$K = e^{-C/\\varepsilon}.$ Normalising every row of $K$ to sum to 1 is one "
            "Sinkhorn half-step (the KL projection onto the row constraint); call the result "
            "$P^{(1)}.$ "
            "InfoNCE is exactly the KL divergence from the identity, *each view matched to its "
            "own partner*, to $P^{(1)}$: the two numbers, InfoNCE's loss and this KL, come from "
            "different code and agree."
        )
        st.latex(story.INFONCE_LATEX)
        st.latex(story.KL_P1_LATEX)
    with right:
        m1, m2 = ui.wrapping("story_wrap_s1_metrics", 150).columns(2)
        m1.metric("InfoNCE loss", fmt(check.infonce), help="losses.get('ince')(z', z'')")
        m2.metric(
            "KL(I ‖ P⁽¹⁾) / N",
            fmt(check.kl),
            help="generalised KL from the log-plan of ot.row_projection",
        )
        st.metric("Difference", f"{check.difference:.1e}", help="InfoNCE − KL(I ‖ P⁽¹⁾)/N")
        st.caption(
            f"{'float64' if float64 else 'float32'} arithmetic: the difference is rounding. "
            f"The textbook cross-entropy of the logits s/ε gives {check.cross_entropy:.6f}; "
            f"ot.sinkhorn's first half-step equals this P⁽¹⁾ to {check.sinkhorn_gap:.1e}."
        )
    live_chart.live_chart(
        heatmap(check.plan, "P⁽¹⁾: every row sums to 1; InfoNCE reads its diagonal", log_scale),
        key="story_p1",
    )
    ui.show_code(story.ince_as_kl, ot.row_projection, lab.generalized_kl)

# --------------------------------------------------------- step 2: monotone alignment

elif step == 2:
    st.header(STEPS[2])
    st.markdown(
        "If one row step is InfoNCE, why stop there? Sinkhorn alternates row and column "
        "normalisations. Each half-step is a KL projection onto a set that *contains the "
        "target* $I$, so the Pythagorean identity below says the KL to the target can only go "
        f"down. GCA-INCE, the KL after T = {n_iter} sweeps ({2 * n_iter} half-steps), is never "
        "larger than INCE on the same batch. (The formulas are the general ones: here the "
        "target $P_{\\mathrm{tgt}}$ is the identity $I$ of step 1 and $n = N$ rows.)"
    )
    C = ot.cosine_cost(z1.double(), z2.double())
    with ui.guard("Step 2"):
        mono = story.monotone_alignment(C, eps, n_iter)
    st.latex(lab.MONOTONE_LATEX)
    st.latex(story.PYTHAGORAS_LATEX)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("INCE (k = 1)", fmt(mono.ince))
    m2.metric(
        f"GCA-INCE (k = {2 * n_iter})",
        fmt(mono.gca),
        **ui.versus_ince(mono.gca - mono.ince, mono.rounding, "+.2e"),
    )
    rounded = mono.max_increase_shown != mono.max_increase
    drop = -mono.max_increase_shown  # ≥ 0 by the theorem
    m3.metric(
        "Least drop per half-step",
        "0 (rounding)" if rounded or drop == 0 else f"{drop:.1e}",
        help="Every half-step lowers the KL by at least this much: min over k = 1..2T−1 "
        "of KL(P_tgt‖P⁽ᵏ⁾) − KL(P_tgt‖P⁽ᵏ⁺¹⁾), never negative (a negative value would be a "
        f"rise). Changes within float64 rounding of the KL (±{mono.rounding:.0e}) are shown "
        "as 0" + (f"; this one was {-mono.max_increase:+.1e}" if rounded else ""),
    )
    m4.metric(
        "Pythagorean residual",
        f"{mono.max_residual:.1e}",
        help="max over k of |left side − right side| of the identity above",
    )
    if not float64:
        st.caption(
            "This step computes in float64 whatever the float64 setting: the theorem is "
            "about exact arithmetic, and float32's rounding of the KL (about 10⁻⁷ of it) "
            "would hide the smallest drops."
        )
    # The KL curve once, in the player beside the plans (it marks INCE, GCA-INCE and the
    # drop): the page drew it a second time, alone, above the player.
    st.markdown(
        "**▶ Play the half-steps**: the plan and the marker on the curve move together. The "
        "strips show what each half-step fixes: right of the plan, each row's sum over its "
        "target (blue); under it, each column's (orange). A row step puts every row on target "
        "and pushes columns off; a column step does the reverse; the misfit shrinks as k "
        "grows, and so does the KL."
    )
    live_chart.live_chart(
        half_step_player(
            mono.plans,
            mono.kl,
            log=log_scale,
            positives=np.arange(N),
            height=560,
        ),
        key="story_player",
    )
    k_max, drop = mono.largest_drop
    last = 2 * n_iter
    settled = int(np.argmax(mono.kl - mono.gca < 1e-4))  # mono.kl[k] is the KL at P^(k)
    tail = (
        f"from k = {settled} on the KL is within 10⁻⁴ of its value at k = {last}"
        if settled < last
        else f"the KL is still falling at k = {last}: more sweeps would lower it further"
    )
    hint = (
        " A smaller ε spreads the descent over more half-steps."
        if eps > ui.EPSILON_STOPS[0]
        else ""
    )
    share = (mono.ince - mono.gca) / mono.ince if mono.ince > 0 else 0.0
    # Said from this batch's numbers (it said "the columns are nearly balanced, so the full
    # plan changes little" and "a positive holds 0.0 %, 0.0 times the 1/N of a guess" at
    # ε = 0.01, where the columns were 194 % off and GCA-INCE 10 % below INCE).
    typical = math.exp(-mono.ince)  # the geometric mean of the positives' shares of P^(1)
    columns = float(np.abs(mono.plans[1].sum(axis=0) - 1.0).max())  # P^(1)'s worst column
    held = (
        f"{typical * N:.1f} times the 1/N of a uniform guess"
        if typical * N >= 1
        else f"less than the 1/N = {1 / N:.1%} of a uniform guess: the rows' mass goes to "
        "other samples at this ε"
    )
    balance = f"its worst column is {columns:.0%} off its target, which the column steps correct"
    trained = (
        f" A positive holds about {typical:.1%} of its row's mass in P⁽¹⁾ (e^(−INCE), a "
        f"geometric mean), {held}; {balance}."
    )
    st.caption(
        f"Computed in float64. The largest drop, {drop:.2e}, is from k = {k_max} to "
        f"k = {k_max + 1}; {tail}.{hint} In all, GCA-INCE is {share:.1%} below INCE on "
        f"this batch.{trained} The theorem is about the loss on one batch: whether training "
        "with it gives a better encoder is another question, which Train's demo runs "
        "(INCE against GCA-INCE) answer for this data."
    )
    ui.show_code(story.monotone_alignment, ot.row_projection)

# -------------------------------------------------------- step 3: alignment/repulsion

elif step == 3:
    st.header(STEPS[3])
    st.markdown(
        "Write the plan in log form with the dual potentials $f, g$ and the loss of each row "
        "splits in two: an **alignment** term, the positive pair's cost over ε (pull the two "
        "views together), and a **repulsion** term, minus the potentials (push everything "
        "apart; not the Wang-Isola uniformity of Geometry). Both losses share the alignment "
        "term; Sinkhorn changes only the repulsion term, by making every sample receive the "
        "same total mass."
    )
    with ui.guard("Step 3"):
        au = story.alignment_repulsion(z1, z2, eps, n_iter)
    st.latex(story.SPLIT_LATEX)
    st.latex(story.INCE_REPULSION_LATEX)
    for label, part in (("INCE", au.ince), ("GCA-INCE", au.gca)):
        m1, m2, m3, m4 = st.columns(4)
        m1.metric(f"{label}: mean alignment", fmt(float(np.mean(part.alignment)), 4))
        m2.metric(f"{label}: mean repulsion", fmt(float(np.mean(part.repulsion)), 4))
        m3.metric(f"{label}: loss", fmt(part.loss, 4))
        m4.metric(
            f"{label}: residual",
            f"{part.loss_residual:.1e}",
            help="|mean(alignment + repulsion) − loss|; per row the largest gap is "
            f"{part.row_residual:.1e}",
        )
    live_chart.live_chart(
        figs.split_chart(
            (au.ince.alignment, au.ince.repulsion, au.ince.neg_log_pos),
            (au.gca.alignment, au.gca.repulsion, au.gca.neg_log_pos),
        ),
        key="story_split",
    )
    drop = au.gca.loss - au.ince.loss
    st.caption(
        "The first two panels share the alignment term, so they differ only in the "
        f"repulsion term, which can be too little to see: the third panel plots the "
        f"difference per row (green: the row's loss fell; purple: it rose). Its mean, the "
        f"dashed line, {drop:+.3g} nats, is GCA-INCE − INCE: single rows may rise, the mean "
        "never does."
    )
    st.subheader("Hubs: who receives the mass")
    st.markdown(
        "Under $P^{(1)}$ every sample *sends* mass 1, but nothing limits what it *receives*: a "
        "sample close to many others becomes a hub. The column constraint of Sinkhorn gives "
        "every sample the same received mass: GCA spreads what each sample receives evenly."
    )
    st.latex(story.GINI_LATEX)
    hubs = au.hubs
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Gini of P⁽¹⁾ column sums", fmt(hubs.gini_before, 4))
    m2.metric("Gini after Sinkhorn", f"{hubs.gini_after:.1e}")
    m3.metric("max / min received, P⁽¹⁾", f"{hubs.ratio_before:.2f}×")
    m4.metric("max / min after Sinkhorn", f"{hubs.ratio_after:.4f}×")
    live_chart.live_chart(figs.hub_chart(hubs.before, hubs.after), key="story_hubs")
    st.caption(
        f"The top hub (sample {hubs.top_hub}) receives {hubs.before.max():.2f} under P⁽¹⁾; "
        f"after T = {n_iter} sweeps it receives {hubs.after[hubs.top_hub]:.4f}."
    )
    ui.show_code(story.split_loss, story.alignment_repulsion, story.hub_report)

# ------------------------------------------------------- step 4: ε and relaxed marginals

elif step == 4:
    st.header(STEPS[4])
    # (the numbers ε moves come right under one line of text: with the paragraph and the
    # formula first they were 700 px below ε's box, a screen apart at 1280 x 720)
    st.markdown(
        "ε is both InfoNCE's temperature and OT's entropic regulariser. A small ε sharpens the "
        "plan toward a permutation (one partner per sample), a large ε blurs it toward uniform: "
        "move ε (at the top of the page) and watch the entropy."
    )
    C = ot.cosine_cost(z1.double(), z2.double())
    with ui.guard("Step 4"):
        ent = story.entropy_plan(C, eps, n_iter)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Plan entropy H", fmt(ent.entropy, 3))
    m2.metric("Range: log N … 2 log N", f"{ent.low:.2f} … {ent.high:.2f}")
    m3.metric("Partners per sample", f"{ent.partners:.2f}", help="e^(H − log N): 1 to N")
    m4.metric("Mass on positive pairs", f"{ent.positive_mass:.1%}")
    st.latex(story.ENTROPY_LATEX)
    live_chart.live_chart(
        heatmap(ent.plan, f"GCA-INCE plan P⁽²ᵀ⁾ at ε = {eps:g}, T = {n_iter}", log_scale),
        key="story_eps_plan",
    )
    share = ent.marginal_error / N  # of the total mass N
    st.caption(
        f"After T = {n_iter} sweeps the marginal error ‖P1 − μ‖₁ + ‖Pᵀ1 − ν‖₁ is "
        f"{ent.marginal_error:.1e}, {share:.1e} of the total mass N = {N}"
        + (
            ": not converged yet at this ε (the smaller ε, the more sweeps Sinkhorn needs: "
            "raise T to close it)."
            if share > 1e-3
            else ": the marginals hold to 0.1% (the Entropy page follows the plan to 1e-6)."
        )
    )
    st.subheader("Relaxed marginals")
    st.markdown(
        "Relaxing the marginals (GCA-UOT) replaces the hard constraints by KL penalties of "
        "weight λ: a sample may then send or receive more or less mass than the hard marginal "
        "asks. A row whose view matches nothing can then keep less mass, but only where its "
        "positive held a large part of its row's kernel mass (small ε); the Noisy views page "
        "measures where the mass and the gradient go."
    )
    lam = ui.relaxation("story_lam", 0.3, both=True, hard=True)
    with ui.guard("Step 4"):
        rel = story.relaxed_marginals(C, eps, lam)
    st.latex(ot.UNBALANCED_LATEX)
    st.latex(ot.LOG_UPDATE_LATEX)
    st.latex(story.RELAXED_LATEX)
    m1, m2, m3, m4 = st.columns(4)
    m1.metric(
        "Total mass Σ P",
        f"{rel.mass:.2f}",
        f"{rel.mass - N:+.2f} vs N = {N}",
        delta_color="off",  # neither good nor bad: the plan drifts toward ΣK as λ falls
        help="As λ falls the plan drifts from N toward the kernel's own mass ΣK: a change "
        "of total mass is neither good nor bad, and only shares of it compare",
    )
    m2.metric(
        "Rate ρ₁ρ₂",
        f"{rel.predicted:.4f}",
        help="ρ = λ/(λ + ε); near the solution the error shrinks by ρ₁ρ₂ per sweep (a "
        "shift of the potentials changes the mass, and it decays at exactly that rate)",
    )
    measured = (
        f"{rel.contraction:.4f}"
        if math.isfinite(rel.contraction)
        else f"done in {rel.sweeps_to_rounding} sweeps"
    )
    m3.metric("Measured rate per sweep", measured, help="SinkhornResult.contraction")
    m4.metric("Mass on positive pairs", f"{rel.positive_mass:.1%}")
    # (one above the other where each would be narrow: at 125 % zoom beside the sidebar,
    # 300 px each, the shares' title, axis titles and ticks ran into each other)
    left, right = ui.wrapping("story_wrap_s4", 360).columns(2, gap="large")
    with left:
        live_chart.live_chart(
            figs.marginal_chart(
                rel.row_shares,
                rel.col_shares,
                np.ones(N),
                np.ones(N),
                title="Who sends and receives less than their share",
                shares=True,
            ),
            key="story_marginals",
        )
    with right:
        lam_text = "∞" if lam is None else f"{lam:g}"
        live_chart.live_chart(
            heatmap(rel.plan, f"Unbalanced plan, λ₁ = λ₂ = {lam_text}", log_scale, height=440),
            key="story_unbalanced",
        )
    st.caption(
        "Each bar is a sample's share of the plan's mass over its share under the hard "
        "marginals: 1 (dashed) is as balanced, below 1 a sample sends or receives less than "
        "its part. The total mass itself drifts from N toward the kernel's ΣK as λ falls "
        f"(above: {rel.mass:.1f}, {'up' if rel.mass > N else 'down'} from N = {N}), which "
        f"{'lifts' if rel.mass > N else 'lowers'} the row sums together, so the shares are what "
        f"compare. Here {rel.rows_below(0.9)} of {N} rows keep less than 90 % of their "
        "share. λ → ∞ is balanced Sinkhorn (GCA-INCE): every bar at 1. "
        # (it said "the solver needs fewer sweeps" at any λ: at λ = 100 the bound is 0.996
        # per sweep, far slower than balanced Sinkhorn's measured 0.748 on this batch)
        + (
            "Here λ = ∞, balanced Sinkhorn: ρ₁ρ₂ = 1 plays no part, and the kernel sets the rate "
            + (
                f"({measured} per sweep)."
                if math.isfinite(rel.contraction)
                else f"(the solver was {measured})."
            )
            if lam is None
            else f"With ρ = λ/(λ + ε) = {rel.rho[0]:.4f} the error shrinks by ρ₁ρ₂ = "
            f"{rel.predicted:.4f} per sweep near the solution (measured: {measured}): a small "
            "λ converges in a few sweeps whatever the kernel, and as λ grows ρ₁ρ₂ tends to 1, "
            "slower than balanced Sinkhorn (tick λ = ∞), whose rate the kernel sets."
        )
    )
    ui.show_code(story.entropy_plan, story.relaxed_marginals)

# ------------------------------------------------------------- step 5: the methods

else:
    st.header(STEPS[5])
    st.markdown(
        "Every method of the family is one choice of a matching divergence $d_M$ (how the "
        "plan is compared with the target), a proximal divergence $d_\\Gamma$ and a "
        "constraint set $B$ (how the kernel is turned into a plan). "
        + ("Pick a method" if ui.lecture() else "Pick a row")  # (lecture: a plain table)
        + " to see that method's plan and its loss on this batch, with the same ε and T (all "
        "in the cross-view layout)."
    )
    st.latex(story.GCA_LATEX)
    st.caption(
        "d_Γ is the divergence of the proximal step from the kernel K (KL: a Bregman "
        "projection; L2 for BYOL). B is the constraint set: C1(μ) = {P ≥ 0 : P1 = μ} (the "
        "rows only: one half-step, InfoNCE's plan), C1(μ) ∩ C2(ν) with C2(ν) = "
        "{P ≥ 0 : Pᵀ1 = ν} (rows and columns: Sinkhorn, GCA), or none. h(P) is an optional "
        "penalty: the soft marginal terms λ₁ KL(P1‖μ) + λ₂ KL(Pᵀ1‖ν) of step 4 for GCA-UOT "
        "(whose B is none), else 0. μ = ν = 1 for the identity target."
    )

    def pick_method() -> str:
        return str(
            ui.select(
                "Method",
                "story_method",
                METHODS,
                "gca_ince",
                format_func=lambda m: losses.LOSSES[m].title,
            )
        )

    table = st.session_state.get("story_methods_table")
    rows = list(((table or {}).get("selection") or {}).get("rows") or [])
    if not rows:  # deselected, or the table's state was dropped by a page switch
        st.session_state.pop("_story_table_applied", None)
    elif st.session_state.get("_story_table_applied") != rows[0]:
        st.session_state["_story_table_applied"] = rows[0]
        st.session_state["story_method"] = METHODS[rows[0]]
        # the table is taller than a laptop's screen: its result, drawn under it, came out
        # of view and a click on a row seemed to do nothing
        ui.scroll_later("wrap360_story_wrap_s5")
    # The selector comes above the table (after its eight rows it was a screen and a half
    # down) and the chosen row is shaded: in lecture mode the table has no row selection,
    # and elsewhere a method chosen in the selector or a link ticked no row (a student saw
    # two pickers that disagreed).
    with st.columns([1, 2])[0]:
        name = pick_method()
    ui.wrapped_table(
        story.methods_table(),
        METHOD_WIDTHS,
        highlight=METHODS.index(name),
        on_select="rerun",
        selection_mode="single-row",
        key="story_methods_table",
        height="content",
    )
    st.caption(" · ".join(story.methods_notes()))
    method = losses.LOSSES[name]
    with ui.guard(method.title):
        out = story.method_output(name, z1, z2, eps, n_iter)
    loss_module = losses.get(name, layout="cross")
    planless = not loss_module.has_plan  # BYOL: P = K, never normalised
    left, right = ui.wrapping("story_wrap_s5", 360).columns([2, 3], gap="large")
    with left:
        m1, m2 = ui.wrapping("story_wrap_s5_metrics", 150).columns(2)
        m1.metric(f"{method.title} loss", fmt(float(out.loss), 5))
        m2.metric(
            "Mass on positive pairs",
            "—" if planless else f"{out.diagnostics['positive_mass']:.1%}",
            help="BYOL has no plan: its loss reads the positive pairs only" if planless else None,
        )  # ("— (no plan)" was cut to "— (no …" in a half column)
        st.markdown(f"**Projection** (`{loss_module.stages['projection'].name}`)")
        st.latex(loss_module.latex["projection"])
        st.markdown(f"**Divergence** (`{loss_module.stages['divergence'].name}`)")
        st.latex(loss_module.latex["divergence"])
        st.caption(f"{method.description} ({method.provenance})")
        # (the table's notes give each preset's ε and T, and which ones this loss used
        # was unclear: GCA-UOT's "preset ε 0.5" beside this page's ε = 0.2)
        symbols = {k: p.symbol or k for k, p in loss_module.schema.items()}
        page = {"epsilon": eps, "n_iter": n_iter}
        numbers = {k: v for k, v in loss_module.params.items() if isinstance(v, int | float)}
        used = [f"${symbols[k]}$ = {v:g}" for k, v in page.items() if k in numbers]
        kept = [f"${symbols[k]}$ = {v:g}" for k, v in numbers.items() if k not in page]
        st.caption(
            # (BYOL's loss reads no ε: only the kernel drawn beside it does)
            f"The kernel beside it uses this page's {' and '.join(used)}; the loss uses none."
            if planless
            else f"Computed with this page's {' and '.join(used)}"
            + (f"; the preset's {', '.join(kept)}." if kept else ".")
        )
        if float(out.loss) < 0:  # (RINCE's -0.604 stood unexplained beside the KL losses)
            st.caption(
                f"A negative {method.title} loss is no error: its divergence is not a KL and "
                "has no floor at 0 (RINCE's −e^(q s₊)/q term can outweigh the rest); training "
                "follows its gradient, so only how it changes matters."
            )
    with right:
        plan = out.plan.detach().double().numpy()
        title = (
            f"{method.title} forms no plan: the kernel K, for reference"
            if planless
            else f"{method.title}: its plan on this batch"
        )
        live_chart.live_chart(heatmap(plan, title, log_scale), key="story_method_plan")
        if planless:
            st.caption(
                f"{method.title} normalises nothing (B: none, d_Γ = L2), so no plan is formed; "
                "its loss reads only the positive pairs' costs, ‖ẑ′ᵢ − ẑ″ᵢ‖² = 2Cᵢᵢ (the "
                "divergence above), the diagonal outlined here."
            )
    ui.page_link(
        "views/composer.py",
        label=f"Compose a loss of your own from {method.title}'s stages, and train with it",
        icon=":material/extension:",
        # the composer opens on this method, batch, ε and T (it opened on GCA-INCE at its own
        # ε = 0.5: "Loss 3.03" beside this page's 2.57 on "the same" batch)
        query_params=composer_query(name, eps, n_iter, source, N, seed),
    )
    ui.scroll_if_asked("wrap360_story_wrap_s5")
    ui.show_code(story.method_output, losses.GCALoss.inspect)

if step < len(STEPS):
    st.button(f"Next: {STEPS[step + 1]}", key="story_next", on_click=next_step, type="primary")
    ui.scroll_on_click("story_next", "story_step")
