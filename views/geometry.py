"""Geometry: where a run's embeddings sit as it trains, and how runs compare on alignment
and uniformity."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import ui
from gca_viz import demo, embed, metrics
from gca_viz.figures.alignment import Trajectory, alignment_uniformity_plane
from gca_viz.figures.geometry import Panel, explorer_figure, filtered_out
from gca_viz.runs import ACTIVE, RunInfo, RunStore
from views._geometry_pin import BRIDGE, on_click, pin_chooser, pin_details, pinned_sample, same_data
from views._geometry_snapshots import (
    Loaded,
    View,
    embedding_dim,
    labels_for,
    load,
    plane_defaults,
    run_label_names,
    samples_text,
)
from views._plotly_bridge import plotly_bridge
from views._projections import projection_jobs, warming
from views._run_link import missing_run_warning, recover_run, run_colors
from views._train_runs import unlike_note

NATIVE = "native"
NONE = 0  # "no comparison" in the compare selector (run ids start at 1)
UMAP_PARAMS = (("n_neighbors", 15), ("min_dist", 0.1), ("metric", "cosine"), ("seed", 0))
TSNE_PARAMS = (("perplexity", 30.0), ("seed", 0))
SLOW_PARAMS = {"umap": UMAP_PARAMS, "tsne": TSNE_PARAMS}

ui.title("Geometry")
ui.intro(
    "A contrastive loss shapes where the normalised embeddings $\\hat z$ sit on the unit "
    "sphere: it pulls the two views of each sample together (alignment) and spreads everything "
    "else apart (uniformity); a target prior decides which other samples also count as "
    "positives. Pick a run and press ▶ to watch classes form; hover a point to see its input, "
    "click it to pin it with its nearest neighbours."
)
ALIGN_UNIFORM_LATEX = (
    r"\mathcal{L}_{\mathrm{align}} = \mathbb{E}\,\|\hat z' - \hat z''\|^2,\qquad"
    r"\mathcal{L}_{\mathrm{uniform}} = \log\,\mathbb{E}_{i \ne j}\,"
    r"e^{-2\|\hat z_i - \hat z_j\|^2}"
)


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
        held = st.session_state.get(f"_{key}_held") == value  # (stay_on_step)
        if value not in steps or (not held and value == st.session_state.get(marker) != steps[-1]):
            st.session_state[key] = steps[-1]
    st.session_state[marker] = steps[-1]


def stay_on_step(key: str, step: int) -> None:
    """Keep the step slider ``key`` on ``step`` when new snapshots arrive (until the user
    moves it): a t-SNE or UMAP of that step was asked for. On a training run the slider moved
    on to each new snapshot, the job's picture was never shown and the button came back for
    the new step."""
    st.session_state[f"_{key}_held"] = step


def waiting(jobs: embed.ProjectionJobs, method: str) -> bool:
    """Whether the view polls: a projection job is queued or running, or (on a UMAP or t-SNE
    view) the projection engines' warm-up is, which the view reports as it goes."""
    return jobs.busy(include_warm_up=False) or (method in SLOW_PARAMS and warming(jobs) is not None)


