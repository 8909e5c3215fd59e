"""Geometry: where a run's embeddings sit as it trains, and how runs compare on alignment
and uniformity."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import ui
from gca_viz import data, embed
from gca_viz.figures.geometry import (
    Trajectory,
    alignment_uniformity_plane,
    embedding_figure,
    projection_figure,
)
from gca_viz.runs import ACTIVE, RunInfo, RunStore
from views._run_link import missing_run_warning

NATIVE = "native"
NONE = 0  # "no comparison" in the compare selector (run ids start at 1)
UMAP_PARAMS = (("n_neighbors", 15), ("min_dist", 0.1), ("metric", "cosine"), ("seed", 0))
TSNE_PARAMS = (("perplexity", 30.0), ("seed", 0))
SLOW_PARAMS = {"umap": UMAP_PARAMS, "tsne": TSNE_PARAMS}

st.title("Geometry")
st.markdown(
    "A contrastive loss shapes where the normalised embeddings $\\hat z$ of the data sit on "
    "the unit sphere. It pulls the two views of each sample together (alignment) and spreads "
    "everything else apart (uniformity); a target prior decides which other samples also "
    "count as positives. Pick a run and move through its snapshots to watch classes form; "
    "the plane below compares runs on the two measures of Wang and Isola (2020)."
)
st.latex(
    r"\mathcal{L}_{\mathrm{align}} = \mathbb{E}\,\|\hat z' - \hat z''\|^2,\qquad"
    r"\mathcal{L}_{\mathrm{uniform}} = \log\,\mathbb{E}_{i \ne j}\,"
    r"e^{-2\|\hat z_i - \hat z_j\|^2}"
)


@st.cache_resource
def projection_jobs() -> embed.ProjectionJobs:
    """UMAP and t-SNE run here, one at a time, off the page's thread; results are cached."""
    return embed.ProjectionJobs()


