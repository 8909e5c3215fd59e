"""Tests of the run figures: gca_viz.figures.training and gca_viz.figures.geometry."""

from __future__ import annotations

import numpy as np
import pytest

from gca_viz.figures import geometry, training


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
    assert out[3] == out[2]  # a missing value keeps the average
    np.testing.assert_array_equal(training.ema(x, 0.0), x)
    with pytest.raises(ValueError, match="smoothing"):
        training.ema(x, 1.0)


def test_describe_change_uses_the_symbols() -> None:
    text = training.describe_change({"step": 40, "epsilon": 0.2, "relax_a": None, "n_iter": 5})
    assert text == "ε=0.2, λ1=hard, T=5"


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
    assert "ε=0.2" in texts and "no values yet" in texts  # uniformity was never recorded
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
    t = geometry.Trajectory.from_metrics("#1", metrics)
    np.testing.assert_array_equal(t.steps, [20.0])
    np.testing.assert_array_equal(t.uniformity, [-1.5])
    np.testing.assert_array_equal(t.alignment, [0.4])
    assert len(geometry.Trajectory.from_metrics("#2", {})) == 0
    fig = geometry.alignment_uniformity_plane([t, geometry.Trajectory.from_metrics("#2", {})])
    assert [tr.name for tr in fig.data if tr.showlegend is not False] == ["#1"]


def test_embedding_figures_draw_one_trace_per_label() -> None:
    rng = np.random.default_rng(0)
    z3 = rng.standard_normal((30, 3))
    z3 /= np.linalg.norm(z3, axis=1, keepdims=True)
    y = np.arange(30) % 3
    sphere = geometry.embedding_figure(z3, y, ("a", "b", "c"))
    assert [t.type for t in sphere.data] == ["surface", "scatter3d", "scatter3d", "scatter3d"]
    assert [t.name for t in sphere.data[1:]] == ["a", "b", "c"]
    circle = geometry.embedding_figure(z3[:, :2], y)
    assert circle.layout.shapes[0].type == "circle" and len(circle.data) == 3
    many = geometry.projection_figure(rng.standard_normal((100, 2)), np.arange(100))
    assert len(many.data) == 1  # 100 labels: one trace with a colour scale, no legend
    with pytest.raises(ValueError, match="project it"):
        geometry.embedding_figure(rng.standard_normal((5, 4)), np.zeros(5))
    with pytest.raises(ValueError, match="labels must have length 30"):
        geometry.sphere_figure(z3, y[:5])


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
    (label,) = [a for a in fig["layout"]["annotations"] if "→" in a["text"]]
    assert label["text"] == "ε 0.5 → 0.2"
    assert (label["x"], label["xref"], label["yref"]) == (40, "x2", "y2 domain")


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