def first_umap_note(key: tuple[Any, ...]) -> str:
    """What the first UMAP of this server process costs (nothing more once one ran), decided
    once per job ``key``: the compile writes the disk cache as it goes, and the note read
    "compiles (a minute or more)", then "loads from the cache (a few seconds)" while the
    same job ran on."""
    notes = st.session_state.setdefault("_geo_umap_notes", {})
    if key not in notes:
        if embed.umap_ready():
            notes[key] = ""
        elif embed.umap_kernels_cached():
            notes[key] = (
                " The first UMAP in this server process loads numba's compiled kernels from "
                "the disk cache (seconds, up to half a minute on a busy machine); later ones "
                "take about a second."
            )
        else:
            notes[key] = (
                " The first UMAP on this machine compiles numba code (a minute or more, "
                "cached on disk afterwards); later ones take seconds."
            )
    return str(notes[key])


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
        st.error(
            f"{title} failed on run #{run.id}'s snapshot: {status.message}",
            icon=":material/error:",
        )
        if st.button(f"Try {title} again", key=f"geo_retry_{run.id}_{step}"):
            jobs.submit(key, embed.project, z, view.method, **dict(params))
            if run.id == view.run_id:
                stay_on_step("geo_step", step)
            st.rerun()
    elif status.state == "pending" and (warm := warming(jobs)) is not None:
        st.info(
            f"{title} of run #{run.id} ({len(z)} points) waits for the warm-up of the "
            f"projection engines, which the app runs once when it starts: {warm}. It starts "
            "as soon as that ends; PCA is shown until it is ready.",
            icon=":material/hourglass_top:",
        )
    elif status.state in ("pending", "running"):
        what = "queued" if status.state == "pending" else f"running for {status.seconds:.0f} s"
        st.info(
            f"{title} of run #{run.id} ({len(z)} points) is {what} in the background; PCA "
            f"is shown until it is ready.{first_umap_note(key) if view.method == 'umap' else ''}",
            icon=":material/hourglass_top:",
        )
    elif st.button(
        f"Compute {title} of run #{run.id} at step {step}",  # (two runs: two buttons)
        key=f"geo_go_{run.id}_{step}",
        icon=":material/play_arrow:",
        help="Runs in the background; the page stays responsive."
        + (" The step slider stays at this step." if run.live else ""),
    ):
        jobs.submit(key, embed.project, z, view.method, **dict(params))
        if run.id == view.run_id:  # (not the compared run's step)
            stay_on_step("geo_step", step)
        st.rerun()  # the view then polls every second until the result is there
    elif (warm := warming(jobs)) is not None:
        st.caption(
            f"The projection engines are warming up in the background ({warm}): a {title} "
            "asked for now starts when that ends."
        )
    return None


# ------------------------------------------------------------------------- the figure


@dataclass(frozen=True)
class Picture:
    """How one run is drawn: the view, each frame's coordinates and the axis titles, and
    where each frame's positive partners go (empty where the view cannot place them)."""

    view: str  # "sphere", "circle" or "plane"
    frames: list[np.ndarray]
    steps: list[int]
    axes: tuple[str, str]
    how: str  # what the caption says about the projection
    partners: list[np.ndarray | None]  # (n, 2 or 3) per frame, None: that snapshot has none


def picture(shown: Loaded, view: View) -> Picture | None:
    """The native circle or sphere, a PCA (one basis, the slider's snapshot's, for every
    frame: the ▶ shows real motion), or a computed t-SNE or UMAP of the slider's snapshot
    alone (its PCA stands in, one frame, until it is computed). ``None`` for 1-D
    embeddings. The positive partners are drawn where a view places any point: natively,
    or by the same linear PCA map; a t-SNE or UMAP is fitted on the snapshot's points and
    has no place for others, so it draws none."""
    z, dims = shown.z, shown.z.shape[1]
    method = view.method if (view.method != NATIVE or dims in (2, 3)) else "pca"
    if method == NATIVE:
        kind = "sphere" if dims == 3 else "circle"
        return Picture(kind, shown.zs, shown.steps, ("z₁", "z₂"), "", shown.partners)
    if method in SLOW_PARAMS:
        xy = slow_projection(projection_jobs(), shown.run, shown.step, shown.path, z, view)
        if xy is not None:
            t = embed.METHOD_TITLES[method]
            how = {
                "umap": "UMAP (neighbourhoods are kept; distances between clusters are not)",
                "tsne": "t-SNE (neighbourhoods are kept; cluster sizes and gaps are not)",
            }[method]
            return Picture("plane", [xy], [shown.step], (f"{t} 1", f"{t} 2"), how, [])
    if dims < 2:
        st.info(f"Run #{shown.run.id} has 1-D embeddings: nothing to project.")
        return None
    mean, axes = embed.pca_basis(z, 2)
    ratio = embed.explained_variance_ratio(z, 2)
    chosen = method == "pca"  # not the stand-in for a t-SNE or UMAP (one frame is enough)
    partners = shown.partners if chosen else [shown.partner]
    return Picture(
        "plane",
        [(zt - mean) @ axes.T for zt in (shown.zs if chosen else [z])],  # (n, 2) each
        shown.steps if chosen else [shown.step],
        (f"PC1 ({ratio[0]:.0%} of the variance)", f"PC2 ({ratio[1]:.0%})"),
        f"a linear projection on the principal axes of step {shown.step} (distances "
        "along the axes are faithful)",
        [None if p is None else (p - mean) @ axes.T for p in partners],  # the same map
    )


