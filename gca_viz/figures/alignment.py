r"""The alignment-uniformity plane across runs (Wang and Isola, ICML 2020).

``x = L_uniform``, ``y = L_align`` (``gca_viz.metrics``), both lower-is-better, so good
representations sit in the lower left. Each run's path is drawn faint, ending in a big point
at its latest evaluation, labelled beside it; labels whose points are close are moved apart
vertically and joined to their point by a leader line (:func:`spread_labels`), and a copy
whose fonts were enlarged (the lecture mode) spreads them again
(:func:`respread_run_labels`)::

    from gca_viz.figures.alignment import Trajectory, alignment_uniformity_plane

    fig = alignment_uniformity_plane([Trajectory.from_metrics("#3", store.metrics(3))])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gca_viz.figures._arrays import floats
from gca_viz.figures.training import RUN_COLORS


@dataclass(frozen=True)
class Trajectory:
    """A run's path through the alignment-uniformity plane, at its evaluation steps."""

    label: str
    steps: np.ndarray  # (k,)
    uniformity: np.ndarray  # (k,)
    alignment: np.ndarray  # (k,)
    color: str | None = None  # (None: the plane's r-th of RUN_COLORS)

    @classmethod
    def from_metrics(
        cls, label: str, metrics: Mapping[str, np.ndarray], color: str | None = None
    ) -> Trajectory:
        """Pair the ``alignment`` and ``uniformity`` records (``(k, 2)`` step, value) that
        share a step; empty if the run has none yet."""
        a = floats(metrics.get("alignment", np.empty((0, 2)))).reshape(-1, 2)
        u = floats(metrics.get("uniformity", np.empty((0, 2)))).reshape(-1, 2)
        steps, ia, iu = np.intersect1d(a[:, 0], u[:, 0], return_indices=True)
        ok = np.isfinite(a[ia, 1]) & np.isfinite(u[iu, 1])
        return cls(label, steps[ok], u[iu, 1][ok], a[ia, 1][ok], color)

    def __len__(self) -> int:
        return len(self.steps)


def spread_labels(y: Any, gap: float, low: float, high: float) -> np.ndarray:
    """Label positions near ``y`` that are at least ``gap`` apart, inside ``[low, high]``.

    The labels keep their order; each moves as little as a forward pass (push up what
    crowds the one below) then a backward pass (push down from ``high``) allow. If the
    labels cannot fit (``(k - 1) gap > high - low``) they are spaced ``gap`` apart from
    ``low`` anyway: apart matters more than inside.

    Args:
        y: ``(k,)`` wanted positions (pixels, upwards). gap: the least distance.
        low, high: the room, ``low <= high``.

    Returns:
        ``(k,)`` positions, same order as ``y``.
    """
    want = np.asarray(y, dtype=np.float64).reshape(-1)
    order = np.argsort(want, kind="stable")
    pos = np.clip(want[order], low, high)
    for i in range(1, len(pos)):  # upwards: at least gap above the one below
        pos[i] = max(pos[i], pos[i - 1] + gap)
    if len(pos) and pos[-1] > high:
        pos[-1] = max(high, low + gap * (len(pos) - 1))
        for i in range(len(pos) - 2, -1, -1):  # downwards: at least gap below the one above
            pos[i] = min(pos[i], pos[i + 1] - gap)
    out = np.empty_like(pos)
    out[order] = pos
    return out


PLANE_HEIGHT = 440
PLANE_MARGIN = {"l": 70, "r": 20, "t": 40, "b": 60}
"""The plane's size: margins wide enough that plotly never grows them for the axis titles,
so the plot area is exactly ``PLANE_HEIGHT - t - b`` pixels high."""
LABEL_GAP_PX = 21.0
"""Least vertical distance between two run labels on the plane: an 11 px label with its
background box is 18 px high in Chromium."""
LABEL_FONT = 11
"""The run labels' font size (px); :data:`LABEL_GAP_PX` scales with it."""
PLANE_WIDTH_PX = 700.0
"""The plot's width assumed when a label's side is chosen (the chart is as wide as the page:
at least this on a 1280 px screen, and a wider plot only makes a label shorter in data
units)."""
LABEL_OFFSET_PX = 24
"""A label's distance from its point along x (its leader line's length, at least)."""
LABELS_META = "run_labels"
"""Key in ``layout.meta`` of a plane with run labels: where each label wants to be (pixels
above the plot's bottom) and the plot's height, for :func:`respread_run_labels`."""


