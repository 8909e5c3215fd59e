r"""Figures of embedding geometry: the circle, the sphere, 2-D projections, and the
alignment-uniformity plane across runs.

Pure builders: arrays in, ``plotly.graph_objects.Figure`` out. Points are coloured by a
discrete label (class or domain) with one legend entry per label; the sphere is one WebGL
scene (a ``Scatter3d`` per label and a faint ``Surface``), everything else is SVG, so a page
stays within the browser's WebGL context budget::

    from gca_viz.figures.geometry import embedding_figure, Trajectory, alignment_uniformity_plane

    fig = embedding_figure(z, y, names=("0", "1", ...))  # z: (n, 2) circle, (n, 3) sphere
    fig = alignment_uniformity_plane([Trajectory.from_metrics("#3", store.metrics(3))])

The plane follows Wang and Isola (ICML 2020): ``x = L_uniform``, ``y = L_align``, both
lower-is-better, so good representations sit in the lower left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from gca_viz.figures.training import RUN_COLORS

LABEL_COLORS: tuple[str, ...] = tuple(qualitative.Plotly) + tuple(qualitative.Alphabet)
"""Discrete colours of labels 0, 1, 2, ...; more distinct labels than this use a scale."""

MAX_LEGEND_LABELS = 30
"""Above this many distinct labels the points share one trace coloured by a scale."""


def _labels(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if len(y) != n:
        raise ValueError(f"labels must have length {n} (one per point), got {len(y)}")
    return y


def _name(value: Any, names: Sequence[str] | None) -> str:
    if names is not None and isinstance(value, (int, np.integer)) and 0 <= value < len(names):
        return str(names[int(value)])
    return str(value)


def _scatter_traces(
    P: np.ndarray,
    y: np.ndarray,
    names: Sequence[str] | None,
    legend_title: str,
    marker_size: float,
) -> list[go.Scatter | go.Scatter3d | go.Scattergl]:
    """One trace per label (legend entries), or one trace with a colour scale if many."""
    dims = P.shape[1]
    kind = go.Scatter3d if dims == 3 else (go.Scattergl if len(P) > 5000 else go.Scatter)
    classes = np.unique(y)
    coords = ("x", "y", "z")[:dims]
    if len(classes) > MAX_LEGEND_LABELS:
        codes = np.searchsorted(classes, y)
        return [
            kind(
                **{c: P[:, j] for j, c in enumerate(coords)},
                mode="markers",
                marker={
                    "size": marker_size,
                    "color": codes,
                    "colorscale": "Turbo",
                    "colorbar": {"title": {"text": legend_title}},
                },
                text=[_name(v, names) for v in y],
                hovertemplate=f"{legend_title} %{{text}}<extra></extra>",
                showlegend=False,
            )
        ]
    traces = []
    for i, c in enumerate(classes):
        mask = y == c
        label = _name(c, names)
        traces.append(
            kind(
                **{k: P[mask, j] for j, k in enumerate(coords)},
                mode="markers",
                name=label,
                marker={"size": marker_size, "color": LABEL_COLORS[i % len(LABEL_COLORS)]},
                hovertemplate=f"{legend_title} {label}<extra></extra>",
            )
        )
    return traces


def _legend(title: str) -> dict[str, Any]:
    return {"title": {"text": title}, "itemsizing": "constant"}


def _points(x: Any, labels: Any, width: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """``x`` as a float ``(n, width)`` array (``ValueError`` naming ``name`` otherwise) and
    its ``(n,)`` labels."""
    P = np.asarray(x, dtype=np.float64)
    if P.ndim != 2 or P.shape[1] != width:
        raise ValueError(f"{name} must have shape (n, {width}), got {P.shape}")
    return P, _labels(labels, len(P))


def _plane_layout(fig: go.Figure, title: str, legend_title: str, left: int) -> go.Figure:
    """The layout shared by the flat scatters (circle, projection)."""
    fig.update_layout(
        title=title,
        height=480,
        legend=_legend(legend_title),
        margin={"l": left, "r": 20, "t": 50, "b": 40},
    )
    return fig


def circle_figure(
    z: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
) -> go.Figure:
    """Points of ``z`` ``(n, 2)`` (normalised embeddings) with the unit circle drawn."""
    P, y = _points(z, labels, 2, "z")
    fig = go.Figure(_scatter_traces(P, y, names, legend_title, 7))
    fig.add_shape(
        type="circle", x0=-1, y0=-1, x1=1, y1=1, line={"color": "rgba(80,80,80,0.35)", "width": 1}
    )
    fig.update_xaxes(range=[-1.15, 1.15], zeroline=False, title="z₁")
    fig.update_yaxes(range=[-1.15, 1.15], zeroline=False, scaleanchor="x", title="z₂")
    return _plane_layout(fig, title, legend_title, left=40)


def _sphere_surface(resolution: int = 36) -> go.Surface:
    theta = np.linspace(0, np.pi, resolution // 2)  # polar angle
    phi = np.linspace(0, 2 * np.pi, resolution)  # azimuth
    x = np.outer(np.sin(theta), np.cos(phi))  # (r/2, r)
    y = np.outer(np.sin(theta), np.sin(phi))
    z = np.outer(np.cos(theta), np.ones_like(phi))
    return go.Surface(
        x=x,
        y=y,
        z=z,
        opacity=0.12,
        showscale=False,
        hoverinfo="skip",
        colorscale=[[0, "rgb(160,170,190)"], [1, "rgb(160,170,190)"]],
        contours={"x": {"highlight": False}, "y": {"highlight": False}, "z": {"highlight": False}},
    )


def sphere_figure(
    z: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
) -> go.Figure:
    """Points of ``z`` ``(n, 3)`` on a faint unit sphere (one WebGL scene)."""
    P, y = _points(z, labels, 3, "z")
    fig = go.Figure([_sphere_surface(), *_scatter_traces(P, y, names, legend_title, 3.5)])
    axis = {
        "range": [-1.1, 1.1],
        "showbackground": False,
        "showgrid": False,
        "zeroline": False,
        "showticklabels": False,
        "title": {"text": ""},
    }
    fig.update_layout(
        title=title,
        height=560,
        legend=_legend(legend_title),
        scene={
            "xaxis": axis,
            "yaxis": axis,
            "zaxis": axis,
            "aspectmode": "cube",
            "camera": {"eye": {"x": 0.95, "y": 0.95, "z": 0.6}},
        },
        margin={"l": 0, "r": 0, "t": 50, "b": 0},
        uirevision="sphere",  # keep the user's camera across snapshots
    )
    return fig


def projection_figure(
    xy: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
    axis_titles: tuple[str, str] = ("component 1", "component 2"),
) -> go.Figure:
    """A 2-D projection ``xy`` ``(n, 2)`` (PCA, UMAP, t-SNE) as a scatter."""
    P, y = _points(xy, labels, 2, "xy")
    fig = go.Figure(_scatter_traces(P, y, names, legend_title, 7))
    fig.update_xaxes(title=axis_titles[0], zeroline=False)
    fig.update_yaxes(title=axis_titles[1], zeroline=False)
    return _plane_layout(fig, title, legend_title, left=50)


def embedding_figure(
    z: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
) -> go.Figure:
    """The native picture of normalised embeddings: the circle for ``(n, 2)``, the sphere
    for ``(n, 3)``; other widths need a projection (:func:`projection_figure`)."""
    dims = np.asarray(z).shape[-1]
    if dims == 2:
        return circle_figure(z, labels, names, legend_title=legend_title, title=title)
    if dims == 3:
        return sphere_figure(z, labels, names, legend_title=legend_title, title=title)
    raise ValueError(f"z must have 2 or 3 columns to draw natively, got {dims}; project it")


# ---------------------------------------------------------------- alignment / uniformity


@dataclass(frozen=True)
class Trajectory:
    """A run's path through the alignment-uniformity plane, at its evaluation steps."""

    label: str
    steps: np.ndarray  # (k,)
    uniformity: np.ndarray  # (k,)
    alignment: np.ndarray  # (k,)

    @classmethod
    def from_metrics(cls, label: str, metrics: Mapping[str, np.ndarray]) -> Trajectory:
        """Pair the ``alignment`` and ``uniformity`` records (``(k, 2)`` step, value) that
        share a step; empty if the run has none yet."""
        a = np.asarray(metrics.get("alignment", np.empty((0, 2))), dtype=float).reshape(-1, 2)
        u = np.asarray(metrics.get("uniformity", np.empty((0, 2))), dtype=float).reshape(-1, 2)
        steps, ia, iu = np.intersect1d(a[:, 0], u[:, 0], return_indices=True)
        ok = np.isfinite(a[ia, 1]) & np.isfinite(u[iu, 1])
        return cls(label, steps[ok], u[iu, 1][ok], a[ia, 1][ok])

    def __len__(self) -> int:
        return len(self.steps)


def alignment_uniformity_plane(
    trajectories: Sequence[Trajectory], *, highlight: str | None = None
) -> go.Figure:
    """Each run's trajectory (faint) ending in a labelled point at its latest evaluation;
    ``highlight`` draws one run's line thicker. Lower left is better."""
    fig = go.Figure()
    for r, t in enumerate(trajectories):
        if len(t) == 0:
            continue
        color = RUN_COLORS[r % len(RUN_COLORS)]
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
                mode="markers+text",
                name=t.label,
                legendgroup=t.label,
                text=[t.label],
                textposition="top center",
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
        height=440,
        margin={"l": 60, "r": 20, "t": 40, "b": 50},
        legend={"title": {"text": "run"}},
    )
    return fig
