"""Faults under a real server and a real browser: what the app shows, how long it takes to
recover, and that no finished run loses data.

One server (``serve_app``) on a run store of its own, restarted once. Before it starts, the
test trains a run to its end (3-D embeddings, snapshots, metrics): its row, metrics and
snapshot bytes are fingerprinted and checked after every fault. When this machine lets us
mount (we run as root), the store lies on a 192 MB tmpfs, so the disk can really fill up.

(a) SIGKILL a training run's process: the page turns it ``interrupted`` (the sidebar's
    reconcile), the Resume button continues it from its checkpoint.
(c) Fill the disk under a training run: it fails, and the page says the disk is full; the
    other pages keep drawing. Without a mount, the run gets a 512 KB file-size limit
    instead (``RLIMIT_FSIZE``), an honest stand-in for a quota.
(d) Delete snapshot files under an open Geometry page and an open Train page: a warning
    naming the step, no exception.
(b) Restart the app process on the same store: every run is listed with its status, and
    the finished run's curves and embeddings are drawn again.

The measured times and what the page said are printed and written to
``test-artifacts/faults.json``.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import os
import re
import resource
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from gca_viz.runs import RunStore, StoreError
from tests.browser.conftest import VIEWPORT, App, kill_run_processes, serve_app
from tests.helpers import REPO_ROOT, wait_for, wait_for_run
from tests.tmpfs import try_mount_tmpfs, umount

FAST: dict[str, Any] = {
    "batch_size": 32,
    "encoder_params": {"hidden": 32},
    "head_hidden": 32,
    "method": "gca_ince",
    "device": "cpu",
}
FINISHED = {**FAST, "out_dim": 3, "steps": 40, "snapshot_every": 10, "eval_every": 20,
            "checkpoint_every": 20, "eval_subset": 200}  # fmt: skip
LONG = {**FAST, "out_dim": 8, "steps": 100_000, "snapshot_every": 10, "eval_every": 0,
        "checkpoint_every": 10}  # fmt: skip
# Writes a lot, early: a 128 x 128 plan snapshot every step, a checkpoint every 5 steps.
HEAVY = {**FAST, "batch_size": 256, "out_dim": 8, "steps": 100_000, "snapshot_every": 1,
         "eval_every": 0, "checkpoint_every": 5}  # fmt: skip
FIGURES: dict[str, Any] = {}


# ---------------------------------------------------------------------------- helpers


def loss_step(store: RunStore, run_id: int) -> int:
    return store.latest_metrics(run_id).get("loss", (-1, 0.0))[0]


def fingerprint(store: RunStore, run_id: int) -> dict[str, Any]:
    """A finished run's row, metrics and snapshot file bytes."""
    info = store.get(run_id)
    snaps = store.snapshots(run_id, "embeddings") + store.snapshots(run_id, "plan")
    return {
        "status": info.status,
        "step": info.step,
        "metrics": hashlib.sha256(store.metrics_csv(run_id).encode()).hexdigest(),
        "files": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for _, p in snaps},
    }


def fill(path: Path) -> None:
    """Write zeros to ``path`` until the disk is full."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        for size in (1 << 20, 1 << 12):
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, bytes(size))
    finally:
        os.close(fd)


def progress(app: App) -> tuple[str, int]:
    """``(status, step)`` from the live monitor's progress line; ``("", -1)`` if absent."""
    bar = app.page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    try:
        text = bar.first.inner_text(timeout=2000) if bar.count() else ""
    except Exception:  # redrawn while being read
        return "", -1
    found = re.search(r"(\w+)\s*·\s*step (\d+) of", text)
    return (found.group(1), int(found.group(2))) if found else ("", -1)


def alerts(app: App) -> list[str]:
    return app.page.locator('[data-testid="stAlert"]').all_inner_texts()