def alignment_uniformity_plane(
    trajectories: Sequence[Trajectory], *, highlight: str | None = None
) -> go.Figure:
    """Each run's trajectory (faint) ending in a big point at its latest evaluation, labelled
    to its right; ``highlight`` draws one run's line thicker. Lower left is better.

    The axes have fixed ranges, so a label's height in pixels is known: labels closer than
    :data:`LABEL_GAP_PX` are spread apart (:func:`spread_labels`) and joined to their point
    by a leader line, so none overlaps another."""
    shown = [(r, t) for r, t in enumerate(trajectories) if len(t)]
    fig = go.Figure()
    for r, t in shown:
        color = t.color or RUN_COLORS[r % len(RUN_COLORS)]
        strong = highlight is None or t.label == highlight
        fig.add_trace(
            go.Scatter(
                x=t.uniformity,
                y=t.alignment,
                mode="lines+markers",
                line={"color": color, "width": 2.5 if strong else 1.2},
                marker={"size": 5},
                opacity=0.9 if strong else 0.45,
                legendgroup=t.label,
                showlegend=False,
                customdata=t.steps,
                hovertemplate=(
                    f"{t.label}<br>step %{{customdata:.0f}}<br>uniformity %{{x:.3f}}"
                    "<br>alignment %{y:.3f}<extra></extra>"
                ),
            )
        )
        fig.add_trace(
            go.Scatter(
                x=t.uniformity[-1:],
                y=t.alignment[-1:],
                mode="markers",
                name=t.label,
                legendgroup=t.label,
                marker={
                    "size": 13 if strong else 10,
                    "color": color,
                    "line": {"color": "white", "width": 1.5},
                },
                customdata=t.steps[-1:],
                hovertemplate=(
                    f"{t.label} (latest, step %{{customdata:.0f}})<br>"
                    "uniformity %{x:.3f}<br>alignment %{y:.3f}<extra></extra>"
                ),
            )
        )
    fig.update_xaxes(title="uniformity  log E exp(-2‖ẑᵢ - ẑⱼ‖²)  (lower: more uniform)")
    fig.update_yaxes(title="alignment  E ‖ẑ′ - ẑ″‖²  (lower: closer positives)")
    fig.update_layout(
        title={"text": "Lower left is better", "font": {"size": 13}},
        height=PLANE_HEIGHT,
        margin=PLANE_MARGIN,
        showlegend=False,  # each run is labelled at its latest point
    )
    if shown:
        _label_runs(fig, shown)
    return fig


LABEL_CHARS = 24
"""The longest run label drawn on the plane (longer names, such as a sweep's, crossed
other runs' paths): cut there with an ellipsis, the whole name on hover."""


def _short(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1].rstrip() + "…"


def _label_runs(fig: go.Figure, shown: Sequence[tuple[int, Trajectory]]) -> None:
    """Fixed axis ranges and one label per run at its latest point, spread apart vertically
    with leader lines: to the right of a point in the left half of the plane, to the left of
    one in the right half (a long label at the right edge was cut off). Labels are apart in
    height whichever side they are on, so none overlaps another."""
    xs = np.concatenate([t.uniformity for _, t in shown])
    ys = np.concatenate([t.alignment for _, t in shown])
    x_lo, x_hi = float(xs.min()), float(xs.max())
    y_lo, y_hi = float(ys.min()), float(ys.max())
    x_span = x_hi - x_lo if x_hi > x_lo else 0.1
    y_span = y_hi - y_lo if y_hi > y_lo else 0.1
    x_range = [x_lo - 0.08 * x_span, x_hi + 0.08 * x_span]
    y_range = [y_lo - 0.08 * y_span, y_hi + 0.12 * y_span]
    plot_px = PLANE_HEIGHT - PLANE_MARGIN["t"] - PLANE_MARGIN["b"]
    to_px = plot_px / (y_range[1] - y_range[0])
    ends = np.array([t.alignment[-1] for _, t in shown])
    want = (ends - y_range[0]) * to_px  # (k,) pixels above the bottom of the plot
    fig.update_xaxes(range=x_range, autorange=False)
    fig.update_yaxes(range=y_range, autorange=False)
    for r, t in shown:  # (each label's side and height: respread_run_labels, below)
        color = t.color or RUN_COLORS[r % len(RUN_COLORS)]
        fig.add_annotation(
            x=t.uniformity[-1],
            y=t.alignment[-1],
            text=_short(t.label),
            hovertext=t.label,
            showarrow=True,
            arrowhead=0,
            arrowwidth=1,
            arrowcolor=color,
            yanchor="middle",
            font={"size": LABEL_FONT, "color": color},
            bgcolor="rgba(255,255,255,0.8)",
        )
    meta = dict(fig.layout.meta or {})
    fig.update_layout(meta={**meta, LABELS_META: {"want": want.tolist(), "plot": plot_px}})
    respread_run_labels(fig)