def panel(
    shown: Loaded, pic: Picture, steps: list[int], view: View, tag: int, pin: int | None
) -> Panel:
    """The :class:`Panel` of one run at the frames ``steps`` (its latest snapshot at or
    before each), coloured, filtered and with the pinned sample's neighbours."""
    labels, names, _ = labels_for(shown.arrays, shown.run, view.color_by)
    own = pic.steps
    picks = [max([i for i, s in enumerate(own) if s <= step] or [0]) for step in steps]
    dimmed = filtered_out(
        shown.arrays["y"],
        shown.arrays.get("domain"),
        classes=view.classes,
        keep_domains=view.domains,
    )
    row = shown.row_of(pin)
    k = min(view.k, len(shown.z) - 1)
    near, partner = [], []
    if row is not None and k >= 1:
        zs = [shown.zs[shown.steps.index(own[i])] for i in picks]
        near = [embed.cosine_neighbours(z, row, k)[0] for z in zs]
    if row is not None and any(p is not None for p in pic.partners):
        gap = np.full(pic.frames[0].shape[1], np.nan)  # a frame without partners draws none
        partner = [gap if (p := pic.partners[i]) is None else p[row] for i in picks]
    return Panel(
        shown.run.label(),
        [pic.frames[i] for i in picks],
        labels,
        names,
        hover=shown.hover,
        dimmed=dimmed,
        pinned=row,
        neighbours=near,
        partner=partner,
        tag=tag,
    )


def frame_numbers(shown: Loaded, step: int) -> str:
    """``"<br>sample to a view 0.100 (≈ ½ alignment) · uniformity -2.00"`` of the snapshot
    at ``step`` (the distance only where it stores its samples' partners), ``""`` if there
    is no such snapshot. The distance is each sample's to one augmented view of it (the snapshot's
    ``z_partner``), not the evaluation's alignment, which compares two augmented views (about
    twice it): named "alignment", 0.100 beside the table's 0.205 read as a contradiction."""
    if step not in shown.steps:
        return ""
    at = shown.steps.index(step)
    z, partner = shown.zs[at], shown.partners[at]
    close = None if partner is None else metrics.alignment(z, partner)
    words = [] if close is None else [f"sample to a view {close:.3f} (≈ ½ alignment)"]
    words.append(f"uniformity {metrics.uniformity(z):.2f}")
    return f"<br><sub>{' · '.join(words)} (this frame)</sub>"


def draw(
    shown: list[Loaded], pics: list[Picture], view: View, pin: int | None, tags: list[int]
) -> str:
    """One figure of the runs in ``shown`` (two spheres share a figure, hence a camera), each
    with the tag a click on it reports (its place in the view); returns the chart's key."""
    main, pic = shown[0], pics[0]
    steps = pic.steps
    panels = [panel(s, p, steps, view, t, pin) for s, p, t in zip(shown, pics, tags, strict=True)]
    _, _, legend = labels_for(main.arrays, main.run, view.color_by)
    if len(shown) == 1:
        # each frame's own alignment and uniformity, in its title as ▶ plays: the table
        # beside the chart keeps the slider's step (a student read "step 200" beside step 60)
        titles = [f"{main.run.label()}, step {s}{frame_numbers(main, s)}" for s in steps]
        key = f"geo_fig_{main.run.id}"
    else:
        titles = [f"step {s} (each run's latest snapshot at or before it)" for s in steps]
        key = f"geo_fig_{main.run.id}_with_{shown[1].run.id}"
    if pic.view == "plane" and len(steps) == 1 and pic.axes[0].startswith(("t-SNE", "UMAP")):
        titles = [f"{titles[0]} · {pic.axes[0][:-2]}"]
    elif pic.view == "plane":
        titles = [f"{t} · PCA" for t in titles]
    fig = explorer_figure(
        panels,
        view=pic.view,  # type: ignore[arg-type]
        frame_names=[str(s) for s in steps],
        frame_prefix="step ",
        frame_titles=titles,
        start=steps.index(main.step) if main.step in steps else len(steps) - 1,
        legend_title=legend,
        axis_titles=pic.axes,
    )
    ui.chart(fig, key=key)
    return key


