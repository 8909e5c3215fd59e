"""A loop of one's own, watched in a real browser: `examples/watch_simclr.py` trains in its
own process with a `gca_viz.watch.Recorder` writing into the app's run store, and the Train
page shows it live as an external run (its progress, loss curve and the plan of its batch),
and Geometry draws its embeddings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from gca_viz.runs import RunStore
from tests.browser.test_train import plan_title, progress
from tests.helpers import REPO_ROOT


def test_an_external_loop_shows_live_on_the_train_page(app: Any, no_run_survives: Path) -> None:
    loop = subprocess.Popen(
        [
            sys.executable,
            str(REPO_ROOT / "examples" / "watch_simclr.py"),
            "100000",
            str(no_run_survives),
        ],
        cwd=REPO_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        store = RunStore(no_run_survives)
        run_id = app.until(
            lambda: next((r.id for r in store.list_runs() if r.external), None),
            90,
            lambda: f"the loop to register its run; stderr {loop.stderr}",
        )
        app.goto(f"/train?tr_run={run_id}", charts=1)
        _, first = app.until(
            lambda: (p := progress(app))[0] == "running" and p[1] > 0 and p,
            90,
            lambda: f"the loop's steps on the monitor; progress {progress(app)}",
        )
        app.until(lambda: progress(app)[1] > first, 60, f"steps to pass {first}")
        app.until(
            lambda: app.read_chart("tr_curves", "gd => gd._fullData.length"),
            60,
            "the loss curve of the external run",
        )
        title = app.until(lambda: plan_title(app), 90, "the plan of the loop's batch")
        assert "at step" in title, title
        note = app.page.get_by_text("External run: your own training loop")
        expect(note).to_be_visible()
        expect(note).to_contain_text("live changes apply to its gca_viz loss")
        app.assert_healthy()
        app.goto(f"/geometry?geo_run={run_id}", charts=1)  # its embedding snapshots
        expect(app.page.get_by_text("does not exist")).to_have_count(0)
        app.assert_healthy()
    finally:
        loop.kill()
        loop.wait(timeout=30)
