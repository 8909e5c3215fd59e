"""Loss composer: combine any cost, target plan, projection and divergence into a loss, see
its formula, its value and its plan on a batch, and train an encoder with it."""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
import streamlit as st

import ui
from gca_viz import lab, losses, story
from gca_viz.figures import plans as plan_figs
from gca_viz.registry import Param
from gca_viz.targets import TARGETS, partner
from views._run_link import launch_status

SOURCES = {  # (story.DOMAIN_DATASET, "multidomain_digits", is the one with domain labels)
    "demo": f"Digits through a trained encoder ({story.STORY_RUN})",
    "digits": "Digits through a random encoder",
    "multidomain_digits": "Multi-domain digits through a random encoder",
    "synthetic": "Synthetic pairs on the sphere",
}
REGISTRIES: dict[str, Any] = {
    "cost": losses.COSTS,
    "target": TARGETS,
    "projection": losses.PROJECTIONS,
    "divergence": losses.DIVERGENCES,
}
DEFAULTS = {"cost": "cosine", "target": "pairs", "projection": "sinkhorn", "divergence": "kl"}
TITLES = {
    "cost": "Cost C",
    "target": "Target P_tgt",
    "projection": "Projection",
    "divergence": "Divergence d_M",
}
SIZES = (8, 16, 32, 64, 128, 256)


@st.cache_data(max_entries=8, show_spinner="Embedding the batch...")
def load_batch(source: str, n: int, seed: int, _store: Any) -> lab.Batch:
    """The batch of a source (cached: the data and the encoders are deterministic)."""
    return story.story_batch(source, n, seed, _store)


def param_widget(p: Param) -> Any:
    """A widget generated from one parameter's schema, labelled by its symbol (the library
    validates the value): ε and the marginal weights get the shared controls."""
    key = f"cmp_{p.name}"
    if p.kind == "choice":
        return ui.select(ui.param_label(p), key, list(p.choices), p.default, help=ui.param_help(p))
    low, high = p.ui or (p.low, p.high)
    if p.kind == "int":
        if low is None or high is None:
            return ui.number(ui.param_label(p), key, cast(int, p.default), help=ui.param_help(p))
        default = int(p.default if p.default is not None else low)
        return ui.slider(
            ui.param_label(p), key, int(low), int(high), default, step=1, help=ui.param_help(p)
        )
    step = 10.0 ** math.floor(math.log10((float(high or 1.0) - float(low or 0.0)) / 100))
    return ui.param_slider(p, key, step=step)


# ---------------------------------------------------------------------------- header

ui.title("Loss composer")
ui.intro(
    "Every loss of the GCA family is four stages: a **cost** between the two views, a "
    "**target plan** saying what should match what, a **projection** that turns the kernel "
    "$e^{-C/\\varepsilon}$ into a plan, and a **divergence** that compares the plan with the "
    "target. The named methods are presets; here you choose each stage yourself, see the "
    "formula and the value on a batch, and train an encoder with the result."
)
st.latex(story.COMPOSED_LATEX)

store = ui.run_store()
with ui.controls("Batch", folded=True):  # (secondary in a lecture: the plots come up)
    source = ui.select("Source", "cmp_source", list(SOURCES), "demo", format_func=SOURCES.get)
    n = ui.select_slider("Pairs N", "cmp_n", SIZES, 64)
    seed = int(ui.number("Seed", "cmp_seed", 0, min_value=0, step=1))
    layout = ui.select(
        "Layout",
        "cmp_layout",
        ["cross", "joint"],
        "cross",
        help="cross: N x N, view 1 against view 2; joint: 2N x 2N, all views against all, "
        "self-pairs excluded (SimCLR's layout).",
    )

# ----------------------------------------------------------------------------- stages

stages: dict[str, str] = {}
for column, kind in zip(st.columns(4, gap="medium"), REGISTRIES, strict=True):
    with column:
        stages[kind] = ui.select(
            TITLES[kind], f"cmp_{kind}", list(REGISTRIES[kind]), DEFAULTS[kind]
        )
        st.caption(REGISTRIES[kind][stages[kind]].description)
# A domain prior needs domain labels: shown on the multi-domain digits whatever the source
# (with the default source its only sign was an error two screens down, and no plan)
needs_domains = stages["target"] == "domain" and source != story.DOMAIN_DATASET
if needs_domains:
    st.info(
        f"A domain prior needs domain labels, which {SOURCES[source].lower()} lack: the "
        f"batch below is the {SOURCES[story.DOMAIN_DATASET].lower()} (as training with it uses)."
    )
# The chosen stages' parameters side by side, four to a row (under their stages' columns
# they stacked in one: in a lecture ε, T and "stop after" filled a screen beside three
# empty columns, and the value on a batch came on the third screen).
params: dict[str, Any] = {}
owned = story.stage_params(stages)
for start in range(0, len(owned), 4):
    row = owned[start : start + 4]
    columns = ui.wrapping(f"cmp_wrap_params_{start}", 180).columns(4, gap="medium")
    for column, (_, p) in zip(columns, row, strict=False):
        with column:
            params[p.name] = param_widget(p)
matrix = None
if stages["target"] == "custom":
    upload = st.file_uploader(
        "Custom target matrix: a non-negative n x n array (.npy or comma-separated .csv); "
        "n = N in the cross layout, 2N in the joint one",
        type=["npy", "csv"],
        key="cmp_upload",
    )
    if upload is not None:
        with ui.guard("Custom target"):
            matrix = story.read_matrix(upload.getvalue(), upload.name)

