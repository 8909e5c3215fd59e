"""A legend under a chart's x axis (gca_viz/figures/_legend.py): it clears the tick labels
and the axis title at any height and font size, and the plot keeps its height."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

import ui
from gca_viz.figures import plans, story
from gca_viz.figures._legend import META_KEY, legend_below


def _figure(entries: int, height: int = 400) -> go.Figure:
    traces = [go.Scatter(x=[0, 1], y=[k, k + 1], name=f"series {k}") for k in range(entries)]
    layout = {"height": height, "margin": {"t": 60, "b": 50}, "xaxis": {"title": "ε"}}
    return go.Figure(data=traces, layout=layout)


def _plot_height(fig: go.Figure) -> float:
    return fig.layout.height - fig.layout.margin.t - fig.layout.margin.b


def _legend_top_px(fig: go.Figure) -> float:
    """How far under the plot the legend starts, in pixels."""
    return -fig.layout.legend.y * _plot_height(fig)


@pytest.mark.parametrize("entries", [1, 4])
def test_the_legend_starts_under_the_axis_title_and_the_plot_keeps_its_height(entries: int) -> None:
    fig = legend_below(_figure(entries))
    assert _plot_height(fig) == pytest.approx(400 - 60 - 50, abs=1)
    # ticks (12 px) and the axis title (12 px) take about 1.45 lines each
    assert _legend_top_px(fig) >= 2 * 1.45 * 12
    assert fig.layout.legend.yanchor == "top" and fig.layout.legend.orientation == "v"
    rows = entries * (1.45 * 12 + 4)
    assert fig.layout.margin.b >= _legend_top_px(fig) + rows  # no margin left to expand
    assert fig.layout.meta[META_KEY] == pytest.approx(_plot_height(fig), abs=1)


def test_larger_fonts_move_the_legend_down_and_keep_the_plot() -> None:
    """The lecture mode's copy (ui.lecture_figure) is laid out again for its fonts."""
    fig = legend_below(_figure(3))
    before, plot = _legend_top_px(fig), _plot_height(fig)
    big = ui.lecture_figure(fig)[0]
    assert _legend_top_px(big) > before
    assert _plot_height(big) == pytest.approx(plot, abs=1)
    assert big.layout.margin.b > fig.layout.margin.b


def test_the_charts_the_review_found_overlapping_lay_their_legends_out_below() -> None:
    import numpy as np

    eps = np.array([0.1, 0.5, 1.0])
    charts = [
        plans.sweep_chart(eps, {"a": eps, "b": 2 * eps}, title="t", x_title="ε", y_title="y"),
        plans.kl_curve(np.linspace(3, 2, 7)),
        story.hub_chart(np.array([1.2, 1.0, 0.8]), np.ones(3)),
    ]
    for fig in charts:
        assert META_KEY in fig.layout.meta, fig.layout.title.text
        assert _legend_top_px(fig) >= 2 * 1.45 * 12


@pytest.mark.parametrize(("rows", "cols"), [(2, 1), (1, 2)], ids=["stacked", "side-by-side"])
def test_in_a_subplot_grid_the_legend_clears_the_lowest_titled_axis(rows: int, cols: int) -> None:
    """Noisy views' two-row chart has its x title on the lower subplot (xaxis2): the legend
    was laid out for the upper axis, which has none, and sat on the title. Of two axes side
    by side at the bottom, the titled one counts."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=rows, cols=cols)
    fig.add_trace(go.Bar(x=[0, 1], y=[1, 2], name="a"), row=1, col=1)
    fig.add_trace(go.Scatter(x=[0, 1], y=[1, 2], name="b"), row=rows, col=cols)
    fig.update_xaxes(title_text="rows", row=rows, col=cols)
    fig.update_layout(height=400, margin={"t": 60, "b": 50})
    laid = legend_below(go.Figure(fig))
    assert _legend_top_px(laid) >= 1.45 * 12 + 1.6 * 12 + 14  # the title's room too


def test_the_mass_scatters_emphasised_series_is_drawn_on_top() -> None:
    """Noisy views' scatter drew the balanced plan's crosses over the unbalanced plan's dots
    (the emphasised first series): it is drawn last, and the legend keeps the given order."""
    from gca_viz.figures import experiments

    x = np.linspace(0, 1, 5)
    fig = experiments.mass_scatter(x, {"unbalanced": x, "row": 1 - x, "balanced": x * 0 + 1})
    assert [t.name for t in fig.data][-1] == "unbalanced"
    ranked = sorted(fig.data, key=lambda t: t.legendrank)
    assert [t.name for t in ranked] == ["unbalanced", "row", "balanced"]
