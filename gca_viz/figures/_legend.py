"""A legend under a chart's x axis that never covers the axis's ticks or title.

Plotly places a legend in fractions of the plotting area. A legend below the axis at a fixed
fraction (``y = -0.25``) lands on the axis title whenever the plot is short, the fonts are
large (a projector) or the legend itself pushes the bottom margin and so shrinks the plot.
:func:`legend_below` instead sizes the bottom margin for the tick labels, the axis title and
one row per legend entry, grows the figure by the rows so that the plot keeps its height,
and converts the offset in pixels into the fraction: nothing is left for plotly to expand.
The figure remembers this (``layout.meta``), so a copy with larger fonts (the lecture mode,
``ui.lecture_figure``) is laid out again by the same rule.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

META_KEY = "legend_below"
"""Key in ``layout.meta`` of a figure laid out by :func:`legend_below` (its plot's height)."""
PER_ROW_KEY = "legend_below_per_row"
"""Key in ``layout.meta``: the legend entries :func:`legend_below` put in one row."""

_DEFAULT_FONT = 12  # Streamlit's chart theme: ticks and legend
_LINE = 1.45  # a line of text, in font sizes


def _size(font: Any, default: float) -> float:
    size = font.get("size") if isinstance(font, dict) else None
    return float(size) if size else default


def _entries(fig: go.Figure) -> int:
    """Legend entries: named traces shown in the legend, one per legend group."""
    groups: set[str] = set()
    count = 0
    for trace in fig.data:
        if trace.showlegend is False or not trace.name:
            continue
        if trace.legendgroup:
            if trace.legendgroup in groups:
                continue
            groups.add(trace.legendgroup)
        count += 1
    return count


def _lowest_x_axis(layout: dict[str, Any]) -> dict[str, Any]:
    """The x axis at the bottom of the figure (a subplot grid's lowest row: its tick labels
    and title are what the legend must clear), the one whose y axis starts lowest."""
    axes = {k: v or {} for k, v in layout.items() if k.startswith("xaxis")}
    if not axes:
        return {}

    def bottom(name: str) -> tuple[float, bool]:  # (of axes side by side: a titled one)
        anchor = str(axes[name].get("anchor") or "y")
        y = layout.get("yaxis" + anchor[1:]) or {}
        return float((y.get("domain") or [0.0])[0]), not axes[name].get("title")

    return axes[min(axes, key=bottom)]


def legend_below(fig: go.Figure, per_row: int | None = None) -> go.Figure:
    """Lay ``fig``'s legend out under its x axis, one entry per row (in place; returns it).

    The offset under the plot is the tick labels' and the axis title's height; the bottom
    margin holds them and the rows, and the figure's height is the top margin, the plot's
    height (as the figure had it, kept in ``layout.meta``) and that margin. Calling it
    again (fonts or the top margin changed) keeps the plot's height and the row length.

    ``per_row``: room for that many entries in a row (a horizontal legend of short names,
    such as classes; rows are counted at that length, so short names leave room to spare)."""
    layout = fig.layout.to_plotly_json()
    meta = dict(layout.get("meta") or {})
    per_row = max(1, int(per_row or meta.get(PER_ROW_KEY, 1)))
    font = _size(layout.get("font"), _DEFAULT_FONT)
    xaxis = _lowest_x_axis(layout)
    tick = _size(xaxis.get("tickfont"), max(font, _DEFAULT_FONT))  # (unset: the layout's)
    title = xaxis.get("title")
    title_text = title.get("text") if isinstance(title, dict) else title
    title_size = _size(title.get("font") if isinstance(title, dict) else None, font)
    legend = layout.get("legend") or {}
    lines = -(-_entries(fig) // per_row)  # (ceiling)
    rows = (_LINE * _size(legend.get("font"), _DEFAULT_FONT) + 4) * lines
    offset = _LINE * tick + 8 + (1.6 * title_size + 14 if title_text else 0)
    margin = dict(layout.get("margin") or {})
    top = float(margin.get("t", 80))
    plot = float(
        meta[META_KEY]
        if META_KEY in meta
        else max(float(layout.get("height") or 450) - top - float(margin.get("b", 80)), 60)
    )
    bottom = offset + rows + 8
    orientation = "h" if per_row > 1 else "v"
    legend.update(orientation=orientation, yanchor="top", y=-offset / plot, x=0.0, xanchor="left")
    fig.update_layout(
        height=round(top + plot + bottom),
        margin={**margin, "b": round(bottom)},
        legend=legend,
        meta={**meta, META_KEY: plot, PER_ROW_KEY: per_row},
    )
    return fig
