"""The Loss composer page (views/composer.py) responds to its stage choices and parameters,
turns bad input into an error message and launches a run of the composed loss (Streamlit's
AppTest, no browser)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from gca_viz.runs import RunStore
from tests.helpers import charts, kill_runs, metric, open_app, rerun
from tests.plotly_json import array
from views._run_link import launch_status

COMPOSER = "views/composer.py"

pytestmark = pytest.mark.usefixtures("app_store")


def loss_and_formula(at: AppTest) -> tuple[float, str]:
    return float(metric(at, "Loss")), at.latex[1].value


def test_composer_stage_choices_change_formula_and_loss() -> None:
    at = open_app(COMPOSER)
    assert at.title[0].value == "Loss composer"
    loss, formula = loss_and_formula(at)
    assert "GCA-INCE" in " ".join(c.value for c in at.caption)  # the default is a preset
    for key, value in (
        ("cmp_cost", "sqeuclidean"),
        ("cmp_target", "class"),
        ("cmp_projection", "unbalanced"),
        ("cmp_divergence", "rince"),
    ):
        at.selectbox(key=key).set_value(value)
        rerun(at)
        assert not at.error, [e.value for e in at.error]
        new_loss, new_formula = loss_and_formula(at)
        assert new_formula != formula and new_loss != loss, key
        loss, formula = new_loss, new_formula
    # parameter widgets come from the schemas: ε and λ₁, λ₂ get the shared log-scale
    # controls (λ with a hard-constraint checkbox), the others sliders labelled by symbol
    assert at.number_input(key="cmp_relax_a").value == 0.2
    assert at.select_slider(key="cmp_epsilon_slider").options[::7] == ["0.01", "0.1", "1"]
    assert at.select_slider(key="cmp_relax_a_slider").label.startswith("λ₁: KL weight")
    assert at.slider(key="cmp_q").label.startswith("q: RINCE exponent")
    assert at.slider(key="cmp_lam").label.startswith("$λ_R$: RINCE's weight")
    at.checkbox(key="cmp_relax_a_hard").check()
    rerun(at)
    assert "cmp_relax_a" not in [s.key for s in at.number_input]  # λ₁ = ∞: a hard marginal
    assert float(metric(at, "Loss")) != loss


def test_the_numbers_on_a_batch_name_the_parameters_they_are_computed_at() -> None:
    """Story's GCA-INCE on the demo batch read 2.57 (at its ε = 0.2) and the composer's 3.03
    (at 0.5) with nothing on the page to say why: the batch's caption names ε and T."""
    at = open_app(COMPOSER)
    (said,) = [c.value for c in at.caption if c.value.startswith("Batch:")]
    assert said.endswith("Computed at ε = 0.5, T = 10."), said
    at.number_input(key="cmp_epsilon").set_value(0.2)
    rerun(at)
    (said,) = [c.value for c in at.caption if c.value.startswith("Batch:")]
    assert "Computed at ε = 0.2, T = 10." in said
    # RINCE's λ_R by its symbol (Unicode cannot write it: LaTeX), not its field name "lam"
    at.selectbox(key="cmp_divergence").set_value("rince")
    rerun(at)
    (said,) = [c.value for c in at.caption if c.value.startswith("Batch:")]
    assert "$λ_R$ = 0.01" in said and "lam" not in said, said


def test_composer_invalid_input_shows_an_error() -> None:
    at = open_app(COMPOSER)
    at.selectbox(key="cmp_divergence").set_value("rince")
    rerun(at)
    # q's bound is open (q in (0, 1]): its slider offered 0, and the loss refused it in an
    # error box in place of every result; the slider starts a step inside
    q = at.slider(key="cmp_q")
    assert q.min == pytest.approx(0.01) and q.max == pytest.approx(1.0)
    q.set_value(0.5)
    rerun(at)
    assert not at.error
    # The demo digits have no domains: a domain prior failed in an error box two screens
    # below its select box, with no plan. It is shown on the multi-domain digits instead,
    # said at once under the stages.
    at.selectbox(key="cmp_target").set_value("domain")
    rerun(at)
    assert not at.error and float(metric(at, "Loss"))
    assert "needs domain labels" in at.info[0].value
    assert any("multidomain_digits" in c.value for c in at.caption if c.value.startswith("Batch:"))
    assert "cmp_chart_plan" in charts(at)
    loss = metric(at, "Loss")
    at.selectbox(key="cmp_source").set_value("multidomain_digits")
    rerun(at)
    assert not at.error and not at.info and metric(at, "Loss") == loss  # the same batch


