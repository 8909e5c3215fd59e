"""The Plan lab page (views/plan_lab.py) renders, responds to every main control, honours
the query string and turns bad input into an error message (Streamlit's AppTest, no
browser; tests/browser/test_plan_lab.py drives it in Chromium)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from streamlit.testing.v1 import AppTest

from gca_viz import demo, ot
from gca_viz.runs import RunStore
from tests.helpers import add_run, charts, figure, heat, metric, open_app
from tests.plotly_json import colour_range, live_figures

LAB = "views/plan_lab.py"

pytestmark = pytest.mark.usefixtures("app_store")


def frames(at: AppTest) -> list[np.ndarray]:
    """The half-step player's frames ``P^(0) .. P^(2T)``: each plan's heatmap, quantised to
    256 levels of its colour range (uint8)."""
    player = charts(at)["lab_chart_player"]
    return [np.asarray(f["data"][0]["z"]) for f in player["frames"]]


def frame_range(at: AppTest, k: int) -> tuple[float, float]:
    """The values at level 0 and 255 of frame ``k``: the colour range its colour bar names
    under its title ("P<br><sub>lo … hi</sub>"; the ticks are round values inside it)."""
    bar = charts(at)["lab_chart_player"]["frames"][k]["data"][0]["colorbar"]
    return colour_range(bar["title"]["text"])


def kl(at: AppTest) -> np.ndarray:
    """``KL(P_tgt || P^(k)) / n`` for ``k = 0..2T`` as the player's KL curve shows it:
    ``k >= 1`` on the axis, the kernel's ``k = 0`` (NaN here) only named in a note above."""
    player = charts(at)["lab_chart_player"]
    (curve,) = [t for t in player["data"] if str(t.get("name", "")).startswith("KL(P_tgt")]
    x = np.asarray(curve["x"], dtype=int)
    assert x[0] == 1, "the kernel's k = 0 must stay off the axis"
    return np.concatenate([[np.nan], np.asarray(curve["y"], dtype=float)])


# --------------------------------------------------------------------------- plan lab


def test_plan_lab_renders_every_view() -> None:
    at = open_app(LAB)
    assert at.title[0].value == "Plan lab"
    assert set(live_figures(at)) >= {
        "lab_chart_player",
        "lab_chart_view",
        "lab_chart_loss",
    }
    assert len(kl(at)) == 21  # T = 10: P^(0) .. P^(20)
    curve = kl(at)[1:]
    assert np.all(np.diff(curve) <= 1e-9 * np.abs(curve[:-1]))  # the theorem, on the page
    steps = frames(at)
    assert len(steps) == 21 and steps[1].shape == (64, 64) and steps[1].dtype == np.uint8
    assert float(metric(at, "GCA-INCE")) <= float(metric(at, "INCE"))
    for view in ("cost", "kernel", "P1", "P2T", "unbalanced", "target"):
        at.selectbox(key="lab_view").set_value(view).run()
        assert not at.exception and not at.error
    losses_fig = figure(at, "Loss of every method")
    assert len(losses_fig["data"][0]["y"]) == 8


def test_each_main_control_changes_the_output() -> None:
    at = open_app(LAB)
    base_kl = kl(at)
    steps = frames(at)  # the half-step walk runs in the browser: one frame per k
    assert not np.array_equal(steps[4], steps[1])
    player = charts(at)["lab_chart_player"]
    marker = [f["data"][1]["x"][0] for f in player["frames"]]  # the KL curve's marker
    assert marker == list(range(21))

    top = frame_range(at, 4)[1]
    at.toggle(key="lab_log").set_value(True).run()  # log colour scale
    low, high = frame_range(at, 4)
    assert high == pytest.approx(np.log10(top), abs=2e-3)
    assert high - 12 - 0.01 <= low < high - 1  # from the smallest entry, 12 decades at most
    at.toggle(key="lab_log").set_value(False).run()

    at.number_input(key="lab_eps").set_value(0.3).run()  # ε
    assert not np.allclose(kl(at), base_kl, equal_nan=True)

    at.slider(key="lab_T").set_value(3).run()  # T: 2T + 1 half-steps
    assert len(kl(at)) == 7 and len(frames(at)) == 7

    before = kl(at)
    at.selectbox(key="lab_target").set_value("class").run()  # target prior
    assert not np.allclose(kl(at), before, equal_nan=True)
    at.slider(key="lab_gamma").set_value(0.6).run()
    assert not at.exception

    at.selectbox(key="lab_source").set_value("digits").run()  # source
    assert not at.exception and not at.error
    assert "digits samples" in " ".join(c.value for c in at.caption)
    assert len(at.get("image")) == 2  # the cell inspector shows the two images


