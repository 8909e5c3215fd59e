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