st.subheader("The formula")
st.latex(story.composed_latex(stages))
# Each stage's formula, two to a row (one to a row they took a projector's screen)
kinds = list(REGISTRIES)
for pair in (kinds[:2], kinds[2:]):
    for column, kind in zip(ui.wrapping(f"cmp_wrap_{pair[0]}", 360).columns(2), pair, strict=True):
        entry = REGISTRIES[kind][stages[kind]]
        with column:
            st.markdown(f"**{TITLES[kind]}** `{entry.name}`")
            st.latex(entry.latex)
st.caption(story.describe_composition(stages, params))

# ---------------------------------------------------------------------------- results

st.subheader("On a batch")
with ui.guard("Batch"):
    batch = load_batch(
        story.DOMAIN_DATASET if needs_domains else source, int(n), seed, _store=store
    )
# the parameters the numbers below are computed at (Story's GCA-INCE on the same demo batch
# is at its own ε, 0.2: a student compared 2.57 there with 3.03 here)
# (a symbol Unicode cannot write, λ_R, as LaTeX: it read "lam = 0.01")
symbols = {p.name: ui.plain_symbol(p.symbol) or f"${p.symbol}$" for _, p in owned if p.symbol}
at = ", ".join(
    f"{symbols.get(k, k)} = {v:g}"
    for k, v in params.items()
    if isinstance(v, int | float) and not isinstance(v, bool)
)
st.caption(f"Batch: {batch.source}." + (f" Computed at {at}." if at else ""))
if stages["target"] == "custom" and matrix is None:
    st.info("Upload a target matrix to evaluate the loss with a custom target.")
    st.stop()
with ui.guard("This combination"):
    out = story.compose_on_batch(batch, stages, params, layout=layout, matrix=matrix)
diag = out.diagnostics
m1, m2, m3, m4, m5 = ui.wrapping("cmp_wrap_metrics", 150).columns(5)
m1.metric("Loss", f"{float(out.loss):.6f}")
m2.metric(
    "Abs. marginal error",  # (Plan lab's is relative: one name read as two values)
    f"{diag['marginal_error']:.2e}",
    help="‖P1 − μ‖₁ + ‖Pᵀ1 − ν‖₁, not divided by the mass (Plan lab's relative one is)",
)
m3.metric("Plan entropy", f"{diag['entropy']:.3f}")
m4.metric("Mass on positives", f"{diag['positive_mass']:.1%}")
m5.metric("Total mass", f"{diag['mass']:.2f}")
mu = out.target.sum(1).numpy()
nu = out.target.sum(0).numpy()
left, right = ui.wrapping("cmp_wrap_maps", 300).columns([3, 2], gap="large")
with left:
    ui.chart(
        plan_figs.matrix_heatmap(
            out.plan.numpy(),
            title="The plan proj_B(K)<br><sup>"
            f"{plan_figs.positive_marks_words(len(out.plan), 560)}: the positive pairs</sup>",
            value_label="Pᵢⱼ",
            row_ref=mu,
            col_ref=nu,
            positives=partner(batch.n, layout).numpy(),  # as Story and Plan lab mark them
        ),
        key="cmp_chart_plan",
    )
with right:
    ui.chart(
        plan_figs.matrix_heatmap(
            out.target.numpy(),
            # log colours, as on the Domains page: a class prior's γ/n sits ~100x below the
            # positive's share and drew like the zeros on a linear scale
            title="The target plan P_tgt<br><sup>log colour scale; zeros blank</sup>",
            value_label="P_tgt",
            marginals=False,
            log=True,
            height=440,
        ),
        key="cmp_chart_target",
    )
    per_row = out.per_row.numpy()
    st.caption(
        f"Per-row loss: mean {per_row.mean():.4f}, from {per_row.min():.4f} to "
        f"{per_row.max():.4f} over {per_row.size} rows ({np.argmax(per_row)} is the worst)."
    )

# ------------------------------------------------------------------------------ train

st.subheader("Train with it")
st.markdown(
    "Launch a background run that trains a small encoder with this loss on the digits "
    "(the multi-domain digits for a domain prior), with 3-D embeddings so the Geometry page "
    "can draw them on the sphere."
)
c_steps, c_button = st.columns([1, 3], vertical_alignment="bottom")
with c_steps:
    steps = int(ui.number("Training steps", "cmp_steps", 300, min_value=1, step=50))
with c_button:
    clicked = st.button("Train with it", key="cmp_train", type="primary")
if clicked:
    try:
        cfg = story.composed_run_config(stages, params, layout=layout, steps=steps)
        name = "composed: " + "/".join(stages[k] for k in REGISTRIES)
        run_id = store.launch(cfg, name=name)
    except ValueError as exc:
        st.error(f"Cannot launch this run: {exc}")
    else:
        st.session_state["tr_select_next"] = run_id  # the Train page opens on this run
        st.session_state["cmp_launched"] = run_id
if "cmp_launched" in st.session_state:
    launched = int(st.session_state["cmp_launched"])
    st.success(f"Run #{launched} {launch_status(store, launched)}")
    ui.page_link(
        "views/train.py",
        label=f"Watch run #{launched} on the Train page",
        icon=":material/model_training:",
        query_params={"tr_run": str(launched)},
    )
ui.show_code(story.compose_on_batch, story.composed_run_config, losses.compose)
