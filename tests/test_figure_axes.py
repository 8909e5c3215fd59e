"""Every figure builder's axes (issue 14): no raw TeX in an axis title (plotly shows ``$ε$``
and ``\\lambda`` as typed), and every log axis labels each decade its data spans.

The figures are built from small arrays; a public builder of a figure module that is not in
:func:`figures` fails the coverage test, so a new builder gets checked too. The Geometry
figures (``gca_viz.figures.geometry``) are checked with their own page.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from itertools import pairwise
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from gca_viz import lab
from gca_viz.experiments import uot_mechanism as um
from gca_viz.figures import _axes, experiments, mechanism, plans, player, story, training
from tests.plotly_json import array

MODULES = (experiments, mechanism, plans, player, story, training)
RNG = np.random.default_rng(0)


def _pairs() -> um.CorruptedPairs:
    batch = lab.synthetic_batch(32, dim=8, noise=0.3, seed=0)
    return um.replace_views(batch.z1, batch.z2, 0.25, seed=0)


def figures() -> dict[str, Callable[[], go.Figure]]:
    """A cheap call of every public figure builder, by ``module.function``."""
    plan = RNG.random((12, 12))
    eps = np.geomspace(0.02, 2.0, 6)
    kl = np.linspace(3.0, 2.0, 9)
    runs = [
        training.RunSeries(
            "#1",
            {"loss": np.column_stack([np.arange(1, 21), np.linspace(5, 4, 20)])},
            [{"step": 10, "epsilon": 0.2, "relax_a": None}],
            {"epsilon": 0.5},
        )
    ]
    split = (RNG.random(8), RNG.random(8), RNG.random(8) + 1)
    return {
        "experiments.block_heatmap": lambda: experiments.block_heatmap(
            plan, np.repeat([0, 1, 2], 4), title="P", value_label="P", log=True
        ),
        "experiments.domain_sweep_chart": lambda: experiments.domain_sweep_chart(
            np.array([-0.5, 0.0, 0.5]), np.array([0.7, 0.8, 0.9]), np.array([0.9, 0.9, 0.9])
        ),
        "experiments.comparison_bars": lambda: experiments.comparison_bars(
            ["INCE", "GCA-UOT"], ["clean", "corrupted"], RNG.random((2, 2)), metric="k-NN"
        ),
        "experiments.sweep_gain_chart": lambda: experiments.sweep_gain_chart(
            [0.0, 0.5, 0.9],
            [0.5, 0.2],
            {"GCA-UOT": RNG.normal(0, 0.02, (2, 3))},
            {"GCA-UOT": RNG.random((2, 3)) * 0.01},
            {"GCA-UOT": "#c2410c"},
            metric="clean k-NN (ẑ)",
        ),
        "experiments.view_grid": lambda: experiments.view_grid(
            RNG.random((2, 4, 8, 8)), RNG.random((2, 4)), ["a", "b", "c", "d"]
        ),
        "experiments.mass_scatter": lambda: experiments.mass_scatter(
            RNG.random(16), {"P_ii / mean": RNG.random(16)}
        ),
        "mechanism.share_chart": lambda: mechanism.share_chart(
            um.mass_shares(_pairs(), epsilon=0.2, relax=0.1)
        ),
        "mechanism.gradient_chart": lambda: mechanism.gradient_chart(
            um.gradient_shares(_pairs(), epsilon=0.2, relax=0.1)
        ),
        "mechanism.tradeoff_chart": lambda: mechanism.tradeoff_chart(
            um.relaxation_sweep(_pairs(), [0.003, 0.1, 20.0], epsilon=0.2)
        ),
        "plans.matrix_heatmap": lambda: plans.matrix_heatmap(
            plan, title="P", value_label="P", log=True, positives=np.arange(12)
        ),
        "plans.kl_curve": lambda: plans.kl_curve(kl, 3),
        "plans.loss_bars": lambda: plans.loss_bars(["INCE", "GCA-INCE"], np.array([2.0, 1.5])),
        "plans.sweep_chart": lambda: plans.sweep_chart(
            eps,
            {"distance": np.geomspace(1e-9, 0.3, 6), "zero": np.r_[0.0, np.ones(5)]},
            title="t",
            x_title="ε",
            y_title="L1",
            log_y=True,
        ),
        "plans.error_curves": lambda: plans.error_curves(
            eps[:2], [np.geomspace(0.5, 1e-7, 30), np.geomspace(0.2, 1e-5, 9)], tol=1e-6
        ),
        "player.half_step_player": lambda: player.half_step_player(
            RNG.random((5, 6, 6)), np.linspace(2.0, 1.0, 5), log=True
        ),
        "story.monotone_chart": lambda: story.monotone_chart(kl),
        "story.split_chart": lambda: story.split_chart(split, split),
        "story.hub_chart": lambda: story.hub_chart(RNG.random(8) + 0.5, np.ones(8)),
        "story.marginal_chart": lambda: story.marginal_chart(
            RNG.random(8), RNG.random(8), np.ones(8), np.ones(8), title="m"
        ),
        "training.metric_curves": lambda: training.metric_curves(runs, ["loss", "knn_acc"]),
        "training.plan_heatmap": lambda: training.plan_heatmap({"plan": plan}, "plan"),
    }


def test_every_figure_builder_is_checked() -> None:
    builders = {
        f"{m.__name__.rsplit('.', 1)[-1]}.{name}"
        for m in MODULES
        for name, fn in vars(m).items()
        if inspect.isfunction(fn)
        and fn.__module__ == m.__name__
        and not name.startswith("_")
        and "Figure" in str(inspect.signature(fn).return_annotation)
    }
    assert builders == set(figures())


def _title(axis: dict[str, Any]) -> str:
    title = axis.get("title")
    return str(title.get("text") or "") if isinstance(title, dict) else str(title or "")


def _drawn(fig: dict[str, Any], axis_name: str) -> np.ndarray:
    """The positive finite values the traces put on the layout axis ``axis_name``."""
    letter, suffix = axis_name[0], axis_name[len("xaxis") :]
    values = []
    for trace in fig["data"]:
        if trace.get(f"{letter}axis", letter) != letter + suffix or letter not in trace:
            continue
        if trace.get("type") not in ("scatter", "scattergl", "bar"):
            continue
        try:
            v = array(trace[letter]).astype(float).ravel()
        except (TypeError, ValueError):
            continue  # category labels
        values.append(v[np.isfinite(v) & (v > 0)])
    return np.concatenate(values) if values else np.empty(0)


def _origin_bars(fig: dict[str, Any], axis_name: str) -> bool:
    """Whether vertical bars, all from y = 0 up, stand on the layout y axis ``axis_name``
    with a numeric x that starts at 0 on an x axis that labels its ticks beside them: both
    axes' "0" labels then meet at the origin, where plotly draws them touching."""
    suffix = axis_name[len("yaxis") :]
    xs, ys = [], []
    for trace in fig["data"]:
        if trace.get("type") != "bar" or trace.get("orientation", "v") != "v":
            continue
        if trace.get("yaxis", "y") != "y" + suffix:
            continue
        x_axis = fig["layout"].get("xaxis" + trace.get("xaxis", "x")[1:], {})
        if x_axis.get("showticklabels") is False or x_axis.get("anchor", "y") != "y" + suffix:
            continue  # (no x labels, or they sit by another subplot)
        try:
            xs.append(array(trace.get("x")).astype(float).ravel())
            ys.append(array(trace.get("y")).astype(float).ravel())
        except (TypeError, ValueError):
            continue  # category labels
    if not xs or not np.concatenate(xs).size:
        return False
    return bool(np.nanmin(np.concatenate(xs)) == 0 and np.nanmin(np.concatenate(ys)) >= 0)


