"""The app opens in a real browser with no exception and a clean console."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_home_page_renders_without_errors(app: Any, screenshot: Any) -> None:
    app.goto("/", charts=1)
    expect(app.page.get_by_role("heading", name="GCA Explorer").first).to_be_visible()
    expect(app.chart("story_p1")).to_be_visible()
    screenshot("home")
    app.assert_healthy()


def test_the_first_step_s_two_numbers_are_on_the_first_screen(app: Any) -> None:
    """Step 1's claim is that two numbers from different code agree (InfoNCE's loss and
    KL(I ‖ P⁽¹⁾)/N); under the step's paragraph they began at the fold of a 1366 x 768
    laptop's first screen and of a lecture's 1280 x 720. The text now sits beside them."""
    for size, query in (((1366, 768), ""), ((1280, 720), "?lecture=1")):
        app.page.set_viewport_size({"width": size[0], "height": size[1]})
        app.goto(f"/{query}", charts=1, timeout=90)
        for label in ("InfoNCE loss", "KL(I ‖ P⁽¹⁾) / N"):
            card = app.page.locator('[data-testid="stMetric"]', has_text=label).first
            box = card.locator('[data-testid="stMetricValue"]').bounding_box()
            assert box and box["y"] + box["height"] <= size[1], (size, label, box)
    app.assert_healthy()
