"""Figures of training runs: metric curves with live-change markers, the current plan.

Pure builders: arrays in, ``plotly.graph_objects.Figure`` out. The run store supplies the
inputs (``RunStore.metrics``: ``{name: (k, 2) array of (step, value)}``;
``RunStore.applied_changes``: ``[{"step": s, "epsilon": ...}]``; a ``plan`` snapshot:
``cost``, ``kernel``, ``target``, ``plan``, ``y`` and ``diag_*`` arrays)::

    from gca_viz.figures.training import RunSeries, metric_curves, plan_heatmap

    fig = metric_curves(
        [RunSeries("#3 gca_ince", store.metrics(3), store.applied_changes(3))], ["loss", "knn_acc"]
    )
    fig = plan_heatmap(store.load_snapshot(path), "plan")
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gca_viz.figures._arrays import floats
from gca_viz.figures._narrow import when_narrow
from gca_viz.figures._palette import LEGIBLE

RUN_COLORS: tuple[str, ...] = LEGIBLE
"""Colour of the ``i``-th run on a chart (cycled; :data:`~gca_viz.figures._palette.LEGIBLE`)."""

METRIC_TITLES: dict[str, str] = {
    "loss": "Training loss (per batch)",
    "knn_acc": "k-NN accuracy (backbone features)",
    "knn_acc_embedding": "k-NN accuracy (embeddings)",
    "probe_acc": "Linear-probe accuracy",
    "alignment": "Alignment (lower: positives closer)",
    "uniformity": "Uniformity (lower: more uniform)",
    "domain_acc": "Domain probe accuracy",
    "embedding_std": "Embedding std (collapse → 0)",
    "effective_rank": "Effective rank of the embeddings",
    "step_time": "Seconds per step",
}
"""Chart titles of the metrics a run records."""

METRIC_LABELS: dict[str, str] = {
    "loss": "loss",
    "knn_acc": "k-NN acc.",
    "knn_acc_embedding": "k-NN acc. (ẑ)",
    "probe_acc": "probe acc.",
    "alignment": "alignment",
    "uniformity": "uniformity",
    "domain_acc": "domain acc.",
    "embedding_std": "embedding std",
    "effective_rank": "effective rank",
    "step_time": "s / step",
}
"""Short names of the metrics, for chips and metric tiles."""

CHANGE_SYMBOLS: dict[str, str] = {
    "epsilon": "ε",
    "n_iter": "T",
    "relax_a": "λ₁",
    "relax_b": "λ₂",
    "gamma": "γ",
    "alpha": "α",
    "beta": "β",
    "target": "target",
}
"""How a live change's parameters are written on the charts."""

PLAN_VIEWS: dict[str, str] = {
    "plan": "Plan P",
    "kernel": "Kernel K = exp(-C/ε)",
    "target": "Target P_tgt",
    "cost": "Cost C",
}
"""The matrices of a plan snapshot, with their titles."""


@dataclass(frozen=True)
class RunSeries:
    """One run's curves: a legend ``label``, ``metrics`` (``{name: (k, 2) (step, value)}``),
    the live ``changes`` that took effect (``{"step": s, **params}``) and the loss
    ``settings`` the run started with (``{"epsilon": 0.5, ..., "target": ...}``; empty if
    unknown), from which a change is labelled ``ε 0.5 → 0.2`` rather than ``ε=0.2``."""

    label: str
    metrics: Mapping[str, np.ndarray]
    changes: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    settings: Mapping[str, Any] = field(default_factory=dict)
    color: str | None = None
    """The run's line colour (``None``: the chart's ``i``-th of :data:`RUN_COLORS`; the
    pages pass :func:`gca_viz.figures._palette.run_colors` of the runs' methods)."""

    def labelled_changes(self) -> list[tuple[int, str]]:
        """``(step, label)`` of each live change, values before and after where known."""
        now = dict(self.settings)
        out = []
        for change in self.changes:
            out.append((int(change["step"]), describe_change(change, now if now else None)))
            now.update({k: v for k, v in change.items() if k != "step"})
        return out

    def epsilons(self) -> list[tuple[int, Any]]:
        """``(step, ε)`` from the start (step 0, if known) through each live change of ε."""
        out = [(0, self.settings["epsilon"])] if "epsilon" in self.settings else []
        out += [(int(c["step"]), c["epsilon"]) for c in self.changes if "epsilon" in c]
        return out