def axis_problems(figure: go.Figure) -> list[str]:
    """What is wrong with the figure's 2-D axes: raw TeX in a title, a log axis with a
    decade of its data left unlabelled, bars whose axes' "0" labels touch at the origin."""
    fig = figure.to_plotly_json()
    layout = fig["layout"]
    problems = []
    for name, axis in layout.items():
        if not (name.startswith(("xaxis", "yaxis")) and isinstance(axis, dict)):
            continue
        title = _title(axis)
        if "$" in title or "\\" in title:
            problems.append(f"{name}: raw TeX in its title {title!r}")
        if (
            name.startswith("yaxis")
            and _origin_bars(fig, name)
            and (axis.get("ticklabelstandoff") or 0) < 4
        ):
            problems.append(f"{name}: its '0' touches the bars' x '0' at the origin")
        if axis.get("type") != "log":
            continue
        if axis.get("dtick") in (1, "1") and not axis.get("tickvals"):
            continue
        ticks = [float(t) for t in axis.get("tickvals") or []]
        texts = list(axis.get("ticktext") or [])
        if len(texts) != len(ticks) or not all(texts):
            problems.append(f"{name}: a tick without its label")
        powers = [math.log10(t) for t in ticks]
        if not ticks or any(abs(p - round(p)) > 1e-9 for p in powers):
            problems.append(f"{name}: log ticks {ticks} are not powers of ten")
            continue
        if any(round(b - a) != 1 for a, b in pairwise(powers)):
            problems.append(f"{name}: a decade is missing from {ticks}")
        data = _drawn(fig, name)
        if data.size and not (ticks[0] <= data.min() and data.max() <= ticks[-1]):
            problems.append(f"{name}: data {data.min():g}..{data.max():g} beyond {ticks}")
    return problems


