"""Figures of "Where GCA-UOT's mass and gradient go" (Noisy views page): arrays in, figures
out, from :mod:`gca_viz.experiments.uot_mechanism`.

* :func:`share_chart`: each row's share of the plan's mass and of the positive mass,
  balanced against unbalanced, clean rows first, corrupted rows shaded.
* :func:`gradient_chart`: the share of each loss's gradient through the corrupted pairs.
* :func:`tradeoff_chart`: over ``λ₁ = λ₂`` (log axis), that share against the plan's entropy.

Nothing here imports streamlit.
"""

from __future__ import annotations

import textwrap
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from gca_viz.experiments.uot_mechanism import (
    GRADIENT_LOSSES,
    GradientShares,
    MassShares,
    RelaxationSweep,
)
from gca_viz.figures._axes import log_axis
from gca_viz.figures._legend import legend_below
from gca_viz.figures.plans import COLORS, _base_layout

_GRID = "#e5e7eb"
CORRUPT_BAR = "#881337"
"""The corrupted rows' bars in :func:`share_chart`: a dark crimson, half as light as the
clean rows' orange (``COLORS["unbalanced"]``); the rose of the corrupted lines elsewhere,
as light as that orange, left the two kinds of bar hard to tell apart."""
_CORRUPT_FILL = "rgba(225, 29, 72, 0.08)"
LOSS_COLORS = {
    "ince": COLORS["ince"],
    "gca_ince": COLORS["gca"],
    "gca_uot": COLORS["unbalanced"],
    "gca_uot_kl": "#f59e0b",
    "uot_plan_kl": "#7c3aed",
    "rince": "#0891b2",
}
"""A colour per loss of :data:`gca_viz.experiments.uot_mechanism.GRADIENT_LOSSES`."""


def _layout(title: str, height: int) -> dict[str, Any]:
    return {
        **_base_layout(title, height),
        "margin": {"l": 70, "r": 30, "t": 70, "b": 60},
        "font": {"size": 14},
    }


def share_chart(shares: MassShares, *, height: int = 620) -> go.Figure:
    """Each row's share of the plan's mass (top) and of the positive mass (bottom), times
    ``N`` (so 1 is an average row), for the balanced plan (grey line) and the unbalanced
    plan (bars). Rows are in :attr:`MassShares.order`: clean pairs first, then the
    corrupted ones, on a shaded band.

    Args:
        shares: a :class:`gca_viz.experiments.uot_mechanism.MassShares`.
    """
    order = shares.order
    n = len(order)
    x = np.arange(n)
    bad = shares.corrupted[order]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.12,
        subplot_titles=(
            "Row share of the plan's mass × N: (P1)ᵢ / ΣP × N",
            "Positive share × N: Pᵢᵢ / Σₖ Pₖₖ × N",
        ),
    )
    panels = (
        (shares.balanced_row, shares.unbalanced_row),
        (shares.balanced_positive, shares.unbalanced_positive),
    )
    tops: list[float] = []
    for row, (balanced, unbalanced) in enumerate(panels, start=1):
        first = row == 1
        fig.add_trace(
            go.Bar(
                x=x,
                y=n * unbalanced[order],
                name=f"unbalanced plan (GCA-UOT, λ₁ = λ₂ = {shares.relax:g})",
                marker_color=np.where(bad, CORRUPT_BAR, COLORS["unbalanced"]),
                marker_pattern_shape=np.where(bad, "/", ""),  # hatched: not colour alone
                showlegend=first,
                legendgroup="uot",
                customdata=order,
                hovertemplate="row %{customdata}: %{y:.3f} × average<extra>unbalanced</extra>",
            ),
            row=row,
            col=1,
        )
        fig.add_trace(
            go.Scatter(
                x=x,
                y=n * balanced[order],
                mode="lines",
                name="balanced plan (GCA-INCE)",
                line={"color": COLORS["ref"], "width": 2},
                showlegend=first,
                legendgroup="bal",
                customdata=order,
                hovertemplate="row %{customdata}: %{y:.3f} × average<extra>balanced</extra>",
            ),
            row=row,
            col=1,
        )
        # headroom over the tallest bar: the corrupted band's title sits at the top, clear
        # of the bars and of the means' labels (with every share near 1 they overlapped)
        top = float(np.nanmax(np.concatenate([n * balanced, n * unbalanced, [1.0]])))
        tops.append(top)  # (the first, the row shares' panel: the means' labels over it)
        fig.update_yaxes(  # (the standoff keeps its "0" off the first row's at the origin)
            title_text="× average row",
            gridcolor=_GRID,
            range=[0.0, 1.3 * top],
            ticklabelstandoff=8,
            row=row,
        )
    groups = [(~bad, "clean"), (bad, "corrupted")]
    for mask, label in groups:
        if not mask.any():
            continue
        lo, hi = int(np.argmax(mask)), int(len(mask) - np.argmax(mask[::-1]) - 1)
        mean = float(n * shares.unbalanced_row[order][mask].mean())
        fig.add_shape(
            type="line",
            x0=lo - 0.5,
            x1=hi + 0.5,
            y0=mean,
            y1=mean,
            line={"color": "#111827", "dash": "dash", "width": 2.5},
            row=1,
            col=1,
        )
        first = lo == 0  # the band at the left starts its label there, the other ends it
        # The label in the headroom over the bars, an arrow down to its dashed line: on the
        # line it covered the very bars it named (a student read the corrupted rows' 0.82
        # against 1 through a white box over them).
        fig.add_annotation(  # (centred on a narrow band, a projector's type ran off the edge)
            x=lo if first else hi,
            y=mean,
            ax=lo if first else hi,
            ay=1.12 * tops[0],
            axref="x",
            ayref="y",
            xanchor="left" if first else "right",
            text=f"{label} rows, unbalanced: mean {mean:.2f}",
            showarrow=True,
            arrowhead=2,
            arrowwidth=1.5,
            arrowcolor="#111827",
            font={"size": 13, "color": "#111827"},
            bgcolor="rgba(255,255,255,0.85)",
            row=1,
            col=1,
        )
    if bad.any():
        start = int(np.argmax(bad))
        fig.add_vrect(
            x0=start - 0.5,
            x1=n - 0.5,
            fillcolor=_CORRUPT_FILL,
            line_width=0,
            annotation_text=f"corrupted pairs ({int(bad.sum())})",
            annotation_position="top left",
        )
    fig.update_xaxes(title_text="rows: clean pairs, then corrupted ones", row=2, col=1)
    fig.update_layout(**_layout("Where the plan's mass goes, row by row", height), bargap=0.05)
    return legend_below(fig)


