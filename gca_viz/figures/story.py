"""Figures of the story page: numpy arrays in, plotly figures out, sized for a projector.

* :func:`monotone_chart`: ``KL(P_tgt || P^(k)) / n`` over the half-steps ``k = 1..2T``, with
  the INCE and GCA-INCE values marked.
* :func:`split_chart`: the loss per row split into alignment and repulsion, INCE above
  GCA-INCE.
* :func:`hub_chart`: the mass each sample receives (column sums) before and after Sinkhorn.
* :func:`marginal_chart`: the row and column sums of an unbalanced plan against the hard
  marginals.

Heatmaps come from :func:`gca_viz.figures.plans.matrix_heatmap`. Nothing here imports
streamlit.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gca_viz.figures._arrays import floats
from gca_viz.figures._legend import legend_below
from gca_viz.figures.plans import COLORS, kl_curve

FONT = {"size": 16}
"""Large type: the page is projected in lectures."""
_GRID = "#e5e7eb"
_TERMS = {"alignment": "#2f6fde", "repulsion": "#e07b39"}
_ROSE = "#7c3aed"  # a row whose loss rose: purple (the unbalanced orange read as repulsion)


def _layout(title: str, height: int) -> dict[str, Any]:
    return {
        "title": {"text": title, "x": 0.0, "xanchor": "left", "font": {"size": 19}},
        "height": height,
        "margin": {"l": 70, "r": 30, "t": 70, "b": 60},
        "font": FONT,
        "plot_bgcolor": "white",
    }


def monotone_chart(kl: np.ndarray, *, height: int = 480) -> go.Figure:
    """``KL(P_tgt || P^(k)) / n`` (``n`` rows: ``N``, or ``2N`` in the joint layout) for the
    half-steps ``k = 1..2T`` in projector-sized type:
    :func:`gca_viz.figures.plans.kl_curve` with ``large=True`` (INCE and GCA-INCE marked,
    the drop labelled, the kernel ``k = 0`` named above the chart).

    Args:
        kl: ``(2T + 1,)`` values, ``kl[k]`` for ``k = 0..2T``.
    """
    return kl_curve(
        kl, height=height, large=True, title="KL(P_tgt ‖ P⁽ᵏ⁾) / n after each half-step"
    )


def _keyed(word: str, color: str) -> str:
    """``word`` in bold ``color``: a colour key inside a plotly title."""
    return f'<b><span style="color:{color}">{word}</span></b>'


def split_chart(
    ince: tuple[np.ndarray, np.ndarray, np.ndarray],
    gca: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    height: int = 820,
) -> go.Figure:
    """The loss of every row as alignment + repulsion (stacked bars), with the row's
    ``-log P_{i,pos(i)}`` as a black dot on top: INCE, then GCA-INCE, then their
    difference per row.

    The two stacks often look alike (the alignment term is shared, and at large ``ε``
    Sinkhorn barely moves the plan), so the third panel plots
    ``Δ_i = -log P^(2T)_{i,pos(i)} - (-log P^(1)_{i,pos(i)})``, which is the change of the
    repulsion term alone; its mean (dashed) is GCA-INCE − INCE, never positive.

    Args:
        ince, gca: ``(alignment, repulsion, -log P_pos)``, each ``(n,)``
            (:class:`gca_viz.story.Split`).
    """
    diff = floats(gca[2]) - floats(ince[2])  # (n,)
    key = (
        f"{_keyed('alignment', _TERMS['alignment'])} + {_keyed('repulsion', _TERMS['repulsion'])}"
        " = ● the row's loss"
    )
    fig = make_subplots(
        rows=3,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.08,
        row_heights=[0.36, 0.36, 0.28],
        # each panel's title carries its colour key (the legend, under the third panel, was
        # far from the first two on a projector)
        subplot_titles=(
            f"INCE: plan P⁽¹⁾ · {key}",
            f"GCA-INCE: plan after T sweeps · {key}",
            f"GCA-INCE − INCE per row (mean {diff.mean():+.3g}) · "
            f"{_keyed('fell', COLORS['gca'])} / {_keyed('rose', _ROSE)}",
        ),
    )
    for row, (align, repel, total) in enumerate((ince, gca), start=1):
        x = np.arange(len(align))
        first = row == 1
        for name, values in (("alignment", align), ("repulsion", repel)):
            fig.add_trace(
                go.Bar(
                    x=x,
                    y=floats(values),
                    name=f"{name} term",
                    marker_color=_TERMS[name],
                    showlegend=first,
                    legendgroup=name,
                    hovertemplate=f"row %{{x}}: {name} %{{y:.4f}}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=floats(total),
                mode="markers",
                name="−log P_i,pos(i) (the row's loss)",
                marker={"color": "#111827", "size": 7},
                showlegend=first,
                legendgroup="total",
                hovertemplate="row %{x}: −log P = %{y:.4f}<extra></extra>",
            ),
            row=row,
            col=1,
        )
        fig.update_yaxes(title_text="nats", gridcolor=_GRID, row=row, col=1)
    rows, fell = np.arange(len(diff)), diff <= 0
    for mask, name, color in (  # one legend entry per colour (one entry named only one)
        (fell, "change of the row's loss: fell", COLORS["gca"]),
        (~fell, "change of the row's loss: rose", _ROSE),
    ):
        if mask.any():
            fig.add_trace(
                go.Bar(
                    x=rows[mask],
                    y=diff[mask],
                    name=name,
                    marker_color=color,
                    hovertemplate="row %{x}: GCA-INCE − INCE = %{y:+.4g}<extra></extra>",
                ),
                row=3,
                col=1,
            )
    fig.add_hline(
        y=float(diff.mean()),
        line={"color": COLORS["ref"], "dash": "dash", "width": 2},
        row=3,
        col=1,
    )
    fig.update_yaxes(  # (rows that all rose stand from the origin: keep the "0"s apart)
        title_text="Δ nats",
        gridcolor=_GRID,
        zerolinecolor="#9ca3af",
        ticklabelstandoff=8,
        row=3,
        col=1,
    )
    fig.update_xaxes(title_text="row i (sample)", row=3, col=1)
    fig.update_layout(
        **_layout("The loss of each row = alignment + repulsion", height), barmode="relative"
    )
    fig.update_annotations(font_size=16)
    return legend_below(fig)


def hub_chart(before: np.ndarray, after: np.ndarray, *, height: int = 440) -> go.Figure:
    """The mass each sample receives (column sums ``P^T 1``), largest first, under
    ``P^(1)`` and after Sinkhorn, with the column marginal ``ν = 1`` dashed.

    Args:
        before, after: ``(m,)`` column sums.
    """
    b = np.sort(floats(before))[::-1]
    a = np.sort(floats(after))[::-1]
    rank = np.arange(1, len(b) + 1)
    traces = [
        go.Bar(
            x=rank,
            y=b,
            name="INCE plan P⁽¹⁾",
            marker_color=COLORS["ince"],
            hovertemplate="rank %{x}: receives %{y:.3f}<extra></extra>",
        ),
        go.Bar(
            x=rank,
            y=a,
            name="after T Sinkhorn sweeps",
            marker_color=COLORS["gca"],
            hovertemplate="rank %{x}: receives %{y:.3f}<extra></extra>",
        ),
    ]
    layout = _layout("Mass each sample receives (column sums), largest first", height)
    layout.update(
        barmode="group",
        bargap=0.15,
        xaxis={"title": "samples ranked by received mass", "gridcolor": _GRID},
        yaxis={"title": "column sum", "gridcolor": _GRID, "rangemode": "tozero"},
        shapes=[
            {
                "type": "line",
                "xref": "paper",
                "yref": "y",
                "x0": 0,
                "x1": 1,
                "y0": 1,
                "y1": 1,
                "line": {"color": COLORS["ref"], "dash": "dash", "width": 2},
            }
        ],
    )
    return legend_below(go.Figure(data=traces, layout=layout))


def marginal_chart(
    row_sums: np.ndarray,
    col_sums: np.ndarray,
    mu: np.ndarray,
    nu: np.ndarray,
    *,
    title: str,
    height: int = 440,
    shares: bool = False,
) -> go.Figure:
    """Row sums ``P 1`` and column sums ``P^T 1`` of a plan as bars beside each other,
    with the hard marginals ``μ``, ``ν`` dashed.

    ``shares=True``: the bars are shares instead, each sum's share of the plan's mass over
    the hard marginal's share, ``((P 1)_i / ΣP) / (μ_i / Σμ)`` and the columns alike
    (:attr:`gca_viz.story.Relaxed.row_shares`), and ``mu``, ``nu`` are ones: an unbalanced
    plan's total mass drifts toward ``ΣK``, which lifts every sum alike; the shares show
    which samples send or receive less than their part.

    Args:
        row_sums, col_sums, mu, nu: ``(n,)``, ``(m,)``, ``(n,)``, ``(m,)``.
        title: the figure title.
    """
    fig = make_subplots(
        rows=1,
        cols=2,
        horizontal_spacing=0.1,
        subplot_titles=(
            ("share sent<br>(P1)ᵢ/ΣP ÷ μᵢ/Σμ", "share received<br>(Pᵀ1)ⱼ/ΣP ÷ νⱼ/Σν")
            if shares
            else ("row sums P1<br>(sent)", "column sums Pᵀ1<br>(received)")
        ),
    )
    parts = ((row_sums, mu, "row", "μ"), (col_sums, nu, "col", "ν"))
    for col, (sums, ref, color, symbol) in enumerate(parts, start=1):
        x = np.arange(len(sums))
        fig.add_trace(
            go.Bar(
                x=x,
                y=floats(sums),
                marker_color=COLORS[color],
                name=("row" if col == 1 else "column") + (" shares" if shares else " sums"),
                hovertemplate="%{x}: %{y:.4f}<extra></extra>",
            ),
            row=1,
            col=col,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=floats(ref),
                mode="lines",
                line={"color": COLORS["ref"], "dash": "dash", "width": 2},
                name="the hard marginals' share" if shares else f"hard marginal {symbol}",
                showlegend=col == 1,
                hovertemplate=(
                    "as balanced: 1<extra></extra>"
                    if shares
                    else f"{symbol} = %{{y:.4f}}<extra></extra>"
                ),
            ),
            row=1,
            col=col,
        )
        # (the standoff keeps the y axis's "0" off the first sample's "0" at the origin)
        fig.update_yaxes(gridcolor=_GRID, rangemode="tozero", ticklabelstandoff=8, row=1, col=col)
        fig.update_xaxes(title_text="sample", row=1, col=col)
    layout = _layout(title, height)
    layout["margin"] = {**layout["margin"], "t": 120}  # the title, then two-line subtitles
    fig.update_layout(**layout, bargap=0.1)
    fig.update_annotations(font_size=16)
    return legend_below(fig)
