"""Plan lab: a batch -> cost, kernel, every Sinkhorn half-step, the balanced and unbalanced
plans, the target plan, and the loss of every method on that batch."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import plotly.io as pio
import streamlit as st
import torch

import ui
from gca_viz import lab, ot, targets
from gca_viz.figures import plans as figs
from gca_viz.figures.player import PLAYER_HEIGHT, half_step_player
from gca_viz.losses import COSTS, PROJECTIONS
from gca_viz.losses.stages import N_ITER, RELAX_A, RELAX_B
from gca_viz.targets import TARGETS
from views import _live_chart as live_chart
from views._run_link import missing_run_warning

# Widths (px) of the losses table's columns: together within the page at 1280 px with the
# sidebar open (818 px). (A page script shows a bare string: Streamlit's "magic".)
LOSS_WIDTHS = {"method": 100, "loss": 80, "d_M": 130, "constraint B": 150, "what it does": 350}

# The synthetic batch's view noise σ when the page opens: at ε = 0.1 and T = 10 its plan is
# visibly off the diagonal and GCA-INCE is 13% under INCE (at σ = 0.1 the plan was nearly the
# identity and the drop 4%). (No docstring: a page script shows a bare string.)
DEFAULT_NOISE = 0.3
SOURCES = {  # (short: longer labels were cut in the sidebar's select box)
    "synthetic": "Synthetic pairs on the sphere",
    "digits": "Digits, random encoder",
    "multidomain_digits": "Multi-domain digits, random encoder",
    "trained": "A run's trained encoder",
    "snapshot": "A run's plan snapshot",
}
VIEWS = {
    "cost": "C: cost",
    "kernel": "K: Gibbs kernel",
    "P1": "P⁽¹⁾: InfoNCE plan (one row step)",
    "P2T": "P⁽²ᵀ⁾: plan after T sweeps",
    "unbalanced": "Unbalanced plan (λ₁, λ₂)",
    "target": "P_tgt: target plan",
}
TARGET_NAMES = {
    "pairs": "augmentation pairs",
    "class": "class prior γ",
    "domain": "domain prior α, β",
}


# ------------------------------------------------------------------------ cached math


@st.cache_data(max_entries=8, show_spinner="Embedding the batch...")
def load_batch(
    source: str,
    n: int,
    seed: int,
    noise: float,
    augment: str,
    run_id: int,
    version: float,
    _store: Any = None,
) -> lab.Batch | None:
    """The batch of a source (``version`` changes when a run writes a newer file), its
    samples sorted by class or cluster so that the blocks show along the diagonal (a
    student saw "4 clusters" in the caption and noise in the matrices); a run's snapshot
    keeps the order its plan was stored in."""
    if source == "snapshot":
        return lab.snapshot_batch(_store, run_id)
    if source == "synthetic":
        batch = lab.synthetic_batch(n, noise=noise, seed=seed)
    elif source == "trained":
        batch = lab.data_batch(n=n, seed=seed, encoder=lab.trained_encoder(_store, run_id))
    else:
        batch = lab.data_batch(source, n, seed, augment=augment)
    return lab.sort_by_label(batch)


@st.cache_data(max_entries=16, show_spinner="Running Sinkhorn...")
def solve(
    batch_key: tuple[Any, ...], _batch: lab.Batch, float64: bool, **settings: Any
) -> lab.LabSolution:
    """Every matrix of the lab for one batch (identified by ``batch_key``) and setting."""
    return lab.solve(_batch, dtype=torch.float64 if float64 else torch.float32, **settings)


def _keep_in_range(key: str, high: int, default: int = 0) -> int:
    """Set an integer widget's value (from the query string on the first run) clipped to
    ``0..high`` before the widget is drawn, and return it: a widget whose range changed is
    a new widget to Streamlit and would otherwise fall back to its minimum."""
    if key not in st.session_state:
        try:
            chosen = ui.recall(key)  # chosen before a page switch
            raw = st.query_params.get(key, default)
            st.session_state[key] = int(float(raw if chosen is None else chosen))
        except ValueError:
            st.session_state[key] = default
    st.session_state[key] = max(0, min(int(st.session_state[key]), high))
    ui.remember(key, st.session_state[key], default)
    return int(st.session_state[key])


def _take_click(chart: str, shape: tuple[int, int]) -> Callable[[], None]:
    """A live chart's click callback: the clicked cell goes into the row/column inputs."""

    def take() -> None:
        cell = live_chart.clicked_cell(chart, shape)
        if cell is not None:
            st.session_state["lab_i"], st.session_state["lab_j"] = cell

    return take


