"""Figures of the "Target plans and domains" and "Noisy views" pages (arrays in, figures out).

* :func:`block_heatmap`: a target or plan with its marginals and the domain blocks outlined.
* :func:`domain_sweep_chart`: domain and class accuracy against ``α - β``, beside the paper's
  reference numbers (drawn as a separate, labelled series).
* :func:`comparison_bars`: accuracies per method, clean vs corrupted test data.
* :func:`view_grid`: digits and their augmented views with the per-sample strength.
* :func:`mass_scatter`: the plan mass a positive pair keeps against its corruption strength.

Nothing here imports streamlit.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gca_viz.figures._arrays import floats
from gca_viz.figures._legend import legend_below
from gca_viz.figures._palette import METHOD_COLORS
from gca_viz.figures.plans import COLORS, DASHES, SYMBOLS, matrix_heatmap

MEASURED = {"domain": "#2f6fde", "class": "#1b9e77", "embedding": "#7c3aed"}
"""Colours of the measured series."""
PAPER_COLOR = "#9aa3b2"
"""Colour of the paper's reference series (grey, dashed: context, not a measurement)."""
CONDITION_COLORS = ("#2f6fde", "#c2410c", "#e07b39", "#7c3aed")
"""Bar colours of test conditions: clean first, then corrupted."""
CONDITION_PATTERNS = ("", "/", "x", ".")
"""The fill patterns of the test conditions' bars (clean plain, the others hatched): told
apart without colour too."""
_GRID = "#e5e7eb"


def _layout(title: str, height: int) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left"},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 50},
        "font": {"size": 13},
        "plot_bgcolor": "white",
    }


def block_heatmap(
    matrix: np.ndarray,
    groups: np.ndarray | None,
    *,
    title: str,
    value_label: str,
    group_names: Sequence[str] = (),
    row_ref: np.ndarray | None = None,
    col_ref: np.ndarray | None = None,
    log: bool = False,
    height: int = 520,
    diverging: bool = False,
) -> go.Figure:
    """A matrix with row sums (right) and column sums (top) whose rows and columns are
    sorted by group, the groups' blocks outlined and named. Unsorted ``groups`` are sorted
    here (stably; the matrix's rows and columns and the marginals follow, and the axes
    count positions in that order).

    Args:
        matrix: ``(n, n)`` values. groups: ``(n,)`` group labels (domains), or ``None``.
        title, value_label: labels. group_names: a name per group label.
        row_ref, col_ref: the marginals ``μ``, ``ν`` drawn as dashed reference lines.
        log: log colour scale (plans).
        diverging: a signed matrix (a difference): red above 0, blue below, white at 0 on
            a scale symmetric about 0, without the marginals' bars.
    """
    M = floats(matrix)
    g = None if groups is None else np.asarray(groups).reshape(-1)
    if g is not None:
        if M.ndim != 2 or M.shape != (len(g), len(g)):
            raise ValueError(
                f"groups must hold one label per row and column of matrix {M.shape}, got {len(g)}"
            )
        order = np.argsort(g, kind="stable")
        M, g = M[np.ix_(order, order)], g[order]
        row_ref = None if row_ref is None else floats(row_ref)[order]
        col_ref = None if col_ref is None else floats(col_ref)[order]
    extra: dict[str, Any] = {}
    if diverging:
        top = float(np.nanmax(np.abs(M[np.isfinite(M)]))) if np.isfinite(M).any() else 1.0
        top = top if top > 0 else 1.0
        extra = {"zrange": (-top, top), "colorscale": "RdBu_r", "marginals": False}
    fig = matrix_heatmap(
        M,
        title=title,
        value_label=value_label,
        row_ref=row_ref,
        col_ref=col_ref,
        log=log,
        height=height,
        **extra,
    )
    if g is None:
        return fig
    edges = np.flatnonzero(np.diff(g)) + 1  # first index of each new group
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(g)]])
    for a, b in zip(starts, ends, strict=True):
        fig.add_shape(
            type="rect",
            xref="x",
            yref="y",
            x0=a - 0.5,
            x1=b - 0.5,
            y0=a - 0.5,
            y1=b - 0.5,
            line={"color": "#e11d48", "width": 1.5, "dash": "dot"},
        )
        label = int(g[a])
        name = group_names[label] if 0 <= label < len(group_names) else f"domain {label}"
        fig.add_annotation(
            xref="x",
            yref="y",
            x=(a + b - 1) / 2,
            y=b - 0.5,
            text=name,
            showarrow=False,
            yanchor="bottom",
            font={"size": 11, "color": "#9f1239"},
            bgcolor="rgba(255,255,255,0.85)",
        )
    return fig


