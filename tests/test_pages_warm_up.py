"""The projection engines' warm-up in the app (issue 14, "UMAP without the wait"): app.py
starts it once per server process on the shared projection worker, and the Geometry page
says what it is doing while a UMAP or t-SNE waits for it, then shows the projection.

The warm-up's work is replaced by a gated function (views/_projections.WARM_UP) that
reports UMAP's compile phase and waits on an event, so the test decides when it ends; it
runs on the real worker thread, and the page runs in Streamlit's AppTest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

import views._projections as projections
from gca_viz import demo, embed
from gca_viz.runs import RunStore
from tests.helpers import REPO_ROOT

APP = str(Path(__file__).resolve().parents[1] / "app.py")


class Gate:
    """A warm-up that reports UMAP's compile phase, then waits until :meth:`open`."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.calls = 0

    def __call__(self, report: Callable[[str], None]) -> None:
        self.calls += 1
        report(embed.WARM_UP_COMPILE)
        assert self.event.wait(60), "the test never opened the gate"

    def open(self) -> None:
        self.event.set()


@pytest.fixture
def warm_app(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, app_env: Callable[[Path], None]
) -> Iterator[Gate]:
    """A store with the demo runs, the warm-up on (``GCA_WARM_UP=1``) and gated; after the
    test the worker is shut down (queued projections cancelled) and the gate opened."""
    demo.install(RunStore(tmp_path))
    app_env(tmp_path)  # also clears st.cache_resource: a new worker, no warm-up yet
    monkeypatch.setenv("GCA_WARM_UP", "1")
    gate = Gate()
    monkeypatch.setattr(projections, "WARM_UP", gate)
    yield gate
    projections.projection_jobs().shutdown()  # cancels the queued UMAP: no compile here
    gate.open()


def geometry(method: str) -> AppTest:
    """The app opened at its default page, then Geometry with ``method`` computed
    automatically."""
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    at.switch_page("views/geometry.py").run()
    at.selectbox(key="geo_method").set_value(method).run()
    at.toggle(key="geo_auto").set_value(True).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def infos(at: AppTest) -> str:
    return "\n".join(i.value for i in at.info)


def titles(at: AppTest) -> list[str]:
    return [
        json.loads(c.proto.spec)["layout"]["title"]["text"]
        for c in at.get("plotly_chart")
        if c.proto.id.rsplit("-", 1)[-1].startswith("geo_fig_")
    ]


def test_app_starts_the_warm_up_once_and_geometry_reports_it(warm_app: Gate) -> None:
    """The default page (Story) starts the warm-up; a UMAP asked for on Geometry waits
    for it, and the page says what is happening and for how long, refreshing itself (the
    view polls while it waits)."""
    at = geometry("umap")
    jobs = projections.projection_jobs()
    assert jobs.warm_up_status().state == "running" and warm_app.calls == 1
    text = infos(at)
    assert re.search(
        r"UMAP of run #\d+ \(300 points\) waits for the warm-up of the projection", text
    )
    assert "compiling UMAP's kernels (numba: once per machine" in text
    assert " s so far" in text
    first = float(text.split(" s so far")[0].rsplit(";", 1)[1])
    assert jobs.busy(include_warm_up=False)  # the UMAP is queued behind it
    time.sleep(1.2)
    at.run()
    later = infos(at)
    assert float(later.split(" s so far")[0].rsplit(";", 1)[1]) >= first + 1
    assert warm_app.calls == 1  # every page run calls the starter: one warm-up
    assert all("PCA" in t for t in titles(at))  # the stand-in meanwhile


def test_a_tsne_asked_for_during_the_warm_up_is_drawn_after_it(warm_app: Gate) -> None:
    at = geometry("tsne")
    assert re.search(r"t-SNE of run #\d+ \(300 points\) waits for the warm-up", infos(at))
    warm_app.open()
    jobs = projections.projection_jobs()
    deadline = time.monotonic() + 60
    while not any("t-SNE" in t for t in titles(at)):
        assert time.monotonic() < deadline, infos(at)
        time.sleep(0.5)
        at.run()
    assert jobs.warm_up_status().state == "done"
    assert "warm-up" not in infos(at)


def test_no_warm_up_with_gca_warm_up_0(warm_app: Gate, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GCA_WARM_UP", "0")
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert projections.projection_jobs().warm_up_status().state == "missing"
    assert warm_app.calls == 0


def test_pandas_is_imported_before_the_warm_up_worker_starts() -> None:
    """The worker imports scikit-learn, which imports pandas, while a page's first table
    imports pandas on the script's thread: once, a fresh process's first page failed with
    "partially initialized module 'pandas' has no attribute 'Series'". start_warm_up imports
    pandas on the calling thread first, so the two threads never import it at once."""
    code = (
        "import sys\n"
        "from views import _projections as p\n"
        "assert 'pandas' not in sys.modules\n"
        "seen = []\n"
        "p.WARM_UP = lambda report: seen.append('pandas' in sys.modules)\n"
        "assert p.start_warm_up()\n"
        "p.projection_jobs().warm_up().result(timeout=60)\n"
        "print(seen)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env={**os.environ, "GCA_WARM_UP": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[True]"