@dataclass
class Env:
    """The store, the server of the moment, a browser page, and the finished run."""

    runs: Path
    mounted: bool
    store: RunStore
    finished: int
    before: dict[str, Any]
    browser: Browser
    url: str = ""
    page: Page | None = None
    _server: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def start(self) -> float:
        start = time.monotonic()
        self.url = str(self._server.enter_context(serve_app(self.runs)))
        return time.monotonic() - start

    def stop(self) -> None:
        self._server.close()
        self._server = contextlib.ExitStack()

    def app(self) -> App:
        """A fresh browser page on the current server."""
        if self.page is not None:
            self.page.context.close()
        context = self.browser.new_context(viewport=VIEWPORT)
        self.page = context.new_page()
        return App(self.page)

    def intact(self) -> None:
        assert fingerprint(self.store, self.finished) == self.before, "the finished run changed"


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, browser: Browser) -> Iterator[Env]:
    runs = tmp_path_factory.mktemp("fault-runs")
    why_not = try_mount_tmpfs(runs, "size=192m")
    FIGURES["disk"] = "tmpfs 192 MB" if not why_not else f"no mount ({why_not})"
    store = RunStore(runs, max_concurrent=1)
    started = time.monotonic()
    finished = store.launch(FINISHED, name="finished before the faults")
    wait_for_run(store, lambda: store.get(finished).status == "finished", "the finished run")
    FIGURES["finished run trained in s"] = round(time.monotonic() - started, 1)
    e = Env(runs, not why_not, store, finished, fingerprint(store, finished), browser)
    FIGURES["server start s"] = round(e.start(), 1)
    try:
        yield e
    finally:
        if e.page is not None:
            e.page.context.close()
        e.stop()
        (runs / "filler").unlink(missing_ok=True)
        kill_run_processes(runs)
        out = REPO_ROOT / "test-artifacts" / "faults.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(FIGURES, indent=2))
        print("\nfault figures:", json.dumps(FIGURES, indent=2))
        if e.mounted:
            store.close()
            gc.collect()  # other RunStore objects hold connections to files on the tmpfs
            umount(runs)


# ---------------------------------------------------------------------------- (a) SIGKILL


def test_a_killed_run_shows_interrupted_and_resumes(env: Env) -> None:
    store = env.store
    run_id = store.launch(LONG, name="killed mid-run")
    wait_for_run(store, lambda: loss_step(store, run_id) >= 15, "the run past its first checkpoint")
    app = env.app()
    app.goto(f"{env.url}/train?tr_run={run_id}", charts=1)
    assert app.until(lambda: progress(app)[0] == "running", 30, "the running status")

    pid = int(store.get(run_id).pid or 0)
    killed_at = loss_step(store, run_id)
    os.kill(pid, signal.SIGKILL)
    t0 = time.monotonic()
    warning = app.page.get_by_text(f"Run #{run_id} was interrupted")
    expect(warning).to_be_visible(timeout=30_000)  # the sidebar reconciles every 3 s
    shown = time.monotonic() - t0
    text = next(a for a in alerts(app) if "was interrupted" in a)
    assert "the run process died" in text
    assert store.get(run_id).status == "interrupted"
    app.assert_healthy()
    env.intact()

    t1 = time.monotonic()
    resume = app.page.locator(".st-key-tr_resume").get_by_role("button", name="Resume").first
    expect(resume).to_be_enabled(timeout=10_000)
    resume.click()
    app.until(lambda: progress(app)[0] == "running", 60, "the resumed run's status")
    wait_for_run(store, lambda: loss_step(store, run_id) > killed_at, "training past the kill")
    resumed = time.monotonic() - t1
    info = store.get(run_id)
    assert info.pid != pid and info.status == "running"
    steps = store.metrics(run_id, ["loss"])["loss"][:, 0]
    assert (steps[1:] > steps[:-1]).all()  # one loss per step: redone steps replaced, no gap
    store.stop(run_id)
    wait_for(lambda: store.get(run_id).status == "stopped", 30, "the stop")
    app.assert_healthy()
    env.intact()
    FIGURES["(a) SIGKILL"] = {
        "page showed": text.strip(),
        "interrupted shown after s": round(shown, 1),
        "killed at step": killed_at,
        "resume click to training past the kill, s": round(resumed, 1),
        "finished run intact": True,
    }


# -------------------------------------------------------------------------- (c) disk full


def test_c_a_full_disk_fails_the_run_clearly_and_the_app_keeps_working(env: Env) -> None:
    store = env.store
    if env.mounted:
        run_id = store.launch(HEAVY, name="writes onto a full disk")
        wait_for_run(store, lambda: loss_step(store, run_id) >= 6, "the run past a checkpoint")
    else:  # an honest stand-in: the run process may not write files past 512 KB
        soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        resource.setrlimit(resource.RLIMIT_FSIZE, (512 * 1024, hard))
        try:
            run_id = store.launch(HEAVY, name="writes past a file-size limit")
        finally:
            resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    app = env.app()
    app.goto(f"{env.url}/train?tr_run={run_id}", charts=0)
    t0 = time.monotonic()
    if env.mounted:
        fill(env.runs / "filler")
    ended = app.page.get_by_text(re.compile(rf"Run #{run_id} (failed|was interrupted)"))
    expect(ended).to_be_visible(timeout=90_000)
    shown = time.monotonic() - t0
    text = next(a for a in alerts(app) if f"Run #{run_id}" in a)
    assert "the disk is full" in text or "could not write" in text or "StoreError" in text, text
    app.assert_healthy()

    # while the disk is full, the other pages read and draw as before
    pages = {}
    for path in (f"/train?tr_run={env.finished}", f"/geometry?geo_run={env.finished}"):
        pages[path] = round(app.goto(env.url + path, charts=1), 1)
        app.assert_healthy()
    if env.mounted:
        with pytest.raises(StoreError, match="disk is full"):
            fill(env.runs / "filler")  # the run's freed reserve, used up too
            store.launch(FAST | {"steps": 5})
    env.intact()
    (env.runs / "filler").unlink(missing_ok=True)
    FIGURES["(c) disk full" if env.mounted else "(c) file-size limit"] = {
        "page showed": text.strip(),
        "status": store.get(run_id).status,
        "shown after s": round(shown, 1),
        "pages drawn on the full disk, s": pages,
        "finished run intact": True,
    }


