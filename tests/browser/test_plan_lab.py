"""Plan lab in a real browser: ε changes the plan, in place (the same chart element, redrawn),
the URL keeps the setting, a bad ε is a clear error, clicking a heatmap cell selects it
without re-sending the figures, and ▶ plays the half-steps without the server."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.browser.conftest import cell_point
from tests.plotly_json import colour_range

STEPS = "lab_chart_player"  # the half-step player; trace 0 is the heatmap of P^(k)
CHARTS = 3  # player (with the KL curve), matrix view, losses


def plan(app: Any) -> list[list[float]]:
    trace = app.trace(STEPS, 0)
    assert trace["type"] == "heatmap"
    return trace["z"]


def top_value(app: Any) -> float:
    """The largest entry of the shown plan, as the colour bar names it under its title
    ("P<br><sub>lo … hi</sub>": the frames are quantised to 256 levels of each plan's own
    range; the ticks are round values inside it)."""
    return colour_range(app.chart_data(STEPS, "gd => gd._fullData[0].colorbar.title.text"))[1]


def test_epsilon_changes_the_plan_and_lives_in_the_url(app: Any) -> None:
    app.goto("/plan_lab", charts=CHARTS)
    assert app.query().get("lab_eps") == "0.1"
    before, top = plan(app), top_value(app)
    assert len(before) == 64 and len(before[0]) == 64
    app.chart(STEPS).evaluate("gd => { gd.__kept = true; }")

    app.type_number("lab_eps", "0.3")
    app.wait_for_query("lab_eps", "0.3")
    after = app.until(lambda: (z := plan(app)) != before and z, 30, "the heatmap to change")
    # A warmer ε spreads the plan: the largest entry of P^(1) drops.
    assert top_value(app) < top
    # Redrawn in place: the same chart element (a new one costs a full plotly newPlot).
    assert app.chart(STEPS).evaluate("gd => gd.__kept === true")
    app.assert_healthy()

    # The copied link reproduces the setting in a fresh session.
    url = app.page.url
    app.goto(url, charts=CHARTS)
    expect(app.number_input("lab_eps")).to_have_value("0.3")
    assert plan(app) == after
    app.assert_healthy()


def test_zero_epsilon_is_a_clear_message(app: Any) -> None:
    """The shared ε control refuses ε = 0 with a message naming ε; the plan stays."""
    app.goto("/plan_lab", charts=CHARTS)
    app.type_number("lab_eps", "0")
    warning = app.page.locator('[data-testid="stAlertContentWarning"]')
    expect(warning.filter(has_text="must be a number > 0")).to_be_visible(timeout=30_000)
    assert "ε" in warning.first.inner_text()
    expect(app.page.locator('[data-testid="stException"]')).to_have_count(0)
    expect(app.number_input("lab_eps")).to_have_value("0.1")  # the value in use stays
    assert app.query().get("lab_eps") == "0.1"
    app.settle(charts=CHARTS)  # the page did not stop: every chart is there
    # The next valid ε clears the message.
    app.type_number("lab_eps", "0.2")
    app.wait_for_query("lab_eps", "0.2")
    app.settle(charts=CHARTS)
    expect(warning).to_have_count(0)
    app.assert_healthy()


def click_cell(app: Any, key: str, i: int, j: int) -> None:
    """Click the cell (i, j) of a selectable heatmap and wait until the inputs show it."""
    gd = app.chart(key)
    gd.scroll_into_view_if_needed()
    x, y = cell_point(gd, i, j)
    app.page.mouse.click(x, y)
    app.wait_for_query("lab_i", str(i))
    app.wait_for_query("lab_j", str(j))
    expect(app.number_input("lab_i")).to_have_value(str(i))
    expect(app.number_input("lab_j")).to_have_value(str(j))


def test_clicking_a_cell_selects_it_and_resends_no_figure(app: Any) -> None:
    received: list[int] = []
    app.page.on("websocket", lambda ws: ws.on("framereceived", lambda d: received.append(len(d))))
    app.goto("/plan_lab", charts=CHARTS)
    app.settle(charts=CHARTS)
    before = len(received)
    click_cell(app, STEPS, 7, 12)
    app.settle(charts=CHARTS)
    # Only the marked cell and the inspector change: no figure is sent again (the player
    # alone is over 100 kB).
    assert sum(received[before:]) < 40_000, received[before:]
    outline = app.chart_data(
        STEPS, "gd => gd._fullLayout.shapes.map(s => [s.x0, s.x1, s.y0, s.y1])"
    )
    assert [11.5, 12.5, 6.5, 7.5] in outline  # the picked cell is outlined
    app.assert_healthy()


def test_a_cell_clicked_before_can_be_clicked_again(app: Any) -> None:
    """Clicking a cell that was clicked before, after picking another in the other heatmap
    or after typing a row, selects it again (it was ignored)."""
    app.goto("/plan_lab", charts=CHARTS)
    click_cell(app, STEPS, 7, 12)
    app.settle(charts=CHARTS)
    click_cell(app, "lab_chart_view", 20, 30)
    app.settle(charts=CHARTS)
    click_cell(app, STEPS, 7, 12)  # back to the first cell, same heatmap
    app.settle(charts=CHARTS)
    app.type_number("lab_i", "3")
    app.wait_for_query("lab_i", "3")
    app.settle(charts=CHARTS)
    click_cell(app, "lab_chart_view", 20, 30)  # the view heatmap's earlier cell again
    app.assert_healthy()


def test_play_animates_the_half_steps_without_the_server(app: Any) -> None:
    """▶ plays P^(0) .. P^(2T) in the browser: the heatmap and the KL marker move in step,
    frame after frame, and the server sends no chart while it plays (a page run would
    re-send the player's frames, over 100 kB; the sidebar's status strip may refresh)."""
    received: list[int] = []
    app.page.on("websocket", lambda ws: ws.on("framereceived", lambda d: received.append(len(d))))
    app.goto("/plan_lab?lab_T=5", charts=CHARTS)
    player = app.chart("lab_chart_player")
    player.scroll_into_view_if_needed()
    app.settle(charts=CHARTS)
    assert app.chart_data("lab_chart_player", "gd => gd._fullData[2].x[0]") == 1
    first_z = app.chart_data("lab_chart_player", "gd => Array.from(gd._fullData[0].z[3])")
    player.evaluate(
        """gd => { window.__frames = [];
            gd.on('plotly_animatingframe', e => window.__frames.push(
                [Number(e.name), gd._fullData[2].x[0], performance.now()])); }"""
    )
    before = len(received)
    player.get_by_text("▶ Play").click()
    frames = app.until(
        lambda: (f := app.page.evaluate("() => window.__frames")) and f[-1][0] == 10 and f,
        15,
        "the animation to reach k = 10",
    )
    app.page.wait_for_timeout(300)
    names = [int(f[0]) for f in frames]
    assert names == list(range(names[0], 11)) and names[0] <= 2  # every half-step, in order
    assert app.chart_data("lab_chart_player", "gd => gd._fullData[2].x[0]") == 10  # the marker
    last_z = app.chart_data("lab_chart_player", "gd => Array.from(gd._fullData[0].z[3])")
    assert last_z != first_z
    assert max(received[before:], default=0) < 20_000, received[before:]  # no chart re-sent
    app.assert_healthy()


def test_the_keyboard_steps_and_plays_the_half_steps(app: Any) -> None:
    """Plotly's ▶ button and frame slider cannot take focus: the player is one Tab stop of
    its own, named for a screen reader; ← / → / Home / End (and a clicker's PageUp /
    PageDown) show a half-step (the marker and the slider follow) and say which, with the
    frame's marginals; Space plays and pauses, and a play that ends says where."""
    app.goto("/plan_lab?lab_T=5", charts=CHARTS)
    player = app.chart(STEPS)
    app.until(lambda: player.get_attribute("role") == "group", 15, "the player's keyboard")
    assert "11 frames. Left and right arrow keys" in str(player.get_attribute("aria-label"))
    assert player.get_attribute("tabindex") == "0"
    player.focus()
    marker, active = "gd => gd._fullData[2].x[0]", "gd => gd._fullLayout.sliders[0].active"
    said = player.locator(".gca-sr-only")
    keys = (("ArrowRight", 2), ("PageDown", 3), ("End", 10), ("PageUp", 9), ("Home", 0))
    for key, k in keys:
        app.page.keyboard.press(key)
        app.until(lambda k=k: app.read_chart(STEPS, active) == k, 10, f"the slider at k = {k}")
        if k > 0:  # (k = 0, the kernel, has no KL marker)
            assert app.read_chart(STEPS, marker) == k
        expect(said).to_have_text(re.compile(rf"^k = {k}: .*(on target|off by up to)"))
    app.page.keyboard.press("Space")
    app.until(lambda: (app.read_chart(STEPS, active) or 0) >= 3, 10, "the play to move on")
    app.page.keyboard.press("Space")
    app.page.wait_for_timeout(600)
    paused = app.read_chart(STEPS, active)
    app.page.wait_for_timeout(900)
    assert app.read_chart(STEPS, active) == paused < 10
    app.page.keyboard.press("Space")  # played to the end, it says where it stopped
    expect(said).to_have_text(re.compile(r"^k = 10: "), timeout=15_000)
    # the hidden, empty plotly loader is not announced ("Click to enter Plot title")
    loader = app.page.locator(".st-key-gca_plotly_loader .js-plotly-plot")
    assert loader.get_attribute("aria-hidden") == "true"
    app.assert_healthy()


def test_the_methods_table_shows_every_method(app: Any) -> None:
    """The table of the methods' losses has tall, wrapped rows; at the dataframe's default
    height (ten 35 px rows) it showed four of the eight methods and hid the rest behind a
    scroll that did not show (ui.wrapped_table: height "content")."""
    app.goto("/plan_lab", charts=CHARTS)
    grids = app.page.locator('[data-testid="stDataFrame"]')
    expect(grids.first).to_be_visible()
    sizes = [
        grid.evaluate("e => { const s = e.querySelector('.dvn-scroller');"
                      " return s ? [s.scrollHeight, s.clientHeight] : [0, 0]; }")
        for grid in grids.all()
    ]  # fmt: skip
    assert sizes and all(total <= shown + 1 for total, shown in sizes), sizes
    app.assert_healthy()
