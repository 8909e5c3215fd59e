"""A control of a page's own section reruns that section alone (an ``st.fragment``), not the
whole page: the answer to a slider then costs that section's work, not every chart's.

Each case moves one slider with the keyboard on the session's server (which logs every
script run, see timed_server.py), waits for the section's caption to show the new value, and
asserts that every script run the move caused was a fragment's run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.browser.conftest import script_runs

# (page, slider, a text in the section that names the slider's value, charts on the page)
CASES = [
    ("noisy", "mech_lam_slider", "sweeps, ε =", 6),
    ("noisy", "noisy_lam_slider", "The plan: GCA-UOT's", 6),
]


@pytest.mark.parametrize(("path", "slider", "caption", "charts"), CASES)
def test_a_sections_control_reruns_only_its_section(
    app: Any, script_log: Path, path: str, slider: str, caption: str, charts: int
) -> None:
    app.goto(f"/{path}", charts=charts, timeout=120)
    text = app.page.get_by_text(caption).first
    before = text.inner_text()
    mark = len(script_runs(script_log))
    app.step_slider(slider)
    app.until(
        lambda: text.inner_text() != before,
        60,
        lambda: f"the caption still reads {before!r} after the slider {slider} moved",
    )
    app.settle(charts=charts)
    runs = script_runs(script_log)[mark:]
    assert runs, "the move caused no script run"
    pages = [r for r in runs if not r["fragment"]]
    assert not pages, f"moving {slider} reran the whole page {len(pages)} time(s): {pages}"
    app.assert_healthy()