@pytest.mark.parametrize("name", sorted(figures()))
def test_axis_titles_have_no_tex_and_log_axes_label_every_decade(name: str) -> None:
    assert axis_problems(figures()[name]()) == []


def test_the_log_axes_are_log_and_read_as_decimals() -> None:
    """The builders with log axes use them (a figure without one passes the test above
    trivially), and their labels read 0.001, 0.01, ... (or 1e-7 ... beyond 1e-4)."""
    sweep = figures()["plans.sweep_chart"]()
    assert sweep.layout.xaxis.type == sweep.layout.yaxis.type == "log"
    assert list(sweep.layout.xaxis.ticktext) == ["0.01", "0.1", "1", "10"]
    assert list(sweep.layout.yaxis.ticktext)[:2] == ["1e-9", "1e-8"]
    errors = figures()["plans.error_curves"]()
    assert errors.layout.yaxis.type == "log" and errors.layout.yaxis.ticktext[0] == "1e-7"
    trade = figures()["mechanism.tradeoff_chart"]()
    assert list(trade.layout.xaxis.ticktext) == ["0.001", "0.01", "0.1", "1", "10", "100"]


def test_decades_and_their_labels() -> None:
    assert _axes.decades(np.array([0.003, 20.0])) == [0.001, 0.01, 0.1, 1.0, 10.0, 100.0]
    assert _axes.decades([0.1, 1.0], 0.5) == [0.1, 1.0]
    assert _axes.decades(np.array([0.0, -1.0, np.nan])) == []
    assert _axes.decade_text([1e-4, 1e-3, 1.0, 1e4]) == ["0.0001", "0.001", "1", "10000"]
    assert _axes.decade_text([1e-5, 1e-4]) == ["1e-5", "1e-4"]
    assert _axes.log_axis([]) == {"type": "log", "dtick": 1}
    # data within a decade: the range runs from decade to decade, so both ticks show
    # (plotly fitted 0.0021 ... 0.0097 and labelled only 0.01)
    short = _axes.log_axis(np.array([0.0021, 0.0097]))
    assert short["tickvals"] == [0.001, 0.01]
    assert short["range"][0] <= -3 and short["range"][1] >= -2
    assert "range" not in _axes.log_axis(np.array([1e-6, 1.0]))  # six decades: plotly's fit
    assert _axes.log_axis([0.01, 0.01])["range"] == [-2.5, -1.5]  # one value: not zero width
    raw = go.Figure(layout={"xaxis": {"title": {"text": "$\\varepsilon$"}, "type": "log"}})
    assert len(axis_problems(raw)) == 2  # the checker itself catches both faults


def test_round_ticks_step_by_one_two_or_five_times_a_power_of_ten() -> None:
    round_ticks = _axes.round_ticks
    assert round_ticks(0.0, 0.19) == [0.0, 0.05, 0.1, 0.15]
    assert round_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert round_ticks(-3.2, -0.1) == [-3.0, -2.0, -1.0]
    assert round_ticks(2.5e-5, 3e-4) == [1e-4, 2e-4, 3e-4]
    assert round_ticks(-0.3, 0.3) == [-0.2, 0.0, 0.2]
    assert round_ticks(0.5, 0.5) == [0.5]  # an empty range: its one value