def metric_title(name: str) -> str:
    """The display title of a metric (its name if unknown)."""
    return METRIC_TITLES.get(name, name.replace("_", " "))


def metric_label(name: str) -> str:
    """The short label of a metric (its name if unknown)."""
    return METRIC_LABELS.get(name, name.replace("_", " "))


def _value_text(value: Any) -> str:
    """A parameter's value on a chart: ``0.2``, ``5``, ``hard`` (a ``None`` marginal)."""
    if value is None:
        return "hard"
    return f"{value:g}" if isinstance(value, float) else str(value)


def describe_change(change: Mapping[str, Any], before: Mapping[str, Any] | None = None) -> str:
    """A short label of a live change, e.g. ``"ε=0.2, T=5"`` (``None`` marginals: hard);
    with the settings ``before`` it, ``"ε 0.5 → 0.2, T 10 → 5"``."""
    parts = []
    for key, value in change.items():
        if key == "step":
            continue
        symbol = CHANGE_SYMBOLS.get(key, key)
        if before is not None and key in before:
            parts.append(f"{symbol} {_value_text(before[key])} → {_value_text(value)}")
        else:
            parts.append(f"{symbol}={_value_text(value)}")
    return ", ".join(parts)


def loss_scale_note(runs: Sequence[RunSeries]) -> str | None:
    """One line for under a chart of the loss when its values are not comparable: ε, which
    sets the loss's scale, changed during a run, or the runs drawn use different ε.
    ``None`` when neither happened."""
    changed = []
    for run in runs:
        now = {k: v for k, v in run.settings.items() if k == "epsilon"}
        for change in run.changes:
            if "epsilon" in change and now.get("epsilon") != change["epsilon"]:
                text = describe_change({"epsilon": change["epsilon"]}, now)
                changed.append(f"{run.label} at step {change['step']}, {text}")
            now["epsilon"] = change.get("epsilon", now.get("epsilon"))
    sentences = []
    if changed:
        sentences.append(
            f"ε changed during training ({'; '.join(changed)}): ε sets the scale of the loss, "
            "so loss values before and after the line are not comparable."
        )
    used = {run.label: [_value_text(e) for _, e in run.epsilons()] for run in runs}
    used = {label: eps for label, eps in used.items() if eps}
    if len({tuple(eps) for eps in used.values()}) > 1:
        which = ", ".join(f"{label}: ε {' → '.join(eps)}" for label, eps in used.items())
        sentences.append(
            f"The runs drawn train with different ε ({which}): their losses are on different "
            "scales and not comparable."
        )
    return " ".join(sentences) or None


def ema(values: np.ndarray, smoothing: float) -> np.ndarray:
    """Exponential moving average ``m_t = s m_{t-1} + (1 - s) x_t`` with bias correction
    (TensorBoard's smoothing); ``smoothing`` in ``[0, 1)``, 0 returns ``values``. A value
    that is not finite (a loss that went NaN) is a gap in the curve, NaN, and leaves the
    average as it was (before, the smoothed line ran on flat across it, as if the loss had
    held)."""
    if not 0.0 <= smoothing < 1.0:
        raise ValueError(f"smoothing must be in [0, 1), got {smoothing!r}")
    x = floats(values)
    if smoothing == 0.0 or len(x) == 0:
        return x
    out = np.empty_like(x)
    m, weight = 0.0, 0.0
    for i, v in enumerate(x):
        if math.isfinite(v):
            m = smoothing * m + (1.0 - smoothing) * v
            weight = smoothing * weight + (1.0 - smoothing)
        out[i] = m / weight if weight > 0 and math.isfinite(v) else np.nan
    return out


