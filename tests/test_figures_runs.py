"""Tests of the run figures: gca_viz.figures.training, geometry and alignment."""

from __future__ import annotations

import dataclasses
import itertools
import json
from typing import Any

import numpy as np
import pytest

from gca_viz import embed
from gca_viz.figures import alignment, geometry, training
from tests.helpers import cielab, contrast_with_white
from tests.plotly_json import array, decode


def test_block_mean_keeps_small_matrices_and_averages_large_ones() -> None:
    rng = np.random.default_rng(0)
    small = rng.random((256, 256))
    np.testing.assert_array_equal(training.block_mean(small), small)
    big = rng.random((600, 600))
    out = training.block_mean(big)  # blocks of 3 x 3
    assert out.shape == (200, 200)
    np.testing.assert_allclose(out[0, 0], big[:3, :3].mean())
    np.testing.assert_allclose(out.mean(), big.mean())
    uneven = training.block_mean(rng.random((257, 10)), max_size=256)  # blocks of 2, last of 1
    assert uneven.shape == (129, 5)


def test_block_mean_leaves_infinite_entries_out() -> None:
    C = np.ones((512, 512))
    np.fill_diagonal(C, np.inf)  # a joint-layout cost: self-pairs excluded
    out = training.block_mean(C)
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, 1.0)
    with pytest.raises(ValueError, match="M must be 2-D"):
        training.block_mean(np.ones(3))


def test_class_order_groups_rows_in_both_layouts() -> None:
    y = np.array([2, 0, 1, 0])
    np.testing.assert_array_equal(training.class_order(y, 4), [1, 3, 2, 0])
    np.testing.assert_array_equal(training.class_order(y, 8), [1, 3, 2, 0, 5, 7, 6, 4])
    np.testing.assert_array_equal(training.class_order(y, 5), np.arange(5))


def test_plan_heatmap_reorders_and_logs_the_plan() -> None:
    P = np.array([[0.5, 0.0], [0.1, 0.4]])
    fig = training.plan_heatmap({"plan": P, "y": np.array([1, 0])}, "plan")
    z = np.asarray(fig.data[0].z, dtype=float)
    with np.errstate(divide="ignore"):
        expected = np.log10(P[np.ix_([1, 0], [1, 0])])  # rows and columns grouped by class
    np.testing.assert_allclose(z, np.where(np.isfinite(expected), expected, np.nan), rtol=1e-6)
    assert np.isnan(z[1, 0])  # log of 0 is left blank
    linear = training.plan_heatmap({"plan": P}, "plan", log_scale=False)
    np.testing.assert_allclose(np.asarray(linear.data[0].z, dtype=float), P)
    with pytest.raises(ValueError, match="view must be one of"):
        training.plan_heatmap({"plan": P}, "flow")
    with pytest.raises(ValueError, match="no 'kernel' matrix"):
        training.plan_heatmap({"plan": P}, "kernel")


def test_ema_matches_its_bias_corrected_formula() -> None:
    x = np.array([1.0, 3.0, 2.0, np.nan, 4.0])
    s = 0.5
    out = training.ema(x, s)
    # m_t = s m + (1 - s) x_t, divided by 1 - s^t (t counting finite values only)
    expected = [1.0, (0.25 + 1.5) / 0.75, (0.875 + 1.0) / 0.875]
    np.testing.assert_allclose(out[:3], expected)
    assert np.isnan(out[3])  # a NaN loss is a gap, not the average carried on
    assert out[4] == pytest.approx((0.5 * (0.875 + 1.0) + 2.0) / 0.9375)  # ... kept under it
    np.testing.assert_array_equal(training.ema(x, 0.0), x)
    with pytest.raises(ValueError, match="smoothing"):
        training.ema(x, 1.0)


def test_describe_change_uses_the_symbols() -> None:
    text = training.describe_change({"step": 40, "epsilon": 0.2, "relax_a": None, "n_iter": 5})
    assert text == "ε=0.2, λ₁=hard, T=5"


def test_metric_curves_draw_runs_and_change_markers() -> None:
    loss = np.column_stack([np.arange(1, 101), np.linspace(5, 4, 100)])
    acc = np.array([[50.0, 0.8], [100.0, 0.9]])
    runs = [
        training.RunSeries("#1 a", {"loss": loss, "knn_acc": acc}, [{"step": 40, "epsilon": 0.2}]),
        training.RunSeries("#2 b", {"loss": loss[:50]}),
    ]
    fig = training.metric_curves(runs, ["loss", "knn_acc", "uniformity"], smoothing=0.5)
    legend = [t.name for t in fig.data if t.showlegend]
    assert legend == ["#1 a", "#2 b"]  # one legend entry per run, whatever the subplots
    lines = [s for s in fig.layout.shapes if s.type == "line"]
    assert len(lines) == 2 and {s.x0 for s in lines} == {40}  # one per subplot with data
    texts = [a.text for a in fig.layout.annotations]
    assert "① ε=0.2" in texts and "no values yet" in texts  # uniformity was never recorded
    assert training.change_key(runs) == ["① #1 at step 40: ε=0.2"]  # what ① marks
    long = training.metric_curves(
        [training.RunSeries("x", {"loss": np.column_stack([np.arange(10_000), np.zeros(10_000)])})],
        ["loss"],
        max_points=500,
    )
    assert len(long.data[0].x) <= 501 and long.data[0].x[-1] == 9999


