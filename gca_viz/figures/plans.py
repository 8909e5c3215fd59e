r"""Figures of the plan lab and the entropy page: numpy arrays in, plotly figures out.

* :func:`matrix_heatmap`: a cost, kernel or plan with its row and column sums as bars beside
  it (and the target marginals ``μ``, ``ν`` as reference lines), optional log colour scale,
  downsampled above 256 x 256, optionally with a selectable cell layer.
* :func:`kl_curve`: ``KL(P_tgt || P^(k)) / n`` over the half-steps, marking the current ``k``;
  :func:`drop_marks`: its INCE and GCA-INCE levels and the drop (also on the half-step player).
* :func:`loss_bars`: the loss of every method on one batch.
* :func:`sweep_chart`, :func:`error_curves`: lines over ``ε`` or ``T``.

Nothing here imports streamlit; arrays are passed as numpy (sent as typed arrays).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go

from gca_viz.figures._arrays import floats
from gca_viz.figures._axes import log_axis
from gca_viz.figures._legend import legend_below
from gca_viz.figures._marks import positive_marks
from gca_viz.figures._marks import positive_marks_words as positive_marks_words  # (for captions)
from gca_viz.lab.plans import display_factor, downsample

PLAN_COLORSCALE = "Viridis"
"""Colour scale of non-negative masses: kernels, plans, targets."""
COST_COLORSCALE = "Cividis"
"""Colour scale of costs."""
COLORS = {
    "row": "#2f6fde",  # row steps, row sums
    "col": "#e07b39",  # column steps, column sums
    "ref": "#1f2430",  # reference marginals, predictions
    "kernel": "#8a8f98",  # P^(0) = K
    "ince": "#2f6fde",
    "gca": "#1b9e77",
    "unbalanced": "#c2410c",
    "other": "#9aa3b2",
}
"""The palette shared by the figures (matches the app theme's primary colour)."""
TEXT_COLORS = {**COLORS, "col": "#b45309", "gca": "#047857"}
"""The palette's colours for small text on white: as :data:`COLORS`, with the orange and the
green darkened to 5:1 and 5.5:1 contrast (3.0:1 and 3.4:1 as lines' colours: under the
4.5:1 that small text needs)."""
SELECT_TRACE = 1
"""Index of the transparent cell layer whose points a chart selection returns."""
_LOG_DECADES = 12.0  # log colour scales show at most this many decades below the maximum
_FONT = {"size": 13}


def _base_layout(title: str, height: int) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left"},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "font": _FONT,
        "plot_bgcolor": "white",
    }


