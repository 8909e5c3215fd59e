"""A second layout a figure takes where its chart is drawn narrow.

Plotly lays a figure out in fractions of its width: a figure whose panels sit side by side
(the half-step player: the plan, its colour bar and the KL curve) runs its labels together
when the chart is narrow (a 800 px window beside the sidebar: a 470 px chart), and the
library cannot know the width the chart will get. :func:`when_narrow` stores, in
``layout.meta``, what to change below a chart width: layout properties in
``Plotly.relayout``'s form (``"xaxis.domain"``, ``"annotations[2].y"``, ``"height"``) and
trace properties in ``Plotly.restyle``'s (``"colorbar.x"``). The app applies them in the
browser as the chart's width crosses ``below`` and restores the figure's own values above it
(``views/_chart_fit.py``). A figure saved as HTML keeps its wide layout.

Properties of a trace that animation frames also set must be left out of the frames: a
frame's trace is merged into the shown one, so what a frame does not name stays as set.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

META_KEY = "narrow"
"""Key in ``layout.meta``: ``{"below": px, "layout": {...}, "traces": {"0": {...}}}``."""


def when_narrow(
    fig: go.Figure,
    below: int,
    layout: dict[str, Any],
    traces: dict[int, dict[str, Any]] | None = None,
) -> go.Figure:
    """Give ``fig`` a layout for charts narrower than ``below`` px (see the module
    docstring): ``layout`` in ``Plotly.relayout``'s flat form, ``traces`` maps a trace's
    index to its properties in ``Plotly.restyle``'s. Returns ``fig``, changed in place."""
    if int(below) < 1:
        raise ValueError(f"below must be a width in px >= 1, got {below!r}")
    unknown = [i for i in traces or {} if not 0 <= int(i) < len(fig.data)]
    if unknown:
        raise ValueError(f"traces names traces {unknown} of a figure of {len(fig.data)}")
    meta = dict(fig.layout.meta or {})
    meta[META_KEY] = {
        "below": int(below),
        "layout": dict(layout),
        "traces": {str(int(i)): dict(props) for i, props in (traces or {}).items()},
    }
    fig.layout.meta = meta
    return fig
