"""One ε control and one λ control on every page (issue 14), in Chromium: the same
log-scale range wherever ε is set, a typed ε moves the slider and the URL, the slider moves
the typed value, a typed ε that is not > 0 is a message naming ε, and what the control
looks like at 1280 x 800 and in lecture mode at 1024 x 768 (screenshots for people)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

EPS_RANGE = ("0.01", "2")  # the shared slider's ends (gca_viz.losses.stages.EPSILON.ui)
LAM_RANGE = ("0.001", "100")
# path -> (charts to wait for, ε controls, λ₁ = λ₂ controls)
PAGES = {
    "/domains": (2, ("dom_eps",), ()),
    "/noisy": (2, ("noisy_eps", "mech_eps"), ("noisy_lam", "mech_lam")),
    "/composer": (2, ("cmp_epsilon",), ()),
}


def slider_ends(app: Any, key: str) -> tuple[str, str]:
    """The first and last option a select slider shows under its track."""
    ends = app.widget(f"{key}_slider").locator('[data-testid="stSliderTickBar"] p')
    texts = ends.all_inner_texts()
    return texts[0], texts[-1]


def slider_value(app: Any, key: str) -> str:
    """What a select slider shows now (its range input's ``aria-valuetext``)."""
    return str(app.slider(f"{key}_slider").get_attribute("aria-valuetext"))


@pytest.mark.parametrize("path", list(PAGES))
def test_epsilon_has_one_control_with_one_range(app: Any, path: str) -> None:
    charts, eps_keys, lam_keys = PAGES[path]
    app.goto(path, charts=charts, timeout=120)
    for key, ends in [(k, EPS_RANGE) for k in eps_keys] + [(k, LAM_RANGE) for k in lam_keys]:
        expect(app.widget(f"{key}_control")).to_have_count(1)
        assert slider_ends(app, key) == ends, key
        assert app.number_input(key).input_value() == slider_value(app, key), key
        assert app.query().get(key) == slider_value(app, key), key
    for key in eps_keys:  # the label is the schema's symbol in Unicode, and text
        label = app.widget(f"{key}_slider").locator('[data-testid="stWidgetLabel"]')
        expect(label).to_contain_text("ε: temperature = regulariser")
    app.assert_healthy()


# What a screen reader names each input: the slider's and the typed box's aria-label.
ARIA_LABELS = """() => [...document.querySelectorAll('input[aria-label]')]
    .map(e => e.getAttribute('aria-label'))"""


@pytest.mark.parametrize("path", ["/entropy", "/plan_lab"])
def test_a_screen_reader_hears_plain_and_distinct_control_names(app: Any, path: str) -> None:
    """A label is the control's aria-label too: "$ε$: temperature" was read with its
    dollars, "$λ_1$" with its underscore, and Entropy's three typed ε boxes all read
    "ε, typed"."""
    app.goto(path, charts=2, timeout=120)
    names = app.page.evaluate(ARIA_LABELS)
    assert any(name.startswith("ε: ") for name in names), names
    assert any(name.startswith("λ₁: KL weight") for name in names), names
    assert not [n for n in names if "$" in n or "\\" in n or "λ_" in n], names
    typed = [n for n in names if n.endswith(", typed")]
    assert len(typed) >= 3 and len(set(typed)) == len(typed), typed


def test_typed_epsilon_moves_the_slider_and_the_url(app: Any, screenshot: Any) -> None:
    app.goto("/domains", charts=2, timeout=120)
    plan_title = "gd => gd._fullLayout.title.text"
    assert "ε = 0.5" in app.chart_data("dom_chart_plan", plan_title)
    app.type_number("dom_eps", "0.3")
    app.wait_for_query("dom_eps", "0.3")
    app.until(lambda: slider_value(app, "dom_eps") == "0.3", 30, "the slider at 0.3")
    app.until(
        lambda: "ε = 0.3" in (app.read_chart("dom_chart_plan", plan_title) or ""),
        60,
        "the plan at ε = 0.3",
    )
    # between the stops: the slider shows the typed value as a stop of its own. (CI once
    # lost this commit, the URL at 0.3 for 30 s; about 150 tries here did not repeat it.
    # A second try says whether a commit was lost or the typed value is refused.)
    for attempt in (1, 2):
        app.type_number("dom_eps", "0.123")
        try:
            app.wait_for_query("dom_eps", "0.123", timeout=20)
            break
        except AssertionError as lost:
            if attempt == 2:
                raise
            print(f"typed 0.123 again: {lost}")
    app.until(lambda: slider_value(app, "dom_eps") == "0.123", 30, "the slider at 0.123")
    # the slider moves the typed value and the URL: one stop right of 0.123 is 0.15
    app.settle()
    app.step_slider("dom_eps_slider")
    app.wait_for_query("dom_eps", "0.15")
    expect(app.number_input("dom_eps")).to_have_value("0.15")
    app.settle(charts=2)
    app.assert_healthy()
    screenshot("controls-domains-epsilon")


def test_a_typed_epsilon_that_is_not_positive_is_named(app: Any) -> None:
    app.goto("/noisy", charts=2, timeout=120)
    app.type_number("mech_eps", "-1")
    warning = app.widget("mech_eps_control").locator('[data-testid="stAlertContentWarning"]')
    expect(warning).to_contain_text("must be a number > 0", timeout=60_000)
    expect(warning.locator(".katex").first).to_be_visible()  # ε, rendered
    assert "ε" in warning.inner_text()
    expect(app.number_input("mech_eps")).to_have_value("0.1")  # the value in use stays
    assert app.query().get("mech_eps") == "0.1" and slider_value(app, "mech_eps") == "0.1"
    app.settle(charts=2)
    app.assert_healthy()


@pytest.mark.parametrize(
    ("name", "path", "size", "key", "folded"),
    [
        ("domains-1280", "/domains", (1280, 800), "dom_eps", None),
        ("noisy-1280", "/noisy", (1280, 800), "mech_eps", None),
        ("domains-lecture-1024", "/domains?lecture=1", (1024, 768), "dom_eps", "GCA-INCE plan"),
        ("noisy-lecture-1024", "/noisy?lecture=1", (1024, 768), "noisy_lam", None),
    ],
)
def test_the_control_reads_well(
    app: Any,
    screenshot: Any,
    name: str,
    path: str,
    size: tuple[int, int],
    key: str,
    folded: str | None,
) -> None:
    """The slider's label, track and ends and the typed box fit their column (nothing cut),
    at a laptop's size and at a projector's (in the popover of the ``folded`` settings there);
    screenshots for people to judge."""
    app.page.set_viewport_size({"width": size[0], "height": size[1]})
    app.goto(path, charts=2, timeout=120)
    if folded:
        app.page.get_by_role("button", name=folded, exact=True).click()
    control = app.widget(f"{key}_control")
    control.scroll_into_view_if_needed()
    box, column = control.evaluate(
        """e => [e.getBoundingClientRect().toJSON(),
                 e.parentElement.getBoundingClientRect().toJSON()]"""
    )
    assert box["width"] > 150 and box["right"] <= column["right"] + 1, (box, column)
    typed, text = app.widget(key).bounding_box(), app.number_input(key).bounding_box()
    assert typed is not None and text is not None
    assert typed["width"] >= 140 and text["width"] >= 60  # room for 0.0001 beside the +/-
    label = app.widget(f"{key}_slider").locator('[data-testid="stWidgetLabel"]')
    assert label.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "label cut"
    screenshot(f"controls-{name}", full=False)
    app.assert_healthy()


def click_method_row(app: Any, row: int) -> None:
    """Click the selection box of row ``row`` of Story step 5's methods table (a canvas:
    a 35 px header, then eight rows of equal height)."""
    table = app.widget("story_methods_table")
    table.evaluate("e => e.scrollIntoView({block: 'center'})")  # all of it in view
    app.page.wait_for_timeout(300)
    box = table.bounding_box()
    height = (box["height"] - 35) / 8
    x, y = box["x"] + 15, box["y"] + 35 + height * (row + 0.5)
    app.page.mouse.move(x + 200, y + 20)  # (a second click at the same spot went unseen)
    app.page.mouse.move(x, y)
    app.page.mouse.click(x, y)


def test_a_method_picked_in_the_table_comes_into_view(app: Any) -> None:
    """The methods table is 774 px tall, taller than a 1366 x 768 laptop's window: the
    chosen method's loss and plan, drawn under it, stayed out of view and a click on a row
    seemed to do nothing (a student's review). The result now comes up under the bar."""
    app.page.set_viewport_size({"width": 1366, "height": 768})
    app.goto("/?story_step=5", charts=1, timeout=90)
    click_method_row(app, 2)  # RINCE
    app.wait_for_query("story_method", "rince")
    app.settle(charts=1)
    result = app.page.locator(".st-key-wrap360_story_wrap_s5")

    def shown() -> bool:
        box = result.bounding_box()
        return box is not None and 0 <= box["y"] <= 768 / 3

    app.until(shown, 15, "the chosen method's result near the window's top")
    expect(app.page.locator('[data-testid="stMetricLabel"]').first).to_be_in_viewport()
    app.assert_healthy()


def test_a_row_of_the_methods_table_picks_its_method_every_time(app: Any) -> None:
    """Clicking a row of Story's methods table sets the method box; picking another method
    in the box, then the same row again (unticked and ticked, or after a page switch, which
    drops the table's selection), sets it again. The second time did nothing: the page
    remembered the row as applied. The page switch goes through the real navigation, which
    drops the URL: the step and method the user chose come back."""
    app.goto("/?story_step=5", charts=1)
    label = app.page.locator('[data-testid="stMetricLabel"]').first
    click_method_row(app, 2)  # RINCE
    app.wait_for_query("story_method", "rince")
    expect(label).to_have_text("RINCE loss")
    app.choose("story_method", "GCA-UOT")
    app.wait_for_query("story_method", "gca_uot")
    click_method_row(app, 2)  # unticks the row: the method stays
    app.settle(charts=1)
    assert app.query()["story_method"] == "gca_uot"
    click_method_row(app, 2)
    app.wait_for_query("story_method", "rince")
    expect(label).to_have_text("RINCE loss")

    # After a look at Plan lab, Story is back at step 5 with RINCE (what the user chose is
    # kept across the navigation), but the table's selection is dropped: the method box picks
    # IOT, then row 2 RINCE again.
    app.page.get_by_role("link", name="Plan lab").first.click(delay=50)
    app.page.wait_for_url("**/plan_lab**")
    app.settle(charts=3)
    app.page.get_by_role("link", name="Story").first.click(delay=50)
    app.settle(charts=1)
    app.wait_for_query("story_step", "5")
    app.wait_for_query("story_method", "rince")
    app.choose("story_method", "IOT")
    app.wait_for_query("story_method", "iot")
    click_method_row(app, 2)
    app.wait_for_query("story_method", "rince")
    expect(label).to_have_text("RINCE loss")
    app.assert_healthy()