@st.cache_data(show_spinner=False, max_entries=32)
def label_names(dataset: str, params_json: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class and domain names of a run's dataset (empty if it cannot be loaded any more)."""
    try:
        ds = data.load_dataset(dataset, **json.loads(params_json))
    except Exception:  # a moved or deleted user file: fall back to label numbers
        return (), ()
    return ds.class_names, ds.domain_names


def run_label(info: RunInfo) -> str:
    return f"#{info.id} {info.name}"


def keep_valid(key: str, options: list[Any], default: Any) -> None:
    """Reset a widget's state when its value is no longer an option."""
    if key in st.session_state and st.session_state[key] not in options:
        st.session_state[key] = default


def follow_latest(key: str, steps: list[int]) -> None:
    """Keep the step slider on the newest snapshot while a run adds snapshots, if the user
    was on the newest one; move it there if its step is gone."""
    marker = f"_{key}_newest"
    if key in st.session_state:
        value = st.session_state[key]
        if value not in steps or (value == st.session_state.get(marker) != steps[-1]):
            st.session_state[key] = steps[-1]
    st.session_state[marker] = steps[-1]


@dataclass(frozen=True)
class View:
    """The page's choices at its last full run (the view fragment reads only these)."""

    run_id: int
    compare_id: int
    method: str
    color_by: str
    auto: bool
    polling: bool


def labels_for(arrays: dict[str, np.ndarray], run: RunInfo, color_by: str) -> tuple[Any, Any, str]:
    """``(labels, names, legend title)`` for colouring one snapshot."""
    classes, domains = label_names(
        str(run.config.get("dataset")), json.dumps(run.config.get("dataset_params", {}))
    )
    if color_by == "domain" and "domain" in arrays:
        return arrays["domain"], domains or None, "domain"
    return arrays["y"], classes or None, "class"


def slow_projection(
    jobs: embed.ProjectionJobs, run: RunInfo, step: int, path: Path, z: np.ndarray, view: View
) -> np.ndarray | None:
    """The UMAP or t-SNE of a snapshot if computed; else offer to compute it (in the
    background) and report progress. Never waits."""
    params = SLOW_PARAMS[view.method]
    # The file's time is part of the key: a resumed run rewrites the snapshots it redoes.
    try:
        version = path.stat().st_mtime_ns
    except OSError:
        version = 0
    key = (run.id, step, view.method, params, version)
    title = embed.METHOD_TITLES[view.method]
    status = jobs.status(key)
    if status.state == "missing" and view.auto:
        jobs.submit(key, embed.project, z, view.method, **dict(params))
        if not view.polling:
            # The view polls only if a job was busy at the page's last full run: without
            # this rerun a job submitted here (a first view, a step moved) was never picked
            # up until some other widget reran the page.
            st.rerun()
        status = jobs.status(key)
    if status.state == "done":
        result: np.ndarray | None = jobs.result(key)
        return result
    if status.state == "error":
        st.error(f"{title} failed on this snapshot: {status.message}", icon=":material/error:")
        if st.button(f"Try {title} again", key=f"geo_retry_{run.id}_{step}"):
            jobs.submit(key, embed.project, z, view.method, **dict(params))
            st.rerun()
    elif status.state in ("pending", "running"):
        what = "queued" if status.state == "pending" else f"running for {status.seconds:.0f} s"
        first_time = (
            " The first UMAP on this machine compiles numba code (a minute or more, cached "
            "on disk afterwards); later ones take seconds."
            if view.method == "umap"
            else ""
        )
        st.info(
            f"{title} of {len(z)} points is {what} in the background; PCA is shown until it "
            f"is ready.{first_time}",
            icon=":material/hourglass_top:",
        )
    elif st.button(
        f"Compute {title} for this snapshot",
        key=f"geo_go_{run.id}_{step}",
        icon=":material/play_arrow:",
        help="Runs in the background; the page stays responsive.",
    ):
        jobs.submit(key, embed.project, z, view.method, **dict(params))
        st.rerun()  # the view then polls every second until the result is there
    return None


def draw_snapshot(store: RunStore, run: RunInfo, step: int, path: Path, view: View) -> None:
    """One run's embeddings at one snapshot, drawn as the chosen view."""
    arrays = store.load_snapshot(path)
    if arrays is None or "z" not in arrays or "y" not in arrays:
        st.warning(
            f"Run #{run.id}: the embedding snapshot at step {step} is missing or "
            f"unreadable ({path.name}). Pick another step.",
            icon=":material/warning:",
        )
        return
    z = np.asarray(arrays["z"], dtype=np.float64)
    labels, names, legend = labels_for(arrays, run, view.color_by)
    if view.color_by == "domain" and legend != "domain":
        st.caption("This run's data has no domains: coloured by class.")
    title = f"{run_label(run)}, step {step}"
    dims = z.shape[1]
    method = view.method if (view.method != NATIVE or dims in (2, 3)) else "pca"
    shape = {2: "the unit circle", 3: "the unit sphere"}.get(dims, "")
    if method == NATIVE:
        fig = embedding_figure(z, labels, names, legend_title=legend, title=title)
        st.plotly_chart(fig, key=f"geo_fig_{run.id}")
        st.caption(
            f"{len(z)} held-out samples embedded on {shape} (out_dim {dims}) at step "
            f"{step}, coloured by {legend}." + (" Drag to rotate." if dims == 3 else "")
        )
        return
    xy = None
    if method in SLOW_PARAMS:
        xy = slow_projection(projection_jobs(), run, step, path, z, view)
    shown = method if xy is not None else "pca"
    if xy is None:
        if dims < 2:
            st.info(f"Run #{run.id} has 1-D embeddings: nothing to project.")
            return
        xy = embed.pca(z, 2)
        ratio = embed.explained_variance_ratio(z, 2)
        axes = (f"PC1 ({ratio[0]:.0%} of the variance)", f"PC2 ({ratio[1]:.0%})")
    else:
        axes = (f"{embed.METHOD_TITLES[shown]} 1", f"{embed.METHOD_TITLES[shown]} 2")
    fig = projection_figure(
        xy,
        labels,
        names,
        legend_title=legend,
        axis_titles=axes,
        title=f"{title} · {embed.METHOD_TITLES[shown]}",
    )
    st.plotly_chart(fig, key=f"geo_fig_{run.id}")
    how = {
        "pca": "a linear projection (distances along the axes are faithful)",
        "umap": "UMAP (neighbourhoods are kept; distances between clusters are not)",
        "tsne": "t-SNE (neighbourhoods are kept; cluster sizes and gaps are not)",
    }[shown]
    st.caption(
        f"{len(z)} held-out samples, {dims}-D embeddings at step {step}, shown by {how}; "
        f"coloured by {legend}."
    )


EVAL_METRICS = ("alignment", "uniformity", "knn_acc", "probe_acc", "domain_acc")
EVAL_LABELS = {
    "alignment": "alignment",
    "uniformity": "uniformity",
    "knn_acc": "k-NN acc.",
    "probe_acc": "probe acc.",
    "domain_acc": "domain acc.",
}


def evaluation_at(store: RunStore, run_id: int, step: int) -> tuple[int | None, dict[str, float]]:
    """The run's last evaluation at or before ``step``: ``(its step, {metric: value})``."""
    series = store.metrics(run_id, list(EVAL_METRICS))
    steps = sorted({int(s) for arr in series.values() for s in arr[:, 0] if s <= step})
    if not steps:
        return None, {}
    at = steps[-1]
    return at, {
        n: float(arr[arr[:, 0] == at, 1][0]) for n, arr in series.items() if (arr[:, 0] == at).any()
    }


def evaluation_panel(store: RunStore, run: RunInfo, step: int) -> None:
    """Alignment, uniformity and accuracies of the run at the snapshot's time."""
    at, values = evaluation_at(store, run.id, step)
    if at is None:
        st.caption(
            f"Run #{run.id} was not evaluated by step {step} yet (every "
            f"{run.config.get('eval_every')} steps)."
        )
        return
    rows = "\n".join(f"| {EVAL_LABELS[n]} | {values[n]:.3f} |" for n in EVAL_METRICS if n in values)
    when = f"step {at}" + (" (last evaluation)" if at != step else "")
    st.markdown(f"| run #{run.id} | {when} |\n|:--|--:|\n{rows}")
    st.caption(
        "Alignment: mean squared distance between the two views of a sample (0 to 4, "
        "lower is closer). Uniformity: how evenly the points cover the sphere (lower is "
        "more uniform). Accuracies: k-NN and a linear probe on held-out data."
    )


def snapshot_view(store: RunStore, view: View) -> None:
    """The step slider and the embeddings (of two runs side by side when comparing)."""
    jobs = projection_jobs()
    if view.polling and not jobs.busy():
        st.rerun()  # the projection finished: redraw the page and stop polling
    try:
        run = store.get(view.run_id)
    except ValueError:
        st.rerun()
    snaps = store.snapshots(run.id, "embeddings")
    if not snaps:
        every = int(run.config.get("snapshot_every", 0))
        if not every:
            why = "it saves none (snapshot_every is 0)"
        elif run.status in ACTIVE:
            why = f"the first arrives at step {every}"
        else:
            why = f"it stopped before step {every}"
        st.info(f"Run #{run.id} has no embedding snapshot: {why}.", icon=":material/info:")
        return
    steps = [s for s, _ in snaps]
    if len(steps) > 1:
        follow_latest("geo_step", steps)
        step = ui.select_slider("Training step (embedding snapshot)", "geo_step", steps, steps[-1])
    else:
        step = steps[0]
        st.caption(f"One snapshot so far, at step {step}.")
    paths = dict(snaps)
    if view.compare_id == NONE:
        left, right = st.columns([3, 1])
        with left:
            draw_snapshot(store, run, step, paths[step], view)
        with right:
            evaluation_panel(store, run, step)
        return
    try:
        other = store.get(view.compare_id)
    except ValueError:
        st.rerun()
    other_snaps = store.snapshots(other.id, "embeddings")
    left, right = st.columns(2)
    with left:
        draw_snapshot(store, run, step, paths[step], view)
        evaluation_panel(store, run, step)
    with right:
        if not other_snaps:
            st.info(f"Run #{other.id} has no embedding snapshot yet.", icon=":material/info:")
            return
        earlier = [s for s, _ in other_snaps if s <= step]
        other_step = earlier[-1] if earlier else other_snaps[0][0]
        draw_snapshot(store, other, other_step, dict(other_snaps)[other_step], view)
        evaluation_panel(store, other, other_step)


# ------------------------------------------------------------------------------- page

store = ui.run_store()
if isinstance(store, ui.UnavailableStore):  # its error is already on the page
    st.stop()
runs = store.list_runs()
if not runs:
    st.info(
        "No runs yet. Launch one on the **Train** page (an output dimension of 3 puts the "
        "embeddings on a sphere you can rotate here); its snapshots appear here as it trains.",
        icon=":material/info:",
    )
    st.stop()

by_id = {r.id: r for r in runs}
ids = [r.id for r in runs]
with_snaps = [i for i in ids if store.snapshots(i, "embeddings")]
default_run = with_snaps[0] if with_snaps else ids[0]
keep_valid("geo_run", ids, default_run)
missing_run_warning("geo_run", ids, default_run, lambda i: run_label(by_id[i]))
c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
with c1:
    run_id = ui.select(
        "Run",
        "geo_run",
        ids,
        default_run,
        format_func=lambda i: f"{run_label(by_id[i])} ({by_id[i].status})",
    )
run = by_id[run_id]
with c2:
    others = [NONE, *[i for i in ids if i != run_id]]
    keep_valid("geo_compare", others, NONE)
    compare_id = ui.select(
        "Compare side by side with",
        "geo_compare",
        others,
        NONE,
        format_func=lambda i: "nothing" if i == NONE else run_label(by_id[i]),
    )
out_dim = int(run.config.get("out_dim", 0))
methods = ([NATIVE] if out_dim in (2, 3) else []) + list(embed.METHODS)
native_name = {2: "Circle", 3: "Sphere"}  # the embeddings themselves, unprojected
with c3:
    keep_valid("geo_method", methods, methods[0])
    if st.session_state.get("_geo_view_run", run_id) != run_id and NATIVE in methods:
        st.session_state["geo_method"] = NATIVE  # another run: start from its own geometry
    st.session_state["_geo_view_run"] = run_id
    method = ui.select(
        "View",
        "geo_method",
        methods,
        methods[0],
        format_func=lambda m: (
            native_name.get(out_dim, m) if m == NATIVE else embed.METHOD_TITLES[m]
        ),
    )
with c4:
    color_by = ui.select("Colour by", "geo_color", ["class", "domain"], "class")
auto = False
if method in SLOW_PARAMS:
    auto = ui.toggle(
        f"Compute {embed.METHOD_TITLES[method]} automatically for every snapshot I view",
        "geo_auto",
        False,
    )

jobs = projection_jobs()
polling = jobs.busy()
live = run.status in ACTIVE or (compare_id != NONE and by_id[compare_id].status in ACTIVE)
view = View(run_id, compare_id, method, color_by, auto, polling)
st.fragment(run_every=1.0 if polling else 2.0 if live else None)(snapshot_view)(store, view)
if live:
    st.caption(
        "A run is training: new snapshots appear by themselves, and the slider follows "
        "the newest one while it is at the end."
    )

# ---------------------------------------------------------- alignment-uniformity plane

st.subheader("Alignment and uniformity across runs")
trajectories = {
    r.id: Trajectory.from_metrics(run_label(r), store.metrics(r.id, ["alignment", "uniformity"]))
    for r in runs
}
measured = [i for i in ids if len(trajectories[i])]
if not measured:
    st.info(
        "No run has been evaluated yet: runs record alignment and uniformity every "
        "`eval_every` steps.",
        icon=":material/hourglass_empty:",
    )
else:
    default_plane = ([run_id] if run_id in measured else []) + [i for i in measured if i != run_id][
        :7
    ]
    keep = st.session_state.get("geo_plane")
    if keep is not None:
        st.session_state["geo_plane"] = [i for i in keep if i in measured]
    chosen = st.multiselect(
        "Runs on the plane",
        measured,
        default=None if keep is not None else default_plane,
        key="geo_plane",
        format_func=lambda i: run_label(by_id[i]),
        select_all=False,  # typing a run's name and Enter adds that run, not every match
    )
    if chosen:
        fig = alignment_uniformity_plane(
            [trajectories[i] for i in chosen],
            highlight=run_label(run) if run_id in chosen else None,
        )
        st.plotly_chart(fig, key="geo_plane_fig")
        st.caption(
            "Each line is a run's path through its evaluations; the big dot is its "
            "latest. Left means more uniform (the embeddings spread over the sphere), "
            "down means better aligned (the two views of a sample closer). A collapsed "
            "encoder sits at the bottom right: perfectly aligned, not uniform at all."
        )
    else:
        st.caption("Pick runs to place on the plane.")
