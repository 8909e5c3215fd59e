r"""Figures of embedding geometry: the circle, the sphere and 2-D projections (the
alignment-uniformity plane across runs is :mod:`gca_viz.figures.alignment`).

Pure builders: arrays in, ``plotly.graph_objects.Figure`` out. Points are coloured by a
discrete label (class or domain) with one legend entry per label; the sphere is a WebGL
scene (a ``Scatter3d`` per label and a faint ``Surface``), everything else is SVG, so a page
stays within the browser's WebGL context budget::

    from gca_viz.figures.geometry import embedding_figure

    fig = embedding_figure(z, y, names=("0", "1", ...))  # z: (n, 2) circle, (n, 3) sphere

:func:`explorer_figure` is the general builder behind them: one or two runs side by side
(:class:`Panel`; two spheres are two scenes of one figure), a hover label per point
(:func:`sample_hover`: the sample's position in its dataset, its class and domain names and
its input), points dimmed by a filter (:func:`filtered_out`), a pinned sample with its
nearest neighbours and its positive partner marked (``gca_viz.figures._pin``), and a ▶
through the snapshots that plays in the browser with fixed axes and camera. Every trace
carries each point's row as ``customdata``, so a click names the row (:func:`clicked_row`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import plotly.graph_objects as go
from plotly.colors import qualitative

from gca_viz.figures._arrays import floats
from gca_viz.figures._controls import BUTTON_ROW, player_controls
from gca_viz.figures._legend import legend_below
from gca_viz.figures._palette import LEGIBLE
from gca_viz.figures._pin import PIN_COLOR, PinMarks, coords, customdata, hover_args

LABEL_COLORS: tuple[str, ...] = LEGIBLE + tuple(qualitative.Alphabet)
"""Discrete colours of labels 0, 1, 2, ... (:data:`~gca_viz.figures._palette.LEGIBLE` for
the first ten); more distinct labels than this use a scale."""

MAX_LEGEND_LABELS = 30
"""Above this many distinct labels the points share one trace coloured by a scale."""

SPHERE_RANGE = (-1.1, 1.1)
"""Axis range of the sphere's scene on every axis and in every frame."""

CIRCLE_RANGE = (-1.15, 1.15)
"""Axis range of the circle's plot."""

SPHERE_CAMERA: dict[str, Any] = {"eye": {"x": 0.95, "y": 0.95, "z": 0.6}}
"""The sphere's starting camera, shared by the scenes of a comparison."""

NARROW_LEGEND_PER_ROW = 5
"""Legend entries (classes, domains) counted per row under a half-page chart."""
NARROW_CAMERA_FACTOR = 1.15
"""How much farther the camera of a sphere drawn in half a page stands (``narrow``)."""

GLYPHS = " ░▒▓█"
"""Grey levels of :func:`input_glyphs`, white to black (a hover label keeps spaces; every
other level is 6 bytes of JSON, so blank pixels stay plain spaces)."""

DIMMED = "rgb(120,125,135)"
"""Points left out by the class or domain filter (drawn at :data:`DIMMED_OPACITY`)."""

DIMMED_OPACITY = 0.25

View = Literal["sphere", "circle", "plane"]


# ------------------------------------------------------------------------ hover and filters