def _thin(series: np.ndarray, max_points: int) -> np.ndarray:
    """Every ``k``-th row (and the last) so at most about ``max_points`` rows remain."""
    if len(series) <= max_points:
        return series
    stride = math.ceil(len(series) / max_points)
    keep = np.unique(np.r_[np.arange(0, len(series), stride), len(series) - 1])
    thinned: np.ndarray = series[keep]
    return thinned


ACC_MIN_SPAN = 0.05
"""The least range of an accuracy's y axis in :func:`metric_curves`."""
MIN_SPANS = {"alignment": 0.1, "uniformity": 0.2}
"""The least range of these metrics' y axes in :func:`metric_curves`: alignment lies in
``[0, 4]`` and uniformity in ``[-4, 0]`` on the sphere, and two runs' uniformity between
-2.02 and -1.98 filled the axis, its noise a swing."""


CHANGE_MARKS = "①②③④⑤⑥⑦⑧⑨⑩⑪⑫⑬⑭⑮⑯⑰⑱⑲⑳"
"""The marks :func:`metric_curves` puts on its live-change lines, in :func:`change_key`'s
order."""


def _numbered_changes(runs: Sequence[RunSeries]) -> list[tuple[int, int, str, str]]:
    """``(run index, step, mark, text)`` of every live change, numbered over all runs."""
    changes = [
        (r, step, text) for r, run in enumerate(runs) for step, text in run.labelled_changes()
    ]
    return [
        (r, step, CHANGE_MARKS[k % len(CHANGE_MARKS)], text)
        for k, (r, step, text) in enumerate(changes)
    ]


def change_key(runs: Sequence[RunSeries]) -> list[str]:
    """What each numbered line of :func:`metric_curves` marks, in order: ``"① #3 at step
    120: ε 0.5 → 0.2"``."""
    return [
        f"{mark} {runs[r].label.split(' ')[0]} at step {step}: {text}"
        for r, step, mark, text in _numbered_changes(runs)
    ]