@st.cache_data(max_entries=16, show_spinner=False)
def player_json(
    key: tuple[Any, ...],
    _steps: lab.HalfSteps,
    log: bool,
    shared: bool,
    _pos: np.ndarray,
    height: int,
) -> str:
    """The half-step player of one solution (``key``) as plotly JSON: built and encoded once,
    then a cell click or another view sends only a hash."""
    fig = half_step_player(
        _steps.plans,
        _steps.kl,
        log=log,
        shared_scale=shared,
        positives=_pos,
        start=1,
        height=height,
    )
    return live_chart.figure_json(fig)


@st.cache_data(max_entries=32, show_spinner=False)
def view_json(
    key: tuple[Any, ...],
    view: str,
    log: bool,
    _matrix: np.ndarray,
    _steps: lab.HalfSteps,
    _pos: np.ndarray,
) -> str:
    """One matrix of the solution ``key`` as a heatmap with its marginals, as plotly JSON."""
    fig = figs.matrix_heatmap(
        _matrix,
        title=VIEWS[view],
        value_label="Cᵢⱼ" if view == "cost" else "value",
        row_ref=None if view == "cost" else _steps.mu,
        col_ref=None if view == "cost" else _steps.nu,
        log=log and view != "cost",
        marginals=view != "cost",
        positives=_pos,
        colorscale=figs.COST_COLORSCALE if view == "cost" else figs.PLAN_COLORSCALE,
    )
    return live_chart.figure_json(fig)


def _sup(k: int) -> str:
    """``(k)`` as a superscript, for labels such as P⁽¹²⁾."""
    return "⁽" + str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")) + "⁾"


# ---------------------------------------------------------------------------- header

live_chart.load_plotly()
ui.title("Plan lab")
ui.intro(
    "A batch of paired embeddings defines a cost $C$ and a Gibbs kernel $K = e^{-C/\\varepsilon}.$ "
    "Sinkhorn alternately rescales rows and columns of $K$; the first row step $P^{(1)}$ is "
    "exactly the plan behind InfoNCE, and every further half-step moves the plan closer (in KL) "
    "to the target plan $P_{\\mathrm{tgt}}.$ Walk through the half-steps, switch the matrix "
    "below between the balanced and the unbalanced plan, and click a cell to see the two "
    "samples it pairs and its value in every matrix side by side."
)

# -------------------------------------------------------------------------- controls

store = ui.run_store()
# ε and T first in the sidebar (they come after the batch here: a run's snapshot sets ε), at
# the top of its page controls: under the batch they began below a 1366 x 768 window
problem_slot = ui.sidebar_slot()
with ui.controls("Batch", folded=True):  # (secondary in a lecture: the plots come up)
    source = ui.select("Source", "lab_source", list(SOURCES), "synthetic", format_func=SOURCES.get)
    run_id, version, noise, augment = 0, 0.0, 0.1, "standard"
    runs: dict[int, str] = {}
    if source in ("snapshot", "trained"):
        runs = lab.snapshot_runs(store) if source == "snapshot" else lab.checkpoint_runs(store)
    if runs:
        every = [r.id for r in store.list_runs()]  # (a run without this kind of file exists)
        missing_run_warning("lab_run", every, next(iter(runs)), runs.__getitem__, list(runs))
        run_id = ui.select("Run", "lab_run", list(runs), next(iter(runs)), format_func=runs.get)
        files = store.snapshots(run_id, "plan") if source == "snapshot" else []
        ckpt = store.run_dir(run_id) / "checkpoint.pt"
        version = float(files[-1][0]) if files else (ckpt.stat().st_mtime if ckpt.exists() else 0)
    if source != "snapshot":
        n = ui.slider("Samples N", "lab_n", 8, 256, 64, step=8)
        seed = ui.number("Seed", "lab_seed", 0, min_value=0, step=1)
    else:
        n, seed = 0, 0
    if source == "synthetic":
        noise = ui.slider("View noise σ", "lab_noise", 0.0, 1.0, DEFAULT_NOISE, step=0.05)
    elif source in ("digits", "multidomain_digits"):
        augment = ui.select("Augmentation", "lab_aug", ["none", "standard", "extreme"], "standard")

if source in ("snapshot", "trained") and not runs:
    what = "plan snapshot" if source == "snapshot" else "checkpoint"
    st.info(
        f"No run has written a {what} yet: start one on the Train page, or pick another source."
    )
    st.stop()
with ui.guard("Batch"):
    batch = load_batch(source, n, int(seed), noise, augment, run_id, version, _store=store)
if batch is None:
    st.info("This run has not written a plan snapshot yet; it does every few steps.")
    st.stop()