def input_glyphs(image: Any, size: int = 8) -> str:
    """An image as at most ``size`` lines of shaded blocks (for a hover label, which cannot
    show pictures): ``(C, H, W)`` in ``[0, 1]``, blocks averaged down to ``size`` a side,
    two characters a pixel. One channel is ink (1 is a dark block: the digits' strokes);
    colour channels are averaged to brightness (1 is blank)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {img.shape}")
    grey = img[0] if img.shape[0] == 1 else 1.0 - img.mean(axis=0)  # (H, W), 1 = dark
    rows = [part.mean(axis=0) for part in np.array_split(grey, min(size, grey.shape[0]), axis=0)]
    small = np.stack(rows)  # (h, W)
    cols = np.array_split(np.arange(small.shape[1]), min(size, small.shape[1]))
    small = np.stack([small[:, c].mean(axis=1) for c in cols], axis=1)  # (h, w)
    levels = np.clip(np.rint(small * (len(GLYPHS) - 1)), 0, len(GLYPHS) - 1).astype(int)
    return "<br>".join("".join(GLYPHS[v] * 2 for v in line) for line in levels)


def _vector_text(x: np.ndarray, first: int = 4) -> str:
    values = ", ".join(f"{v:.3g}" for v in x[:first])
    more = f", … ({len(x)} values)" if len(x) > first else ""
    return f"x = [{values}{more}]"


def sample_hover(
    index: Any,
    labels: Any,
    class_names: Sequence[str] | None = None,
    *,
    domains: Any = None,
    domain_names: Sequence[str] | None = None,
    inputs: Any = None,
    kind: str = "image",
) -> list[str]:
    """One hover label per point: ``sample <index> · class <name> [· domain <name>]`` on one
    line, then its input (an image as :func:`input_glyphs`, 8 lines at most: a label near
    the bottom of a 3-D scene is cut off there, so it stays short; a vector as its first
    values).

    Args:
        index: ``(n,)`` the samples' positions in their dataset.
        labels: ``(n,)`` class labels; ``class_names`` names them.
        domains: ``(n,)`` domain labels or ``None``; ``domain_names`` names them.
        inputs: ``(n, C, H, W)`` images or ``(n, d)`` vectors, or ``None`` (not shown).
        kind: ``"image"`` or ``"vector"``.
    """
    idx = np.asarray(index).reshape(-1)
    y = _labels(labels, len(idx))
    dom = None if domains is None else _labels(domains, len(idx))
    out = []
    for r in range(len(idx)):
        head = f"<b>sample {int(idx[r])}</b> · class {_name(y[r], class_names)}"
        if dom is not None:
            head += f" · domain {_name(dom[r], domain_names)}"
        if inputs is not None:
            x = np.asarray(inputs[r])
            body = input_glyphs(x) if kind == "image" else _vector_text(x.reshape(-1))
            head += "<br>" + body
        out.append(head)
    return out


def filtered_out(
    labels: Any,
    domains: Any = None,
    *,
    classes: Sequence[Any] = (),
    keep_domains: Sequence[Any] = (),
) -> np.ndarray:
    """``(n,)`` True for the points a filter dims: those whose class is not in ``classes``
    or whose domain is not in ``keep_domains`` (an empty choice keeps every value)."""
    y = np.asarray(labels).reshape(-1)
    out = np.zeros(len(y), dtype=bool)
    if len(classes):
        out |= ~np.isin(y, np.asarray(list(classes)))
    if len(keep_domains) and domains is not None:
        out |= ~np.isin(np.asarray(domains).reshape(-1), np.asarray(list(keep_domains)))
    return out


def clicked_row(event: Any, n: int) -> int | None:
    """The snapshot row a click on an :func:`explorer_figure` names, or ``None``.

    Args:
        event: a clicked point ``{"customdata": row or [row, ...], ...}`` (what the page's
            click bridge reports), or a chart ``selection`` ``{"points": [...]}`` (the last
            point counts).
        n: the snapshot's row count, to reject rows outside it.
    """
    if not isinstance(event, Mapping):
        return None
    points = event.get("points")
    candidates = list(reversed(list(points))) if isinstance(points, Sequence) else [event]
    for point in candidates:
        data = point.get("customdata") if isinstance(point, Mapping) else None
        if isinstance(data, Sequence) and not isinstance(data, str):
            data = data[0] if len(data) else None
        if isinstance(data, bool) or not isinstance(data, int | float | np.integer):
            continue
        if float(data).is_integer() and 0 <= int(data) < n:
            return int(data)
    return None


def _labels(labels: Any, n: int) -> np.ndarray:
    y = np.asarray(labels).reshape(-1)
    if len(y) != n:
        raise ValueError(f"labels must have length {n} (one per point), got {len(y)}")
    return y


def _name(value: Any, names: Sequence[str] | None) -> str:
    if names is not None and isinstance(value, (int, np.integer)) and 0 <= value < len(names):
        return str(names[int(value)])
    return str(value)


# ----------------------------------------------------------------------------- the explorer


@dataclass(frozen=True)
class Panel:
    """One run's points in an :func:`explorer_figure`.

    Attributes:
        title: the run's name above its plot (used when several panels share a figure).
        points: one ``(n, dims)`` array per frame (dims 2 or 3), same rows in each.
        labels: ``(n,)`` the colouring labels; ``names`` names them.
        hover: ``(n,)`` hover labels (:func:`sample_hover`), or ``None`` for the label only.
        dimmed: ``(n,)`` True for points drawn faint (:func:`filtered_out`), or ``None``.
        pinned: the pinned row, or ``None``.
        neighbours: one ``(k,)`` array of rows per frame, the pinned row's neighbours.
        partner: one ``(dims,)`` point per frame, where the pinned row's positive partner
            (an embedding of an augmented view of the same sample) is drawn, NaN in a frame
            that has none; empty: no partner is drawn.
        tag: a number a click on this panel's points reports (``customdata[1]``; the row is
            ``customdata[0]``), to tell the runs of a figure apart.
    """

    title: str
    points: Sequence[np.ndarray]
    labels: Any
    names: Sequence[str] | None = None
    hover: Sequence[str] | None = None
    dimmed: Any = None
    pinned: int | None = None
    neighbours: Sequence[Any] = field(default_factory=tuple)
    partner: Sequence[Any] = field(default_factory=tuple)
    tag: int = 0

    def checked(self, dims: int, n_frames: int) -> Panel:
        """This panel with float arrays, validated (``ValueError`` naming the field)."""
        pts = [np.asarray(p, dtype=np.float64) for p in self.points]
        if len(pts) != n_frames:
            raise ValueError(f"points must hold one array per frame ({n_frames}), got {len(pts)}")
        n = len(pts[0]) if pts else 0
        for p in pts:
            if p.ndim != 2 or p.shape != (n, dims):
                raise ValueError(f"points must each have shape ({n}, {dims}), got {p.shape}")
        y = _labels(self.labels, n)
        dim = np.zeros(n, bool) if self.dimmed is None else np.asarray(self.dimmed, bool)
        if dim.shape != (n,):
            raise ValueError(f"dimmed must have shape ({n},), got {dim.shape}")
        if self.hover is not None and len(self.hover) != n:
            raise ValueError(f"hover must have {n} labels, got {len(self.hover)}")
        if self.pinned is not None and not 0 <= self.pinned < n:
            raise ValueError(f"pinned must be a row in 0..{n - 1}, got {self.pinned}")
        near = [np.asarray(r, dtype=np.int64).reshape(-1) for r in self.neighbours]
        if self.pinned is not None and len(near) not in (0, n_frames):
            raise ValueError(f"neighbours must hold one array per frame ({n_frames})")
        mate = [np.asarray(p, dtype=np.float64).reshape(-1) for p in self.partner]
        if mate and (len(mate) != n_frames or any(p.shape != (dims,) for p in mate)):
            raise ValueError(f"partner must hold one ({dims},) point per frame ({n_frames})")
        if self.pinned is None:
            mate = []
        return Panel(
            self.title, pts, y, self.names, self.hover, dim, self.pinned, near, mate, self.tag
        )


class _Builder:
    """Traces of one panel in a fixed order, so that frames can address them by index:
    [surface], [dimmed points], one trace per label (or one coloured by a scale), [the
    labels' names on their clusters, with two labels or more], then the pinned row's marks
    (:class:`gca_viz.figures._pin.PinMarks`) when a row is pinned."""

    def __init__(self, panel: Panel, view: View, legend_title: str, axes: dict[str, str]):
        self.p, self.view, self.legend_title, self.axes = panel, view, legend_title, axes
        n = len(np.asarray(panel.labels))
        self.kind = go.Scatter3d if view == "sphere" else go.Scattergl if n > 5000 else go.Scatter
        self.size = 3.5 if view == "sphere" else 7
        y = np.asarray(panel.labels)
        self.texts = panel.hover or [f"{legend_title} {_name(v, panel.names)}" for v in y]
        self.classes = np.unique(y)
        self.scaled = len(self.classes) > MAX_LEGEND_LABELS
        dim = np.asarray(panel.dimmed, bool)
        rows = np.arange(len(y))
        self.dim_rows = rows[dim]
        if self.scaled:
            self.groups = [rows[~dim]]
        else:
            self.groups = [rows[~dim & (y == c)] for c in self.classes]
        # each label's name on its cluster (the colours alone told the classes apart)
        self.named = not self.scaled and len(self.classes) > 1
        self.pin = None if panel.pinned is None else self._pin_marks(panel.pinned, y, view)
        self.prefix = ""  # before each legend entry (the run's title: see explorer_figure)
        self.own_legend = False  # its classes in the legend even when it is not the first

    def legend_key(self) -> tuple[str, ...]:
        """What this panel's legend says: its labels' names in colour order."""
        if self.scaled:
            return ("scale", self.legend_title)
        return tuple(_name(c, self.p.names) for c in self.classes)

    def _pin_marks(self, row: int, y: np.ndarray, view: View) -> PinMarks:
        """The pinned row's marks; its partner's is drawn in the row's own colour."""
        label = int(np.searchsorted(self.classes, y[row]))
        color = PIN_COLOR if self.scaled else LABEL_COLORS[label % len(LABEL_COLORS)]
        p = self.p
        return PinMarks(
            self.kind,
            self.axes,
            self.texts,
            p.tag,
            row,
            p.neighbours,
            p.partner,
            color,
            sphere=view == "sphere",
        )

    def cd(self, rows: np.ndarray) -> np.ndarray:
        """``customdata`` of ``rows``: ``(m, 2)`` of (row, the panel's tag)."""
        return customdata(rows, self.p.tag)

    def traces(self, frame: int, first: bool) -> list[Any]:
        P, panel = self.p.points[frame], self.p
        out: list[Any] = []
        if self.view == "sphere":
            out.append(_sphere_surface(self.axes))
        if len(self.dim_rows):
            out.append(
                self.kind(
                    **coords(P, self.dim_rows),
                    mode="markers",
                    name="not highlighted",
                    marker={"size": self.size * 0.8, "color": DIMMED},
                    opacity=DIMMED_OPACITY,
                    customdata=self.cd(self.dim_rows),
                    showlegend=first,
                    legendgroup="not highlighted",
                    **hover_args(self.texts, self.dim_rows),
                    **self.axes,
                )
            )
        y = np.asarray(panel.labels)
        for i, rows in enumerate(self.groups):
            if self.scaled:
                marker = {
                    "size": self.size,
                    "color": np.searchsorted(self.classes, y[rows]),
                    "colorscale": "Turbo",
                    "colorbar": {"title": {"text": self.legend_title}},
                }
                name = self.legend_title
            else:
                label = _name(self.classes[i], panel.names)
                marker = {"size": self.size, "color": LABEL_COLORS[i % len(LABEL_COLORS)]}
                name = self.prefix + label
            out.append(
                self.kind(
                    **coords(P, rows),
                    mode="markers",
                    name=name,
                    legendgroup=name,
                    showlegend=(first or self.own_legend) and not self.scaled,
                    marker=marker,
                    customdata=self.cd(rows),
                    **hover_args(self.texts, rows),
                    **self.axes,
                )
            )
        if self.named:
            out.append(
                self.kind(
                    **self._names(P),
                    mode="text",
                    name="names of the clusters",
                    textfont={
                        "size": 18,
                        "color": [
                            LABEL_COLORS[i % len(LABEL_COLORS)] for i in range(len(self.groups))
                        ],
                    },
                    hoverinfo="skip",
                    showlegend=False,
                    **self.axes,
                )
            )
        if self.pin is not None:
            out.extend(self.pin.traces(P, frame, first))
        return out

    def _names(self, P: np.ndarray) -> dict[str, Any]:
        """Where each label's name goes in the frame's points ``P``, and its text: on the
        mean of its highlighted points (on a sphere or circle, just outside it in that
        direction), shown only where the label forms a cluster, its points on average
        closer to their mean than :data:`CLUSTER_SPREAD` times the points' overall
        spread (a name on a label spread everywhere, or on a run collapsed to one spot,
        would point nowhere)."""
        shown = np.concatenate(list(self.groups))
        overall = _spread(P[shown]) if len(shown) > 1 else 0.0
        centres = np.zeros((len(self.groups), P.shape[1]))
        texts = []
        for i, rows in enumerate(self.groups):
            pts = P[rows]
            if len(rows) == 0:
                texts.append("")
                continue
            centre = pts.mean(axis=0)
            if self.view != "plane" and np.linalg.norm(centre) > 0:
                # just outside the sphere, inside the scene's ±1.1 box (at 1.15 a name at the
                # sphere's edge was clipped by it: "0" showed as its left half)
                centre = 1.07 * centre / np.linalg.norm(centre)
            centres[i] = centre
            cluster = len(rows) > 1 and _spread(pts) <= CLUSTER_SPREAD * overall
            texts.append(_name(self.classes[i], self.p.names) if cluster else "")
        return {**coords(centres, np.arange(len(centres))), "text": texts}

    def frame_data(self, frame: int) -> list[dict[str, Any]]:
        """What changes in a frame: coordinates, and which rows the neighbour marks show."""
        P = self.p.points[frame]
        out: list[dict[str, Any]] = []
        if self.view == "sphere":
            out.append({})  # the surface stays
        if len(self.dim_rows):
            out.append(coords(P, self.dim_rows))
        out.extend(coords(P, rows) for rows in self.groups)
        if self.named:
            out.append(self._names(P))
        if self.pin is not None:
            out.extend(self.pin.updates(P, frame))
        kind = {go.Scatter3d: "scatter3d", go.Scattergl: "scattergl"}.get(self.kind, "scatter")
        return [{"type": kind, **d} if d else d for d in out]


CLUSTER_SPREAD = 0.5
"""A label's name is drawn on its points (:class:`_Builder`) once their mean distance to
their mean is at most this fraction of all the highlighted points' mean distance to theirs."""


def _spread(pts: np.ndarray) -> float:
    """The mean distance of ``pts`` ``(m, dims)`` to their mean."""
    return float(np.linalg.norm(pts - pts.mean(axis=0), axis=1).mean())


def _sphere_surface(axes: Mapping[str, str] | None = None, resolution: int = 36) -> go.Surface:
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
        **(axes or {}),
    )