def metric_curves(
    runs: Sequence[RunSeries],
    names: Sequence[str],
    *,
    smoothing: float = 0.0,
    max_points: int = 2000,
    columns: int = 2,
    row_height: int = 260,
    empty: Mapping[str, str] | None = None,
) -> go.Figure:
    """One subplot per metric in ``names``, one coloured line per run, dotted vertical lines
    where live changes took effect (numbered ①, ②, ... on the loss's subplot;
    :func:`change_key` says what each is, ``ε 0.5 → 0.2`` when the run's ``settings`` are
    known; :func:`loss_scale_note` says what that means for the loss). A metric no run has a
    value of gets a note in its subplot: ``empty[name]``, else "no values yet".

    ``smoothing`` (an EMA weight in ``[0, 1)``) applies to the per-step ``loss`` only; the
    raw loss stays visible as a faint line. Long curves are thinned to ``max_points``.
    """
    if not names:
        raise ValueError("names must list at least one metric")
    cols = max(1, min(columns, len(names)))
    rows = math.ceil(len(names) / cols)
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=[metric_title(n) for n in names],
        horizontal_spacing=0.08,
        vertical_spacing=min(0.3 / rows + 0.05, 0.2) if rows > 1 else 0.1,
    )
    filled: set[str] = set()
    numbered = _numbered_changes(runs)  # change_key's numbering
    spans: dict[str, list[float]] = {}  # each metric's smallest and largest value drawn
    step_span = [math.inf, -math.inf]  # the steps drawn, over every metric and run
    for r, run in enumerate(runs):
        color = run.color or RUN_COLORS[r % len(RUN_COLORS)]
        shown = False
        for i, name in enumerate(names):
            row, col = i // cols + 1, i % cols + 1
            data = run.metrics.get(name)
            if data is None or len(data) == 0:
                continue
            data = _thin(floats(data).reshape(-1, 2), max_points)
            steps, values = data[:, 0], data[:, 1]
            step_span = [
                min(step_span[0], float(steps.min())),
                max(step_span[1], float(steps.max())),
            ]
            mode = "lines+markers" if len(steps) <= 60 else "lines"
            if name == "loss" and smoothing > 0:
                fig.add_trace(
                    go.Scatter(
                        x=steps,
                        y=values,
                        mode="lines",
                        line={"color": color, "width": 1},
                        opacity=0.25,
                        legendgroup=run.label,
                        showlegend=False,
                        hoverinfo="skip",
                    ),
                    row=row,
                    col=col,
                )
                values = ema(values, smoothing)
            fig.add_trace(
                go.Scatter(
                    x=steps,
                    y=values,
                    mode=mode,
                    name=run.label,
                    legendgroup=run.label,
                    showlegend=not shown,
                    line={"color": color, "width": 2},
                    marker={"size": 5},
                    hovertemplate=f"{run.label}<br>step %{{x}}<br>{name} %{{y:.4g}}<extra></extra>",
                ),
                row=row,
                col=col,
            )
            shown = True
            filled.add(name)
            finite = values[np.isfinite(values)]
            if finite.size:
                lo, hi = spans.get(name, [math.inf, -math.inf])
                spans[name] = [min(lo, float(finite.min())), max(hi, float(finite.max()))]
        # Each change is labelled on the loss's subplot (the first one without a loss).
        labelled = names.index("loss") if "loss" in names else 0
        axis = "" if labelled == 0 else str(labelled + 1)
        for _, step, mark, text in (c for c in numbered if c[0] == r):
            for i in range(len(names)):
                fig.add_vline(
                    x=step,
                    line={"color": color, "dash": "dot", "width": 1.5},
                    row=i // cols + 1,
                    col=i % cols + 1,
                )
            # A number on the line (the caption's key, change_key, says what changed): the
            # whole text, rotated along the line, was tiny and sat on the curve. With one or
            # two changes drawn, the change's words follow the number ("① ε 0.5 → 0.1": a
            # student read a bare ① after a drop of the loss as progress); hovered, always.
            fig.add_annotation(
                x=step,
                y=1,
                xref=f"x{axis}",
                yref=f"y{axis} domain",
                text=f"{mark} {text}" if len(numbered) <= 2 and 0 < len(text) <= 24 else mark,
                hovertext=f"{mark} {text}" if text else None,
                showarrow=False,
                xanchor="center",
                yanchor="top",  # inside the plot's top edge: above it sits the subplot's title
                font={"size": 16, "color": color},
                bgcolor="rgba(255,255,255,0.85)",
            )
    for i, name in enumerate(names):
        lo, hi = spans.get(name, [0.0, 1.0])
        if name in filled and name.endswith("_acc"):
            # An accuracy's axis spans at least ACC_MIN_SPAN (noise within 0.002 looked like
            # a trend) and never reaches far above 1 (a flat 1.0 showed 0.96 to 1.04).
            span, mid = max(hi - lo, ACC_MIN_SPAN), (lo + hi) / 2
            top = min(mid + 0.6 * span, 1.005)
            fig.update_yaxes(
                range=[max(top - 1.2 * span, 0.0), top], row=i // cols + 1, col=i % cols + 1
            )
        elif name in filled and name in MIN_SPANS and hi - lo < MIN_SPANS[name]:
            mid, span = (lo + hi) / 2, MIN_SPANS[name]
            fig.update_yaxes(
                range=[mid - 0.6 * span, mid + 0.6 * span], row=i // cols + 1, col=i % cols + 1
            )
        elif name in filled and hi - lo <= 1e-9 * max(1.0, abs(hi)):
            # One value throughout (a k-NN accuracy of 1.0): plotly would span 0 to 2.
            pad = max(0.05 * abs(hi), 0.01)
            fig.update_yaxes(range=[lo - pad, hi + pad], row=i // cols + 1, col=i % cols + 1)
        if name not in filled:
            row, col = i // cols + 1, i % cols + 1
            # A subplot without a trace is not drawn at all, and a note referring to its
            # axes then lands on the first subplot: an invisible point keeps it.
            point = go.Scatter(x=[0], y=[0], mode="markers", opacity=0, hoverinfo="skip")
            fig.add_trace(point.update(showlegend=False), row=row, col=col)
            fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, row=row, col=col)
            fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, row=row, col=col)
            axis = "" if i == 0 else str(i + 1)
            fig.add_annotation(
                x=0.5,
                y=0.5,
                xref=f"x{axis} domain",
                yref=f"y{axis} domain",
                text=(empty or {}).get(name, "no values yet"),
                showarrow=False,
                font={"color": "gray"},
            )
    if math.isfinite(step_span[0]):
        # One step axis for every subplot, from 0: an evaluation made once (at the last step)
        # sits under the loss's end, not alone on an axis from 299 to 301 in half steps.
        last = max(step_span[1], 1.0)
        pad = 0.02 * (last - min(step_span[0], 0.0))
        for i, name in enumerate(names):
            if name in filled:
                fig.update_xaxes(
                    range=[min(step_span[0], 0.0) - pad, last + pad],
                    tickformat="d",
                    row=i // cols + 1,
                    col=i % cols + 1,
                )
    fig.update_xaxes(title_text="step", row=rows)
    height = row_height * rows + 110
    plot_height = height - 110  # minus the top and bottom margins
    fig.update_layout(
        height=height,
        margin={"l": 50, "r": 20, "t": 70, "b": 40},
        # above the subplot titles: 35 px over the top of the plotting area
        legend={"orientation": "h", "yanchor": "bottom", "y": 1 + 35 / plot_height, "x": 0},
        hovermode="closest",
    )
    if cols > 1:
        _titles_wrap_when_narrow(fig, [metric_title(n) for n in names])
    return fig