def caption(shown: Loaded, pic: Picture, view: View, pin: int | None = None) -> None:
    _, _, legend = labels_for(shown.arrays, shown.run, view.color_by)
    if view.color_by == "domain" and legend != "domain":
        st.caption("This run's data has no domains: coloured by class.")
    n, dims = shown.z.shape
    batch = shown.from_batch
    if pic.view == "plane":
        where = f"with {dims}-D embeddings at step {shown.step}, shown by {pic.how}"
    else:
        shape = {2: "the unit circle", 3: "the unit sphere"}[dims]
        where = f"embedded on {shape} (out_dim {dims}) at step {shown.step}"
    play = (
        f" ▶ plays its {len(pic.steps)} snapshots in your browser with the axes and the "
        "camera held still; the step slider above picks the snapshot that the neighbour and "
        "evaluation tables describe."
        if len(pic.steps) > 1
        else ""
    )
    hover = (
        " Hover a point for its sample number and input; click it to pin it."
        if shown.samples is not None
        else " Hover a point for its class; click it to pin it ("
        + (
            "an external run stores no inputs"
            if shown.run.external
            else "the run's data cannot be loaded any more"
        )
        + ", so inputs are not shown)."
    )
    rotate = " Drag to rotate." if pic.view == "sphere" else ""
    what = samples_text(n, batch)
    st.caption(f"{what[0].upper()}{what[1:]} {where}, coloured by {legend}.{rotate}{play}{hover}")
    if shown.row_of(pin) is not None and shown.partner is not None:
        st.caption(partner_note(pic))  # (a run without partners says so beside the chart)


def partner_note(pic: Picture) -> str:
    """What the pinned sample's partner mark is, or why this view leaves it out."""
    if pic.partners:
        return (
            "The hollow diamond on a dashed line is the pinned sample's positive partner: "
            "another view of the same input, embedded by the same encoder (the pinned "
            "sample's details give its distance)."
        )
    return (
        f"The pinned sample's partner is not drawn: {pic.axes[0][:-2]} is fitted on the "
        "snapshot's points alone and has no faithful place for another point (fitting it "
        "on the partners too would change the picture). The circle or sphere and PCA draw "
        "it; the pinned sample's details give its distance."
    )


# ------------------------------------------------------------------------- evaluations

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


def evaluation_panel(store: RunStore, run: RunInfo, step: int, explain: bool = True) -> None:
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
    if explain:
        st.caption(
            "Alignment: mean squared distance between the two augmented views of a sample (0 "
            'to 4, lower is closer); the chart\'s "sample to a view" measures a sample to '
            "one augmented view of it, one augmentation instead of two: about half. "
            "Uniformity: how evenly the points cover the sphere (lower is "
            "more uniform). Accuracies: k-NN and a linear probe on held-out data."
        )


# ---------------------------------------------------------------------------- the view


def no_snapshot(run: RunInfo) -> str:
    every = int(run.config.get("snapshot_every", 0))
    if not every:
        return "it saves none (snapshot_every is 0)"
    if run.status in ACTIVE:
        return f"the first arrives at step {every}"
    if run.step >= every:  # (an imported run whose folder held no snapshots/)
        return "none were kept with it (an imported run may come without its snapshots)"
    return f"it stopped before step {every}"


def side_panel(store: RunStore, shown: list[Loaded], view: View, pin: int | None) -> None:
    """The pinned-sample box and details, then each run's evaluation."""
    pin = pin_chooser(shown[0])
    if pin is not None:
        pin_details(shown, view, pin)
    evaluations(store, shown)


def panel_below(store: RunStore, shown: list[Loaded], view: View) -> None:
    """The side panel under a comparison: the pinned sample left, evaluations right."""
    left, right = ui.wrapping("geo_below", 180).columns([2, 1])
    with left:
        pin = pin_chooser(shown[0])
        if pin is not None:
            pin_details(shown, view, pin)
    with right:
        evaluations(store, shown)


def evaluations(store: RunStore, shown: list[Loaded]) -> None:
    for i, s in enumerate(shown):
        evaluation_panel(store, s.run, s.step, explain=i == len(shown) - 1)


def shown_statuses(run: RunInfo, compared: RunInfo | None) -> tuple[str, ...]:
    """The statuses of the run shown and of the one compared with it, if any (the page's
    run list labels them: :attr:`View.statuses`)."""
    return (run.status,) + (() if compared is None else (compared.status,))