def _panel_axes(view: View, p: int) -> dict[str, str]:
    suffix = "" if p == 0 else str(p + 1)
    return (
        {"scene": f"scene{suffix}"}
        if view == "sphere"
        else {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
    )


def _plane_range(panels: Sequence[Panel], j: int) -> list[float]:
    """One range for coordinate ``j`` over every frame (the partners' places too), 6 %
    padding."""
    values = np.concatenate(
        [p[:, j] for panel in panels for p in panel.points]
        + [np.asarray([q[j] for q in panel.partner if np.isfinite(q[j])]) for panel in panels]
    )
    lo, hi = float(values.min()), float(values.max())
    pad = 0.06 * (hi - lo) if hi > lo else 1.0
    return [lo - pad, hi + pad]


def _farther(camera: Mapping[str, Any], factor: float) -> dict[str, Any]:
    """``camera`` with its eye ``factor`` times as far (a narrow scene crops the sphere)."""
    return {**camera, "eye": {k: v * factor for k, v in camera["eye"].items()}}


def _layout(
    panels: Sequence[Panel], view: View, axis_titles: tuple[str, str], legend_title: str
) -> dict[str, Any]:
    count = len(panels)
    width = (1.0 - 0.04 * (count - 1)) / count
    domains = [[p * (width + 0.04), p * (width + 0.04) + width] for p in range(count)]
    layout: dict[str, Any] = {
        "legend": {"title": {"text": legend_title}, "itemsizing": "constant"},
        "height": 560 if view == "sphere" else 480,
        "margin": {"l": 0 if view == "sphere" else 50, "r": 20, "t": 50, "b": 10},
        "uirevision": view,  # keep the user's camera or zoom across page runs
    }
    if view == "sphere":
        axis = {
            "range": list(SPHERE_RANGE),
            "autorange": False,
            "showbackground": False,
            "showgrid": False,
            "zeroline": False,
            "showticklabels": False,
            "showspikes": False,  # no lines from a hovered point to the walls
            "title": {"text": ""},
        }
        camera = SPHERE_CAMERA if count == 1 else _farther(SPHERE_CAMERA, 1.25)
        for p, dom in enumerate(domains):
            layout["scene" + ("" if p == 0 else str(p + 1))] = {
                "domain": {"x": dom, "y": [0, 1]},
                "xaxis": axis,
                "yaxis": axis,
                "zaxis": axis,
                "aspectmode": "cube",
                "camera": camera,
                "dragmode": "turntable",
            }
    for p, dom in enumerate(domains if view != "sphere" else []):
        suffix = "" if p == 0 else str(p + 1)
        if view == "circle":
            xr = yr = list(CIRCLE_RANGE)
            titles = ("z₁", "z₂")
        else:
            xr, yr = _plane_range([panels[p]], 0), _plane_range([panels[p]], 1)
            titles = axis_titles
        layout["xaxis" + suffix] = {
            "domain": dom,
            "range": xr,
            "autorange": False,
            "zeroline": False,
            "title": {"text": titles[0]},
            "anchor": "y" + suffix,
        }
        layout["yaxis" + suffix] = {
            "range": yr,
            "autorange": False,
            "zeroline": False,
            "title": {"text": titles[1]},
            "anchor": "x" + suffix,
            # one unit is as long across as up (a PCA's distances are faithful only so; a
            # disk drew as an ellipse 1.5x taller than wide): plotly widens a range to fit
            "scaleanchor": "x" + suffix,
            "scaleratio": 1,
        }
    if view == "circle":
        layout["shapes"] = [
            {
                "type": "circle",
                "xref": "x" + ("" if p == 0 else str(p + 1)),
                "yref": "y" + ("" if p == 0 else str(p + 1)),
                "x0": -1,
                "y0": -1,
                "x1": 1,
                "y1": 1,
                "line": {"color": "rgba(80,80,80,0.35)", "width": 1},
            }
            for p in range(count)
        ]
    if count > 1:
        layout["annotations"] = [
            {
                "text": f"<b>{panel.title}</b>",
                "xref": "paper",
                "yref": "paper",
                "x": (dom[0] + dom[1]) / 2,
                "y": 1.0,
                "yanchor": "bottom",
                "showarrow": False,
                "font": {"size": 13},
            }
            for panel, dom in zip(panels, domains, strict=True)
        ]
    return layout


def explorer_figure(
    panels: Sequence[Panel],
    *,
    view: View,
    frame_names: Sequence[str] = ("",),
    frame_titles: Sequence[str] | None = None,
    start: int = 0,
    legend_title: str = "class",
    axis_titles: tuple[str, str] = ("component 1", "component 2"),
    frame_ms: int = 600,
    frame_prefix: str = "",
) -> go.Figure:
    """Runs' points side by side, one :class:`Panel` each, through one or more frames.

    ``view`` is ``"sphere"`` (3-D points on a faint unit sphere, one scene per panel with
    the same camera and ``[-1.1, 1.1]`` ranges), ``"circle"`` (2-D points and the unit
    circle) or ``"plane"`` (a 2-D projection). With several frames (one per snapshot), a
    ▶ / ❚❚ button and a slider play them in the browser with no server round trip; frames
    change only point positions (float32), the neighbour marks and the clusters' names,
    never the axes or the camera, so the picture stays steady. Every point trace's
    ``customdata`` is each point's row; a label's name shows on its points once they
    gather (:data:`CLUSTER_SPREAD`).

    Args:
        panels: one or two panels with the same number of frames.
        frame_names: the slider's label of each frame (``"30"``); ``frame_prefix`` goes
            before the current one's (``"step "``).
        frame_titles: the figure's title in each frame (default: the names).
        start: the frame shown first.
        legend_title: what the colours are (``"class"``, ``"domain"``).
        axis_titles: of a ``"plane"`` view.
    """
    dims = 3 if view == "sphere" else 2
    n_frames = len(frame_names)
    checked = [panel.checked(dims, n_frames) for panel in panels]
    titles = list(frame_titles) if frame_titles is not None else list(frame_names)
    k0 = min(max(int(start), 0), n_frames - 1)
    builders = [
        _Builder(panel, view, legend_title, _panel_axes(view, p)) for p, panel in enumerate(checked)
    ]
    # Panels whose colours name other classes (runs on other data) get legends of their
    # own, each entry led by its run: one legend, the first run's, named the second's too.
    own = len({b.legend_key() for b in builders}) > 1
    for b in builders:
        b.prefix, b.own_legend = (f"{b.p.title}: ", True) if own else ("", False)
    traces = [t for p, b in enumerate(builders) for t in b.traces(k0, first=p == 0)]
    layout = _layout(checked, view, axis_titles, legend_title)
    layout["title"] = {"text": titles[k0]}
    if n_frames == 1:
        return go.Figure(data=traces, layout=layout)
    frames = []
    for f in range(n_frames):
        updates = [d for b in builders for d in b.frame_data(f)]  # one per trace, {} unchanged
        moved = [i for i, d in enumerate(updates) if d]
        frames.append(
            go.Frame(
                data=[updates[i] for i in moved],
                traces=moved,
                name=frame_names[f],
                layout={"title": {"text": titles[f]}},
            )
        )
    below = 20 if view == "sphere" else 60
    layout.update(player_controls(frame_names, k0, frame_ms, frame_prefix, below))
    layout["height"] += 70 + below + BUTTON_ROW
    layout["margin"]["b"] = 80 + below + BUTTON_ROW
    return go.Figure(data=traces, layout=layout, frames=frames)


# ------------------------------------------------------------------ one snapshot, one run


def projection_figure(
    xy: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
    axis_titles: tuple[str, str] = ("component 1", "component 2"),
    narrow: bool = False,
) -> go.Figure:
    """A 2-D projection ``xy`` ``(n, 2)`` (PCA, UMAP, t-SNE) as a scatter (``narrow``: for
    half a page, see :func:`embedding_figure`)."""
    panel = Panel(title, [_points(xy, 2, "xy")], labels, names)
    fig = explorer_figure(
        [panel],
        view="plane",
        frame_titles=[title],
        legend_title=legend_title,
        axis_titles=axis_titles,
    )
    return _narrowed(fig, "plane") if narrow else fig


def embedding_figure(
    z: Any,
    labels: Any,
    names: Sequence[str] | None = None,
    *,
    legend_title: str = "class",
    title: str = "",
    narrow: bool = False,
) -> go.Figure:
    """The native picture of normalised embeddings ``ẑ = z / ||z||``: the unit circle for
    ``(n, 2)``, a faint unit sphere (one WebGL scene) for ``(n, 3)``; other widths need a
    projection (:func:`projection_figure`). Rows are L2-normalised here, so a raw embedding
    is drawn by its direction, on the circle or sphere (one of norm 13 was a stray dot far
    outside the sphere); an all-zero row, which has none, is a ``ValueError`` naming ``z``.

    ``narrow``: for a column of half a page, where a legend at the side leaves the sphere's
    scene taller than wide and the camera crops its sides: the legend goes under the
    picture, in rows, and the sphere's camera steps back."""
    given = floats(z)  # (one copy of a tensor, not one per look)
    dims = given.shape[-1]
    if dims not in (2, 3):
        raise ValueError(f"z must have 2 or 3 columns to draw natively, got {dims}; project it")
    points = _points(given, dims, "z")
    norms = np.linalg.norm(points, axis=1, keepdims=True)  # (n, 1)
    if not np.isfinite(points).all() or (norms == 0).any():
        raise ValueError("z must be finite with no all-zero row (a row's direction is drawn)")
    panel = Panel(title, [points / norms], labels, names)
    view: View = "sphere" if dims == 3 else "circle"
    fig = explorer_figure([panel], view=view, frame_titles=[title], legend_title=legend_title)
    return _narrowed(fig, view) if narrow else fig


def _narrowed(fig: go.Figure, view: View) -> go.Figure:
    """``fig`` laid out for half a page: legend in rows under the plot, the sphere's camera
    farther (:data:`NARROW_CAMERA_FACTOR`) and the margins trimmed."""
    fig.update_layout(
        margin={"l": 0 if view == "sphere" else 50, "r": 0},
        height=500 if view == "sphere" else 480,
    )
    if view == "sphere":  # a scene has no x axis: the legend just under the picture
        fig.update_layout(
            legend={"orientation": "h", "yanchor": "top", "y": -0.02, "x": 0.0, "xanchor": "left"}
        )
        fig.update_scenes(camera=_farther(SPHERE_CAMERA, NARROW_CAMERA_FACTOR))
    else:  # under the x axis's ticks and title, not on them (larger fonts included)
        legend_below(fig, per_row=NARROW_LEGEND_PER_ROW)
    return fig


def _points(x: Any, width: int, name: str) -> np.ndarray:
    """``x`` as a float ``(n, width)`` array (``ValueError`` naming ``name`` otherwise)."""
    P = floats(x)
    if P.ndim != 2 or P.shape[1] != width:
        raise ValueError(f"{name} must have shape (n, {width}), got {P.shape}")
    return P