NARROW_CURVES = 560
"""Chart width (px) below which :func:`metric_curves` wraps its subplots' titles: at 800 px
beside the sidebar (a 470 px chart, 185 px a subplot) two titles ran together ("Alignment
(lower: positives closer)Uniformity (lower: more uniform)") and "k-NN accuracy (backbone
features" was cut."""


def _titles_wrap_when_narrow(fig: go.Figure, titles: list[str]) -> None:
    """Give the grid's subplot titles (the figure's first annotations, in order) a narrow
    layout (:func:`gca_viz.figures._narrow.when_narrow`): each title's remark in brackets on
    a second line, in 12 px type, and the legend 20 px higher for the top row's second line.
    (The chart keeps its height: Streamlit's chart sets it again on every draw.)"""
    margin = fig.layout.margin
    above = (fig.layout.legend.y - 1) * (fig.layout.height - margin.t - margin.b)  # px
    layout: dict[str, Any] = {  # (the plotting area 20 px shorter, the legend as high above)
        "legend.y": 1 + (above + 20) / (fig.layout.height - margin.t - 20 - margin.b),
        "margin.t": margin.t + 20,
    }
    for i, title in enumerate(titles):
        layout[f"annotations[{i}].text"] = title.replace(" (", "<br>(", 1)
        layout[f"annotations[{i}].font.size"] = 12
    when_narrow(fig, NARROW_CURVES, layout)


# --------------------------------------------------------------------------------- plans


