"""A client-side animation of Sinkhorn's half-steps (numpy arrays in, plotly figures out;
nothing here imports streamlit).

* :func:`half_step_player`: ``P^(0) ... P^(2T)`` beside the KL curve, played in the browser,
  with the play controls of :mod:`gca_viz.figures._controls` (the Geometry explorer's too).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go

from gca_viz.figures._arrays import floats
from gca_viz.figures._axes import round_ticks
from gca_viz.figures._controls import BUTTON_ROW, play_frame_ms, player_controls
from gca_viz.figures._marks import positive_marks
from gca_viz.figures._narrow import when_narrow
from gca_viz.figures._strips import STRIP, marginal_ratios, misfit_words, strip_axis
from gca_viz.figures.plans import (
    _LOG_DECADES,
    COLORS,
    PLAN_COLORSCALE,
    TEXT_COLORS,
    _base_layout,
    drop_marks,
)
from gca_viz.lab.plans import display_factor, downsample

_SUPERSCRIPT = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


PLAYER_HEIGHT = 520
"""The half-step player's default height (px)."""


def half_step_player(
    plans: np.ndarray,
    kl: np.ndarray,
    *,
    log: bool = False,
    shared_scale: bool = False,
    positives: np.ndarray | None = None,
    start: int = 1,
    max_size: int = 128,
    frame_ms: int | None = None,
    height: int = PLAYER_HEIGHT,
) -> go.Figure:
    """The half-steps ``P^(0) ... P^(2T)`` as a client-side animation: the plan on the left,
    with its marginals beside it, ``KL(P_tgt || P^(k)) / n`` on the right with a marker that
    moves in step; a ▶ / ❚❚
    button and a slider over ``k`` play the frames in the browser with no server round trip
    (``frame_ms`` per frame; by default :func:`play_frame_ms`, a pace a class can follow).

    Each frame sends one heatmap (block-averaged to at most ``max_size`` a side, quantised
    to 256 levels of its colour range: uint8) and the marker's position; the colour range
    is each plan's own ``[0, max]`` (or the largest entry over all half-steps with
    ``shared_scale``); with ``log``, ``log10`` from the smallest entry of all half-steps
    (at most 12 decades below the maximum) to the maximum. The colour bar's ticks name the
    real values.

    The marginal strips show what each half-step fixes: right of the plan its row sums
    ``(P^(k) 1)_i / μ_i`` (blue), under it its column sums ``(P^(k)ᵀ 1)_j / ν_j`` (orange),
    as bars from 1, on one range for all ``k >= 1``. A row step (odd ``k``) makes every row
    bar vanish and leaves the columns off; a column step does the converse; the bars shrink
    as Sinkhorn converges. The targets are read from the plans: ``μ = P^(1) 1`` (exact after
    the first row step) and ``ν = P^(2)ᵀ 1``, so any balanced marginals work. The bars are
    block-averaged as the heatmap is.

    The KL panel carries :func:`gca_viz.figures.plans.drop_marks` (INCE's and GCA-INCE's
    levels, the drop between them and its arrow right of ``k = 2T``); the buttons have a row
    of their own above the slider (:data:`BUTTON_ROW` px on top of ``height``).

    Saved outside the app, pass ``auto_play=False``: ``fig.write_html(path, auto_play=False)``
    or ``fig.show(auto_play=False)`` (plotly's default plays every frame on opening, with
    transitions that blank the heatmap while they play; :func:`gca_viz.figures.write_html`
    does it).

    Args:
        plans: ``(2T + 1, n, m)`` plans, ``plans[k] = P^(k)``. kl: ``(2T + 1,)`` values.
        log, shared_scale: the colour scale. positives: ``(n,)`` column ``pos(i)`` of each
            row's positive, outlined. start: the frame shown first.
    """
    stack, kl_values = floats(plans), floats(kl)
    if stack.ndim != 3 or 0 in stack.shape:
        raise ValueError(
            f"plans must be the (2T + 1, n, m) stack of half-steps P^(0) ... P^(2T) "
            f"(gca_viz.lab.half_steps(...).plans), got shape {stack.shape}"
        )
    if kl_values.shape != (stack.shape[0],):
        raise ValueError(
            f"kl must hold one value per plan, shape ({stack.shape[0]},), got {kl_values.shape}"
        )
    y = np.where(np.isfinite(kl_values), kl_values, np.nan)
    n_frames = stack.shape[0]
    frame_ms = play_frame_ms(n_frames) if frame_ms is None else frame_ms
    f = display_factor(stack.shape[1:], max_size)
    shown = [downsample(p, max_size) for p in stack]  # each (rows, cols)
    rows, cols = shown[0].shape
    xs, ys = np.arange(cols) * f, np.arange(rows) * f
    top_all = float(np.nanmax(stack))
    # The log scale's floor: the smallest entry shown in any frame (one floor for all, so
    # that the frames compare), at most _LOG_DECADES below a frame's maximum.
    least = None
    if log:
        positive = [x[np.isfinite(x) & (x > 0)] for x in shown]
        if any(x.size for x in positive):
            least = float(np.log10(min(x.min() for x in positive if x.size)))

    def z_of(k: int) -> tuple[np.ndarray, float, float]:
        z = np.where(np.isfinite(shown[k]), shown[k], np.nan)
        hi = top_all if shared_scale else float(np.nanmax(z))
        if not log:
            return z.astype(np.float32), 0.0, hi
        with np.errstate(divide="ignore", invalid="ignore"):
            lz = np.where(z > 0, np.log10(np.where(z > 0, z, 1.0)), np.nan)
        top = np.log10(hi) if hi > 0 else 0.0
        floor = top - _LOG_DECADES if least is None else max(least, top - _LOG_DECADES)
        if floor >= top:  # one value everywhere
            floor = top - 1.0
        return np.maximum(lz, floor).astype(np.float32), floor, top

    def heat(k: int, placed: bool = False) -> go.Heatmap:
        """Frame ``k``'s plan; ``placed``: with the colour bar's position (the shown trace
        only: a frame that named it would undo the narrow layout's, see ``_narrow``)."""
        z, lo, hi = z_of(k)
        # Compact frames: each plan quantised to 256 levels of its colour range (uint8, a
        # quarter of float32's bytes); the colour bar's ticks carry the real values.
        width = hi - lo if hi > lo else 1.0
        level = np.round(255 * (np.nan_to_num(z, nan=lo) - lo) / width)
        values = np.asarray(round_ticks(lo, hi))  # round values, not fifths of the range
        ticks = 255 * (values - lo) / width
        name = "K" if k == 0 else "P"  # (frame 0 is the kernel: its bar said "P")
        unit = f"log₁₀ {name}" if log else name
        return go.Heatmap(
            z=np.clip(level, 0, 255).astype(np.uint8),
            x=xs,
            y=ys,
            zmin=0,
            zmax=255,
            colorscale=PLAN_COLORSCALE,
            colorbar={
                **({"x": 0.475, "xanchor": "left", "len": 0.9} if placed else {}),
                "thickness": 12,
                "title": {"text": f"{unit}<br><sub>{lo:.3g} … {hi:.3g}</sub>"},  # its range
                "tickvals": ticks,
                "ticktext": [f"{v:.3g}" for v in values],
            },
            hovertemplate=f"i = %{{y}}, j = %{{x}}: level %{{z}} of 255 ({unit} from "
            f"{lo:.3g} to {hi:.3g})<extra></extra>",
            xaxis="x",
            yaxis="y",
        )

    def marker(k: int) -> go.Scatter:
        return go.Scatter(
            x=[k],
            y=[y[k]],
            mode="markers",
            marker={"color": "rgba(0,0,0,0)", "size": 18, "line": {"color": "#e11d48", "width": 3}},
            name="current k",
            hoverinfo="skip",
            cliponaxis=False,  # the ring at the last k was cut in half by the axis's end
            xaxis="x2",
            yaxis="y2",
        )

    sums = marginal_ratios(stack, f)  # the strips' bars and words, every frame's

    def bars(k: int, rows: bool) -> go.Bar:
        """Frame ``k``'s row sums (right of the plan, horizontal) or column sums (under
        it) over their targets, as bars from 1."""
        index, misfit = (ys, sums.rows[k] - 1.0) if rows else (xs, sums.cols[k] - 1.0)
        what, target = ("row", "μ") if rows else ("column", "ν")
        return go.Bar(
            x=misfit if rows else index,
            y=index if rows else misfit,
            base=1.0,
            orientation="h" if rows else "v",
            width=f,
            marker={"color": COLORS["row" if rows else "col"], "line": {"width": 0}},
            name=f"{what} sums / {target}",
            hovertemplate=f"{what} %{{{'y' if rows else 'x'}}}: {what} sum / {target} = "
            f"%{{{'x' if rows else 'y'}:.4g}}<extra></extra>",
            xaxis="x3" if rows else "x",
            yaxis="y" if rows else "y3",
        )

    def misfit(k: int) -> go.Scatter:
        """Frame ``k``'s marginals in words, just above the plan's top-left corner."""
        words = "the kernel K: " if k == 0 else ""
        return go.Scatter(
            x=[xs[0] - f / 2],
            y=[ys[0] - f / 2],
            mode="text",
            text=[words + misfit_words(float(sums.row_off[k]), float(sums.col_off[k]))],
            textposition="top right",
            textfont={"size": 13, "color": COLORS["ref"]},
            cliponaxis=False,
            hoverinfo="skip",
            xaxis="x",
            yaxis="y",
        )

    k0 = min(max(int(start), 0), n_frames - 1)
    k = np.arange(n_frames)
    traces: list[Any] = [
        heat(k0, placed=True),
        go.Scatter(
            x=k[1:],
            y=y[1:],
            mode="lines+markers",
            line={"color": COLORS["other"], "width": 2},
            marker={"color": np.where(k[1:] % 2 == 1, COLORS["row"], COLORS["col"]), "size": 8},
            name="KL(P_tgt ‖ P⁽ᵏ⁾) / n",
            hovertemplate="k = %{x}: %{y:.6g}<extra></extra>",
            xaxis="x2",
            yaxis="y2",
        ),
        marker(k0),
    ]
    traces += [bars(k0, rows=True), bars(k0, rows=False), misfit(k0)]  # traces 3, 4 and 5
    if positives is not None:
        traces.append(positive_marks(np.asarray(positives), f, rows, height))

    scale = "log₁₀" if log else ("shared range" if shared_scale else "own range")
    # (short enough for a 540 px chart, a 1000 px window with the sidebar open: a plotly
    # title does not wrap, and "The half-steps ...: odd k row steps, even k column steps
    # (colour: own range)" was cut after "(colour:")
    title = (
        f"Half-steps P⁽⁰⁾ … P⁽{str(n_frames - 1).translate(_SUPERSCRIPT)}⁾: odd k rows, "
        f"even k columns (colour: {scale})"
    )
    # Frames change two traces and nothing in the layout: a layout change would make every
    # frame a full relayout (the slider's label names the current k).
    frames = [
        go.Frame(
            data=[heat(j), marker(j), bars(j, rows=True), bars(j, rows=False), misfit(j)],
            traces=[0, 2, 3, 4, 5],
            name=str(j),
        )
        for j in range(n_frames)
    ]
    # INCE's and GCA-INCE's levels, the drop's label and arrow, as on plans.kl_curve: the
    # theorem's picture stays in view while the plan plays (Plan lab drew that chart again
    # under the player to show it).
    # (14 px: the claim's numbers, 16 px on a projector; at 12 they read small from the back)
    drop_shapes, drop_notes, y_range = drop_marks(y, "x2", "y2", font_size=14)
    if y_range is None:
        finite = y[1:][np.isfinite(y[1:])]
        span = float(finite.max() - finite.min()) if finite.size else 1.0
        pad = (
            0.08 * span
            if span > 0
            else 1e-3 * max(abs(float(finite.max())) if finite.size else 1, 1e-12)
        )
        y_range = [float(finite.min()) - pad, float(finite.max()) + pad] if finite.size else None
    layout = _base_layout(title, height + BUTTON_ROW)  # (the buttons row adds to the figure)
    layout.update(
        margin={"l": 60, "r": 20, "t": 60, "b": 140 + BUTTON_ROW},
        showlegend=False,
        bargap=0.0,
        xaxis={
            "domain": [0.0, 0.36],
            "range": [xs[0] - f / 2, xs[-1] + f / 2],
            "title": None,  # the slider's label sits just below
            "anchor": "y3",  # the column numbers under the column strip
            "showgrid": False,
            "zeroline": False,
        },
        yaxis={
            "domain": [STRIP + 0.04, 1.0],
            "range": [ys[-1] + f / 2, ys[0] - f / 2],
            "title": "row i",
            "showgrid": False,
            "zeroline": False,
        },
        # the strips' axes: the row strip right of the plan (its title under its ticks,
        # beside the column strip: on top it ran into the figure's title), the column strip
        # under the plan
        xaxis3=strip_axis([0.372, 0.462], sums.row_range, "y", "P𝟙 / μ", COLORS["row"]),
        yaxis3=strip_axis([0.0, STRIP], sums.col_range, "x", "Pᵀ𝟙 / ν", TEXT_COLORS["col"]),
        xaxis2={
            "domain": [0.66, 1.0],
            "title": "half-step k",
            "range": [0.4, n_frames - 1 + 1.0],  # room right of k = 2T for the drop's arrow
            "gridcolor": "#e5e7eb",
            "anchor": "y2",
        },
        yaxis2={
            "domain": [0.0, 1.0],
            "title": {"text": "KL per row (nats)", "standoff": 4},  # (as plans.kl_curve)
            "range": y_range,
            "gridcolor": "#e5e7eb",
            "anchor": "x2",
        },
        shapes=[
            *drop_shapes,
            # the strips' reference: a sum on its target draws no bar, only this line
            {
                "type": "line",
                "xref": "x3",
                "yref": "y domain",
                "x0": 1,
                "x1": 1,
                "y0": 0,
                "y1": 1,
                "line": {"color": COLORS["ref"], "width": 1},
            },
            {
                "type": "line",
                "xref": "x domain",
                "yref": "y3",
                "x0": 0,
                "x1": 1,
                "y0": 1,
                "y1": 1,
                "line": {"color": COLORS["ref"], "width": 1},
            },
        ],
        annotations=[
            *drop_notes,
            {  # over the KL chart, ending at its right end: from its left end the note
                # ran off the figure on a narrow page (1000 px with the sidebar open)
                "xref": "x2 domain",
                "yref": "paper",
                "x": 1.0,
                "y": 1.0,
                "yanchor": "bottom",
                "xanchor": "right",
                "showarrow": False,
                # (", above" alone read as cut off: say which way the point lies)
                "text": f"k = 0 (the kernel K): {y[0]:.4g}, off the top"
                if np.isfinite(y[0])
                else "",
                "font": {"size": 12, "color": "#6b7280"},
            },
        ],
    )
    layout.update(player_controls([str(j) for j in range(n_frames)], k0, frame_ms, "k = ", 40))
    fig = go.Figure(data=traces, layout=layout, frames=frames)
    return _stacked_when_narrow(fig, height, len(drop_notes), n_frames, scale)