def test_cell_inspector_follows_the_row_and_column_inputs() -> None:
    at = open_app(LAB)
    table = at.dataframe[0].value
    at.number_input(key="lab_i").set_value(5).run()
    at.number_input(key="lab_j").set_value(5).run()
    assert not at.exception
    assert "**A positive pair**" in " ".join(m.value for m in at.markdown)
    assert not at.dataframe[0].value.equals(table)
    # each side's embedding in full (S^7: 8 numbers), as wrapping text, not a code block
    # that scrolled sideways in the narrow column
    shown = [c.value for c in at.caption if c.value.startswith(("Row 5", "Column 5"))]
    assert len(shown) == 2 and all(c.language == "python" for c in at.code)  # (show_code)
    for text in shown:
        values = text.split("embedding (")[1].rstrip(")").split(", ")
        assert len(values) == 8 and all(abs(float(v.replace("−", "-"))) <= 1 for v in values)


def test_typing_epsilon_zero_is_refused_with_a_message_not_a_traceback() -> None:
    at = open_app(LAB)
    at.number_input(key="lab_eps").set_value(0.0).run()  # the shared ε control refuses it
    assert not at.exception and not at.error
    assert any("$ε$ = 0 is not used" in w.value for w in at.warning)
    assert at.number_input(key="lab_eps").value == 0.1 and at.query_params["lab_eps"] == "0.1"
    at.number_input(key="lab_eps").set_value(0.2).run()
    assert not at.exception and not at.error and not at.warning
    assert at.select_slider(key="lab_eps_slider").value == 0.2


def test_plan_lab_honours_the_query_string() -> None:
    at = open_app(LAB, lab_eps="0.2", lab_T="4", lab_n="32", lab_view="kernel")
    assert at.number_input(key="lab_eps").value == pytest.approx(0.2)
    assert at.slider(key="lab_n").value == 32
    assert len(kl(at)) == 9
    assert frames(at)[3].shape == (32, 32)
    assert figure(at, "K: Gibbs kernel")
    assert at.query_params["lab_eps"] == ["0.2"] or at.query_params["lab_eps"] == "0.2"


def test_trained_encoder_source_opens_the_shipped_noisy_encoders() -> None:
    at = open_app(LAB, lab_source="trained")
    assert not at.exception and not at.error
    runs = at.selectbox(key="lab_run").options
    assert len(runs) == len(demo.WITH_ENCODER)
    assert all(any(name in r for name in demo.WITH_ENCODER) for r in runs)
    assert np.isfinite(kl(at)[1:]).all()


def test_trained_encoder_source_without_checkpoints_explains_itself(app_store: Path) -> None:
    store = RunStore(app_store)
    demo.install(store)
    for run in store.list_runs():
        (store.run_dir(run.id) / "checkpoint.pt").unlink(missing_ok=True)
    at = open_app(LAB, lab_source="trained")
    assert not at.exception
    assert any("No run has written a checkpoint" in i.value for i in at.info)


def test_a_link_that_names_epsilon_keeps_it_on_a_snapshot() -> None:
    at = open_app(LAB, lab_source="snapshot", lab_eps="0.25")
    assert at.session_state["lab_eps"] == pytest.approx(0.25)