batch_key = (source, n, int(seed), noise, augment, run_id, version)
if "epsilon" in batch.meta:  # a run's snapshot: start from the ε the run trained with
    origin = (source, run_id)
    if st.session_state.get("_lab_eps_from") != origin:
        linked = st.session_state.get("_lab_eps_from") is None and "lab_eps" in st.query_params
        if not linked:  # a link that names ε keeps it
            st.session_state["lab_eps"] = float(batch.meta["epsilon"])
        st.session_state["_lab_eps_from"] = origin

with ui.controls("Problem", pinned=True, slot=problem_slot):  # (lecture: open, pinned)
    eps = ui.epsilon("lab_eps", 0.1)
    n_iter = ui.slider(ui.param_label(N_ITER), "lab_T", 1, 50, 10)
# In a lecture folded, the rest: open, both panels took the first screen of a projector
# (1280 x 720) and the first plan came two screens down.
with ui.controls("Target, marginals and display", folded=True):
    choices = [t for t in ("pairs", "class", "domain") if t != "class" or batch.labels is not None]
    choices = [t for t in choices if t != "domain" or batch.domains is not None]
    target = ui.select(
        "Target plan P_tgt", "lab_target", choices, "pairs", format_func=TARGET_NAMES.get
    )
    target_params = {}
    for p in TARGETS[target].params:
        target_params[p.name] = ui.param_slider(p, f"lab_{p.name}")
    if batch.layout is None:
        layout = ui.select(
            "Layout",
            "lab_layout",
            ["cross", "joint"],
            "cross",
            help="cross: N x N, view 1 against view 2; joint: 2N x 2N, all "
            "views against all, self-pairs excluded (SimCLR's layout).",
        )
    else:
        layout = batch.layout
        st.caption(f"Layout: {layout} (fixed by the run).")
    lam1 = ui.relaxation("lab_l1", 0.2, param=RELAX_A)
    lam2 = ui.relaxation("lab_l2", 0.2, param=RELAX_B)
    st.subheader("Display")
    log_scale = ui.toggle("Log colour scale", "lab_log", False)
    shared_scale = ui.toggle(
        "One colour scale for all half-steps",
        "lab_shared",
        False,
        help="Off: each half-step is coloured by its own range (0 to its largest entry), so "
        "P⁽¹⁾ and later plans are not drowned by K's larger entries. On: all share K's range.",
    )
    float64 = ui.toggle("float64 (else float32, as in training)", "lab_f64", True)

with ui.guard("Settings"):
    sol = solve(
        batch_key,
        batch,
        float64,
        epsilon=eps,
        n_iter=n_iter,
        layout=layout,
        target=target,
        target_params=target_params,
        relax_a=lam1,
        relax_b=lam2,
    )

# ------------------------------------------------------------------------ half-steps

steps = sol.steps
n_rows, n_cols = sol.cost.shape
shape = (n_rows, n_cols)
solution_key = (
    batch_key,
    float64,
    eps,
    n_iter,
    layout,
    target,
    tuple(sorted(target_params.items())),
    lam1,
    lam2,
)
trained_eps = (
    f" The run trained with ε = {batch.meta['epsilon']:g}; ε starts there for each run you pick."
    if "epsilon" in batch.meta
    else ""
)
order = "" if source == "snapshot" or batch.labels is None else ", sorted by class"
if source == "synthetic" and batch.labels is not None:
    order = ", sorted by cluster"