def _block_mean(v: np.ndarray, f: int) -> np.ndarray:
    """Mean of consecutive blocks of ``f`` entries (the last block may be shorter)."""
    if f == 1:
        return v
    n = len(v)
    padded = np.full(-(-n // f) * f, np.nan)
    padded[:n] = v
    means: np.ndarray = np.nanmean(padded.reshape(-1, f), axis=1)
    return means


def matrix_heatmap(
    matrix: np.ndarray,
    *,
    title: str,
    value_label: str,
    marginals: bool = True,
    row_ref: np.ndarray | None = None,
    col_ref: np.ndarray | None = None,
    log: bool = False,
    zrange: tuple[float, float] | None = None,
    colorscale: str = PLAN_COLORSCALE,
    selectable: bool = False,
    marked: tuple[int, int] | None = None,
    positives: np.ndarray | None = None,
    max_size: int = 256,
    height: int = 560,
) -> go.Figure:
    """A matrix as a heatmap (row 0 at the top), its row sums on the right and column sums
    on top.

    Args:
        matrix: ``(n, m)`` values; ``inf``/``NaN`` entries (excluded pairs) are left blank.
        title: figure title. value_label: the colour bar's label, e.g. ``"P_ij"``.
        marginals: draw the row sums ``P 1`` and column sums ``P^T 1`` (finite entries) as bars.
        row_ref, col_ref: ``(n,)``, ``(m,)`` reference marginals ``μ``, ``ν`` drawn as lines.
        log: colour by ``log10`` of the value, from the smallest positive value (at most 12
            decades below the maximum) to the largest; zeros blank. A matrix with a single
            positive value (the pair target) has no colour bar: there is no range to read.
        zrange: fixed ``(min, max)`` of the colour scale in value units (shared by frames).
        colorscale: plotly colour scale name.
        selectable: add a transparent layer of points, one per displayed cell (trace
            :data:`SELECT_TRACE`, which also carries the hover labels): heatmaps emit no
            selection events in Streamlit, points do, with ``x = j`` and ``y = i``.
        marked: ``(i, j)`` cell to outline.
        positives: ``(n,)`` column ``pos(i)`` of each row's positive pair: those cells are
            marked (open squares, or on cells under 4 px two lines either side of each run
            of them; :func:`positive_marks_words` names which), the entries
            ``P_{i,pos(i)}`` that InfoNCE reads.
        max_size: larger matrices are block-averaged (:func:`gca_viz.lab.downsample`).
        height: figure height in pixels.
    """
    M = floats(matrix)
    f = display_factor(M.shape, max_size)
    shown = downsample(M, max_size)  # (rows, cols)
    shown = np.where(np.isfinite(shown), shown, np.nan)  # excluded pairs are left blank
    rows, cols = shown.shape
    xs, ys = np.arange(cols) * f, np.arange(rows) * f  # original index of each block
    finite = np.isfinite(shown)
    lo, hi = (
        zrange
        if zrange is not None
        else (
            float(shown[finite].min()) if finite.any() else 0.0,
            float(shown[finite].max()) if finite.any() else 1.0,
        )
    )
    single = False  # one positive value only, on a log scale
    if log:
        top = np.log10(hi) if hi > 0 else 0.0
        with np.errstate(divide="ignore", invalid="ignore"):
            z = np.where(shown > 0, np.log10(np.where(shown > 0, shown, 1.0)), np.nan)
        z = np.maximum(z, top - _LOG_DECADES)
        if zrange is None:  # the smallest positive value, not a zero (left blank)
            positive = shown[finite & (shown > 0)]
            lo = float(positive.min()) if positive.size else 0.0
        zmin, zmax = max(np.log10(lo) if lo > 0 else -np.inf, top - _LOG_DECADES), top
        if zmin >= zmax:  # one positive value (a pair target): a decade below it
            zmin = zmax - 1.0
            single = True  # (its colour bar, -1 to 0, read as a range the matrix has)
        bar_title = f"log₁₀ {value_label}"
    else:
        z, zmin, zmax, bar_title = shown, lo, hi, value_label
    block = f"{f}×{f} block mean, " if f > 1 else ""
    hover = f"i = %{{y}}, j = %{{x}}<br>{block}{bar_title} = %{{customdata:.4g}}<extra></extra>"
    heat = go.Heatmap(
        z=z.astype(np.float32),
        x=xs,
        y=ys,
        colorscale=colorscale,
        zmin=zmin,
        zmax=zmax,
        showscale=not single,  # (every drawn cell is that value: its hover says which)
        colorbar={
            "title": {"text": bar_title, "side": "right"},
            "x": 1.02,
            "xanchor": "left",
            "len": 0.8 if marginals else 1.0,
            "y": 0.4 if marginals else 0.5,
        },
        hovertemplate=hover.replace("customdata", "z"),
        hoverinfo="skip" if selectable else None,  # the cell layer shows the hover instead
        hoverongaps=False,
        xaxis="x",
        yaxis="y",
    )
    traces: list[Any] = [heat]
    if selectable:
        jj, ii = np.meshgrid(xs, ys)  # (rows, cols) each
        index_type = np.uint8 if max(xs[-1], ys[-1]) < 256 else np.uint16  # small payload
        traces.append(
            go.Scattergl(
                x=jj.ravel().astype(index_type),
                y=ii.ravel().astype(index_type),
                mode="markers",
                customdata=z.ravel().astype(np.float32),
                marker={"size": max(3, 400 // max(rows, cols)), "color": "rgba(0,0,0,0)"},
                selected={"marker": {"color": "rgba(255,255,255,0.9)"}},
                unselected={"marker": {"opacity": 0}},
                hovertemplate=hover,
                showlegend=False,
                name="cells",
                xaxis="x",
                yaxis="y",
            )
        )
    if positives is not None:
        traces.append(positive_marks(np.asarray(positives), f, rows, height))
    layout = _base_layout(title, height)
    layout["margin"] = {"l": 60, "r": 90, "t": 60, "b": 50}
    main = [0.0, 0.8] if marginals else [0.0, 1.0]
    layout.update(
        xaxis={
            "domain": main,
            "title": "column j",
            "range": [xs[0] - f / 2, xs[-1] + f / 2],
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "domain": main,
            "title": "row i",
            "range": [ys[-1] + f / 2, ys[0] - f / 2],
            "showgrid": False,
            "zeroline": False,
        },
        showlegend=False,
        bargap=0,
    )
    if marginals:
        finite_M = np.where(np.isfinite(M), M, 0.0)
        row_sums = _block_mean(finite_M.sum(1), f)
        col_sums = _block_mean(finite_M.sum(0), f)
        traces += [
            go.Bar(
                x=xs,
                y=col_sums,
                marker_color=COLORS["col"],
                xaxis="x",
                yaxis="y2",
                hovertemplate="j = %{x}: column sum %{y:.4g}<extra></extra>",
            ),
            go.Bar(
                x=row_sums,
                y=ys,
                orientation="h",
                marker_color=COLORS["row"],
                xaxis="x2",
                yaxis="y",
                hovertemplate="i = %{y}: row sum %{x:.4g}<extra></extra>",
            ),
        ]
        if col_ref is not None:
            traces.append(_ref_line(xs, _block_mean(np.asarray(col_ref, float), f), "ν", True))
        if row_ref is not None:
            traces.append(_ref_line(ys, _block_mean(np.asarray(row_ref, float), f), "μ", False))
        layout.update(
            xaxis2={  # a strip a fifth of the width: two upright ticks (three were
                # rotated and squashed together: "0 10 20")
                "domain": [0.83, 1.0],
                "title": "row sum",
                "rangemode": "tozero",
                "nticks": 2,
                "tickangle": 0,
                "gridcolor": "#e5e7eb",
            },
            yaxis2={
                "domain": [0.83, 1.0],
                "title": "column sum",
                "rangemode": "tozero",
                "nticks": 3,
                "gridcolor": "#e5e7eb",
            },
        )
    if marked is not None:
        i, j = (int(v) // f * f for v in marked)
        layout["shapes"] = [
            {
                "type": "rect",
                "xref": "x",
                "yref": "y",
                "x0": j - f / 2,
                "x1": j + f / 2,
                "y0": i - f / 2,
                "y1": i + f / 2,
                "line": {"color": "#e11d48", "width": 2},
            }
        ]
    fig = go.Figure(data=traces, layout=layout)
    if selectable:
        fig.update_layout(clickmode="event+select", dragmode="pan")
    return fig


def _ref_line(pos: np.ndarray, ref: np.ndarray, name: str, columns: bool) -> go.Scatter:
    """A dashed reference marginal (``μ`` beside the row sums, ``ν`` above the columns)."""
    xy = (
        {"x": pos, "y": ref, "xaxis": "x", "yaxis": "y2"}
        if columns
        else {"x": ref, "y": pos, "xaxis": "x2", "yaxis": "y"}
    )
    return go.Scatter(
        **xy,
        mode="lines",
        line={"color": COLORS["ref"], "dash": "dash", "width": 1.5},
        name=name,
        hovertemplate=f"{name} = %{{{'y' if columns else 'x'}:.4g}}<extra></extra>",
    )


def kl_curve(
    kl: np.ndarray,
    current: int | None = None,
    *,
    height: int = 380,
    large: bool = False,
    title: str = "KL(P_tgt ‖ P⁽ᵏ⁾) / n over the half-steps",
) -> go.Figure:
    """``KL(P_tgt || P^(k)) / n`` for the half-steps ``k = 1..2T``, drawn so that the drop
    from INCE (``k = 1``) to GCA-INCE (``k = 2T``) is what the eye sees.

    Row steps (odd ``k``) are circles, column steps (even ``k``) diamonds. Dashed lines
    mark INCE ``= KL(P_tgt || P^(1)) / n`` and GCA-INCE ``= KL(P_tgt || P^(2T)) / n``; their
    labels (with the drop, absolute and relative) sit clear of the markers, above INCE and
    below GCA-INCE, where the theorem leaves no half-step, and an arrow beside the last
    half-step spans the drop. The kernel ``k = 0`` is left off the axis: its KL is often
    20 times INCE's and would flatten the curve; a note at the top gives its value. The
    current ``k`` is ringed (or named in that note when it is 0).

    Args:
        kl: ``(2T + 1,)`` values, ``kl[k]`` for ``k = 0..2T`` (non-finite ones, from
            underflowed plans, are left out).
        current: the half-step ``k`` to mark.
        height: figure height in pixels. large: projector-sized type and markers.
        title: the figure title.
    """
    y = floats(kl)
    y = np.where(np.isfinite(y), y, np.nan)
    k = np.arange(len(y))
    two_t = len(y) - 1
    size = 12 if large else 9
    font = {"size": 16 if large else 13}
    traces: list[Any] = [
        go.Scatter(
            x=k[1:],
            y=y[1:],
            mode="lines",
            line={"color": COLORS["other"], "width": 2},
            hoverinfo="skip",
            showlegend=False,
        ),
        go.Scatter(
            x=k[1::2],
            y=y[1::2],
            mode="markers",
            name="row step (odd k)",
            marker={"color": COLORS["row"], "size": size},
            hovertemplate="k = %{x}: %{y:.6g}<extra></extra>",
        ),
        go.Scatter(
            x=k[2::2],
            y=y[2::2],
            mode="markers",
            name="column step (even k)",
            marker={"color": COLORS["col"], "size": size, "symbol": "diamond"},
            hovertemplate="k = %{x}: %{y:.6g}<extra></extra>",
        ),
    ]
    layout = _base_layout(title, height)
    layout["font"] = font
    layout["margin"] = {"l": 70, "r": 25, "t": 80, "b": 50}
    shapes, notes, y_range = drop_marks(y, "x", "y", font_size=font["size"])
    if len(y) and np.isfinite(y[0]):
        mark = " ◀ current" if current == 0 else ""
        notes.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1.0,
                "yanchor": "bottom",
                "xanchor": "left",
                "text": f"k = 0 (the kernel K): {y[0]:.4g}, above this chart{mark}",
                "showarrow": False,
                "font": {"size": font["size"] - 2, "color": "#6b7280"},
            }
        )
    if not np.isfinite(y[1:]).any():  # an empty chart says why
        notes.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0.5,
                "y": 0.5,
                "text": "No finite KL to draw: every plan is 0 where the target has mass<br>"
                "(the target puts mass on pairs the cost excludes, C = +inf)",
                "showarrow": False,
                "font": {"size": font["size"], "color": "#b91c1c"},
            }
        )
    if current is not None and 1 <= current < len(y):
        shapes.append(
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": current,
                "x1": current,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#e11d48", "dash": "dot", "width": 1.5},
            }
        )
        traces.append(
            go.Scatter(
                x=[current],
                y=[y[current]],
                mode="markers",
                name=f"current k = {current}",
                marker={
                    "color": "rgba(0,0,0,0)",
                    "size": size + 8,
                    "line": {"color": "#e11d48", "width": 2.5},
                },
            )
        )
    layout.update(
        xaxis={
            "title": "half-step k",
            "range": [0.4, two_t + 1.0],
            "dtick": max(1, two_t // 10),
            "gridcolor": "#e5e7eb",
        },
        yaxis={"title": "KL per row (nats)", "gridcolor": "#e5e7eb", "range": y_range},
        shapes=shapes,
        annotations=notes,
    )
    return legend_below(go.Figure(data=traces, layout=layout))


def drop_marks(
    kl: np.ndarray, xref: str, yref: str, *, font_size: int = 13
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[float] | None]:
    """The drop from INCE to GCA-INCE on a KL-over-half-steps chart: dashed lines at
    ``INCE = KL(P_tgt || P^(1)) / n`` and ``GCA-INCE = KL(P_tgt || P^(2T)) / n`` across the
    axes ``xref``/``yref`` (e.g. ``"x2"``, ``"y2"``), labelled at their right end above INCE
    and below GCA-INCE (the drop, absolute and relative, in GCA-INCE's label), where the
    theorem leaves no half-step, and an arrow at ``k = 2T + 0.6`` spanning the drop.

    Args:
        kl: ``(2T + 1,)`` values, ``kl[k]`` for ``k = 0..2T`` (NaN where not finite).
        xref, yref: the axes drawn on. font_size: the labels' size.

    Returns:
        ``(shapes, annotations, y_range)``: the y range leaves room for the labels, or
        ``None`` (and no marks) when INCE or GCA-INCE is not finite or ``2T < 2``.
    """
    y = floats(kl)
    two_t = len(y) - 1
    ince = y[1] if two_t >= 1 else np.nan
    gca = y[two_t] if two_t >= 2 else np.nan
    if not (np.isfinite(ince) and np.isfinite(gca)):
        return [], [], None
    drop = gca - ince
    rel = f", {drop / ince:+.1%}" if ince > 0 else ""
    span = max(float(np.nanmax(y[1:]) - np.nanmin(y[1:])), 1e-3 * max(abs(ince), 1e-12))
    # Room above INCE and below GCA-INCE for the labels: every half-step lies between the
    # two lines (the theorem), so the labels there never cover a marker.
    y_range = [float(np.nanmin(y[1:])) - 0.3 * span, float(np.nanmax(y[1:])) + 0.22 * span]
    shapes: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for value, text, color, ink, anchor in (
        (ince, f"INCE {ince:.4f}", COLORS["ince"], TEXT_COLORS["ince"], "bottom"),
        (gca, f"GCA-INCE {gca:.4f} ({drop:+.2g}{rel})", COLORS["gca"], TEXT_COLORS["gca"], "top"),
    ):
        shapes.append(_hline(value, color, xref=f"{xref} domain", yref=yref))
        notes.append(
            {
                "xref": f"{xref} domain",
                "yref": yref,
                "x": 1.0,
                "y": value,
                "text": text,
                "showarrow": False,
                "xanchor": "right",
                "yanchor": anchor,
                # clear of the markers on the line (a projector's are 8 px in radius)
                "yshift": 9 if anchor == "bottom" else -9,
                "font": {"size": font_size, "color": ink},
            }
        )
    if ince > gca:
        notes.append(  # the drop, an arrow right of the last half-step
            {
                "x": two_t + 0.6,
                "y": gca,
                "ax": two_t + 0.6,
                "ay": ince,
                "xref": xref,
                "yref": yref,
                "axref": xref,
                "ayref": yref,
                "showarrow": True,
                "arrowhead": 2,
                "arrowwidth": 2,
                "arrowcolor": COLORS["gca"],
                "text": "",
            }
        )
    return shapes, notes, y_range


def _hline(
    value: float,
    color: str,
    dash: str = "dash",
    width: float = 1.5,
    *,
    xref: str = "paper",
    yref: str = "y",
) -> dict[str, Any]:
    """A horizontal line across the plot (or the x axis ``xref``'s domain) at ``y = value``."""
    return {
        "type": "line",
        "xref": xref,
        "yref": yref,
        "x0": 0,
        "x1": 1,
        "y0": value,
        "y1": value,
        "line": {"color": color, "dash": dash, "width": width},
    }


def loss_bars(
    titles: Sequence[str],
    values: np.ndarray,
    *,
    highlight: Sequence[str] = ("INCE (InfoNCE)", "GCA-INCE"),
    height: int = 380,
) -> go.Figure:
    """Horizontal bars of one value per method (the highlighted ones in their colours).

    Args:
        titles: method titles, top to bottom. values: ``(len(titles),)`` loss values.
        highlight: titles drawn in the INCE and GCA colours.
    """
    vals = floats(values)
    palette = {highlight[0]: COLORS["ince"], highlight[-1]: COLORS["gca"]} if highlight else {}
    colors = [palette.get(t, COLORS["other"]) for t in titles]
    bar = go.Bar(
        x=vals,
        y=list(titles),
        orientation="h",
        marker_color=colors,
        text=[f"{v:.4g}" for v in vals],
        # a negative bar's value outside its end, in room the axis leaves for it: at "auto"
        # a short one's went left of the plot, onto the method names ("RINCE333" at 800 px)
        textposition=["outside" if v < 0 else "auto" for v in vals],
        cliponaxis=False,
        hovertemplate="%{y}: %{x:.6g}<extra></extra>",
    )
    finite = vals[np.isfinite(vals)]
    low = min(float(finite.min()), 0.0) if finite.size else 0.0
    high = max(float(finite.max()), 0.0) if finite.size else 0.0
    span = (high - low) or 1.0
    xaxis: dict[str, Any] = {
        "title": "loss (per row)",
        "zeroline": True,
        "zerolinecolor": "#9ca3af",
        "gridcolor": "#e5e7eb",
    }
    if low < 0:  # room for the negative bars' values: a quarter of the span (60 px of 240)
        xaxis["range"] = [low - 0.25 * span, high + 0.05 * span]
    layout = _base_layout("Loss of every method on this batch", height)
    layout.update(
        xaxis=xaxis,
        yaxis={"autorange": "reversed"},
        margin={"l": 130, "r": 20, "t": 60, "b": 50},
    )
    return go.Figure(data=[bar], layout=layout)


def sweep_chart(
    x: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    title: str,
    x_title: str,
    y_title: str,
    log_x: bool = True,
    log_y: bool = False,
    dashed: Sequence[str] = (),
    points: Sequence[str] = (),
    colors: Mapping[str, str] | None = None,
    references: Mapping[str, float] | None = None,
    ceiling: tuple[float, str] | None = None,
    height: int = 340,
) -> go.Figure:
    """Lines with markers over a swept parameter (``ε`` or ``T``).

    Args:
        x: ``(k,)`` parameter values. series: ``{name: (k,) values}``; ``NaN`` leaves a gap
            (or, with ``ceiling``, a triangle on the cap).
        title, x_title, y_title: labels (with units or symbols).
        log_x, log_y: logarithmic axes, every decade labelled (:func:`log_axis`).
            dashed: names drawn dashed without markers (predictions). points: names drawn
            as markers without a line (measurements that sit on a prediction's line, which
            a line of their own hid). colors: ``{name: colour}``.
        references: ``{label: y}`` horizontal dotted lines (limits such as ``log n``).
        ceiling: ``(y, label)``: the ``NaN`` values lie beyond ``y`` (sweeps that did not
            reach a tolerance within a cap of ``y``), drawn there as open triangles in a
            trace named ``label`` on a dotted line at ``y``, one at each ``x`` where any
            series is ``NaN``, not left out as gaps (a blank half of the chart said nothing
            of the values that were missing).

    On a log ``y`` axis, values ``<= 0`` (a distance that reached exactly 0) are left out as
    gaps, and a note under the chart says how many: plotly cannot place them, and drawing
    them broke the axis.
    """
    xs = floats(x)
    traces = []
    drawn = []  # the y values of every trace, for the ticks of a log y axis
    hidden = 0  # values <= 0 left out of a log y axis
    for idx, (name, values) in enumerate(series.items()):
        color = (colors or {}).get(name, _cycle(idx))
        is_dashed = name in dashed
        ys = floats(values)
        if log_y:
            drop = ys <= 0
            hidden += int(drop.sum())
            ys = np.where(drop, np.nan, ys)
        drawn.append(ys)
        traces.append(
            go.Scatter(
                x=xs,
                y=ys,
                name=name,
                mode="lines" if is_dashed else "markers" if name in points else "lines+markers",
                line={"color": color, "dash": "dash" if is_dashed else "solid", "width": 2},
                # each series its own marker shape: told apart without colour too
                marker={"size": 9 if name in points else 7, "symbol": SYMBOLS[idx % len(SYMBOLS)]},
                hovertemplate=f"{name}: %{{y:.4g}} at %{{x:.4g}}<extra></extra>",
            )
        )
    levels = dict(references or {})
    if ceiling is not None:
        top, label = ceiling
        beyond = np.zeros(xs.shape, dtype=bool)
        for values in series.values():
            beyond |= np.isnan(floats(values))
        if beyond.any():
            drawn.append(np.full(1, top))
            levels[f"cap: {top:g}"] = top
            traces.append(
                go.Scatter(
                    x=xs[beyond],
                    y=np.full(int(beyond.sum()), top),
                    name=label,
                    mode="markers",
                    marker={
                        "symbol": "triangle-up-open",
                        "size": 11,
                        "color": "#6b7280",
                        "line": {"width": 2},
                    },
                    hovertemplate=f"{label} at %{{x:.4g}}<extra></extra>",
                )
            )
    layout = _base_layout(title, height)
    layout.update(
        xaxis={"title": x_title, **_axis_type(log_x, xs), "gridcolor": "#e5e7eb"},
        yaxis={"title": y_title, **_axis_type(log_y, *drawn), "gridcolor": "#e5e7eb"},
    )
    shapes, notes = [], []
    for label, value in levels.items():
        shapes.append(_hline(value, "#6b7280", "dot", 1))
        notes.append(
            {
                "xref": "paper",
                "yref": "y",
                "x": 1,
                "y": value,
                "text": label,
                "showarrow": False,
                "xanchor": "right",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#6b7280"},
            }
        )
    if hidden:
        notes.append(
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "y": 1,
                "text": f"{hidden} point{'s' * (hidden > 1)} equal to 0: "
                "not drawn on the log scale",
                "showarrow": False,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 11, "color": "#6b7280"},
            }
        )
    layout["shapes"], layout["annotations"] = shapes, notes
    return legend_below(go.Figure(data=traces, layout=layout))