# ---------------------------------------------------------------- (d) deleted snapshots


def test_d_deleted_snapshots_under_open_pages_are_warnings(env: Env) -> None:
    store = env.store
    demo = next(r for r in store.list_runs() if r.name == "demo-gca-ince")
    embeddings = store.snapshots(demo.id, "embeddings")
    (newest_step, newest), (older_step, _) = embeddings[-1], embeddings[-2]
    app = env.app()

    # Geometry, on the newest snapshot; the file goes; the slider goes back and forth
    app.goto(f"{env.url}/geometry?geo_run={demo.id}", charts=1)
    t0 = time.monotonic()
    newest.unlink()
    app.step_slider("geo_step", "ArrowLeft")
    app.wait_for_query("geo_step", str(older_step))
    app.step_slider("geo_step", "ArrowRight")
    app.wait_for_query("geo_step", str(newest_step))
    warning = app.page.get_by_text(f"the embedding snapshot at step {newest_step} is missing")
    expect(warning).to_be_visible(timeout=20_000)
    geometry = time.monotonic() - t0
    app.assert_healthy()
    geo_text = next(a for a in alerts(app) if "missing" in a)

    # Train, showing the run's plan; the plan file goes; a control reruns the page
    (plan_step, plan), *_ = store.snapshots(demo.id, "plan")[::-1]
    app.goto(f"{env.url}/train?tr_run={demo.id}", charts=2)
    t1 = time.monotonic()
    plan.unlink()
    app.page.locator(".st-key-tr_plan_log label").first.click()  # the log-scale toggle
    warning = app.page.get_by_text(f"The plan snapshot at step {plan_step} is missing")
    expect(warning).to_be_visible(timeout=20_000)
    train = time.monotonic() - t1
    app.assert_healthy()
    train_text = next(a for a in alerts(app) if "missing" in a)
    env.intact()
    FIGURES["(d) deleted snapshots"] = {
        "geometry showed": geo_text.strip(),
        "geometry warning after s": round(geometry, 1),
        "train showed": train_text.strip(),
        "train warning after s": round(train, 1),
    }


# ---------------------------------------------------------------------- (b) app restart


def test_b_a_restarted_app_lists_every_run_and_draws_the_finished_one(env: Env) -> None:
    store = env.store
    runs = {r.id: r.status for r in store.list_runs()}
    assert runs[env.finished] == "finished"
    env.stop()  # the server process ends
    t0 = time.monotonic()
    env.start()  # a new one on the same store
    health = time.monotonic() - t0
    app = env.app()
    app.goto(f"{env.url}/train?tr_run={env.finished}", charts=1)
    first_page = time.monotonic() - t0
    assert app.until(lambda: progress(app) == ("finished", 40), 30, "the finished run's line")
    # every run is offered, with the status it had: the run box's options
    app.widget("tr_run").locator('button[aria-haspopup="listbox"]').first.click()
    options = app.page.get_by_role("listbox").get_by_role("option")
    expect(options.first).to_be_visible(timeout=10_000)
    listed = set(options.all_inner_texts())
    app.page.keyboard.press("Escape")
    assert listed == {f"#{r.id} {r.name} · {r.status}" for r in store.list_runs()}, listed
    after = {r.id: r.status for r in store.list_runs()}
    assert {i: after.get(i) for i in runs} == runs  # (a first start also adds the demo runs)
    app.goto(f"{env.url}/geometry?geo_run={env.finished}", charts=1)
    app.assert_healthy()
    env.intact()
    FIGURES["(b) restart"] = {
        "server up again after s": round(health, 1),
        "first page drawn after s": round(first_page, 1),
        "runs listed with their status": len(runs),
        "finished run intact": True,
    }