def domain_sweep_chart(
    delta: np.ndarray,
    domain_acc: np.ndarray,
    class_acc: np.ndarray,
    *,
    domain_acc_embedding: np.ndarray | None = None,
    paper_domain: Sequence[tuple[float, float]] = (),
    paper_class: tuple[float, float] | None = None,
    paper_label: str = "paper",
    height: int = 400,
) -> go.Figure:
    """Domain accuracy (left) and class accuracy (right) against ``α - β``, on one
    accuracy scale (a flat class accuracy reads flat beside the domain's rise).

    Args:
        delta: ``(k,)`` values of ``α - β``. domain_acc, class_acc: ``(k,)`` measured
            accuracies (``NaN`` for runs that have not evaluated yet).
        domain_acc_embedding: ``(k,)`` domain accuracy on the embeddings, a second series.
        paper_domain: the paper's ``(α - β, accuracy)`` points (joined by a dashed line:
            only these points are reported; the line between them is not a measurement).
        paper_class: the paper's ``(low, high)`` class-accuracy range, drawn as a band.
        paper_label: the legend name of the paper's series.
    """
    x = floats(delta)
    fig = make_subplots(
        rows=1,
        cols=2,
        subplot_titles=("Domain accuracy (linear probe)", "Class accuracy (linear probe)"),
        horizontal_spacing=0.1,
        # one accuracy scale for both: alone, the class panel spanned 0.89 to 0.94 and its
        # 0.011 drop looked steep beside a text (and a paper) saying it stays flat
        shared_yaxes=True,
    )
    series = [
        (1, "measured: domain, backbone h", domain_acc, MEASURED["domain"]),
        (2, "measured: class, backbone h", class_acc, MEASURED["class"]),
    ]
    if domain_acc_embedding is not None:
        series.insert(
            1, (1, "measured: domain, embedding ẑ", domain_acc_embedding, MEASURED["embedding"])
        )
    for k, (col, name, values, color) in enumerate(series):
        fig.add_trace(
            go.Scatter(
                x=x,
                y=floats(values),
                name=name,
                mode="lines+markers",
                line={"color": color, "width": 2},
                marker={"size": 9, "symbol": SYMBOLS[k]},  # shapes: not colour alone
                hovertemplate=f"{name}<br>α - β = %{{x:+.2f}}: %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=col,
        )
    if paper_domain:
        px, py = (floats(v) for v in zip(*paper_domain, strict=True))
        fig.add_trace(
            go.Scatter(
                x=px,
                y=py,
                name=f"{paper_label}: domain",
                mode="lines+markers",
                line={"color": PAPER_COLOR, "dash": "dash", "width": 2},
                marker={"size": 9, "symbol": "diamond-open"},
                hovertemplate=f"{paper_label}<br>α - β = %{{x:+.2f}}: %{{y:.3f}}<extra></extra>",
            ),
            row=1,
            col=1,
        )
    if paper_class is not None:
        lo, hi = (float(v) for v in paper_class)
        xs = (
            np.array([-0.5, 0.5])
            if not len(x)
            else np.array([min(x.min(), -0.5), max(x.max(), 0.5)])
        )
        fig.add_trace(
            go.Scatter(
                x=np.concatenate([xs, xs[::-1]]),
                y=np.array([lo, lo, hi, hi]),
                fill="toself",
                fillcolor="rgba(154,163,178,0.3)",
                line={"color": PAPER_COLOR, "dash": "dash", "width": 1},
                name=f"{paper_label}: class {lo:.3g}-{hi:.3g}",
                hoverinfo="name",
            ),
            row=1,
            col=2,
        )
    fig.update_layout(**_layout("Accuracy against α - β", height))
    fig.update_xaxes(
        title="α - β (shares of a row)", gridcolor=_GRID, zeroline=True, zerolinecolor="#9ca3af"
    )
    fig.update_yaxes(gridcolor=_GRID)
    fig.update_yaxes(title="accuracy", row=1, col=1)
    fig.update_yaxes(showticklabels=True, row=1, col=2)  # (shared: read on either side)
    return legend_below(fig)


def comparison_bars(
    methods: Sequence[str],
    conditions: Sequence[str],
    values: np.ndarray,
    *,
    metric: str,
    height: int = 380,
) -> go.Figure:
    """Grouped bars: one group per method, one bar per test condition.

    Args:
        methods: ``m`` method titles (the groups). conditions: ``c`` condition labels.
        values: ``(c, m)`` accuracies (``NaN``: not measured; the bar is left out).
        metric: the y-axis title.
    """
    V = floats(values)
    if V.shape != (len(conditions), len(methods)):
        raise ValueError(f"values must be ({len(conditions)}, {len(methods)}), got {V.shape}")
    traces = [
        go.Bar(
            x=list(methods),
            y=V[k],
            name=cond,
            marker_color=CONDITION_COLORS[k % len(CONDITION_COLORS)],
            marker_pattern_shape=CONDITION_PATTERNS[
                k % len(CONDITION_PATTERNS)
            ],  # not colour alone
            text=[f"{v:.3f}" if np.isfinite(v) else "" for v in V[k]],
            textposition="outside",
            hovertemplate=f"{cond}<br>%{{x}}: %{{y:.4f}}<extra></extra>",
        )
        for k, cond in enumerate(conditions)
    ]
    layout = _layout(metric, height)
    finite = V[np.isfinite(V)]
    top = float(min(1.0, finite.max() + 0.08)) if finite.size else 1.0
    layout.update(
        barmode="group",
        yaxis={"title": metric, "range": [0, top], "gridcolor": _GRID},
    )
    return legend_below(go.Figure(data=traces, layout=layout))


def view_grid(
    images: np.ndarray,
    strengths: np.ndarray,
    column_titles: Sequence[str],
    *,
    height_per_row: int = 120,
) -> go.Figure:
    """A grid of grayscale images (one sample per row, one view per column), each titled
    with its strength ``mean |x' - x|`` (``NaN``: the original, no title number), the
    columns named over the top row.

    Args:
        images: ``(rows, cols, H, W)`` in ``[0, 1]``. strengths: ``(rows, cols)``.
        column_titles: ``cols`` names (e.g. original, standard, extreme).
    """
    imgs = floats(images)
    S = floats(strengths)
    if imgs.ndim != 4 or S.shape != imgs.shape[:2] or len(column_titles) != imgs.shape[1]:
        raise ValueError(
            f"images must be (rows, cols, H, W) with strengths (rows, cols) and a title per "
            f"column; got {imgs.shape}, {S.shape}, {len(column_titles)} titles"
        )
    rows, cols = imgs.shape[:2]
    # The column's name once, over the top row (on two lines where long), and each view's
    # strength over it: every cell repeating "extreme × 1: 0.270" ran the titles together at
    # 911 px ("extreme × 1: 0.270test corruption 1: 0.304").
    titles = [
        "<br>".join(
            part
            for part in (
                textwrap.fill(column_titles[c], 14).replace("\n", "<br>") if r == 0 else "",
                f"{S[r, c]:.3f}" if np.isfinite(S[r, c]) else "",
            )
            if part
        )
        for r in range(rows)
        for c in range(cols)
    ]
    fig = make_subplots(
        rows=rows,
        cols=cols,
        subplot_titles=titles,
        horizontal_spacing=0.02,
        vertical_spacing=0.25 / max(rows, 1),
    )
    for r in range(rows):
        for c in range(cols):
            fig.add_trace(
                go.Heatmap(
                    z=imgs[r, c].astype(np.float32),
                    colorscale="gray_r",
                    zmin=0.0,
                    zmax=1.0,
                    showscale=False,
                    hovertemplate="pixel (%{y}, %{x}): %{z:.2f}<extra></extra>",
                ),
                row=r + 1,
                col=c + 1,
            )
    for k in range(rows * cols):  # square pixels: each y axis follows its own x axis
        fig.update_yaxes(scaleanchor=f"x{k + 1 if k else ''}", selector=k)
    fig.update_xaxes(visible=False, constrain="domain")
    fig.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    fig.update_annotations(font_size=13)  # read from the back of a room, 15 px in lecture
    layout = _layout("Views and their strength mean |x' − x|", 100 + height_per_row * rows)
    layout["margin"] = {"l": 10, "r": 10, "t": 110, "b": 10}
    fig.update_layout(**layout)
    return fig


def mass_scatter(
    strength: np.ndarray,
    series: Mapping[str, np.ndarray],
    *,
    x_title: str = "corruption strength mean |x' − x|",
    height: int = 420,
) -> go.Figure:
    """The plan mass each positive pair keeps against its corruption strength, one marker
    series per measure (relative to the batch mean: 1 is an average pair).

    Args:
        strength: ``(N,)``. series: ``{name: (N,) relative mass}``; the first is emphasised
            (larger, drawn over the others; the legend keeps the given order).
    """
    x = floats(strength)
    palette = (COLORS["unbalanced"], COLORS["row"], COLORS["other"], COLORS["gca"])
    traces = []
    for k, (name, values) in enumerate(series.items()):
        traces.append(
            go.Scatter(
                x=x,
                y=floats(values),
                mode="markers",
                name=name,
                marker={
                    "color": palette[k % len(palette)],
                    "size": 8 if k == 0 else 6,
                    "opacity": 0.9 if k == 0 else 0.6,
                    "symbol": ("circle", "diamond", "x", "square")[k % 4],
                },
                hovertemplate=f"{name}<br>strength %{{x:.3f}}: %{{y:.3f}}<extra></extra>",
                legendrank=1000 + k,  # the legend in the given order ...
            )
        )
    traces.reverse()  # ... the emphasised first series drawn last, on top (the others'
    # crosses hid its dots)
    layout = _layout("Plan mass kept on each positive pair vs its corruption", height)
    layout.update(
        xaxis={"title": x_title, "gridcolor": _GRID},
        yaxis={"title": "mass relative to the batch mean", "gridcolor": _GRID},
        shapes=[
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": 1.0,
                "y1": 1.0,
                "line": {"color": "#6b7280", "dash": "dot", "width": 1},
            }
        ],
    )
    return legend_below(go.Figure(data=traces, layout=layout))