def error_curves(
    epsilons: np.ndarray,
    errors: Sequence[np.ndarray],
    *,
    tol: float,
    height: int = 340,
    max_curves: int = 6,
) -> go.Figure:
    """Relative marginal error after each Sinkhorn sweep, one line per ``ε``, on a semi-log
    plot (sweeps linear, error logarithmic): linear (geometric) convergence,
    ``err_t ≈ c r^t``, is a straight line whose slope is ``log10 r`` per sweep.

    Args:
        epsilons: ``(k,)`` values of ``ε``. errors: ``k`` arrays of per-sweep errors.
        tol: the tolerance, drawn as a dotted line.
        max_curves: at most this many lines, spread evenly over the ``ε`` (both ends kept):
            twelve shades of one colour scale could not be told apart on a projector, and
            their legend scrolled the largest ``ε`` out of view.
    """
    eps = floats(epsilons)
    if len(errors) != len(eps):
        raise ValueError(f"errors must hold one array per epsilon: {len(errors)} != {len(eps)}")
    keep = np.unique(np.round(np.linspace(0, len(eps) - 1, min(len(eps), max_curves))))
    eps, errors = eps[keep.astype(int)], [errors[int(i)] for i in keep]
    traces = []
    drawn = [np.array([tol], dtype=float)]  # the tolerance line and every curve
    shades = _shades(len(eps))
    for k, (e, err, color) in enumerate(zip(eps, errors, shades, strict=True)):
        y = floats(err)
        y = np.where(y > 0, y, np.nan)
        drawn.append(y)
        traces.append(
            go.Scatter(
                x=np.arange(1, len(y) + 1),
                y=y,
                mode="lines",
                name=f"ε = {e:.3g}",
                # a dash pattern per ε as well as a shade: told apart without colour too
                line={"color": color, "width": 2, "dash": DASHES[k % len(DASHES)]},
                hovertemplate=f"ε = {e:.3g}, sweep %{{x}}: %{{y:.3g}}<extra></extra>",
            )
        )
    layout = _base_layout("Relative marginal error after each sweep", height)
    layout.update(
        xaxis={"title": "sweep t", "type": "linear", "gridcolor": "#e5e7eb"},
        yaxis={
            "title": "‖P⁽²ᵗ⁾1 − μ‖₁ / Σμ",
            **log_axis(*drawn),
            "gridcolor": "#e5e7eb",
        },
        shapes=[
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": tol,
                "y1": tol,
                "line": {"color": "#6b7280", "dash": "dot", "width": 1},
            }
        ],
        legend={"font": {"size": 11}},
    )
    return go.Figure(data=traces, layout=layout)