def block_mean(M: np.ndarray, max_size: int = 256) -> np.ndarray:
    """Average ``M`` over square blocks so that no side exceeds ``max_size`` (mass-preserving
    up to the block area; a ``256 x 256`` or smaller matrix is returned as is). Infinite
    entries (excluded self-pairs of a cost) are left out of the averages."""
    A = np.asarray(M, dtype=np.float64)
    if A.ndim != 2:
        raise ValueError(f"M must be 2-D, got shape {A.shape}")
    if max_size < 1:
        raise ValueError(f"max_size must be >= 1, got {max_size}")
    f = max(math.ceil(A.shape[0] / max_size), math.ceil(A.shape[1] / max_size))
    if f <= 1:
        return A
    finite = np.isfinite(A)
    vals = np.where(finite, A, 0.0)
    r_idx, c_idx = np.arange(0, A.shape[0], f), np.arange(0, A.shape[1], f)
    sums = np.add.reduceat(np.add.reduceat(vals, r_idx, axis=0), c_idx, axis=1)
    counts = np.add.reduceat(np.add.reduceat(finite.astype(float), r_idx, axis=0), c_idx, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / counts, np.nan)


def class_order(y: np.ndarray, n_rows: int) -> np.ndarray:
    """Row order that groups a batch by class (stable): rows are the ``N`` samples
    (cross layout) or ``[view 1; view 2]`` of them (joint layout, ``2N`` rows). Any other
    row count keeps the original order."""
    labels = np.asarray(y).reshape(-1)
    n = len(labels)
    perm = np.argsort(labels, kind="stable")
    if n_rows == n:
        return perm
    if n_rows == 2 * n:
        return np.concatenate([perm, perm + n])
    return np.arange(n_rows)


def plan_heatmap(
    snapshot: Mapping[str, np.ndarray],
    view: str = "plan",
    *,
    log_scale: bool = True,
    order_by_class: bool = True,
    max_size: int = 256,
    title: str | None = None,
) -> go.Figure:
    """Heatmap of one matrix of a ``plan`` snapshot (``view`` in :data:`PLAN_VIEWS`).

    ``log_scale`` shows ``log10`` of the plan, kernel or target (zeros left blank), which
    shows small-``ε`` plans best; the cost is always linear. ``order_by_class`` groups rows
    and columns by the batch's class labels ``y``, so class structure shows as blocks.
    Matrices larger than ``max_size`` are block-averaged for display.
    """
    if view not in PLAN_VIEWS:
        raise ValueError(f"view must be one of {sorted(PLAN_VIEWS)}, got {view!r}")
    if view not in snapshot:
        raise ValueError(f"the snapshot has no {view!r} matrix")
    M = np.asarray(snapshot[view], dtype=np.float64)
    if M.ndim != 2:
        raise ValueError(f"{view} must be 2-D, got shape {M.shape}")
    if order_by_class and "y" in snapshot and M.shape[0] == M.shape[1]:
        perm = class_order(snapshot["y"], M.shape[0])
        M = M[np.ix_(perm, perm)]
    M = block_mean(M, max_size)
    use_log = log_scale and view != "cost"
    with np.errstate(divide="ignore", invalid="ignore"):
        Z = np.where(M > 0, np.log10(M), np.nan) if use_log else np.where(np.isfinite(M), M, np.nan)
    label = PLAN_VIEWS[view].split(" ")[-1] if view != "kernel" else "K"
    scale_title = f"log₁₀ {label}" if use_log else label
    fig = go.Figure(
        go.Heatmap(
            z=Z.astype(np.float32),
            colorscale="Viridis",
            colorbar={"title": {"text": scale_title}},
            hovertemplate=f"row %{{y}}<br>column %{{x}}<br>{scale_title} %{{z:.3g}}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", constrain="domain", title="row i")
    fig.update_xaxes(constrain="domain", title="column j")
    fig.update_layout(
        title=title or PLAN_VIEWS[view],
        height=420,
        margin={"l": 50, "r": 20, "t": 50, "b": 40},
    )
    return fig