def test_train_with_it_launches_a_composed_run(app_store: Path) -> None:
    at = open_app(COMPOSER, cmp_steps="20")
    at.selectbox(key="cmp_projection").set_value("row")
    at.selectbox(key="cmp_divergence").set_value("rince")
    rerun(at)
    at.button(key="cmp_train").click()
    rerun(at)
    store = RunStore(app_store)
    composed = [r for r in store.list_runs() if r.config["method"] == "composed"]
    assert len(composed) == 1
    run = composed[0]
    assert run.config["stages"] == {
        "cost": "cosine",
        "projection": "row",
        "divergence": "rince",
    }
    assert run.config["target"] == "pairs" and run.config["steps"] == 20
    assert run.config["loss_params"]["q"] == 0.6 and run.config["out_dim"] == 3
    assert f"Run #{run.id}" in at.success[0].value
    assert at.session_state["tr_select_next"] == run.id
    at.switch_page("views/train.py")
    rerun(at)
    assert at.selectbox(key="tr_run").value == run.id  # the Train page opens on it
    # (app_store kills the run afterwards)


def test_a_launched_run_is_said_to_be_queued_until_it_starts(tmp_path: Path) -> None:
    """The composer said "Run #16 is training in the background" while the sidebar showed
    it queued behind other runs: the message reads the run's status."""
    store = RunStore(tmp_path, max_concurrent=1)
    config = {"dataset": "rings", "steps": 100_000, "batch_size": 32, "device": "cpu"}
    try:
        ids = [store.launch(config) for _ in range(3)]
        assert launch_status(store, ids[0]) == "is training in the background."
        assert launch_status(store, ids[1]) == (
            "is queued and starts when a slot frees (at most 1 train at once)."
        )
        assert launch_status(store, ids[2]).startswith(
            "is queued behind 1 other queued run, and starts"
        )
        store.stop(ids[2])
        assert launch_status(store, ids[2]) == "has stopped."
        store.delete(ids[2])  # the composer's message outlives the run: no exception
        assert launch_status(store, ids[2]) == "has been deleted."
    finally:
        kill_runs(tmp_path)


def test_a_class_prior_target_shows_its_blocks_on_a_log_scale() -> None:
    """On a linear scale the class prior's γ/n looked like the zeros: the target drew like
    the pairs target. In log colours the class blocks show, the zeros stay blank."""
    at = open_app(COMPOSER)
    at.selectbox(key="cmp_target").set_value("class")
    rerun(at)
    fig = charts(at)["cmp_chart_target"]
    assert "log colour scale" in fig["layout"]["title"]["text"]
    z = array(fig["data"][0]["z"])
    shown = np.isfinite(z)
    n = z.shape[0]
    assert shown.sum() > 2 * n  # the diagonal and the class blocks, not the diagonal alone
    assert not shown.all()  # pairs of different classes: zero, blank
    assert np.nanmax(z) - np.nanmin(z) > 1  # over a decade between positive and prior


def test_the_plan_marks_its_positive_pairs_in_either_layout() -> None:
    """Story and Plan lab outline the positive pairs (i, pos(i)) on their plans; the
    composer's plan had no marks. Cross: the diagonal; joint: j = i ± N."""
    at = open_app(COMPOSER)
    for layout in ("cross", "joint"):
        at.selectbox(key="cmp_layout").set_value(layout)
        rerun(at)
        fig = charts(at)["cmp_chart_plan"]
        (marks,) = [t for t in fig["data"] if t.get("name") == "positive pair (i, pos(i))"]
        assert "the positive pairs" in fig["layout"]["title"]["text"]
        n = array(fig["data"][0]["z"]).shape[0]
        if marks.get("mode") == "markers":
            xs, ys = array(marks["x"]), array(marks["y"])
            pos = np.arange(n) if layout == "cross" else (np.arange(n) + n // 2) % n
            assert len(xs) == n and (xs == pos[ys.astype(int)]).all()