def _axis_type(log: bool, *values: Any) -> dict[str, Any]:
    """A log axis over ``values`` with every decade labelled (:func:`log_axis`), or a
    linear axis whose small numbers read as powers of ten (plotly's default SI prefixes
    wrote 8e-4 as "800μ", on pages where μ is the row marginal)."""
    return log_axis(*values) if log else {"type": "linear", "exponentformat": "power"}


SYMBOLS = ("circle", "square", "diamond", "triangle-up", "x", "star")
"""Marker shapes of a chart's series, in turn: lines that colour alone told apart (an
accessibility review) differ in shape too."""
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
"""Dash patterns of a chart's lines without markers, in turn (see :data:`SYMBOLS`)."""


def _cycle(idx: int) -> str:
    palette = ("#2f6fde", "#1b9e77", "#e07b39", "#7c3aed", "#c2410c", "#0891b2")
    return palette[idx % len(palette)]


def _shades(k: int) -> list[str]:
    """``k`` colours sampled from Magma (dark = small ``ε``) up to 0.65, a pink-orange:
    each keeps 3:1 contrast on white, and neighbours stay apart (Viridis's dark end put
    ε = 0.02 and 0.0462 in one dark purple, 15 ΔE apart; Magma's six are 20 or more)."""
    from plotly.colors import sample_colorscale

    return list(sample_colorscale("Magma", list(np.linspace(0.0, 0.65, max(k, 2))[:k])))


