"""Memory of the Streamlit server over a long session (issue 8, "Under load").

One browser keeps the Train page open on a run that trains for the whole soak: the page's
live monitor (``st.fragment(run_every=1.5)``) redraws the progress, the metric curves and the
plan of the current batch, and the sidebar status (``run_every=3``) refreshes, for
``GCA_SOAK_SECONDS`` (default 75, warm-up included; ``GCA_SOAK_SECONDS=600`` is the long
version). Every
``SAMPLE_EVERY`` seconds the test reads the resident memory (``VmRSS`` in
``/proc/<pid>/status``) of the Streamlit server process alone: the run trains in a process
of its own, which is not counted. After a warm-up (the first page runs import modules and
fill caches), the RSS must grow by less than ``GROWTH_LIMIT``: the median of the last
samples against the median of the first samples after the warm-up. The samples go to
``test-artifacts/soak_rss.csv``.

The run has far more steps than the soak can reach and is stopped at the end; it trains with
one thread (the store allows two runs at once), a small CNN on batches of 256, so it writes
a few thousand steps of metrics in ten minutes, not tens of thousands: the curves the page
draws grow slowly, as a real run's would.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser

from gca_viz.runs import RunStore
from tests.browser.conftest import VIEWPORT, App, Served, serve_app
from tests.helpers import REPO_ROOT

SOAK_SECONDS = float(os.environ.get("GCA_SOAK_SECONDS", "75"))
WARMUP = min(60.0, max(20.0, SOAK_SECONDS / 4))  # seconds after the monitor first drew
SAMPLE_EVERY = 2.0 if SOAK_SECONDS <= 120 else 5.0
WINDOW = 5  # samples in each median (after the warm-up, at the end)
GROWTH_LIMIT = 0.10
ARTIFACT = REPO_ROOT / "test-artifacts" / "soak_rss.csv"
RUN = {
    "dataset": "digits",
    "encoder": "cnn",
    "out_dim": 3,
    "method": "gca_ince",
    "batch_size": 256,
    "steps": 1_000_000,  # never reached: the test stops the run
    "eval_every": 100,
    "snapshot_every": 50,  # a new plan for the monitor every few seconds
    "checkpoint_every": 500,
    "device": "cpu",
}


def rss_kib(pid: int) -> int:
    """Resident set size of one process (its threads, not its children), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


def monitor_step(app: App) -> int:
    """The step the live monitor's progress bar shows (-1 while it is not drawn)."""
    bar = app.page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    try:
        text = bar.first.inner_text(timeout=5000) if bar.count() else ""
    except Exception:  # redrawn while read
        return -1
    found = re.search(r"running\s*·\s*step (\d+) of", text)
    return int(found.group(1)) if found else -1


@pytest.fixture
def soak_server(tmp_path: Path) -> Iterator[Served]:
    runs_dir = tmp_path / "soak-runs"
    RunStore(runs_dir, max_concurrent=2)  # a run then trains with one thread
    with serve_app(runs_dir) as served:
        yield served


@pytest.mark.slow
def test_server_memory_stays_flat_under_a_live_page(browser: Browser, soak_server: Served) -> None:
    store = RunStore(soak_server.runs_dir)
    run_id = store.launch(RUN, name="soak")
    context = browser.new_context(base_url=str(soak_server), viewport=VIEWPORT)
    samples: list[dict[str, Any]] = []
    try:
        app = App(context.new_page())
        app.goto("/", charts=0)  # the router first, as on a fresh server
        app.goto(f"/train?tr_run={run_id}", charts=0, timeout=120)
        app.until(lambda: monitor_step(app) > 0, 180, "the live monitor to show steps")
        app.until(lambda: app.read_chart("tr_plan", "gd => gd._fullData.length"), 180, "a plan")
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < SOAK_SECONDS:
            run = store.get(run_id)
            assert run.status == "running", f"the run ended during the soak: {run.status}"
            samples.append(
                {
                    "seconds": round(elapsed, 1),
                    "rss_kib": rss_kib(soak_server.pid),
                    "run_step": run.step,
                    "page_step": monitor_step(app),
                    "load1": round(os.getloadavg()[0], 2),
                }
            )
            app.page.wait_for_timeout(SAMPLE_EVERY * 1000)
        app.assert_healthy()
    finally:
        context.close()
        if store.get(run_id).status == "running":
            store.stop(run_id)
        ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
        with open(ARTIFACT, "w", newline="") as fh:
            writer = csv.DictWriter(fh, ["seconds", "rss_kib", "run_step", "page_step", "load1"])
            writer.writeheader()
            writer.writerows(samples)

    deadline = time.time() + 60
    while store.get(run_id).status == "running" and time.time() < deadline:
        time.sleep(0.5)
    assert store.get(run_id).status == "stopped"

    after = [s for s in samples if s["seconds"] >= WARMUP]
    assert len(after) >= 2 * WINDOW, f"too few samples after the warm-up: {len(after)}"
    first = statistics.median(s["rss_kib"] for s in after[:WINDOW])
    last = statistics.median(s["rss_kib"] for s in after[-WINDOW:])
    growth = last / first - 1
    pages = [s["page_step"] for s in after if s["page_step"] >= 0]
    print(
        f"\nserver RSS (MiB): at the first sample {samples[0]['rss_kib'] / 1024:.0f}, after the "
        f"{WARMUP:.0f} s warm-up {first / 1024:.0f}, at the end {last / 1024:.0f}, max "
        f"{max(s['rss_kib'] for s in samples) / 1024:.0f}; growth {100 * growth:+.1f}% over "
        f"{SOAK_SECONDS - WARMUP:.0f} s (limit {100 * GROWTH_LIMIT:.0f}%); the run went from step "
        f"{after[0]['run_step']} to {after[-1]['run_step']}; load average "
        f"{samples[0]['load1']} -> {samples[-1]['load1']}; samples in {ARTIFACT}"
    )
    # The page really polled all along: the step it shows advanced with the run.
    assert pages and pages[-1] > pages[0], f"the live monitor did not advance: {pages}"
    assert growth < GROWTH_LIMIT, f"the server's RSS grew {100 * growth:.1f}% after warm-up"