NARROW_PLAYER = 680
"""Chart width (px) under which the half-step player stacks the KL curve under the plan:
side by side at 470 px (an 800 px window beside the sidebar) the colour bar sat on the KL
axis's title and the labels ran together; at 633 px (1093 px, ε = 0.5: five-digit KL
ticks) the axis title still crossed the colour bar's ticks."""


def _stacked_when_narrow(
    fig: go.Figure, height: int, note: int, n_frames: int, scale: str
) -> go.Figure:
    """The player's layout for a narrow chart (:func:`gca_viz.figures._narrow.when_narrow`):
    the plan, its row strip and colour bar on top, the column strip under the plan and the
    KL curve under them, full width; the figure grows so the plan keeps its size; a
    shorter title. ``note``: the index of the "k = 0 ... off the top" annotation."""
    extra = 380  # px the figure grows by: the KL curve's own rows
    plot = height + extra + BUTTON_ROW - 60 - (140 + BUTTON_ROW)  # the plotting area's height
    # the controls 24 px lower, under the KL curve's full-width axis title ("half-step k"
    # sat level with ▶ Play, read as the buttons' label)
    menu, slider = fig.layout.updatemenus[0].pad.t, fig.layout.sliders[0].pad.t
    kl_top = 240 / plot  # the KL curve: its bottom 240 px
    strip_low = kl_top + 80 / plot  # room for the plan's column numbers and the note
    strip_high = strip_low + 0.6 * STRIP * (height - 140 - 60) / plot
    return when_narrow(
        fig,
        NARROW_PLAYER,
        {
            "height": height + BUTTON_ROW + extra + 24,
            "margin.b": fig.layout.margin.b + 24,
            "updatemenus[0].pad.t": menu + 24,
            "sliders[0].pad.t": slider + 24,
            "title.text": f"Half-steps P⁽⁰⁾ … P⁽{str(n_frames - 1).translate(_SUPERSCRIPT)}⁾ "
            f"({scale})",
            "xaxis.domain": [0.0, 0.7],
            "yaxis.domain": [strip_high + 0.02, 1.0],
            "xaxis3.domain": [0.715, 0.835],
            "xaxis3.nticks": 2,  # (three ran together in the narrow strip: "0.9511.05")
            "yaxis3.domain": [strip_low, strip_high],
            "xaxis2.domain": [0.0, 1.0],
            "yaxis2.domain": [0.0, kl_top],
            f"annotations[{note}].y": kl_top,
        },
        {
            0: {
                "colorbar.x": 0.87,
                "colorbar.y": 1.0,
                "colorbar.yanchor": "top",
                "colorbar.len": 1.0 - strip_high - 0.02,
            }
        },
    )