def selected_cell(selection: Any, shape: tuple[int, int]) -> tuple[int, int] | None:
    """The cell ``(i, j)`` a chart selection on a selectable :func:`matrix_heatmap` points
    at (the last selected point of the cell layer), or ``None``.

    Args:
        selection: the ``selection`` of ``st.plotly_chart(..., on_select="rerun")``'s state:
            a mapping with ``"points"``, each holding ``x``, ``y`` and ``curve_number``.
        shape: ``(n, m)`` of the matrix, to reject points outside it.
    """
    points = (selection or {}).get("points") or []
    for point in reversed(list(points)):
        if point.get("curve_number", SELECT_TRACE) != SELECT_TRACE:
            continue
        try:
            i, j = round(float(point["y"])), round(float(point["x"]))
        except (KeyError, TypeError, ValueError):
            continue
        if 0 <= i < shape[0] and 0 <= j < shape[1]:
            return i, j
    return None


def sample_image(image: np.ndarray, size: int = 112) -> np.ndarray:
    """A ``(C, H, W)`` image in ``[0, 1]`` as ``uint8`` pixels enlarged to about ``size``
    pixels by pixel repetition (sharp pixels), ``(H', W')`` or ``(H', W', 3)``.

    One channel is ink: it is drawn dark on white (``255 · (1 − x)``), as the Geometry
    page's hover thumbnails and the Noisy views page's corrupted digits draw it (Plan lab
    drew its batch white on black, the same digit inverted from page to page); colour
    images are drawn as they are."""
    img = floats(image)
    if img.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {img.shape}")
    scale = max(1, size // max(img.shape[1:]))
    pix = np.clip(img, 0.0, 1.0).repeat(scale, axis=1).repeat(scale, axis=2)  # (C, H', W')
    if pix.shape[0] == 1:
        pix = 1.0 - pix
    out: np.ndarray = (pix * 255).round().astype(np.uint8)
    return out[0] if out.shape[0] == 1 else out[:3].transpose(1, 2, 0)