def test_trajectory_pairs_alignment_and_uniformity_by_step() -> None:
    metrics = {
        "alignment": np.array([[10.0, 0.5], [20.0, 0.4], [30.0, np.nan]]),
        "uniformity": np.array([[20.0, -1.5], [30.0, -2.0], [40.0, -2.1]]),
    }
    t = alignment.Trajectory.from_metrics("#1", metrics)
    np.testing.assert_array_equal(t.steps, [20.0])
    np.testing.assert_array_equal(t.uniformity, [-1.5])
    np.testing.assert_array_equal(t.alignment, [0.4])
    assert len(alignment.Trajectory.from_metrics("#2", {})) == 0
    fig = alignment.alignment_uniformity_plane([t, alignment.Trajectory.from_metrics("#2", {})])
    assert [tr.name for tr in fig.data if tr.showlegend is not False] == ["#1"]


def test_a_metric_without_values_gets_its_note_in_its_own_subplot() -> None:
    """A subplot with no trace is not drawn by plotly.js, and a note referring to its axes
    landed on the loss's subplot (stretching its y axis to 0.5): the empty subplot keeps an
    invisible point, and the page's note replaces "no values yet"."""
    run = training.RunSeries("#1", {"loss": np.array([[1, 5.0], [2, 4.0]])})
    fig = training.metric_curves([run], ["loss", "knn_acc"], empty={"knn_acc": "not recorded"})
    (note,) = fig.layout.annotations[2:]  # after the two subplot titles
    assert note.text == "not recorded" and (note.xref, note.yref) == ("x2 domain", "y2 domain")
    kept = [t for t in fig.data if t.xaxis == "x2"]
    assert len(kept) == 1 and kept[0].opacity == 0 and kept[0].showlegend is False
    assert fig.layout.xaxis2.showticklabels is False
    plain = training.metric_curves([run], ["loss", "knn_acc"])
    assert plain.layout.annotations[-1].text == "no values yet"


def test_metric_curves_wrap_their_titles_on_a_narrow_chart() -> None:
    """At 800 px (a 470 px chart) the 2 x 2 grid's titles ran together: below NARROW_CURVES
    each title's remark goes on a second line in smaller type, the legend as far above the
    plotting area as before; one metric alone (one column) needs no narrow layout."""
    from gca_viz.figures._narrow import META_KEY

    names = ["loss", "knn_acc", "alignment", "uniformity"]
    runs = [training.RunSeries("#1 a", {n: np.array([[1.0, 0.5], [2.0, 0.4]]) for n in names})]
    fig = training.metric_curves(runs, names)
    narrow = fig.layout.meta[META_KEY]
    assert narrow["below"] == training.NARROW_CURVES
    titles = [narrow["layout"][f"annotations[{i}].text"] for i in range(4)]
    assert titles[1] == "k-NN accuracy<br>(backbone features)"
    assert [t.replace("<br>", " ") for t in titles] == [a.text for a in fig.layout.annotations[:4]]
    layout = narrow["layout"]
    margin = fig.layout.margin
    plot = fig.layout.height - margin.t - margin.b
    above = (fig.layout.legend.y - 1) * plot
    new_plot = fig.layout.height - layout["margin.t"] - margin.b
    assert (layout["legend.y"] - 1) * new_plot == pytest.approx(above + 20)
    assert META_KEY not in (training.metric_curves(runs, ["loss"]).layout.meta or {})


def test_a_constant_metric_gets_a_narrow_axis_around_its_value() -> None:
    """A k-NN accuracy of 1.0 at every evaluation: plotly's own range ran from 0 to 2, then
    0.95 to 1.05 (accuracies above 1); a constant other metric gets a narrow axis too."""
    run = training.RunSeries(
        "#1",
        {
            "knn_acc": np.array([[50, 1.0], [100, 1.0]]),
            "loss": np.array([[1, 3.0], [2, 2.0]]),
            "uniformity": np.array([[50, -2.0], [100, -2.0]]),
        },
    )
    fig = training.metric_curves([run], ["loss", "knn_acc", "uniformity"])
    low, high = fig.layout.yaxis2.range
    assert high == pytest.approx(1.005) and low == pytest.approx(1.005 - 0.06)
    # (uniformity's axis spans at least MIN_SPANS["uniformity"] = 0.2: 1.2 of it)
    assert tuple(fig.layout.yaxis3.range) == pytest.approx((-2.12, -1.88))
    assert fig.layout.yaxis.range is None  # a varying metric keeps plotly's range