def snapshot_view(store: RunStore, view: View) -> None:
    """The step slider and the embeddings (of two runs side by side when comparing)."""
    jobs = projection_jobs()
    if view.polling and not waiting(jobs, view.method):
        st.rerun()  # the projection (or the warm-up) finished: redraw the page, stop polling
    try:
        run = store.get(view.run_id)
        now = shown_statuses(run, None if view.compare_id == NONE else store.get(view.compare_id))
    except ValueError:
        st.rerun()
    if view.statuses and now != view.statuses:
        st.rerun()  # a run ended or started: the run list's labels and the captions follow
    snaps = store.snapshots(run.id, "embeddings")
    if not snaps:
        st.info(
            f"Run #{run.id} has no embedding snapshot: {no_snapshot(run)}.", icon=":material/info:"
        )
        return
    steps = [s for s, _ in snaps]
    if len(steps) > 1:
        follow_latest("geo_step", steps)
        step = ui.select_slider(  # (remembered per run: another run opens at its newest)
            "Training step (embedding snapshot)", "geo_step", steps, steps[-1], f"geo_step@{run.id}"
        )
    else:
        step = steps[0]
        st.caption(f"One snapshot so far, at step {step}.")
    main = load(store, run, step, snaps)
    if main is None:
        return
    shown = [main]
    if view.compare_id != NONE:
        try:
            other = store.get(view.compare_id)
        except ValueError:
            st.rerun()
        other_snaps = store.snapshots(other.id, "embeddings")
        if not other_snaps:
            st.info(f"Run #{other.id} has no embedding snapshot yet.", icon=":material/info:")
        else:
            earlier = [s for s, _ in other_snaps if s <= step]
            second = load(store, other, earlier[-1] if earlier else other_snaps[0][0], other_snaps)
            if second is not None:
                shown.append(second)
    pics = [picture(s, view) for s in shown]
    if pics[0] is None:
        return
    pin = pinned_sample(shown)
    if len(shown) == 1:
        # (at 800 px the panel beside the sphere was 121 px: "click a poi", its table cut)
        left, right = ui.wrapping("geo_side", 150).columns([3, 1])
        with left:
            key = draw(shown, [pics[0]], view, pin, [0])
            plotly_bridge([key], BRIDGE, on_click)
            caption(main, pics[0], view, pin)
        with right:
            side_panel(store, shown, view, pin)
        return
    if pics[1] is not None and pics[0].view == pics[1].view == "sphere":
        # One figure, two scenes: the bridge gives them one camera.
        key = draw(shown, [pics[0], pics[1]], view, pin, [0, 1])
        plotly_bridge([key], BRIDGE, on_click)
        caption(main, pics[0], view, pin)
        st.caption("The two spheres share one camera: rotate either, both turn.")
        panel_below(store, shown, view)
        return
    drawn = []
    for i, (s, pic, col) in enumerate(zip(shown, pics, st.columns(len(shown)), strict=True)):
        with col:
            if pic is not None:
                mine = pin if i == 0 or same_data(main, s) else None
                drawn.append(draw([s], [pic], view, mine, [i]))
                caption(s, pic, view, mine)
    plotly_bridge(drawn, BRIDGE, on_click)
    panel_below(store, shown, view)


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
# The newest run that has snapshots or is training (a run just launched from the Train
# page: its first snapshot shows here as soon as it arrives); while the store holds only the
# demo runs, the lecture's GCA-INCE run, as on Train (the newest demo run is a noisy one).
shown_first = [
    r.id for r in demo.own_first(runs) if r.status in ACTIVE or store.snapshots(r.id, "embeddings")
]
lecture = demo.lecture_defaults(runs)
default_run = lecture[0] if lecture else shown_first[0] if shown_first else ids[0]
recover_run("geo_run", ids)
missing_run_warning("geo_run", ids, default_run, lambda i: by_id[i].label())
keep_valid("geo_run", ids, default_run)
with ui.wrapping("geo_choosers", 150):  # (at 800 px the boxes read "#7 student-gc", "Spher")
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
with c1:
    run_id = ui.select(
        "Run",
        "geo_run",
        ids,
        default_run,
        format_func=lambda i: by_id[i].label(status=True),
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
        format_func=lambda i: "nothing" if i == NONE else by_id[i].label(),
    )
out_dim = embedding_dim(store, run)  # (a recorded loop's 3-D embeddings: a sphere too)
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
class_names, domain_names = run_label_names(run)
shown_runs = [run] + ([by_id[compare_id]] if compare_id != NONE else [])
# "domain" only where a shown run has domains (a digits run stayed coloured by class under
# "domain", with a small caption); a recorded loop's domains may have no names
with_domains = any(run_label_names(r)[1] or r.external for r in shown_runs)
with c4:
    colourings = ["class", "domain"] if with_domains else ["class"]
    keep_valid("geo_color", colourings, "class")
    color_by = ui.select("Colour by", "geo_color", colourings, "class")