st.caption(f"Batch: {batch.source}{order}. Cost matrix {n_rows} × {n_cols}.{trained_eps}")
st.subheader("Walk through the half-steps")
T2 = _sup(2 * n_iter)
m1, m2, m3 = st.columns(3)
# n: the plan's rows, N in the cross layout and 2N in the joint one (the Story's /N is cross)
rows_help = f"Per row: divided by n = {n_rows}, the plan's rows (N cross-view, 2N joint)."
pair = ui.column_format([steps.kl[1], steps.kl[-1]])  # one rounding for the two
m1.metric("INCE = KL(P_tgt‖P⁽¹⁾)/n", pair.format(steps.kl[1]), help=rows_help)
m2.metric(
    f"GCA-INCE = KL(P_tgt‖P{T2})/n",
    pair.format(steps.kl[-1]),
    help=rows_help,
    **ui.versus_ince(steps.kl[-1] - steps.kl[1], lab.largest_rise(steps.kl)[1], "+.2g"),
)
m3.metric(
    f"Relative marginal error of P{T2}",  # (Composer's and Train's are absolute)
    f"{steps.relative_error[-1]:.2e}",
    help="(‖P1 − μ‖₁ + ‖Pᵀ1 − ν‖₁) / Σμ with μ = P_tgt 1, ν = P_tgt^T 1",
)
positives = targets.partner(n_rows if layout == "cross" else n_rows // 2, layout).numpy()
# in a lecture 24 px shorter: whole beside the pinned Problem panel at 1280 x 720
player_height = PLAYER_HEIGHT - 24 if ui.lecture() else PLAYER_HEIGHT
player_spec = player_json(solution_key, steps, log_scale, shared_scale, positives, player_height)


@st.fragment
def inspect() -> None:
    """The player, the matrix views and the cell inspector: a click on a cell reruns only
    this part (the charts then get the new marked cell, not their figures again)."""
    assert batch is not None  # the page stopped above otherwise
    partner = n_rows // 2 if layout == "joint" else 0  # start on a positive pair
    cell = (_keep_in_range("lab_i", n_rows - 1), _keep_in_range("lab_j", n_cols - 1, partner))

    st.markdown(
        "**▶ Play the half-steps**, or drag the slider under the plan (it runs in your "
        "browser). Odd k are row steps: every row then sums to μᵢ and the blue strip of row "
        "sums right of the plan goes flat; even k are column steps: the orange strip of column "
        "sums under it goes flat, and the rows drift a little less with every sweep. Click a "
        "cell to inspect it below."
    )
    live_chart.live_chart(
        player_spec,
        key="lab_chart_player",
        on_click=_take_click("lab_chart_player", shape),
        overlay=live_chart.marked_cell(cell, shape, 128),
    )
    # the formulas of what plays, under the figure: above it they pushed the player below
    # the first screen at 1366 x 768
    st.latex(lab.HALF_STEP_LATEX)
    st.latex(lab.MONOTONE_LATEX)
    scale = (
        "log₁₀ colour scale"
        if log_scale
        else "one colour range shared by all half-steps (K's)"
        if shared_scale
        else "each half-step coloured by its own range, 0 to its largest entry"
    )
    st.caption(
        "Each half-step is a KL projection onto a set that contains P_tgt, so the KL curve "
        "never rises: GCA-INCE (k = 2T) ≤ INCE (k = 1) on every batch. The dashed lines mark "
        "the two losses and the arrow spans the drop; the kernel (k = 0) sits far above and "
        f"is named over the curve. On the plan {figs.positive_marks_words(n_rows, player_height)}"
        f" mark the positive pairs (i, pos(i)): the entries InfoNCE reads. Colours: {scale} "
        "(the toggles under Display)."
    )

    # ------------------------------------------------------------------------- all views

    st.subheader("The problem, matrix by matrix")
    formulas = {
        "cost": COSTS["cosine"].latex,
        "kernel": r"K_{ij} = e^{-C_{ij}/\varepsilon}",
        "P1": PROJECTIONS["row"].latex,
        "P2T": ot.SINKHORN_LATEX,
        "unbalanced": ot.UNBALANCED_LATEX,
        "target": TARGETS[target].latex,
    }
    captions = {
        "cost": "1 − cosine similarity: small (dark) where two views point the same way"
        + (", blank on the excluded self-pairs." if layout == "joint" else "."),
        "kernel": f"exp(−C/ε) at ε = {eps:g}: a smaller ε sharpens the contrast between pairs.",
        "P1": "Rows sum to μ (a softmax per row); columns are free, so some samples attract far "
        "more mass than others (hubs).",
        "P2T": steps.marginals_words(),
        "unbalanced": "Marginals are only penalised "
        f"(ρ₁ = {sol.rho[0]:.3f}, ρ₂ = {sol.rho[1]:.3f}), so the bars may leave the dashed "
        "lines: mass moves off pairs that are "
        "expensive to match.",
        "target": "What should be matched to what; its row and column sums are the marginals μ, ν.",
    }

    left, right = ui.wrapping("lab_wrap_matrix", 300).columns([3, 2], gap="large")
    with left:
        view = ui.select("Matrix", "lab_view", list(VIEWS), "P2T", format_func=VIEWS.get)
        st.latex(formulas[view])
        live_chart.live_chart(
            view_json(solution_key, view, log_scale, sol.matrices[view], steps, positives),
            key="lab_chart_view",
            on_click=_take_click("lab_chart_view", shape),
            overlay=live_chart.marked_cell(cell, shape, 256),
        )
        st.caption(captions[view])

    # ------------------------------------------------------------------------- cell picker

    with right:
        st.markdown("**Inspect a cell**: click one in either heatmap, or type its row and column.")
        c1, c2 = st.columns(2)
        with c1:
            i = ui.number("Row i", "lab_i", 0, min_value=0, max_value=n_rows - 1, step=1)
        with c2:
            j = ui.number("Column j", "lab_j", partner, min_value=0, max_value=n_cols - 1, step=1)
        with ui.guard("Cell"):
            info = lab.cell_info(int(i), int(j), sol.matrices, layout=layout)
        if info.positive:
            st.markdown("**A positive pair**: the two views of one sample.")
        elif info.self_pair:
            st.markdown(
                "**An excluded self-pair**: a view against itself. The joint layout sets its cost "
                "to +inf, so no plan puts mass here."
            )
        else:
            st.markdown("Not a positive pair: two different samples.")
        sides = (
            ("Row", info.row_sample, info.row_view),
            ("Column", info.col_sample, info.col_view),
        )
        for column, (side, sample, view_no) in zip(st.columns(2), sides, strict=True):
            with column:
                label = ""
                if batch.labels is not None:
                    y = int(batch.labels[sample])
                    label = f", class {batch.class_names[y] if batch.class_names else y}"
                title = (
                    f"{side} {i if side == 'Row' else j}: sample {sample}, view {view_no}{label}"
                )
                if batch.images is not None:
                    st.image(figs.sample_image(batch.images[view_no - 1, sample]), caption=title)
                elif batch.z1 is not None and batch.z2 is not None:
                    z = (batch.z1 if view_no == 1 else batch.z2)[sample].numpy()
                    # Wrapped text, not a code block: the column is narrow and a code block
                    # scrolled sideways, hiding half the vector.
                    shown = ", ".join(f"{v:.2f}".replace("-", "−") for v in z[:8])
                    more = f", … ({z.size} in all)" if z.size > 8 else ""
                    st.caption(f"{title}  \nembedding ({shown}{more})")
                else:
                    st.caption(title + " (a snapshot holds no embeddings)")
        names = {
            "cost": "cost Cᵢⱼ",
            "kernel": "kernel Kᵢⱼ",
            "P1": "InfoNCE plan P⁽¹⁾ᵢⱼ",
            "P2T": f"after T sweeps P{T2}ᵢⱼ",
            "unbalanced": "unbalanced plan Pᵢⱼ",
            "target": "target P_tgt,ᵢⱼ",
        }
        ui.table(
            {
                "matrix": [names[key] for key in info.values],
                "value": [f"{v:.6g}" for v in info.values.values()],
            },
        )


inspect()

# ---------------------------------------------------------------------------- losses

st.subheader("Compare the methods")  # (the chart is titled "Loss of every method on this batch")
titles = [m.title for m in sol.losses]
live_chart.live_chart(
    figs.loss_bars(titles, np.array([m.value for m in sol.losses])), key="lab_chart_loss"
)
st.caption(
    "Same batch, same ε and T. Methods optimise different objectives, so only INCE ≥ GCA-INCE "
    "is a theorem; RINCE-type losses can be negative; BYOL forms no plan (its loss reads "
    "only the positives' costs, 2Cᵢᵢ)."
)
loss_rows = [
    {
        "method": title,
        "loss": f"{m.value:.6g}",
        "d_M": m.d_m,
        "constraint B": m.constraint,
        "what it does": m.description,
    }
    for title, m in zip(titles, sol.losses, strict=True)
]
ui.wrapped_table(loss_rows, LOSS_WIDTHS)  # widths that fit the page at 1280 px

ui.show_code(lab.half_steps, ot.row_projection, lab.method_losses, lab.solve)

# ------------------------------------------------------------------------- downloads


def _npz() -> bytes:
    """Every half-step plan and the problem they belong to, as a .npz file."""
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        plans=steps.plans,
        cost=sol.cost,
        kernel=sol.kernel,
        target=sol.target,
        unbalanced=sol.unbalanced,
        kl=steps.kl,
        epsilon=eps,
        n_iter=n_iter,
    )
    return buffer.getvalue()


d1, d2 = st.columns(2)
d1.download_button(
    f"Download the half-steps P⁽⁰⁾ … P{T2} and the problem (.npz)",
    _npz,
    file_name=f"half_steps_eps{eps:g}_T{n_iter}.npz",
    mime="application/octet-stream",
    on_click="ignore",
)
d2.download_button(
    "Download the half-step player (.html)",
    lambda: pio.from_json(player_spec).to_html(include_plotlyjs=True),  # opens offline
    file_name=f"half_steps_eps{eps:g}_T{n_iter}.html",
    mime="text/html",
    on_click="ignore",
)