def test_every_subplot_shares_one_whole_step_axis_from_zero() -> None:
    """A run evaluated once, at its last step: its k-NN accuracy sat alone on an axis from
    299 to 301 in half steps, beside a loss drawn from 0 to 300. Every subplot now spans
    the steps drawn, from 0, in whole numbers, so an evaluation lines up with the loss."""
    run = training.RunSeries(
        "#1",
        {
            "loss": np.array([[s, 3.0 - s / 200] for s in range(1, 301)]),
            "knn_acc": np.array([[300, 0.87]]),
        },
    )
    fig = training.metric_curves([run], ["loss", "knn_acc", "uniformity"])
    for axis in (fig.layout.xaxis, fig.layout.xaxis2):
        low, high = axis.range
        assert low < 0 and 300 < high < 310 and axis.tickformat == "d"
    assert fig.layout.xaxis3.range is None  # no values: its note, no axis


def test_an_accuracy_axis_spans_enough_not_to_show_noise_as_a_trend() -> None:
    """Accuracies between 0.9245 and 0.9265 filled their axis: noise looked like a trend."""
    acc = np.array([[50, 0.9245], [100, 0.9265], [150, 0.9255]])
    fig = training.metric_curves([training.RunSeries("#1", {"probe_acc": acc})], ["probe_acc"])
    low, high = fig.layout.yaxis.range
    assert high - low == pytest.approx(1.2 * training.ACC_MIN_SPAN) and low < 0.9245 < 0.9265 < high
    wide = np.array([[50, 0.1], [100, 0.9]])
    fig = training.metric_curves([training.RunSeries("#1", {"knn_acc": wide})], ["knn_acc"])
    low, high = fig.layout.yaxis.range
    assert low <= 0.1 and 0.9 < high <= 1.005
    # the same for uniformity: INCE's and GCA-INCE's between -2.02 and -1.98 filled the axis
    runs = [
        training.RunSeries(n, {"uniformity": np.array([[50, a], [100, b]])})
        for n, a, b in (("ince", -2.02, -1.99), ("gca", -2.0, -1.98))
    ]
    low, high = training.metric_curves(runs, ["uniformity"]).layout.yaxis.range
    assert high - low == pytest.approx(1.2 * training.MIN_SPANS["uniformity"])
    assert low < -2.02 < -1.98 < high


