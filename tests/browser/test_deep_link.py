"""A link to a page works as the first request a freshly started server gets.

Settings live in the URL so that a copied link reproduces a view (design.md, "Pages"). The
page files live in ``views/``: a folder named ``pages/`` is also Streamlit's legacy
multipage folder, and a server that had not run ``app.py`` yet served ``/geometry`` from it
alone, without the router (no page config, no sidebar status, a navigation listing files).
The ``fresh_server`` fixture starts a second server so the link really is its first request.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import expect


def test_a_page_link_is_the_first_request(page: Any, fresh_server: str) -> None:
    page.goto(f"{fresh_server}/geometry?geo_color=class")
    expect(page.locator("h1").first).to_have_text("Geometry", timeout=60_000)
    nav = page.locator('[data-testid="stSidebarNav"] a')
    expect(nav.first).to_be_visible()
    labels = [text.split("\n")[-1].strip() for text in nav.all_inner_texts()]
    assert labels[:2] == ["Story", "Plan lab"], labels
    expect(page.get_by_text("gca_viz 0.1", exact=False)).to_be_visible()
