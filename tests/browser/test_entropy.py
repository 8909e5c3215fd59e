"""Entropy and iterations in a real browser: a sweep control changes the sweep charts."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_sweep_controls_change_the_charts(app: Any) -> None:
    app.goto("/entropy", charts=10)
    entropy = app.trace("ent_chart_entropy", 0)
    assert len(entropy["x"]) == 12  # ent_num: 12 values of ε by default
    t_curve = app.trace("ent_chart_T_loss", 0)
    assert len(t_curve["x"]) == 30

    # One more value of ε on the log grid: every ε-sweep chart redraws with 13 points.
    app.step_slider("ent_num", "ArrowRight")
    app.wait_for_query("ent_num", "13")
    expect(app.slider("ent_num")).to_have_value("13")
    app.until(lambda: len(app.trace("ent_chart_entropy", 0)["x"]) == 13, 60, "13 ε values")
    assert len(app.trace("ent_chart_iterations", 0)["x"]) == 13
    assert app.trace("ent_chart_entropy", 0)["y"] != entropy["y"]

    # A smaller largest ε: the grid ends lower, the entropy curve with it.
    app.type_number("ent_eps_max", "0.5")
    app.wait_for_query("ent_eps_max", "0.5")
    shrunk = app.until(
        lambda: (t := app.trace("ent_chart_entropy", 0))["x"][-1] < 0.51 and t, 60, "ε ≤ 0.5"
    )
    assert max(shrunk["y"]) < max(entropy["y"])
    app.assert_healthy()