UNLIKE = (
    "Each picture shows its own run's held-out samples, coloured by that run's classes as "
    "its legend names them."
)
ON_DATA = ("dataset", "dataset_params")  # (a batch size or layout: the same samples)
PLANE_UNLIKE = (
    "Alignment and uniformity are measured on each run's own held-out samples, so only runs "
    "on the same data compare by their places on the plane."
)
if compare_id != NONE and (unlike := unlike_note(run, [by_id[compare_id]], UNLIKE, ON_DATA)):
    st.caption(unlike)
f1, f2, f3 = st.columns([3, 3, 2])
with f1:
    classes = ui.multiselect(
        "Highlight classes",
        "geo_classes",
        list(range(len(class_names))),
        [],
        format_func=lambda c: class_names[c],
        placeholder="every class",
        help="The other classes are dimmed, not removed, so the geometry stays readable.",
    )
with f2:
    domains = (
        ui.multiselect(
            "Highlight domains",
            "geo_domains",
            list(range(len(domain_names))),
            [],
            format_func=lambda d: domain_names[d],
            placeholder="every domain",
        )
        if domain_names
        else []
    )
with f3:
    k = ui.slider(
        "Neighbours of a pin",
        "geo_k",
        1,
        10,
        5,
        help="How many nearest neighbours (by cosine, in the embedding) a pinned sample shows.",
    )
auto = False
if method in SLOW_PARAMS:
    auto = ui.toggle(
        f"Compute {embed.METHOD_TITLES[method]} automatically for every snapshot I view",
        "geo_auto",
        False,
    )

polling = waiting(projection_jobs(), method)
live = run.live or (compare_id != NONE and by_id[compare_id].live)
statuses = shown_statuses(run, by_id.get(compare_id))
view = View(
    run_id,
    compare_id,
    method,
    color_by,
    auto,
    polling,
    tuple(classes),
    tuple(domains),
    int(k),
    statuses,
)
st.fragment(run_every=1.0 if polling else 2.0 if live else None)(snapshot_view)(store, view)
if live:
    st.caption(
        "A run is training: new snapshots appear by themselves, and the slider follows "
        "the newest one while it is at the end."
    )

# ---------------------------------------------------------- alignment-uniformity plane

st.subheader("Alignment and uniformity across runs")
st.markdown("The two measures of Wang and Isola (2020), lower is better for both:")
st.latex(ALIGN_UNIFORM_LATEX)
trajectories = {
    r.id: Trajectory.from_metrics(r.label(), store.metrics(r.id, ["alignment", "uniformity"]))
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
    # Runs on other data are measured on other points: the plane starts with those on the
    # shown run's data (a user's file beside the demo digits read as a ranking).
    like_data = [i for i in measured if not set(run.differences(by_id[i])) & set(ON_DATA)]
    run_names = {i: by_id[i].name for i in ids}
    default_plane = plane_defaults(like_data or measured, run_names, run_id, compare_id)
    keep = st.session_state.get("geo_plane")
    if keep is None:  # after a page switch: the runs the user put on the plane, if chosen
        keep = ui.recall("geo_plane")
    if keep is not None:
        st.session_state["geo_plane"] = [i for i in keep if i in measured]
    chosen = st.multiselect(
        "Runs on the plane",
        measured,
        default=None if keep is not None else default_plane,
        key="geo_plane",
        format_func=lambda i: by_id[i].label(),
        select_all=False,  # typing a run's name and Enter adds that run, not every match
    )
    ui.remember("geo_plane", list(chosen), list(default_plane))
    if chosen:
        palette = run_colors(by_id.values())
        colors = [palette[i] for i in chosen]  # (a run's colour on every page)
        fig = alignment_uniformity_plane(
            [
                dataclasses.replace(trajectories[i], color=c)
                for i, c in zip(chosen, colors, strict=True)
            ],
            highlight=run.label() if run_id in chosen else None,
        )
        ui.chart(fig, key="geo_plane_fig")
        plane_unlike = unlike_note(run, [by_id[i] for i in chosen], PLANE_UNLIKE, ON_DATA)
        if plane_unlike:
            st.caption(plane_unlike)
        st.caption(
            "Each line is a run's path through its evaluations; the big dot is its "
            "latest, labelled beside it (labels of runs that end close together are moved "
            "apart, a thin line leads to the dot). Left means more uniform (the embeddings "
            "spread over the sphere), down means better aligned (the two views of a sample "
            "closer). A collapsed encoder sits at the bottom right: perfectly aligned, not "
            "uniform at all."
        )
    else:
        st.caption("Pick runs to place on the plane.")