def test_snapshot_source_opens_the_demo_runs() -> None:
    at = open_app(LAB, lab_source="snapshot")
    assert not at.exception and not at.error
    runs = at.selectbox(key="lab_run").options
    assert runs and all("demo" in r for r in runs)
    assert "(fixed by the run)" in " ".join(c.value for c in at.caption)
    assert np.isfinite(kl(at)[1:]).all()


def test_snapshot_source_shows_a_runs_batch(app_store: Path) -> None:
    store = RunStore(app_store)
    cfg = {"method": "gca_ince", "layout": "joint", "loss_params": {"epsilon": 0.4}}
    run_id = add_run(store, name="snap", config=cfg, status="finished", step=30)
    rel = Path(f"run-{run_id}") / "snapshots" / "0000030_plan.npz"
    (store.dir / rel).parent.mkdir(parents=True)
    z = torch.nn.functional.normalize(torch.randn(16, 5, dtype=torch.float64), dim=1)
    cost = ot.cosine_cost(z, exclude_self=True).numpy().astype(np.float32)
    np.savez(store.dir / rel, cost=cost, y=np.arange(8) % 3)
    with store._db(write=True) as db:
        db.execute(
            "INSERT INTO snapshots (run_id, step, kind, file) VALUES (?, 30, 'plan', ?)",
            (run_id, str(rel)),
        )
    at = open_app(LAB, lab_source="snapshot", lab_run=str(run_id))
    assert not at.exception and not at.error
    # The plan is solved at the run's own ε (the lab's 0.1 rendered a run's plan black).
    assert at.session_state["lab_eps"] == pytest.approx(0.4)
    assert "The run trained with ε = 0.4" in " ".join(c.value for c in at.caption)
    assert frames(at)[1].shape == (16, 16)
    assert "Layout: joint" in " ".join(c.value for c in at.caption)
    at.selectbox(key="lab_view").set_value("cost").run()
    cost_shown = heat(figure(at, "C: cost"))
    assert np.isnan(np.diag(cost_shown)).all()  # excluded self-pairs are blank


def test_joint_layout_starts_on_a_positive_pair_and_clips_the_query() -> None:
    at = open_app(LAB, lab_layout="joint", lab_n="16", lab_i="99")
    assert not at.exception and not at.error
    assert at.number_input(key="lab_i").value == 31  # clipped to 2N - 1
    assert at.number_input(key="lab_j").value == 16  # partner of row 0 in the joint layout
    at.number_input(key="lab_i").set_value(0).run()
    assert "**A positive pair**" in " ".join(m.value for m in at.markdown)
    at.number_input(key="lab_j").set_value(0).run()  # view 1 of sample 0 against itself
    text = " ".join(m.value for m in at.markdown)
    assert "**An excluded self-pair**" in text and "two different samples" not in text


def test_the_player_shows_the_drop_from_ince_to_gca_ince_once() -> None:
    """The KL curve is drawn once, in the player, with INCE's and GCA-INCE's levels and the
    drop between them (the page drew a second, static KL chart to show them). The default
    batch shows a visible drop: at σ = 0.1 the plan was nearly the identity and it was 4%."""
    at = open_app(LAB)
    assert "lab_chart_kl" not in live_figures(at)
    curves = [
        t
        for spec in charts(at).values()
        for t in spec["data"]
        if str(t.get("name", "")).startswith("KL(P_tgt")
    ]
    assert len(curves) == 1
    values = kl(at)
    layout = charts(at)["lab_chart_player"]["layout"]
    levels = sorted(float(s["y0"]) for s in layout["shapes"] if s["yref"] == "y2")
    assert levels == pytest.approx(sorted([values[-1], values[1]]))
    (label,) = [a["text"] for a in layout["annotations"] if a["text"].startswith("GCA-INCE")]
    drop = (values[-1] - values[1]) / values[1]
    assert f"{drop:+.1%}" in label and drop < -0.10
    (arrow,) = [a for a in layout["annotations"] if a.get("showarrow")]
    assert arrow["ay"] == pytest.approx(values[1]) and arrow["y"] == pytest.approx(values[-1])
    assert any("noise σ = 0.3" in c.value for c in at.caption)  # the batch it was measured on
    # the arrow right of the last half-step lies inside the axis's range
    assert arrow["x"] < layout["xaxis2"]["range"][1]