def sweep_gain_chart(
    shares: Sequence[float],
    epsilons: Sequence[float],
    gains: Mapping[str, np.ndarray],
    errors: Mapping[str, np.ndarray],
    colors: Mapping[str, str],
    *,
    metric: str,
    height: int = 400,
) -> go.Figure:
    """The paired gain over INCE against the share ``p`` of mismatched pairs: one panel
    per ``ε``, one line per method (the methods a little apart along ``p``, so that their
    bars do not hide each other), error bars of twice the standard error (a point whose bar
    clears 0 is a measurable gain), and the line ``Δ = 0`` (INCE itself).

    Args:
        shares: ``s`` values of ``p`` (the x-axis). epsilons: ``e`` values of ``ε`` (panels).
        gains: method title -> ``(e, s)`` mean paired differences ``Δ`` (``NaN``: not run).
        errors: method title -> ``(e, s)`` standard errors of ``Δ``.
        colors: method title -> colour.
        metric: what ``Δ`` is a difference of (the y-axis title).
    """
    P = floats(shares)
    fig = make_subplots(
        rows=1,
        cols=len(epsilons),
        shared_yaxes=True,
        subplot_titles=[f"ε = {e:g}" for e in epsilons],
        horizontal_spacing=0.06,
    )
    spread = 0.02 * (float(P.max() - P.min()) if P.size > 1 else 1.0)  # (bars side by side)
    for m, (title, G) in enumerate(gains.items()):
        G, E = floats(G), floats(errors[title])
        x = P + (m - (len(gains) - 1) / 2) * spread
        if G.shape != (len(epsilons), len(P)) or E.shape != G.shape:
            raise ValueError(f"gains and errors of {title} must be ({len(epsilons)}, {len(P)})")
        for k, eps in enumerate(epsilons):
            fig.add_trace(
                go.Scatter(
                    x=x,
                    y=G[k],
                    customdata=P,
                    error_y={"type": "data", "array": 2 * E[k], "thickness": 2.5, "width": 6},
                    mode="lines+markers",
                    name=title,
                    legendgroup=title,
                    showlegend=k == 0,
                    line={"color": colors[title], "width": 2.5, "dash": DASHES[m % len(DASHES)]},
                    marker={"size": 8, "symbol": SYMBOLS[m % len(SYMBOLS)]},
                    hovertemplate=f"{title}, ε = {eps:g}<br>p = %{{customdata:g}}: Δ = %{{y:+.3f}}"
                    "<extra></extra>",
                ),
                row=1,
                col=k + 1,
            )
    ince = METHOD_COLORS["ince"]
    for k in range(len(epsilons)):
        fig.add_hline(y=0, line={"color": ince, "width": 2}, row=1, col=k + 1)
    fig.add_trace(  # (the line's name in the legend: a trace of no points)
        go.Scatter(x=[None], y=[None], mode="lines", name="INCE (Δ = 0)",
                   line={"color": ince, "width": 2}, hoverinfo="skip"),
        row=1,
        col=1,
    )  # fmt: skip
    fig.update_layout(**_layout(f"Gain over INCE, {metric}", height), hovermode="closest")
    fig.update_xaxes(title_text="share p of mismatched pairs", tickvals=list(P), gridcolor=_GRID)
    fig.update_yaxes(title_text=f"Δ {metric} vs INCE", gridcolor=_GRID, zeroline=False, col=1)
    fig.update_yaxes(gridcolor=_GRID, zeroline=False)
    return legend_below(fig)