def respread_run_labels(fig: go.Figure) -> go.Figure:
    """Place the plane's run labels (its annotations) at least ``LABEL_GAP_PX`` scaled by
    their font size apart, with leader lines to their points, each on its side of its point
    (:func:`_sides`; in place; returns ``fig``).

    The plane calls it; so does a copy whose fonts were enlarged (``ui.lecture_figure``):
    labels spread for 11 px overlap at 16. Where they cannot fit in the plot, the plot grows
    (the figure's height with it) and every label's wanted place with it."""
    spec = (fig.layout.meta or {}).get(LABELS_META)
    notes = list(fig.layout.annotations)
    if not spec or len(notes) != len(spec["want"]):
        return fig
    size = max(float(a.font.size or LABEL_FONT) for a in notes)
    gap = LABEL_GAP_PX * size / LABEL_FONT
    plot = float(spec["plot"])
    grown = max(plot, (len(notes) - 1) * gap + 16.0)
    want = np.asarray(spec["want"], dtype=np.float64) * grown / plot
    placed = spread_labels(want, gap, 8.0, grown - 8.0)
    for note, y_px, label_px in zip(notes, want, placed, strict=True):
        note.ay = -(label_px - y_px)  # pixels, downwards positive
    _sides(fig, notes, want, placed, size)
    if grown > plot:
        margin = fig.layout.margin
        fig.update_layout(height=round(grown + (margin.t or 0) + (margin.b or 0)))
    return fig


def _sides(
    fig: go.Figure, notes: list[Any], want: np.ndarray, placed: np.ndarray, size: float
) -> None:
    """Put each label on the side of its point that hides no other run's latest point.

    A label runs inward (to the right of a point in the left half of the plane); where its
    box would cover another run's big dot (the shown run's, under the label of a run that
    ended beside it), it goes to the other side if that side hides none and fits in the
    plot. Widths are estimated for a plot :data:`PLANE_WIDTH_PX` wide (labels are drawn
    above every trace, so a covered dot was invisible)."""
    x_range = fig.layout.xaxis.range
    if not x_range or x_range[1] <= x_range[0]:
        return
    x0, x1 = float(x_range[0]), float(x_range[1])
    xs = np.array([(float(n.x) - x0) / (x1 - x0) * PLANE_WIDTH_PX for n in notes])
    height, dot = 1.5 * size, 7.0  # a label's box; a latest point's radius (13 px marker)

    def box(k: int, right: bool) -> tuple[float, float]:
        width = 0.6 * size * len(str(notes[k].text)) + 6.0
        start = xs[k] + (LABEL_OFFSET_PX if right else -LABEL_OFFSET_PX - width)
        return start, start + width

    def hides(k: int, right: bool) -> bool:
        lo, hi = box(k, right)
        return any(
            j != k
            and abs(want[j] - placed[k]) <= height / 2 + dot
            and lo - dot <= xs[j] <= hi + dot
            for j in range(len(notes))
        )

    for k, note in enumerate(notes):
        right = xs[k] <= PLANE_WIDTH_PX / 2 or len(notes) == 1  # inward
        lo, hi = box(k, not right)
        if hides(k, right) and lo >= 0 and hi <= PLANE_WIDTH_PX and not hides(k, not right):
            right = not right
        note.ax = LABEL_OFFSET_PX if right else -LABEL_OFFSET_PX
        note.xanchor = "left" if right else "right"