def test_each_half_step_is_coloured_by_its_own_range_with_the_positives_outlined() -> None:
    # At ε = 0.5 the kernel's entries reach ~0.9 while P^(1)'s rows sum to 1 over 64 columns:
    # on K's colour scale every later plan looked uniformly dark.
    at = open_app(LAB, lab_eps="0.5")
    player = charts(at)["lab_chart_player"]
    assert "own range" in player["layout"]["title"]["text"]
    kernel_top, p1_top = frame_range(at, 0)[1], frame_range(at, 1)[1]
    assert p1_top < 0.5 * kernel_top  # P^(1) gets its own, smaller range: not drowned by K
    assert frames(at)[1].max() == 255  # and uses all of it
    notes = [a["text"] for a in player["layout"]["annotations"]]
    assert any(t.startswith("k = 0 (the kernel K)") for t in notes)
    marks = [t for t in player["data"] if t.get("name") == "positive pair (i, pos(i))"]
    assert len(marks) == 1
    assert np.array_equal(np.asarray(marks[0]["x"]), np.asarray(marks[0]["y"]))  # cross: i = j

    at.toggle(key="lab_shared").set_value(True).run()
    assert "shared range" in charts(at)["lab_chart_player"]["layout"]["title"]["text"]
    assert frame_range(at, 1)[1] == pytest.approx(kernel_top, rel=1e-2)  # K's range for all
    assert frames(at)[1].max() < 0.5 * 255  # P^(1) drawn dark

    at.toggle(key="lab_shared").set_value(False).run()
    at.selectbox(key="lab_layout").set_value("joint").run()
    joint = charts(at)["lab_chart_player"]
    marks = next(t for t in joint["data"] if t.get("name") == "positive pair (i, pos(i))")
    # 128 rows: cells under 4 px, so two lines frame each diagonal of partners (i, i ± N)
    assert marks["mode"] == "lines"
    x, y = marks["x"], marks["y"]
    offsets = sorted({x[k] - y[k] for k in range(0, len(x), 3)})
    assert len(offsets) == 4
    assert (offsets[0] + offsets[1]) / 2 == pytest.approx(-64)  # j = i - N
    assert (offsets[2] + offsets[3]) / 2 == pytest.approx(64)  # j = i + N


def test_at_a_huge_epsilon_gca_ince_reads_equal_to_ince() -> None:
    """Plan lab wrote its own delta, "+0 vs INCE" in red at ε = 1e9 (a rise to a student's
    eye, against the theorem); it now reads like Story and Domains (ui.versus_ince)."""
    at = open_app(LAB, lab_eps="1000000000")
    gca = next(m for m in at.metric if m.label.startswith("GCA-INCE"))
    assert gca.delta == "equal to INCE (to rounding)"
    assert "color: GRAY" in str(gca.proto)
    at = open_app(LAB, lab_eps="0.5")
    gca = next(m for m in at.metric if m.label.startswith("GCA-INCE"))
    assert gca.delta.startswith("-") and gca.delta.endswith("vs INCE")


def test_the_batch_is_sorted_so_its_clusters_show_as_blocks() -> None:
    """A student read "4 clusters" under Plan lab's matrices and saw noise: the samples were
    in the generator's order. Sorted by cluster, the cost is low in blocks along the
    diagonal: a cell near it costs less than a cell far from it. The digits are sorted by
    class."""
    at = open_app(LAB, lab_view="cost")
    assert ", sorted by cluster." in " ".join(c.value for c in at.caption)
    cost = heat(charts(at)["lab_chart_view"])
    n = cost.shape[0]
    i, j = np.indices(cost.shape)
    near, far = cost[(abs(i - j) < n // 16) & (i != j)], cost[abs(i - j) > n // 2]
    assert near.mean() < far.mean() - 0.2, (near.mean(), far.mean())
    digits = open_app(LAB, lab_source="digits")
    assert ", sorted by class." in " ".join(c.value for c in digits.caption)