def test_embedding_figures_draw_one_trace_per_label() -> None:
    rng = np.random.default_rng(0)
    z3 = rng.standard_normal((30, 3))
    z3 /= np.linalg.norm(z3, axis=1, keepdims=True)
    y = np.arange(30) % 3
    sphere = geometry.embedding_figure(z3, y, ("a", "b", "c"))
    points = [t for t in sphere.data if t.type == "surface" or t.mode != "text"]  # (no names)
    assert [t.type for t in points] == ["surface", "scatter3d", "scatter3d", "scatter3d"]
    assert [t.name for t in points[1:]] == ["a", "b", "c"]
    circle = geometry.embedding_figure(z3[:, :2], y)
    assert circle.layout.shapes[0].type == "circle" and len(circle.data) == 3 + 1  # + names
    many = geometry.projection_figure(rng.standard_normal((100, 2)), np.arange(100))
    assert len(many.data) == 1  # 100 labels: one trace with a colour scale, no legend
    with pytest.raises(ValueError, match="project it"):
        geometry.embedding_figure(rng.standard_normal((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="labels must have length 30"):
        geometry.embedding_figure(z3, y[:5])


def test_a_narrow_embedding_figure_keeps_the_whole_sphere_in_half_a_page() -> None:
    """Half a page wide (the Train page's column), a legend at the side left the sphere's
    scene taller than wide and the camera cropped its sides (a class could vanish): the
    legend goes under the picture and the camera steps back; the points are unchanged."""
    rng = np.random.default_rng(1)
    z3 = rng.standard_normal((40, 3))
    z3 /= np.linalg.norm(z3, axis=1, keepdims=True)
    y = np.arange(40) % 4
    wide = geometry.embedding_figure(z3, y)
    narrow = geometry.embedding_figure(z3, y, narrow=True)
    assert wide.layout.legend.orientation != "h"
    assert narrow.layout.legend.orientation == "h" and narrow.layout.legend.y < 0
    eye = narrow.layout.scene.camera.eye
    base = geometry.SPHERE_CAMERA["eye"]
    factor = geometry.NARROW_CAMERA_FACTOR
    assert factor > 1
    assert (eye.x, eye.y, eye.z) == pytest.approx(
        (base["x"] * factor, base["y"] * factor, base["z"] * factor)
    )
    assert narrow.data == wide.data  # (plotly compares traces by their properties)
    plane = geometry.projection_figure(z3[:, :2], y, narrow=True)
    assert plane.layout.legend.orientation == "h"


def test_a_narrow_plane_puts_its_legend_under_the_axis_title_also_in_lecture_mode() -> None:
    """The Train page's PCA of the embeddings had its class legend at y = -0.02, on the
    x axis's tick labels and title (in lecture mode, "principal component 1" was hidden).
    The legend now starts below the ticks and the title, with room for its rows, and the
    lecture copy is laid out again for its larger fonts."""
    import ui

    rng = np.random.default_rng(2)
    y = np.arange(60) % 10
    plane = geometry.projection_figure(
        rng.standard_normal((60, 2)), y, axis_titles=("pc 1", "pc 2"), narrow=True
    )
    for fig, tick, title in ((plane, 12, 12), (ui.lecture_figure(plane)[0], 15, 16)):
        layout = fig.layout
        plot = layout.height - layout.margin.t - layout.margin.b
        below = -layout.legend.y * plot  # pixels from the plot's bottom to the legend's top
        assert below >= 1.45 * tick + 1.6 * title, (below, tick, title)
        rows = -(-10 // geometry.NARROW_LEGEND_PER_ROW)
        assert layout.margin.b >= below + rows * 1.45 * tick
    assert ui.lecture_figure(plane)[0].layout.height > plane.layout.height  # rows grew


def test_a_change_is_labelled_with_the_values_before_and_after_it() -> None:
    change = {"step": 40, "epsilon": 0.2, "n_iter": 5, "target": "class"}
    before = {"epsilon": 0.5, "n_iter": 10}
    assert training.describe_change(change, before) == "ε 0.5 → 0.2, T 10 → 5, target=class"
    run = training.RunSeries(
        "#1 a",
        {},
        [{"step": 40, "epsilon": 0.2}, {"step": 70, "n_iter": 5}, {"step": 90, "epsilon": 0.1}],
        {"epsilon": 0.5, "n_iter": 10},
    )
    assert run.labelled_changes() == [(40, "ε 0.5 → 0.2"), (70, "T 10 → 5"), (90, "ε 0.2 → 0.1")]
    assert run.epsilons() == [(0, 0.5), (40, 0.2), (90, 0.1)]


def test_an_epsilon_change_is_marked_and_labelled_on_the_loss_chart() -> None:
    loss = np.column_stack([np.arange(1, 101), np.linspace(5, 4, 100)])
    acc = np.array([[50.0, 0.8], [100.0, 0.9]])
    run = training.RunSeries(
        "#1 a", {"loss": loss, "knn_acc": acc}, [{"step": 40, "epsilon": 0.2}], {"epsilon": 0.5}
    )
    fig = training.metric_curves([run], ["knn_acc", "loss"]).to_plotly_json()
    # the loss is the second subplot: its line and its label are on x2 / y2
    loss_lines = [
        s for s in fig["layout"]["shapes"] if s["xref"] == "x2" and s["yref"] == "y2 domain"
    ]
    assert [(s["x0"], s["x1"]) for s in loss_lines] == [(40, 40)]
    # the change's words beside its number (a bare ① after a drop of the loss was read as
    # progress), and on hover
    (label,) = [a for a in fig["layout"]["annotations"] if a["text"] == "① ε 0.5 → 0.2"]
    assert label["hovertext"] == "① ε 0.5 → 0.2"
    assert (label["x"], label["xref"], label["yref"]) == (40, "x2", "y2 domain")
    assert label.get("textangle") is None  # upright, not along the line
    assert label["y"] == 1 and label["yanchor"] == "top"  # inside: the title is above
    assert training.change_key([run]) == ["① #1 at step 40: ε 0.5 → 0.2"]
    # three changes: the numbers alone (the words would crowd), the words on hover
    many = dataclasses.replace(run, changes=[{"step": s, "epsilon": e} for s, e in
                                             ((20, 0.3), (40, 0.2), (60, 0.1))])  # fmt: skip
    marks = [a for a in training.metric_curves([many], ["loss"]).layout.annotations][1:]
    assert [a.text for a in marks] == ["①", "②", "③"]
    assert marks[2].hovertext == "③ ε 0.2 → 0.1"


def test_the_loss_scale_note_names_epsilon_changes_and_runs_of_different_epsilon() -> None:
    loss = {"loss": np.array([[1.0, 2.0]])}
    changed = training.RunSeries("#1 a", loss, [{"step": 40, "epsilon": 0.2}], {"epsilon": 0.5})
    same = training.RunSeries("#2 b", loss, [], {"epsilon": 0.5})
    other = training.RunSeries("#3 c", loss, [{"step": 10, "n_iter": 3}], {"epsilon": 0.1})
    note = training.loss_scale_note([changed])
    assert note == (
        "ε changed during training (#1 a at step 40, ε 0.5 → 0.2): ε sets the scale of the "
        "loss, so loss values before and after the line are not comparable."
    )
    assert training.loss_scale_note([same]) is None
    twin = training.RunSeries("#4 d", loss, [], {"epsilon": 0.5})
    assert training.loss_scale_note([same, twin]) is None
    assert training.loss_scale_note([other]) is None  # T changed, ε did not
    compare = training.loss_scale_note([same, other])
    assert compare == (
        "The runs drawn train with different ε (#2 b: ε 0.5, #3 c: ε 0.1): their losses are "
        "on different scales and not comparable."
    )
    both = training.loss_scale_note([changed, same])
    assert both is not None and both.startswith("ε changed") and "#1 a: ε 0.5 → 0.2" in both
    # a start value that is not known: the change is still named
    unknown = training.RunSeries("#5 e", loss, [{"step": 7, "epsilon": 0.3}])
    assert "#5 e at step 7, ε=0.3" in (training.loss_scale_note([unknown]) or "")


# ------------------------------------------------------------------ the embedding explorer


def _sphere_frames(n: int = 40, frames: int = 4, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(frames):
        z = rng.standard_normal((n, 3))
        out.append(z / np.linalg.norm(z, axis=1, keepdims=True))
    return out


def _by_name(fig: dict, name: str) -> list[dict]:
    return [t for t in fig["data"] if t.get("name") == name]


def _rows(trace: dict) -> np.ndarray:
    return np.asarray(decode(trace["customdata"])).reshape(-1, 2)[:, 0]


def test_the_player_has_one_frame_per_snapshot_and_fixed_axes_and_camera() -> None:
    zs = _sphere_frames()
    y = np.arange(40) % 4
    panel = geometry.Panel("#1 a", zs, y, ("a", "b", "c", "d"))
    fig = json.loads(
        geometry.explorer_figure(
            [panel], view="sphere", frame_names=["10", "20", "30", "40"], start=2
        ).to_json()
    )
    assert [f["name"] for f in fig["frames"]] == ["10", "20", "30", "40"]
    scene = fig["layout"]["scene"]
    for axis in ("xaxis", "yaxis", "zaxis"):
        assert scene[axis]["range"] == [-1.1, 1.1] and scene[axis]["autorange"] is False
    assert scene["camera"] == geometry.SPHERE_CAMERA
    for frame in fig["frames"]:  # frames move points, never axes or camera
        assert set(frame["layout"]) == {"title"}
    assert fig["layout"]["sliders"][0]["active"] == 2
    assert [b["args"][0] for b in fig["layout"]["updatemenus"][0]["buttons"]] == [None, [None]]
    # the shown frame is the third snapshot; each frame holds its own snapshot's coordinates
    classes = [t for t in fig["data"] if "customdata" in t]  # (not the clusters' names)
    for f, frame in enumerate(fig["frames"]):
        for index, update in zip(frame["traces"], frame["data"], strict=True):
            if "text" in update:  # the clusters' names (test_figures_geometry)
                continue
            rows = _rows(fig["data"][index])
            np.testing.assert_allclose(array(update["x"]), zs[f][rows, 0], rtol=1e-6)
            np.testing.assert_allclose(array(update["z"]), zs[f][rows, 2], rtol=1e-6)
    for t in classes:
        np.testing.assert_allclose(array(t["x"]), zs[2][_rows(t), 0], rtol=1e-6)
    assert sorted(np.concatenate([_rows(t) for t in classes]).tolist()) == list(range(40))


def test_a_pinned_row_marks_itself_and_its_cosine_neighbours_in_every_frame() -> None:
    zs = _sphere_frames()
    y = np.arange(40) % 4
    row, k = 7, 4

    def direct(z: np.ndarray) -> list[int]:  # cosine similarity straight from the formula
        unit = z / np.linalg.norm(z, axis=1, keepdims=True)
        return [j for j in np.argsort(-(unit @ unit[row]), kind="stable") if j != row][:k]

    near = [embed.cosine_neighbours(z, row, k)[0] for z in zs]
    assert [n.tolist() for n in near] == [direct(z) for z in zs]
    panel = geometry.Panel("#1 a", zs, y, pinned=row, neighbours=near)
    fig = json.loads(
        geometry.explorer_figure(
            [panel], view="sphere", frame_names=list("abcd"), start=3
        ).to_json()
    )
    (pin,) = _by_name(fig, "pinned sample")
    (ring,) = _by_name(fig, f"its {k} nearest (cosine)")
    assert _rows(pin).tolist() == [row] and _rows(ring).tolist() == direct(zs[3])
    np.testing.assert_allclose(array(ring["x"]), zs[3][direct(zs[3]), 0], rtol=1e-6)
    ring_index = fig["data"].index(ring)
    for f, frame in enumerate(fig["frames"]):
        update = frame["data"][frame["traces"].index(ring_index)]
        assert _rows(update).tolist() == direct(zs[f])
        np.testing.assert_allclose(array(update["y"]), zs[f][direct(zs[f]), 1], rtol=1e-6)


def test_the_filter_dims_exactly_the_other_classes_and_domains() -> None:
    y = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    dom = np.array([0, 0, 0, 1, 1, 1, 2, 2])
    np.testing.assert_array_equal(geometry.filtered_out(y, dom), np.zeros(8, bool))
    np.testing.assert_array_equal(geometry.filtered_out(y, dom, classes=[0, 2]), y == 1)
    np.testing.assert_array_equal(
        geometry.filtered_out(y, dom, classes=[0], keep_domains=[0, 2]), (y != 0) | (dom == 1)
    )
    np.testing.assert_array_equal(geometry.filtered_out(y, None, keep_domains=[1]), np.zeros(8))
    z = _sphere_frames(8, 1)[0]
    dimmed = geometry.filtered_out(y, classes=[1])
    fig = json.loads(
        geometry.explorer_figure(
            [geometry.Panel("#1", [z], y, ("a", "b", "c"), dimmed=dimmed)], view="sphere"
        ).to_json()
    )
    (faint,) = _by_name(fig, "not highlighted")
    assert _rows(faint).tolist() == [0, 2, 3, 5, 6]  # every point not of class "b"
    assert faint["opacity"] == geometry.DIMMED_OPACITY  # dimmed, not removed
    shown = {t["name"]: _rows(t).tolist() for t in fig["data"] if t.get("name") in ("a", "b", "c")}
    assert shown == {"a": [], "b": [1, 4, 7], "c": []}


def test_two_spheres_share_one_figure_and_one_camera() -> None:
    zs, other = _sphere_frames(frames=2), _sphere_frames(frames=2, seed=5)
    y = np.arange(40) % 3
    panels = [geometry.Panel("#1 a", zs, y), geometry.Panel("#2 b", other, y, tag=1)]
    fig = json.loads(
        geometry.explorer_figure(panels, view="sphere", frame_names=["1", "2"]).to_json()
    )
    layout = fig["layout"]
    assert layout["scene"]["camera"] == layout["scene2"]["camera"]
    for axis in ("xaxis", "yaxis", "zaxis"):
        assert layout["scene"][axis]["range"] == layout["scene2"][axis]["range"] == [-1.1, 1.1]
    assert layout["scene"]["domain"]["x"][1] < layout["scene2"]["domain"]["x"][0]  # side by side
    assert [a["text"] for a in layout["annotations"]] == ["<b>#1 a</b>", "<b>#2 b</b>"]
    second = [t for t in fig["data"] if t.get("scene") == "scene2" and "customdata" in t]
    assert second and all(set(np.asarray(decode(t["customdata"]))[:, 1]) == {1} for t in second)
    assert all(t.get("showlegend") is False for t in second)  # one legend for both


def test_a_click_names_the_row_under_it() -> None:
    assert geometry.clicked_row({"customdata": [12, 1]}, 20) == 12
    assert geometry.clicked_row({"customdata": 3}, 20) == 3
    assert (
        geometry.clicked_row({"points": [{"customdata": [1, 0]}, {"customdata": [4, 0]}]}, 9) == 4
    )
    assert geometry.clicked_row({"customdata": [25, 0]}, 20) is None  # outside the snapshot
    for bad in (None, {}, {"customdata": []}, {"customdata": [True]}, {"customdata": ["3"]},
                {"customdata": [2.5]}, {"points": []}, "3"):  # fmt: skip
        assert geometry.clicked_row(bad, 20) is None


def test_hover_labels_name_the_sample_its_labels_and_show_its_input() -> None:
    img = np.zeros((2, 1, 8, 8))
    img[0, 0, :, 3:5] = 1.0  # a vertical bar
    texts = geometry.sample_hover(
        [17, 402], [1, 0], ("zero", "one"), domains=[0, 1], domain_names=("a", "b"),
        inputs=img, kind="image",
    )  # fmt: skip
    head, *art = texts[0].split("<br>")
    assert head == "<b>sample 17</b> · class one · domain a"
    assert len(art) == 8 and all(line == "      ████      " for line in art)
    assert texts[1].split("<br>")[0] == "<b>sample 402</b> · class zero · domain b"
    vec = geometry.sample_hover([5], [2], None, inputs=np.array([[0.5, -1.25, 3.0, 4.0, 5.0]]),
                                kind="vector")  # fmt: skip
    assert vec == ["<b>sample 5</b> · class 2<br>x = [0.5, -1.25, 3, 4, … (5 values)]"]


def test_input_glyphs_average_large_images_down_to_eight_lines() -> None:
    ink = np.zeros((1, 32, 32))
    ink[:, :16, :] = 1.0  # one channel: the top half is ink, drawn dark
    lines = geometry.input_glyphs(ink).split("<br>")
    assert lines == ["█" * 16] * 4 + [" " * 16] * 4
    colour = np.ones((3, 32, 32))
    colour[:, :, :16] = 0.0  # colour: the left half is black, the right half white
    assert geometry.input_glyphs(colour).split("<br>") == ["█" * 8 + " " * 8] * 8
    half = np.full((3, 8, 8), 0.5)  # mid grey: the middle level
    assert set(geometry.input_glyphs(half).replace("<br>", "")) == {geometry.GLYPHS[2]}
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        geometry.input_glyphs(np.zeros((8, 8)))


# ------------------------------------------------------------ labels on the plane


@pytest.mark.parametrize("seed", range(5))
def test_spread_labels_keeps_them_apart_in_order_and_inside(seed: int) -> None:
    rng = np.random.default_rng(seed)
    want = rng.uniform(0, 100, size=8) * (rng.random(8) < 0.5)  # many crowd at 0
    out = alignment.spread_labels(want, 12.0, 0.0, 200.0)
    order = np.argsort(want, kind="stable")
    assert np.all(np.diff(out[order]) >= 12.0 - 1e-9)  # apart, same order
    assert out.min() >= 0.0 and out.max() <= 200.0
    np.testing.assert_array_equal(alignment.spread_labels([10.0, 50.0], 12.0, 0, 200), [10, 50])


def test_spread_labels_that_cannot_fit_stay_apart() -> None:
    out = alignment.spread_labels(np.zeros(5), 10.0, 0.0, 20.0)
    assert np.all(np.diff(np.sort(out)) >= 10.0)


def test_run_labels_on_the_plane_are_a_font_height_apart() -> None:
    """Three runs that end within 0.004 of each other (the demo runs did, and their labels
    overlapped): each label is joined to its point and at least LABEL_GAP_PX from the others."""
    ends = [(-2.0, 0.215), (-2.01, 0.212), (-1.99, 0.218), (-1.5, 0.6)]
    runs = [
        alignment.Trajectory(
            f"#{i} run", np.array([50.0, 100.0]), np.array([-1.2, u]), np.array([0.5, a])
        )
        for i, (u, a) in enumerate(ends)
    ]
    fig = alignment.alignment_uniformity_plane(runs).to_dict()
    layout = fig["layout"]
    labels = layout["annotations"]
    assert [a["text"] for a in labels] == [t.label for t in runs]
    long = alignment.Trajectory("#11 α-β sweep 1: α - β = +0.25 (shares α = 0.375, β = 0.125)",
                               np.array([1.0]), np.array([-2.0]), np.array([0.3]))  # fmt: skip
    (cut,) = alignment.alignment_uniformity_plane([long]).to_dict()["layout"]["annotations"]
    assert len(cut["text"]) <= alignment.LABEL_CHARS and cut["text"].endswith("…")
    assert cut["hovertext"] == long.label  # a sweep's long names crossed other runs' paths
    y0, y1 = layout["yaxis"]["range"]
    plot_px = alignment.PLANE_HEIGHT - alignment.PLANE_MARGIN["t"] - alignment.PLANE_MARGIN["b"]
    label_px = [(a["y"] - y0) / (y1 - y0) * plot_px - a["ay"] for a in labels]  # ay: downwards
    gaps = np.diff(np.sort(label_px))
    assert gaps.min() >= alignment.LABEL_GAP_PX - 1e-6, label_px
    for a, t in zip(labels, runs, strict=True):
        assert (a["x"], a["y"]) == (t.uniformity[-1], t.alignment[-1]) and a["showarrow"]
    assert layout["showlegend"] is False and not any(
        "text" in (t.get("mode") or "") for t in fig["data"]
    )
    # a label runs into the plane, away from the nearer edge (one at the right was cut off)
    x0, x1 = layout["xaxis"]["range"]
    for a in labels:
        inward = "left" if a["x"] <= (x0 + x1) / 2 else "right"
        assert a["xanchor"] == inward and (a["ax"] > 0) == (inward == "left"), a


def test_run_labels_spread_again_at_a_projector_s_font_size() -> None:
    """The lecture mode's copy enlarges the labels' font: ``respread_run_labels`` keeps them
    a (scaled) font height apart, growing the plot when they no longer fit (labels spread
    for 11 px overlapped at 16)."""
    runs = [
        alignment.Trajectory(f"#{i}", np.array([1.0]), np.array([-2.0]), np.array([0.3 + 1e-3 * i]))
        for i in range(14)
    ]
    fig = alignment.alignment_uniformity_plane(runs)
    plot = alignment.PLANE_HEIGHT - alignment.PLANE_MARGIN["t"] - alignment.PLANE_MARGIN["b"]

    def placed(figure: Any, plot_px: float) -> np.ndarray:
        y0, y1 = figure.layout.yaxis.range
        return np.array(
            [(a.y - y0) / (y1 - y0) * plot_px - a.ay for a in figure.layout.annotations]
        )

    assert np.diff(np.sort(placed(fig, plot))).min() >= alignment.LABEL_GAP_PX - 1e-6
    for note in fig.layout.annotations:
        note.font.size = 22  # twice the size: 13 gaps of 42 px no longer fit in 340
    alignment.respread_run_labels(fig)
    grown = fig.layout.height - alignment.PLANE_MARGIN["t"] - alignment.PLANE_MARGIN["b"]
    assert grown >= 13 * 2 * alignment.LABEL_GAP_PX > plot
    assert np.diff(np.sort(placed(fig, grown))).min() >= 2 * alignment.LABEL_GAP_PX - 1e-6


def test_a_label_goes_to_the_side_where_it_hides_no_other_runs_point() -> None:
    """A run's label ran to the right over the big dot of a run that ended just beside it
    (the shown run's dot vanished under "#1 demo-ince"): that label goes to its point's
    left, where it hides nothing; labels that hide nothing stay inward."""
    ends = {"#1 demo-ince": (-2.0, 0.300), "#7 mine": (-1.96, 0.302),
            "#2 far left": (-2.3, 0.5), "#3 far right": (-1.5, 0.1)}  # fmt: skip
    runs = [
        alignment.Trajectory(name, np.array([10.0]), np.array([u]), np.array([a]))
        for name, (u, a) in ends.items()
    ]
    fig = alignment.alignment_uniformity_plane(runs)
    side = {a.text: a.xanchor for a in fig.layout.annotations}
    assert side["#1 demo-ince"] == "right"  # flipped: anchored by its right end, to the left
    assert side["#7 mine"] == "left" and side["#2 far left"] == "left"  # inward, as before
    assert side["#3 far right"] == "right"
    # with nothing beside it, the same run's label runs inward
    alone = alignment.alignment_uniformity_plane([runs[0], runs[2], runs[3]])
    assert {a.text: a.xanchor for a in alone.layout.annotations}["#1 demo-ince"] == "left"


def test_runs_of_the_papers_methods_keep_their_colours_from_the_story() -> None:
    """Train and Geometry drew INCE red and GCA-INCE blue (the runs' order), the Story and
    Plan lab INCE blue and GCA-INCE green: a run of INCE, GCA-INCE or GCA-UOT now takes the
    colour those pages give its method; a second run of a method and other methods take
    other colours, all distinct."""
    from gca_viz.figures._palette import OTHER_RUNS, run_colors, run_palette
    from gca_viz.figures.plans import COLORS

    got = run_colors(["gca_ince", "ince", "gca_uot", "ince", "rince", None])
    assert got[:3] == [COLORS["gca"], COLORS["ince"], COLORS["unbalanced"]]
    assert len(set(got)) == len(got) and set(got[3:]) <= set(OTHER_RUNS)
    assert len(run_colors(["rince"] * 12)) == 12  # (cycled past the palette's end)
    # eight runs, eight colours a projector keeps apart (the plane showed teal beside
    # GCA-INCE's green and red beside GCA-UOT's orange: "two runs share a colour")
    eight = run_colors(["ince", "gca_ince", "gca_uot", *["rince"] * 5])
    assert len(set(eight)) == 8
    for a, b in itertools.combinations(eight, 2):
        assert np.linalg.norm(np.subtract(cielab(a), cielab(b))) >= 40, (a, b)
    assert all(contrast_with_white(c) >= 3 for c in eight)
    # a run keeps its colour whichever runs a chart shows and in whatever order (the same
    # run was green on Train and red on Geometry's plane)
    store = [(5, "gca_uot"), (1, "ince"), (7, "gca_ince"), (2, "gca_ince"), (3, "gca_uot")]
    palette = run_palette(store)
    assert palette == run_palette(store[::-1])
    assert (palette[1], palette[2], palette[3]) == (COLORS["ince"], COLORS["gca"],
                                                     COLORS["unbalanced"])  # fmt: skip
    assert len({palette[5], palette[7]} - {palette[1], palette[2], palette[3]}) == 2
    fig = training.metric_curves(
        [training.RunSeries("a", {"loss": np.array([[1.0, 2.0]])}, color="#123456")], ["loss"]
    )
    assert fig.data[0].line.color == "#123456"
