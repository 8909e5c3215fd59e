"""Train page, part 5: the live monitor. Status, progress and device of the selected run,
its latest metrics, the metric curves (with the runs it is compared with), the plan of its
current batch and, beside it, its latest embeddings, redrawn every second and a half while a
drawn run is active."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import streamlit as st

import ui
from gca_viz import embed, metrics
from gca_viz.figures.geometry import embedding_figure, projection_figure
from gca_viz.figures.training import (
    PLAN_VIEWS,
    RunSeries,
    change_key,
    loss_scale_note,
    metric_curves,
    metric_label,
    metric_title,
    plan_heatmap,
)
from gca_viz.runs import ACTIVE, RESUMABLE, RunInfo, RunStore, StoreError, run_loss
from gca_viz.train import TrainConfig, build_loss
from views._geometry_snapshots import from_batch, labels_for, samples_text
from views._run_link import launch_status, run_colors
from views._train_runs import Selection, refresh_page, status_text

DEFAULT_METRICS = ["loss", "knn_acc", "alignment", "uniformity"]
DIAGNOSTICS = {
    "loss": "loss on these pairs",
    "entropy": "plan entropy H(P)",
    "marginal_error": "marginal error ‖P1 − μ‖₁ + ‖Pᵀ1 − ν‖₁",
    "positive_mass": "share of the mass on positive pairs",
    "mass": "total mass Σ P",
    "n_iter": "Sinkhorn sweeps",
    "solver_error": "solver error",
}
REFRESH_S = 1.5
"""Seconds between two redraws of the monitor while a drawn run is active."""


@dataclass(frozen=True)
class MonitorView:
    """What the live monitor shows (the widgets' values at the last full page run)."""

    run_id: int
    compare: tuple[int, ...]
    status_then: str
    metrics: tuple[str, ...]
    smoothing: float
    plan_view: str
    plan_log: bool
    plan_order: bool


def fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "–"


def card(v: float) -> str:
    """A metric card's value: :func:`fmt`, a small one in three digits with a short exponent
    (uniformity's "-8.188e-05" was cut to "-8.188e…" in a fifth of the page); "NaN" for a
    value that was recorded NaN (a loop's loss that diverged), not a dash."""
    if math.isnan(v):
        return "NaN"
    if not math.isfinite(v) or v == 0 or abs(v) >= 1e-3:
        return fmt(v)
    text = f"{v:.3g}"  # (1e-4 to 1e-3 come without an exponent: "0.0005")
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def monitor_controls(store: RunStore, info: RunInfo, selection: Selection) -> MonitorView:
    """The metrics to draw, the loss smoothing and how to draw the batch's matrix."""
    found = set()
    for i in (selection.run_id, *selection.compare):
        found |= set(store.latest_metrics(i))
    metric_options = [*dict.fromkeys([*DEFAULT_METRICS, *sorted(found - {"step_time"})])]
    # (at 800 px the metrics box showed "unif" of four and the toggles read "Group rows by …":
    # the rows wrap, the smoothing slider under the metrics, the toggles two to a row)
    m1, m2 = ui.wrapping("tr_metric_row", 150).columns([3, 1])
    with m1:
        chosen = ui.multiselect(
            "Metrics", "tr_metrics", metric_options, DEFAULT_METRICS, format_func=metric_label
        )
    with m2:
        smoothing = ui.slider(
            "Loss smoothing",
            "tr_smooth",
            0.0,
            0.95,
            0.6,
            step=0.05,
            help="Exponential moving average of the per-batch loss; the raw "
            "curve stays faint behind it.",
        )
    p1, p2, p3 = ui.wrapping("tr_plan_row", 180).columns(3)
    with p1:
        plan_view = ui.select(
            "Matrix of the current batch",
            "tr_plan_view",
            list(PLAN_VIEWS),
            "plan",
            format_func=lambda v: PLAN_VIEWS[v],
        )
    with p2:
        plan_log = ui.toggle("Log colour scale", "tr_plan_log", True)
    with p3:
        plan_order = ui.toggle("Group rows by class", "tr_plan_order", True)
    return MonitorView(
        selection.run_id,
        selection.compare,
        info.status,
        tuple(chosen),
        float(smoothing),
        plan_view,
        plan_log,
        plan_order,
    )


LECTURE_PLAN_SIDE = 540
"""The plan map's side in lecture mode, in pixels (a 128-row plan: 4 px a row)."""


def show_plan(store: RunStore, run: RunInfo, view: MonitorView) -> None:
    """The latest plan snapshot of the run with its diagnostics."""
    try:
        planless = not run_loss(run).has_plan
    except ValueError:  # an external run without a gca_viz loss: its snapshots say
        planless = False
    if planless:
        st.caption(
            f"Run #{run.id} trains {run.config.get('method', 'a loss')} without a transport "
            "plan: its loss aligns each pair alone (projection: none), so there is no plan "
            "to show. Its embeddings are on the Geometry page."
        )
        return
    plans = store.snapshots(run.id, "plan")
    if not plans:
        every = run.config.get("snapshot_every", 0)
        if not every:
            st.caption("This run saves no plan snapshots (snapshot_every is 0).")
        elif run.status in ACTIVE:
            st.caption(f"The batch's plan is saved every {every} steps; none yet.")
        else:
            st.caption(f"Run #{run.id} saved no plan snapshot.")
        return
    step, path = plans[-1]
    snap = store.load_snapshot(path)
    if snap is None or view.plan_view not in snap:
        st.warning(
            f"The plan snapshot at step {step} is missing or unreadable ({path.name}).",
            icon=":material/warning:",
        )
        return
    # Side by side on a screen; one above the other in lecture mode, where each needs the
    # page's width for projector-sized type.
    left, right = (
        (st.container(), st.container())
        if ui.lecture()
        else ui.wrapping("tr_wrap_plan", 360).columns(2)
    )
    with left:
        fig = plan_heatmap(
            snap,
            view.plan_view,
            log_scale=view.plan_log,
            order_by_class=view.plan_order,
            title=f"{PLAN_VIEWS[view.plan_view]} at step {step}",
        )
        if ui.lecture():  # a page wide: a larger map, as wide as its square and colour bar
            # (stretched to the page, the square sat left of centre, its bar at the far right)
            margin = {"l": 80, "r": 20, "t": 40, "b": 70}
            side = LECTURE_PLAN_SIDE
            fig.update_layout(
                height=side + margin["t"] + margin["b"],
                width=side + margin["l"] + margin["r"] + 130,  # + the colour bar
                margin=margin,
            )
            ui.chart(fig, key="tr_plan", width="content")
        else:
            ui.chart(fig, key="tr_plan")
    with right:
        show_embeddings(store, run)
    # (the table in three fifths of the width: at 800 px 282 px, its values cut "0.0002'")
    left, _ = ui.wrapping("tr_wrap_batch", 300).columns([3, 2])
    with left:
        rows = len(snap[view.plan_view])
        joint = rows == 2 * len(snap.get("y", []))
        st.markdown(
            f"**The batch at step {step}**: {rows} × {rows}, "
            f"{'both views stacked (joint layout)' if joint else 'view 1 x view 2'}"
        )
        pairs = rows // 2 if joint else rows
        # The batch as trained (capped at the training split: 9 pairs of "up to 64" were the
        # whole batch); older snapshots lack it, and say "up to" the configured size.
        batch = int(snap["batch"]) if "batch" in snap else int(run.config.get("batch_size", pairs))
        if pairs < batch:
            st.caption(
                f"The first {pairs} pairs of the step's batch of up to {batch}: the numbers "
                "below are on these pairs only. The training loss averages over the whole "
                "batch, where each row has more candidates, so it is larger."
            )
        diag = {k[5:]: float(v) for k, v in snap.items() if k.startswith("diag_")}
        relaxed = "mass" in diag and unbalanced(run)
        if relaxed:  # (under the table it went unread: 1498 looked like a solver failing)
            st.caption(
                "This loss relaxes the marginals (unbalanced OT): its plan's total mass "
                f"follows the kernel's ΣK ({fmt(diag['mass'])} here), not the target's, so the "
                "marginal error, the distance to the hard marginals, is large by design. "
                "The share of the mass on the positive pairs is what compares with the "
                "balanced losses."
            )
        notes = {  # the rows a relaxed plan makes large, marked where they are read
            "marginal_error": " (large by design: relaxed marginals)",
            "mass": " (follows ΣK: relaxed marginals)",
        }
        table = [
            {
                "quantity": DIAGNOSTICS.get(k, k) + (notes.get(k, "") if relaxed else ""),
                "value": f"{v:.1%}" if k == "positive_mass" and math.isfinite(v) else fmt(v),
            }
            for k, v in diag.items()
        ]
        if "mass" in diag and "target" in snap:  # what the marginals ask for, to compare
            table.append(
                {"quantity": "target's total mass Σ P_tgt", "value": fmt(snap["target"].sum())}
            )
        ui.table(table)
        st.caption(
            "Row i is a sample, column j a candidate positive; the plan is the loss's "
            "soft matching, and its mass on the positive pairs is what the loss rewards. "
            "A smaller ε or more Sinkhorn sweeps make it sharper. Rows grouped by class "
            "show a class prior as blocks."
            + (
                " Joint layout: both views of every sample are rows and columns, so the "
                "blank diagonal is the excluded self-pairs (i, i) (a view is never its own "
                f"positive); each row's positive is its other view, {pairs} columns away."
                if joint
                else ""
            )
        )


def unbalanced(run: RunInfo) -> bool:
    """Whether the run's loss projects onto relaxed marginals (GCA-UOT and composed losses
    with the unbalanced projection); ``False`` if its loss cannot be told."""
    try:
        return run_loss(run).stages["projection"].name == "unbalanced"
    except (ValueError, KeyError, TypeError):
        return False


def show_embeddings(store: RunStore, run: RunInfo) -> None:
    """The run's latest embedding snapshot beside its plan: where the held-out samples sit
    now, coloured by class (on the unit circle or sphere for 2-D or 3-D embeddings, else
    their first two principal components)."""
    snaps = store.snapshots(run.id, "embeddings")
    if not snaps:
        st.caption("No embedding snapshot yet: the run saves one every few steps.")
        return
    step, path = snaps[-1]
    arrays = store.load_snapshot(path)
    if arrays is None or "z" not in arrays or "y" not in arrays:
        st.caption(f"The embedding snapshot at step {step} is unreadable ({path.name}).")
        return
    z = np.asarray(arrays["z"], dtype=np.float64)
    labels, names, legend = labels_for(arrays, run, "class")
    batch = from_batch(arrays)
    title = f"Embeddings at step {step}<br>" + (
        f"{len(z)} rows of the step's batch" if batch else samples_text(len(z), False)
    )
    if z.shape[1] in (2, 3):  # (half a page wide: narrow; a page wide in lecture mode)
        where = "circle" if z.shape[1] == 2 else "sphere"
        wide = ui.lecture()
        fig = embedding_figure(
            z, labels, names, legend_title=legend, title=f"{title}, unit {where}", narrow=not wide
        )
        if wide:  # as tall as the plan above it (the sphere was 270 px across, under blank)
            fig.update_layout(height=LECTURE_PLAN_SIDE + 110)
    else:
        fig = projection_figure(
            embed.pca(z, 2),
            labels,
            names,
            legend_title=legend,
            title=f"{title}, PCA of {z.shape[1]}-D",
            axis_titles=("principal component 1", "principal component 2"),
            narrow=True,
        )
    ui.chart(fig, key="tr_embed")
    st.caption(
        (f"These are {samples_text(len(z), True)}. " if batch else "")
        + f"{classes_text(z, arrays['y'])} The Geometry page plays every snapshot, projects "
        "with UMAP or t-SNE and pins a sample with its partner and its neighbours."
    )
    ui.page_link(
        "views/geometry.py",
        label=f"Run #{run.id} on the Geometry page",
        icon=":material/scatter_plot:",
        query_params={"geo_run": str(run.id)},
    )


COLLAPSED_SPREAD = 0.1
"""Below this ``σ √d`` (``metrics.embedding_std`` scaled to about 1 for points spread over
the sphere) a snapshot is called collapsed."""
GATHERED = 1.3
"""From this ``metrics.class_separation`` on, the classes are said to gather."""


def classes_text(z: np.ndarray, y: np.ndarray) -> str:
    """What the snapshot shows of its classes, measured: collapsed, gathered or mixed."""
    spread = metrics.embedding_std(z) * np.sqrt(z.shape[1])
    if spread < COLLAPSED_SPREAD:
        return (
            f"**Collapsed**: every sample maps to nearly the same point (spread σ√d = "
            f"{spread:.2g}; about 1 for points spread over the sphere), so no class can be "
            "told apart. A loss with nothing pushing the other samples away ends here; a "
            "contrastive one does when the two views of a sample share too little to be told "
            "from the others (features small next to the augmentation's noise, for one)."
        )
    ratio = metrics.class_separation(z, y)
    if np.isnan(ratio):
        return ""
    if np.isinf(ratio):
        return "The classes gather: each class sits at one point of its own."
    if ratio >= GATHERED:
        return (
            f"The classes gather: two samples of different classes sit {ratio:.1f}× as far "
            "apart as two of one class."
        )
    return (
        f"The classes are still mixed: two samples of different classes sit only "
        f"{ratio:.2f}× as far apart as two of one class."
    )


@st.cache_data(show_spinner=False, max_entries=256)
def start_settings(config_json: str) -> dict[str, Any]:
    """The loss parameters and target prior a run started with, from its config (``{}`` if
    its loss does not build here): the charts label a live change ``ε 0.5 → 0.2``."""
    try:
        cfg = TrainConfig.from_dict(json.loads(config_json))
        return {**build_loss(cfg).params, "target": cfg.target}
    except (TypeError, ValueError):
        return {}


def show_curves(store: RunStore, run: RunInfo, view: MonitorView) -> None:
    """The chosen metrics of the run and the runs compared with it, live changes marked."""
    series = []
    infos = []
    for i in (view.run_id, *view.compare):
        try:
            info = store.get(i)
        except StoreError:
            raise
        except ValueError:  # a compared run deleted meanwhile
            continue
        infos.append(info)
        series.append(
            RunSeries(
                info.label(),
                store.metrics(i, list(view.metrics)),
                store.applied_changes(i),
                start_settings(json.dumps(info.config, sort_keys=True)),
            )
        )
    palette = run_colors(store.list_runs())
    colors = [palette.get(info.id, "#6b7280") for info in infos]  # a run's colour everywhere
    series = [dataclasses.replace(s, color=c) for s, c in zip(series, colors, strict=True)]
    if not view.metrics:
        st.caption("Choose metrics to draw above.")
    elif not any(len(s.metrics) for s in series):
        if run.status == "queued":  # ("a few seconds after the run starts" behind a long run)
            st.info(
                f"No metrics yet: run #{run.id} {launch_status(store, run.id)}",
                icon=":material/hourglass_empty:",
            )
        elif run.status in ACTIVE:
            st.info(
                "No metrics yet: the first values arrive a few seconds after the run starts.",
                icon=":material/hourglass_empty:",
            )
        else:
            st.caption(f"Run #{run.id} recorded no metrics.")
    else:
        fig = metric_curves(
            series, list(view.metrics), smoothing=view.smoothing, empty=_empty_notes(infos, view)
        )
        ui.chart(fig, key="tr_curves")
        scale_note = loss_scale_note(series) if "loss" in view.metrics else None
        if scale_note:
            st.caption(f":material/warning: {scale_note}")
        key = change_key(series)
        note = f" Dotted lines mark live changes: {'; '.join(key)}." if key else ""
        st.caption(
            "The per-batch training loss and held-out evaluations: k-NN and linear-probe "
            "accuracy on the backbone features; alignment and uniformity of the "
            f"normalised embeddings (lower is better for both).{note}"
        )


def _empty_notes(infos: list[RunInfo], view: MonitorView) -> dict[str, str]:
    """What a subplot without values says: "no values yet" while a run may still record
    them; "not recorded" once every run has ended ("none before the run stopped" when one
    can resume); for a training loop of its own (a
    Recorder's run), how that loop would record it."""
    if any(info.status in ACTIVE for info in infos if not info.external):
        return {}  # an app run evaluates every few steps: the values are coming
    if infos and all(info.external for info in infos):
        return {m: f"not recorded by this loop<br>(rec.step(step, {m}=...) records it)"
                for m in view.metrics}  # fmt: skip
    if all(info.status not in ACTIVE for info in infos):
        if any(info.status in RESUMABLE and not info.external for info in infos):
            return {m: "none before the run stopped<br>(Resume continues it)"
                    for m in view.metrics}  # fmt: skip
        return {m: "not recorded by these runs" for m in view.metrics}
    return {}


def live_monitor(store: RunStore, view: MonitorView) -> None:
    """Status, progress, device, latest metrics, curves and the current plan of the run.

    A run deleted meanwhile reruns the whole page (it then shows the runs that are left).
    A store that cannot be read now (:class:`StoreError`: a damaged file, a disk fault) is
    an error in the monitor's place; the monitor keeps polling at its usual interval and
    draws the run again once the store reads."""
    try:
        draw_run(store, view)
    except StoreError as exc:
        st.error(
            f"Run #{view.run_id} cannot be shown now: {exc}. The monitor tries again every "
            f"{REFRESH_S:g} s.",
            icon=":material/error:",
        )


def draw_run(store: RunStore, view: MonitorView) -> None:
    """The body of :func:`live_monitor`."""
    try:
        run = store.get(view.run_id)
    except StoreError:
        raise
    except ValueError:  # deleted meanwhile
        refresh_page()
    if run.status != view.status_then:
        refresh_page()  # stopped, finished or failed: refresh the whole page (buttons too)
    st.progress(run.progress, text=status_text(run))
    now = store.latest_metrics(run.id)
    shown = [n for n in ("loss", "knn_acc", "probe_acc", "alignment", "uniformity") if n in now]
    # (under 150 px a card moves to the next row: ui.PAGE_CSS)
    for col, name in zip(st.columns(max(len(shown), 1)), shown, strict=False):
        step, value = now[name]
        col.metric(metric_label(name), card(value), help=f"{metric_title(name)}, at step {step}")
    show_curves(store, run, view)
    show_plan(store, run, view)


def monitor(store: RunStore, info: RunInfo, selection: Selection, runs: list[RunInfo]) -> None:
    """The monitor's controls, then the monitor, redrawn while a drawn run is active."""
    view = monitor_controls(store, info, selection)
    drawn = {view.run_id, *view.compare}
    active = any(r.id in drawn and r.live for r in runs)
    st.fragment(run_every=REFRESH_S if active else None)(live_monitor)(store, view)
