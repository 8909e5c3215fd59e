"""Figure builders of the plan lab and the entropy page (gca_viz.figures.plans)."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import plotly.graph_objects as go
import pytest

from gca_viz.figures import plans as figs
from gca_viz.figures.player import half_step_player, misfit_words
from tests.helpers import cielab, contrast_with_white


def test_heatmap_has_marginals_references_and_a_cell_layer() -> None:
    rng = np.random.default_rng(0)
    P = rng.random((6, 6))
    fig = figs.matrix_heatmap(
        P,
        title="P",
        value_label="P",
        row_ref=np.ones(6),
        col_ref=np.ones(6),
        selectable=True,
        marked=(2, 3),
    )
    assert isinstance(fig, go.Figure)
    heat, cells = fig.data[0], fig.data[figs.SELECT_TRACE]
    np.testing.assert_allclose(np.asarray(heat.z, dtype=float), P, rtol=1e-6)
    assert cells.type == "scattergl" and len(cells.x) == 36
    col_bar, row_bar = fig.data[2], fig.data[3]
    np.testing.assert_allclose(col_bar.y, P.sum(0))
    np.testing.assert_allclose(row_bar.x, P.sum(1))
    assert [t.name for t in fig.data[4:]] == ["ν", "μ"]
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (2.5, 3.5, 1.5, 2.5)
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # row 0 at the top


def test_large_matrices_are_block_averaged_and_excluded_pairs_blank() -> None:
    M = np.arange(300 * 300, dtype=float).reshape(300, 300)
    fig = figs.matrix_heatmap(M, title="C", value_label="C", selectable=True)
    z = np.asarray(fig.data[0].z, dtype=float)
    assert z.shape == (150, 150)
    assert z[0, 0] == pytest.approx(M[:2, :2].mean())
    assert list(fig.data[0].x[:3]) == [0, 2, 4]  # original indices of the blocks
    assert np.asarray(fig.data[figs.SELECT_TRACE].x).dtype == np.uint16
    C = np.where(np.eye(4, dtype=bool), np.inf, 1.0)
    z = np.asarray(figs.matrix_heatmap(C, title="C", value_label="C").data[0].z, dtype=float)
    assert np.isnan(np.diag(z)).all() and (z[~np.eye(4, dtype=bool)] == 1).all()


def test_log_colour_scale_shows_twelve_decades() -> None:
    P = np.array([[1.0, 1e-3], [1e-20, 0.0]])
    z = np.asarray(figs.matrix_heatmap(P, title="P", value_label="P", log=True).data[0].z, float)
    assert z[0, 0] == 0 and z[0, 1] == pytest.approx(-3)
    assert z[1, 0] == pytest.approx(-12) and np.isnan(z[1, 1])


def test_selected_cell_reads_the_cell_layer_only() -> None:
    points = [
        {"x": 3, "y": 1, "curve_number": 2},  # a marginal bar: ignored
        {"x": 4.0, "y": 2.0, "curve_number": figs.SELECT_TRACE},
    ]
    assert figs.selected_cell({"points": points}, (5, 5)) == (2, 4)
    assert figs.selected_cell({"points": points[:1]}, (5, 5)) is None
    assert figs.selected_cell({"points": []}, (5, 5)) is None
    assert figs.selected_cell(None, (5, 5)) is None
    far = [{"x": 9, "y": 0, "curve_number": figs.SELECT_TRACE}]
    assert figs.selected_cell({"points": far}, (5, 5)) is None


def test_kl_curve_marks_the_current_half_step() -> None:
    kl = np.array([3.0, 2.0, 1.5, 1.4, 1.35])
    fig = figs.kl_curve(kl, current=3)
    current = [s for s in fig.layout.shapes if s.xref == "x"]
    assert len(current) == 1 and current[0].x0 == 3
    names = [t.name for t in fig.data]
    assert "row step (odd k)" in names and "current k = 3" in names
    rows = fig.data[names.index("row step (odd k)")]
    assert list(rows.x) == [1, 3]
    inf_fig = figs.kl_curve(np.array([np.inf, 1.0, 0.5]))
    assert np.isnan(np.asarray(inf_fig.data[0].y, dtype=float)).sum() == 0  # k = 0 is not drawn


def test_kl_curve_shows_the_drop_from_ince_to_gca_ince_not_the_kernel() -> None:
    # The kernel's KL (k = 0) is 20x INCE's: on the axis it would flatten the drop that
    # matters. It is named in a note instead, and the y range spans only k >= 1.
    kl = np.array([14.0, 0.7648, 0.7400, 0.7360, 0.7350, 0.7346, 0.7345])
    fig = figs.kl_curve(kl, current=0)
    drawn = np.concatenate([np.asarray(t.x, dtype=float) for t in fig.data if t.x is not None])
    assert drawn.min() >= 1
    assert fig.layout.xaxis.range[0] > 0
    notes = [a.text for a in fig.layout.annotations if a.text]
    assert any("k = 0" in t and "14" in t and "current" in t for t in notes)
    # dashed lines at INCE and GCA-INCE, labelled above INCE and below GCA-INCE, where no
    # half-step lies (the theorem), inside a y range with room for them
    levels = sorted(float(s.y0) for s in fig.layout.shapes if s.xref == "x domain")
    assert levels == pytest.approx([0.7345, 0.7648])
    labels = {a.text.split()[0]: a for a in fig.layout.annotations if a.text and "INCE" in a.text}
    assert labels["INCE"].yanchor == "bottom" and labels["GCA-INCE"].yanchor == "top"
    # ... shifted off the line by more than a lecture-sized marker's radius (they covered it)
    assert labels["INCE"].yshift >= 8 and labels["GCA-INCE"].yshift <= -8
    low, high = fig.layout.yaxis.range
    assert low < 0.7345 - 0.005 and high > 0.7648 + 0.005
    assert "-0.03" in labels["GCA-INCE"].text and "-4.0%" in labels["GCA-INCE"].text
    arrows = [a for a in fig.layout.annotations if a.showarrow]
    assert len(arrows) == 1 and arrows[0].ay == pytest.approx(0.7648)
    assert arrows[0].y == pytest.approx(0.7345) and arrows[0].x > 6
    # No current ring at k = 0 (it is off the chart); rings k >= 1.
    assert "current k = 0" not in [t.name for t in fig.data]


def test_kl_curve_with_equal_losses_keeps_a_readable_range() -> None:
    kl = np.array([5.0, 0.7, 0.7, 0.7])  # ε large: P^(1) already balanced, INCE = GCA-INCE
    fig = figs.kl_curve(kl)
    low, high = fig.layout.yaxis.range
    assert low < 0.7 < high and high - low < 0.01
    assert not [a for a in fig.layout.annotations if a.showarrow]  # no drop, no arrow


def test_heatmap_outlines_the_positive_pairs() -> None:
    plan = np.full((6, 6), 0.1)
    pos = np.array([3, 4, 5, 0, 1, 2])  # joint layout: partner(i)
    fig = figs.matrix_heatmap(plan, title="t", value_label="P", positives=pos, selectable=True)
    marks = next(t for t in fig.data if t.name == "positive pair (i, pos(i))")
    assert sorted(zip(np.asarray(marks.y), np.asarray(marks.x), strict=True)) == sorted(
        zip(range(6), pos, strict=True)
    )
    assert marks.hoverinfo == "skip"  # clicks reach the cell layer
    assert fig.data[figs.SELECT_TRACE].name == "cells"
    big = figs.matrix_heatmap(
        np.ones((512, 512)), title="t", value_label="P", positives=np.arange(512)
    )
    marks = next(t for t in big.data if t.name == "positive pair (i, pos(i))")
    assert marks.mode == "lines"  # 256 displayed rows: cells of 1.4 px get a corridor


def _corridor(marks: Any) -> list[tuple[float, float, float, float]]:
    """The segments ``(x0, y0, x1, y1)`` of a corridor trace (None-separated pairs)."""
    x, y = list(marks.x), list(marks.y)
    return [(x[k], y[k], x[k + 1], y[k + 1]) for k in range(0, len(x), 3)]


@pytest.mark.parametrize("n", [64, 100, 110, 128, 256, 512])
def test_positive_marks_never_overlap_their_neighbours(n: int) -> None:
    """Squares while a cell is at least 4 px; on smaller cells 4-px squares overlapped into a
    pink band over the diagonal (Plan lab, N = 256), so two lines frame the diagonal instead,
    clear of its cells: the plan's own values stay visible. The caption's words follow."""
    fig = figs.matrix_heatmap(
        np.ones((n, n)), title="t", value_label="P", positives=np.arange(n), height=560
    )
    marks = next(t for t in fig.data if t.name == "positive pair (i, pos(i))")
    f = -(-n // 256)
    cell_px = 0.8 * (560 - 110) / (n // f)
    words = figs.positive_marks_words(n, 560)
    if marks.mode == "markers":
        assert cell_px >= 4 and marks.marker.size <= cell_px and words == "pink squares"
        return
    assert cell_px < 4 and words == "pink lines either side"
    segments = _corridor(marks)
    assert len(segments) == 2  # one run: the whole diagonal, a line either side
    for x0, y0, x1, y1 in segments:
        assert x1 - x0 == pytest.approx(y1 - y0)  # parallel to the diagonal
        assert y0 == -f / 2 and y1 == n - f + f / 2  # from the first row to the last
        # at right angles from the nearest cell corner (f off the diagonal in x - y)
        gap = (abs(x0 - y0) - f) / np.sqrt(2)  # index units
        assert gap * cell_px / f == pytest.approx(2.0)  # two pixels clear


def test_a_corridor_follows_each_run_of_partners_in_the_joint_layout() -> None:
    """2N x 2N, self-pairs excluded: the partners lie on two diagonals, j = i + N for the
    first N rows and j = i - N for the rest; each run gets its own pair of lines."""
    n = 64
    pos = np.concatenate([np.arange(n) + n, np.arange(n)])
    fig = figs.matrix_heatmap(np.ones((2 * n, 2 * n)), title="t", value_label="P", positives=pos)
    marks = next(t for t in fig.data if t.name == "positive pair (i, pos(i))")
    assert marks.mode == "lines"
    runs = sorted({(round(y0 + 0.5), round(y1 - 0.5)) for _, y0, _, y1 in _corridor(marks)})
    assert runs == [(0, n - 1), (n, 2 * n - 1)]
    centres = sorted({round((x0 - y0) * 2) / 2 for x0, y0, _, _ in _corridor(marks)})
    assert len(centres) == 4 and centres[0] < -n < centres[1] and centres[2] < n < centres[3]


def test_loss_bars_sweep_charts_and_error_curves() -> None:
    bars = figs.loss_bars(["INCE (InfoNCE)", "GCA-INCE", "BYOL"], np.array([2.0, 1.5, 0.1]))
    assert list(bars.data[0].marker.color) == [
        figs.COLORS["ince"],
        figs.COLORS["gca"],
        figs.COLORS["other"],
    ]
    eps = np.geomspace(0.01, 1, 4)
    chart = figs.sweep_chart(
        eps,
        {"a": eps, "b": 2 * eps},
        title="t",
        x_title="ε",
        y_title="y",
        dashed=("b",),
        references={"log n": 1.0},
    )
    assert chart.layout.xaxis.type == "log" and chart.data[1].line.dash == "dash"
    assert chart.layout.annotations[0].text == "log n"
    exact = figs.sweep_chart(
        eps, {"d": np.array([0.0, 0.0, 0.5, 1.0])}, title="t", x_title="ε", y_title="d", log_y=True
    )  # a distance that reached exactly 0 at small ε
    drawn = np.asarray(exact.data[0].y, float)
    assert np.isnan(drawn[:2]).all() and drawn[2:].tolist() == [0.5, 1.0]
    assert exact.layout.annotations[-1].text == "2 points equal to 0: not drawn on the log scale"
    linear = figs.sweep_chart(eps, {"d": np.zeros(4)}, title="t", x_title="ε", y_title="d")
    assert np.asarray(linear.data[0].y, float).tolist() == [0.0] * 4  # (drawn: linear axis)
    curves = figs.error_curves(eps, [np.array([1e-1, 1e-3, 0.0])] * 4, tol=1e-6)
    assert len(curves.data) == 4 and np.isnan(np.asarray(curves.data[0].y, float)[2])
    # semi-log: geometric convergence err = r^t is a straight line only with t on a linear
    # axis (on the old log-log axes it bent)
    assert curves.layout.xaxis.type == "linear" and curves.layout.yaxis.type == "log"


def test_sample_image_enlarges_sharp_pixels() -> None:
    img = np.zeros((1, 8, 8))
    img[0, 0, 0] = 1.0
    out = figs.sample_image(img, size=64)
    assert out.shape == (64, 64) and out.dtype == np.uint8
    # one channel is ink, drawn dark on white; colour is drawn as it is
    assert out[:8, :8].max() == 0 and out[8:, 8:].min() == 255
    rgb = figs.sample_image(np.ones((3, 4, 4)), size=8)
    assert rgb.shape == (8, 8, 3) and rgb.min() == 255
    with pytest.raises(ValueError, match="image"):
        figs.sample_image(np.ones((8, 8)))


def assert_round_ticks(heat: Any, lo: float, hi: float) -> None:
    """A quantised heatmap's colour bar: ticks at round values within ``[lo, hi]``, 1, 2 or
    5 times a power of ten apart, each at its level (they were fifths of the range, read
    0.0381, 0.0762, 0.114), the range itself in the title."""
    values = np.array([float(t) for t in heat.colorbar.ticktext])
    steps = np.diff(values)
    assert len(values) >= 2 and np.allclose(steps, steps[0])
    mantissa = steps[0] / 10 ** np.floor(np.log10(steps[0]))
    assert any(np.isclose(mantissa, m) for m in (1, 2, 5)), values
    assert np.allclose(values / steps[0], np.round(values / steps[0]))
    assert lo - 1e-9 <= values.min() and values.max() <= hi + 1e-9
    levels = 255 * (values - lo) / (hi - lo)
    np.testing.assert_allclose(heat.colorbar.tickvals, levels, atol=0.5)


def test_half_step_player_animates_every_half_step_in_the_browser() -> None:
    rng = np.random.default_rng(0)
    plans = rng.random((7, 6, 6))  # T = 3: P^(0) .. P^(6)
    kl = np.array([5.0, 1.0, 0.8, 0.7, 0.65, 0.62, 0.6])
    fig = half_step_player(plans, kl, positives=np.arange(6), start=2)
    assert [fr.name for fr in fig.frames] == [str(k) for k in range(7)]
    for k, frame in enumerate(fig.frames):
        heat, marker, *_ = frame.data
        assert list(frame.traces) == [0, 2, 3, 4, 5]
        z = np.asarray(heat.z)
        assert z.dtype == np.uint8  # compact frames: 256 levels of the plan's own range
        np.testing.assert_allclose(z / 255 * plans[k].max(), plans[k], atol=plans[k].max() / 500)
        assert heat.colorbar.title.text.endswith(f"0 … {plans[k].max():.3g}</sub>")
        assert heat.colorbar.title.text.startswith("K<br>" if k == 0 else "P<br>")  # kernel
        assert_round_ticks(heat, 0.0, plans[k].max())
        assert list(marker.x) == [k] and marker.y[0] == pytest.approx(kl[k])
        assert not frame.layout.to_plotly_json()  # no relayout per frame
    assert list(fig.data[2].x) == [2]  # starts at `start`
    assert fig.data[2].cliponaxis is False  # the ring at the last k is not cut in half
    play = fig.layout.updatemenus[0].buttons[0]
    assert play.method == "animate" and play.args[1]["frame"]["duration"] == 400  # 7 frames
    assert [s.args[0][0] for s in fig.layout.sliders[0].steps] == [str(k) for k in range(7)]
    curve = fig.data[1]
    assert list(curve.x) == list(range(1, 7))  # the kernel's k = 0 stays off the axis
    shared = half_step_player(plans, kl, shared_scale=True)
    end = f"{plans.max():.3g}</sub>"
    assert all(fr.data[0].colorbar.title.text.endswith(end) for fr in shared.frames)
    logged = half_step_player(plans, kl, log=True)
    z = np.asarray(logged.frames[3].data[0].z, float)
    top, floor = np.log10(plans[3].max()), np.log10(plans.min())  # (< 12 decades apart)
    width = top - floor
    np.testing.assert_allclose(z / 255 * width + floor, np.log10(plans[3]), atol=width / 500)
    assert f"<sub>{floor:.3g} … " in logged.frames[3].data[0].colorbar.title.text
    assert logged.frames[0].data[0].colorbar.title.text.startswith("log₁₀ K<br>")
    assert_round_ticks(logged.frames[3].data[0], floor, top)
    wide = plans.copy()
    wide[0, 0, 0] = 1e-30  # 30 decades: the floor stops 12 below each frame's maximum
    title = half_step_player(wide, kl, log=True).frames[0].data[0].colorbar.title.text
    assert f"<sub>{np.log10(wide[0].max()) - 12:.3g} … " in title


def _at(root: Any, path: str) -> Any:
    """``root`` (plotly JSON) at a ``Plotly.relayout`` path such as ``annotations[3].y``."""
    for part in path.split("."):
        name, _, index = part.partition("[")
        root = root[name] if not index else root[name][int(index.rstrip("]"))]
    return root


def test_half_step_player_stacks_when_narrow_and_its_frames_leave_the_colour_bar_alone() -> None:
    """The narrow layout (``layout.meta["narrow"]``, applied in the browser) names only
    properties the figure has, puts the KL curve under the plan and the colour bar beside the
    plan only, and grows the figure; no frame names the colour bar's place (a frame's trace
    is merged into the shown one: one that did would move the bar back on every frame)."""
    rng = np.random.default_rng(0)
    fig = half_step_player(rng.random((7, 6, 6)), np.linspace(3.0, 2.0, 7))
    shown = fig.to_plotly_json()
    narrow = fig.layout.meta["narrow"]
    assert narrow["below"] == 680
    for path in narrow["layout"]:
        _at(shown["layout"], path)  # exists (a KeyError or IndexError otherwise)
    assert _at(shown["layout"], "annotations[3].text").startswith("k = 0 (the kernel K)")
    stacked = narrow["layout"]
    assert stacked["height"] > shown["layout"]["height"]
    assert stacked["xaxis2.domain"] == [0.0, 1.0]  # the KL curve: the whole width ...
    kl_top = stacked["yaxis2.domain"][1]
    assert kl_top < stacked["yaxis3.domain"][0] < stacked["yaxis.domain"][0]  # ... under all
    bar = narrow["traces"]["0"]
    assert bar["colorbar.y"] - bar["colorbar.len"] > kl_top  # beside the plan only
    assert bar["colorbar.x"] > stacked["xaxis3.domain"][1]
    assert shown["data"][0]["colorbar"]["x"] == 0.475  # side by side: its own place
    for frame in fig.to_plotly_json()["frames"]:
        assert not {"x", "y", "len", "xanchor", "yanchor"} & set(frame["data"][0]["colorbar"])


def test_when_narrow_names_a_wrong_argument() -> None:
    from gca_viz.figures._narrow import when_narrow

    fig = go.Figure(go.Scatter(x=[0], y=[0]))
    with pytest.raises(ValueError, match="below must be a width in px >= 1, got 0"):
        when_narrow(fig, 0, {"height": 500})
    with pytest.raises(ValueError, match=r"traces names traces \[3\] of a figure of 1"):
        when_narrow(fig, 500, {}, {3: {"marker.size": 4}})
    assert when_narrow(fig, 500, {"height": 600}).layout.meta["narrow"]["below"] == 500


def test_half_step_player_shows_what_each_half_step_fixes_in_its_marginal_strips() -> None:
    """Beside the plan, its row sums over μ and under it its column sums over ν, as bars from
    1: a row step (odd k) puts every row on its target (no row bar) and leaves the columns
    off; a column step the converse; the misfit shrinks as Sinkhorn converges; the strips
    keep one range over the frames and block-average as the heatmap does."""
    from gca_viz.story import monotone_alignment

    rng = np.random.default_rng(1)
    z1, z2 = rng.normal(size=(2, 12, 4))
    z1 /= np.linalg.norm(z1, axis=1, keepdims=True)
    z2 /= np.linalg.norm(z2, axis=1, keepdims=True)
    mono = monotone_alignment(1.0 - z1 @ z2.T, 0.2, n_iter=6)
    fig = half_step_player(mono.plans, mono.kl)
    rows_bar, cols_bar = fig.data[3], fig.data[4]
    assert (rows_bar.orientation, rows_bar.xaxis, cols_bar.yaxis) == ("h", "x3", "y3")
    assert rows_bar.base == 1.0 and cols_bar.base == 1.0
    misfit = []
    for k, frame in enumerate(fig.frames[1:], start=1):
        row_dev = np.abs(np.asarray(frame.data[2].x, float))
        col_dev = np.abs(np.asarray(frame.data[3].y, float))
        on, off = (row_dev, col_dev) if k % 2 else (col_dev, row_dev)
        assert on.max() < 1e-9, k  # the constraint this half-step enforces holds
        assert off.max() > 1e-6, k  # the other one is not yet met
        misfit.append(off.max())
    assert misfit[-1] < 0.1 * misfit[0]  # Sinkhorn converges: the bars shrink
    # ... and the words above the plan say it at every k, however small the bars get
    words = [fr.data[4].text[0] for fr in fig.frames]
    assert words[0].startswith("the kernel K: rows off by up to")
    assert words[1].startswith("rows on target · columns off by up to")
    assert words[2].startswith("rows off by up to") and words[2].endswith("columns on target")
    assert misfit_words(0.0, 0.0421) == "rows on target · columns off by up to 4.2%"
    assert misfit_words(3e-5, 0.0) == "rows off by up to 3e-05 · columns on target"
    low, high = fig.layout.yaxis3.range
    every = np.concatenate([np.asarray(fr.data[3].y, float) + 1 for fr in fig.frames[1:]])
    assert low < 1 < high and low <= every.min() and every.max() <= high
    big = np.ones((3, 300, 300))  # shown as 100 x 100 blocks of 3: the bars too
    assert len(half_step_player(big, np.ones(3), max_size=100).data[4].x) == 100


def test_half_step_player_marks_ince_gca_ince_and_the_drop_like_the_kl_curve() -> None:
    """The player's KL panel carries the same marks as :func:`kl_curve` (one helper draws
    both): dashed lines at INCE (k = 1) and GCA-INCE (k = 2T) on its own axes, and an arrow
    spanning the drop inside the x range; no arrow when there is no drop."""
    kl = np.array([5.0, 1.0, 0.8, 0.7, 0.65, 0.62, 0.6])
    fig = half_step_player(np.ones((7, 4, 4)), kl)
    lines = [s for s in fig.layout.shapes if s.yref == "y2"]
    assert sorted(s.y0 for s in lines) == pytest.approx([0.6, 1.0])
    assert all(s.xref == "x2 domain" and (s.x0, s.x1) == (0, 1) for s in lines)
    (arrow,) = [a for a in fig.layout.annotations if a.showarrow]
    assert (arrow.xref, arrow.yref) == ("x2", "y2")
    assert (arrow.ay, arrow.y) == pytest.approx((1.0, 0.6))
    assert 6 < arrow.x < fig.layout.xaxis2.range[1]
    assert any(a.text.startswith("GCA-INCE 0.6000 (-0.4, -40.0%)") for a in fig.layout.annotations)
    low, high = fig.layout.yaxis2.range
    assert low < 0.6 and high > 1.0
    flat = half_step_player(np.ones((3, 4, 4)), np.array([2.0, 0.7, 0.7]))
    assert not [a for a in flat.layout.annotations if a.showarrow]


def test_the_play_buttons_have_their_own_row_above_a_full_width_slider() -> None:
    """Beside a slider from 22% of the width the ▶ / ❚❚ buttons (about 145 px) overlapped
    it on a chart under 660 px wide (Plan lab at 1000 px with the sidebar open): the slider
    now spans the width one row under the buttons, and the figure grows by that row."""
    from gca_viz.figures._controls import BUTTON_ROW

    fig = half_step_player(np.ones((5, 4, 4)), np.linspace(3, 2, 5), height=500)
    (menu,), (slider,) = fig.layout.updatemenus, fig.layout.sliders
    assert (slider.x, slider.len) == (0.0, 1.0)
    assert slider.pad.t >= menu.pad.t + BUTTON_ROW - 10  # below the buttons' row
    assert fig.layout.height == 500 + BUTTON_ROW
    assert fig.layout.height - fig.layout.margin.t - fig.layout.margin.b == 500 - 200


def test_a_log_player_of_a_nearly_uniform_plan_still_shows_its_structure() -> None:
    """Plans within one decade (a random encoder's batch) spread over the whole colour
    scale, not 1/12 of it (they were one flat colour: the Target plans page's player)."""
    rng = np.random.default_rng(3)
    plans = 10 ** rng.uniform(-2.1, -1.2, size=(5, 8, 8))
    fig = half_step_player(plans, np.linspace(3, 2, 5), log=True)
    for frame in fig.frames:
        levels = np.asarray(frame.data[0].z, float)
        assert levels.max() - levels.min() > 0.5 * 255
    big = half_step_player(np.ones((3, 300, 300)), np.ones(3))
    assert np.asarray(big.frames[0].data[0].z).shape == (100, 100)  # block means, ≤ 128


def test_the_play_pace_lets_a_class_see_each_half_step_and_plays_long_ones_at_20_fps() -> None:
    """At 25 ms a frame, T = 10's 21 half-steps played in half a second (a reviewer saw a
    blank heatmap and a marker jumping to the end). The whole play now takes about
    PLAY_SECONDS, each frame between 50 ms (20 fps, T = 50) and 400 ms."""
    from gca_viz.figures import _controls as player

    assert player.play_frame_ms(21) == 250  # T = 10
    assert player.play_frame_ms(101) == 50  # T = 50: 20 frames per second
    assert player.play_frame_ms(3) == 400 and player.play_frame_ms(1001) == 50  # clamped
    paces = [player.play_frame_ms(n) for n in range(2, 400)]
    assert paces == sorted(paces, reverse=True)
    for n in (21, 41, 101):
        assert (n - 1) * player.play_frame_ms(n) == pytest.approx(1000 * player.PLAY_SECONDS)


def test_error_curves_draw_a_handful_of_epsilons_from_end_to_end() -> None:
    """Entropy's sweep has 12 values of ε: 12 viridis lines could not be told apart on a
    projector and the legend scrolled ε = 2 out of view. At most max_curves lines, spread
    over the values, the smallest and the largest kept."""
    from gca_viz.figures.plans import error_curves

    eps = np.geomspace(0.01, 2.0, 12)
    errors = [np.geomspace(1.0, 1e-9 * (k + 1), 20) for k in range(12)]
    fig = error_curves(eps, errors, tol=1e-6)
    names = [t.name for t in fig.data]
    assert len(names) == 6 and names[0] == "ε = 0.01" and names[-1] == "ε = 2"
    # every line keeps 3:1 on white (the largest ε's was a pale yellow-green, 1.6:1)
    for trace in fig.data:
        assert contrast_with_white(trace.line.color) >= 3.0, trace.name
    # ... and neighbours differ (a student saw ε = 0.02 and 0.0462 in one dark purple:
    # Viridis's dark end put 15 ΔE between them)
    colors = [trace.line.color for trace in fig.data]
    gaps = [np.linalg.norm(cielab(a) - cielab(b)) for a, b in itertools.pairwise(colors)]
    assert min(gaps) >= 18, gaps
    assert len(error_curves(eps[:4], errors[:4], tol=1e-6).data) == 4
    with pytest.raises(ValueError, match="one array per epsilon"):
        error_curves(eps, errors[:3], tol=1e-6)


def test_a_log_map_of_one_value_has_no_colour_bar() -> None:
    """The pair target on a log scale is one value: its colour bar ran from -1 to 0, a
    range the matrix does not have. Without it, the cells say the value on hover; a matrix
    with two values keeps its bar."""
    from gca_viz.figures.plans import matrix_heatmap

    one = matrix_heatmap(np.eye(8), title="P_tgt", value_label="P_tgt", log=True)
    heat = next(t for t in one.data if t.type == "heatmap")
    assert heat.showscale is False
    two = matrix_heatmap(np.eye(8) + 0.1 * (1 - np.eye(8)), title="t", value_label="v", log=True)
    assert next(t for t in two.data if t.type == "heatmap").showscale is not False
    plain = matrix_heatmap(np.eye(8), title="t", value_label="v")
    assert next(t for t in plain.data if t.type == "heatmap").showscale is not False


def test_sweep_chart_draws_values_beyond_its_ceiling_on_the_cap() -> None:
    """Sweeps that did not reach the tolerance were gaps: at a small ε half the chart was
    blank. With ``ceiling`` they are open triangles on the cap's line, in a trace of their
    own; without a missing value there is no such trace."""
    eps = np.array([0.005, 0.01, 0.1, 1.0])
    sweeps = np.array([np.nan, np.nan, 120.0, 6.0])
    fig = figs.sweep_chart(eps, {"sweeps": sweeps}, title="t", x_title="ε", y_title="sweeps",
                           log_y=True, ceiling=(1000, "not reached in 1000 sweeps"))  # fmt: skip
    names = [t.name for t in fig.data]
    assert names == ["sweeps", "not reached in 1000 sweeps"]
    beyond = fig.data[1]
    assert list(beyond.x) == [0.005, 0.01] and list(beyond.y) == [1000, 1000]
    assert beyond.marker.symbol == "triangle-up-open" and beyond.mode == "markers"
    assert any(s.y0 == s.y1 == 1000 for s in fig.layout.shapes)  # the cap's line
    assert fig.layout.yaxis.type == "log" and max(fig.layout.yaxis.tickvals) >= 1000
    whole = figs.sweep_chart(eps, {"sweeps": np.array([900.0, 500, 120, 6])}, title="t",
                             x_title="ε", y_title="sweeps", log_y=True,
                             ceiling=(1000, "not reached"))  # fmt: skip
    assert [t.name for t in whole.data] == ["sweeps"] and not whole.layout.shapes


# ------------------------------------------------------------- outside the app (notebooks)


def _tiny_half_steps(requires_grad: bool = False) -> Any:
    import torch

    from gca_viz.lab import half_steps
    from gca_viz.ot import cosine_cost

    gen = torch.Generator().manual_seed(0)
    z1 = torch.randn(6, 3, generator=gen, dtype=torch.float64, requires_grad=requires_grad)
    z2 = z1.detach() + 0.3 * torch.randn(6, 3, generator=gen, dtype=torch.float64)
    return half_steps(cosine_cost(z1, z2), epsilon=0.2, n_iter=2)


def test_the_player_names_a_wrong_argument() -> None:
    """One plan (4, 4) read 'matrix must be a non-empty 2-D array, got shape (4,)', a kl of
    the wrong length an IndexError: each now names plans or kl and the shape it needs."""
    hs = _tiny_half_steps()
    with pytest.raises(ValueError, match=r"plans must be the \(2T \+ 1, n, m\) stack"):
        half_step_player(hs.plans[0], hs.kl)
    with pytest.raises(ValueError, match=r"kl must hold one value per plan, shape \(5,\)"):
        half_step_player(hs.plans, hs.kl[:3])


def test_figures_take_tensors_that_require_grad() -> None:
    """A plan straight from a loss requires grad: np.asarray raised torch's "Can't call
    numpy() on Tensor that requires grad"; the builders detach it."""
    import torch

    from gca_viz import ot

    C = torch.rand(5, 5, dtype=torch.float64, requires_grad=True)
    plan = ot.sinkhorn(C, epsilon=0.3).plan
    assert plan.requires_grad
    fig = figs.matrix_heatmap(plan, title="P", value_label="P")
    assert np.allclose(np.asarray(fig.data[0].z, dtype=float), plan.detach().numpy(), atol=1e-6)
    hs = _tiny_half_steps()
    player = half_step_player(torch.tensor(hs.plans, requires_grad=True), torch.tensor(hs.kl))
    assert len(player.frames) == 5


def test_write_html_opens_an_animation_on_its_first_frame(tmp_path: Any) -> None:
    """plotly's write_html plays every frame on opening (its auto_play), which blanks the
    player's plan while it plays; gca_viz.figures.write_html saves it still, standalone."""
    from gca_viz.figures import write_html

    hs = _tiny_half_steps()
    fig = half_step_player(hs.plans, hs.kl)
    fig.write_html(tmp_path / "plotly.html")
    assert "Plotly.animate(" in (tmp_path / "plotly.html").read_text()  # the default plays
    out = write_html(fig, tmp_path / "ours.html")
    text = out.read_text()
    assert "Plotly.animate(" not in text and "Plotly.addFrames" in text
    assert len(text) > 1_000_000  # plotly.js inside: it opens offline


def test_an_empty_kl_curve_says_why() -> None:
    fig = figs.kl_curve(np.full(7, np.inf))
    assert any("No finite KL" in str(a.text) for a in fig.layout.annotations)
    drawn = figs.kl_curve(np.arange(7.0)).layout.annotations
    assert not any("No finite KL" in str(a.text) for a in drawn)


def test_lines_are_told_apart_without_colour() -> None:
    """Entropy's sparsity lines and its six error curves differed by colour alone (an
    accessibility review): series carry their own marker shapes, curves their own dashes."""
    x = np.array([0.1, 0.2, 0.5])
    fig = figs.sweep_chart(x, {"a": x, "b": 2 * x, "c": 3 * x}, title="t", x_title="x", y_title="y")
    assert len({t.marker.symbol for t in fig.data}) == 3
    curves = figs.error_curves(np.geomspace(0.02, 2, 6), [np.geomspace(1, 1e-6, 5)] * 6, tol=1e-4)
    assert len({t.line.dash for t in curves.data}) == 6