def gradient_chart(grads: GradientShares, *, height: int = 420) -> go.Figure:
    """Horizontal bars: the share of each loss's gradient that flows through the corrupted
    pairs, with the share of corrupted pairs dashed for reference.

    Args:
        grads: a :class:`gca_viz.experiments.uot_mechanism.GradientShares`.
    """
    names = list(grads.shares)
    values = np.array([grads.shares[k] for k in names], dtype=float)
    # Long names on two lines with a margin that follows them, the values inside the bars
    # where they fit and never clipped, the reference named at the top left: at 911 px
    # (150 % zoom beside the sidebar) a fixed 330 px margin left the bars a 150 px strip
    # whose values read "0", "0." and whose reference read "share of corrupted pairs 0.2".
    bar = go.Bar(
        x=values,
        y=[textwrap.fill(GRADIENT_LOSSES.get(k, k), 30).replace("\n", "<br>") for k in names],
        orientation="h",
        marker_color=[LOSS_COLORS.get(k, COLORS["other"]) for k in names],
        text=[f"{v:.3f}" for v in values],
        textposition="auto",
        insidetextanchor="end",
        cliponaxis=False,
        hovertemplate="%{y}: %{x:.4f}<extra></extra>",
    )
    layout = _layout("Share of the loss gradient through the corrupted pairs", height)
    top = max(float(np.nanmax(values)) if values.size else 0.0, grads.corrupted_share)
    layout.update(
        xaxis={"title": "gradient share", "range": [0, 1.15 * top + 1e-9], "gridcolor": _GRID},
        yaxis={"autorange": "reversed", "automargin": True},
        margin={"l": 10, "r": 50, "t": 70, "b": 60},
        shapes=[
            {
                "type": "line",
                "xref": "x",
                "yref": "paper",
                "x0": grads.corrupted_share,
                "x1": grads.corrupted_share,
                "y0": 0,
                "y1": 1,
                "line": {"color": "#e11d48", "dash": "dash", "width": 2},
            }
        ],
        annotations=[
            {
                "xref": "paper",
                "yref": "paper",
                "x": 0,
                "xanchor": "left",
                "y": 1.0,
                "yanchor": "bottom",
                "text": f"dashed: the share of corrupted pairs, {grads.corrupted_share:.2f}",
                "showarrow": False,
                "font": {"color": "#be123c", "size": 12},
            }
        ],
    )
    return go.Figure(data=[bar], layout=layout)


def tradeoff_chart(sweep: RelaxationSweep, *, height: int = 440) -> go.Figure:
    """Over ``λ₁ = λ₂`` (log axis, every decade labelled): the gradient share through corrupted
    pairs of the unbalanced losses (left axis; INCE's as a dotted reference) and the
    unbalanced plan's entropy as a share of the uniform plan's ``log N²`` (right axis).

    Args:
        sweep: a :class:`gca_viz.experiments.uot_mechanism.RelaxationSweep`.
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name, values in sweep.shares.items():
        fig.add_trace(
            go.Scatter(
                x=sweep.relax,
                y=values,
                mode="lines+markers",
                name=f"gradient share: {GRADIENT_LOSSES.get(name, name)}",
                line={"color": LOSS_COLORS.get(name, COLORS["other"]), "width": 2.5},
                hovertemplate="λ₁ = λ₂ = %{x:.3g}: %{y:.4f}<extra></extra>",
            ),
            secondary_y=False,
        )
    fig.add_trace(
        go.Scatter(
            x=sweep.relax,
            y=sweep.entropy / sweep.max_entropy,
            mode="lines",
            name="plan entropy / log N² (right axis)",
            line={"color": COLORS["other"], "width": 2, "dash": "dash"},
            hovertemplate="λ₁ = λ₂ = %{x:.3g}: H / log N² = %{y:.4f}<extra></extra>",
        ),
        secondary_y=True,
    )
    ince = sweep.balanced_share.get("ince")
    if ince is not None:
        fig.add_hline(
            y=ince,
            line={"color": COLORS["ince"], "dash": "dot", "width": 2},
            annotation_text=f"INCE {ince:.3f}",
            annotation_position="top left",
            secondary_y=False,
        )
    fig.update_layout(**_layout("Relaxing the marginals: gradient share against entropy", height))
    fig.update_xaxes(
        title_text="λ₁ = λ₂ (marginal KL weight)", **log_axis(sweep.relax), gridcolor=_GRID
    )
    fig.update_yaxes(
        title_text="gradient share", tickformat=".3f", gridcolor=_GRID, secondary_y=False
    )
    fig.update_yaxes(title_text="H / log N²", tickformat=".3f", showgrid=False, secondary_y=True)
    return legend_below(fig)
