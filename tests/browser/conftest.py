"""Browser-test fixtures: a real Streamlit server and the system Chromium via Playwright.

Every test in this folder is marked ``browser``. The server runs ``streamlit run app.py`` on
a free port bound to 127.0.0.1 with its own run store (``GCA_RUNS_DIR`` in a temporary
folder), and screenshots go to ``test-artifacts/screenshots`` for people to look at.

``app`` wraps the ``page`` with what every test needs: open a page and wait until its
charts have drawn, read a chart's decoded plotly data, the URL's query parameters, the
Streamlit widgets (number inputs, sliders, select boxes), and a check that no exception was
rendered and the console is clean (icon-font requests fail offline and are ignored).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from playwright.sync_api import Error as PlaywrightError

from tests.helpers import REPO_ROOT, kill_runs, stop_process, wait_for, wait_until_healthy

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
VIEWPORT = {"width": 1400, "height": 1000}
SCREENSHOT_MAX_HEIGHT = 2600  # a tall page is captured down to here, not to its end

# Console errors that are not app errors: icon fonts and Material Symbols come from Google's
# servers (unreachable offline), and a page opened by its own path (``/plan_lab``) first
# probes ``/plan_lab/_stcore/health`` and ``host-config`` (404) to find the server's base
# path, then uses ``/_stcore``. Each rule: (URL pattern of the failing resource, message).
IGNORED_CONSOLE = (
    (re.compile(r"^https://fonts\.(googleapis|gstatic)\.com/"), "Failed to load resource"),
    (re.compile(r"/[^/]+/_stcore/(health|host-config)$"), "404"),
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    browser_tests = False
    for item in items:
        if "tests/browser/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.browser)
            browser_tests = True
    if browser_tests:  # failure shots of an earlier session would mislead
        for old in ARTIFACTS.glob("failed-*.png"):
            old.unlink(missing_ok=True)


def cell_point(chart: Any, i: int, j: int) -> tuple[float, float]:
    """Page coordinates of cell ``(i, j)`` (row ``i``, column ``j``) of a heatmap chart."""
    x, y = chart.evaluate(
        """(gd, [i, j]) => {
            const L = gd._fullLayout, box = gd.getBoundingClientRect();
            return [box.left + L.xaxis._offset + L.xaxis.l2p(j),
                    box.top + L.yaxis._offset + L.yaxis.l2p(i)];
        }""",
        [i, j],
    )
    return float(x), float(y)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("browser-runs")


def kill_run_processes(runs_dir: Path) -> list[int]:
    """Kill the store's surviving training processes (SIGTERM, then SIGKILL after 5 s; its
    queued runs stay queued); returns their pids."""
    return kill_runs(runs_dir, grace=5, cancel_queued=False)


class Served(str):
    """The URL of a served app (a ``str``), with the server process's ``pid`` (the Streamlit
    process itself: its memory is measured by test_soak.py) and its ``runs_dir``."""

    pid: int
    runs_dir: Path

    def __new__(cls, url: str, pid: int, runs_dir: Path) -> Served:
        served = super().__new__(cls, url)
        served.pid, served.runs_dir = pid, runs_dir
        return served


@contextmanager
def serve_app(runs_dir: Path, script_times: Path | None = None) -> Iterator[Served]:
    """Run ``streamlit run app.py`` on a free port with the run store in ``runs_dir``; yield
    its URL (a :class:`Served`) once ``/_stcore/health`` answers ``ok``; stop it and every
    run process of the store on exit. With ``script_times``, the server logs the time of
    every script run there (see timed_server.py)."""
    port = _free_port()
    env = {**os.environ, "GCA_RUNS_DIR": str(runs_dir)}
    env.setdefault("GCA_WARM_UP", "0")  # tests/conftest.py: no numba compile per server
    streamlit = ["-m", "streamlit"]
    if script_times is not None:
        streamlit = [str(Path(__file__).with_name("timed_server.py"))]
        env["GCA_SCRIPT_TIMES"] = str(script_times)
    cmd = [
        sys.executable,
        *streamlit,
        "run",
        "app.py",
        "--server.headless",
        "true",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--browser.gatherUsageStats",
        "false",
        "--server.fileWatcherType",
        "none",
    ]
    log = open(runs_dir / "server.log", "wb")
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(port, proc, runs_dir / "server.log")
        yield Served(f"http://127.0.0.1:{port}", proc.pid, runs_dir)
    finally:
        stop_process(proc)
        log.close()
        kill_run_processes(runs_dir)


SCRIPT_LOG = "script_times.jsonl"  # the session server's script runs, in its run store


@pytest.fixture(scope="session")
def base_url(runs_dir: Path) -> Iterator[str]:
    """The app server of the session (one for all tests); it logs every script run to
    ``runs_dir / SCRIPT_LOG`` (see timed_server.py and :func:`script_runs`)."""
    with serve_app(runs_dir, script_times=runs_dir / SCRIPT_LOG) as url:
        yield str(url)


@pytest.fixture
def script_log(runs_dir: Path, base_url: str) -> Path:
    """The session server's log of script runs (read it with :func:`script_runs`)."""
    return runs_dir / SCRIPT_LOG


def script_runs(log: Path) -> list[dict[str, Any]]:
    """A server's script runs so far (see timed_server.py), oldest first: each says whether
    it was a fragment's run (``fragment``) and which widget values it carried."""
    lines = log.read_text().splitlines() if log.exists() else []
    return [json.loads(line) for line in lines if line.strip()]


@pytest.fixture
def no_run_survives(runs_dir: Path) -> Iterator[Path]:
    """The session's run store; after the test, no training process of it is left alive
    (the test stops its runs through the UI; this is the safety net)."""
    yield runs_dir
    left = kill_run_processes(runs_dir)
    if left:
        print(f"killed run processes left alive by the test: {left}")


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second server that no browser has opened yet (for test_deep_link.py)."""
    with serve_app(tmp_path_factory.mktemp("fresh-runs")) as url:
        yield url


@pytest.fixture(scope="session")
def warm_app(browser: Browser, base_url: str) -> str:
    """Open the app's root once, so the server has run ``app.py`` and its ``st.navigation``
    before any test opens a page by its own path (see test_deep_link.py for why)."""
    page = browser.new_page()
    try:
        page.goto(base_url)
        expect(page.locator('[data-testid="stSidebarNav"] a').first).to_be_visible(timeout=60_000)
    finally:
        page.close()
    return base_url


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (see README)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture
def screenshot(page: Page) -> Any:
    """``screenshot(name)`` saves a PNG of the page under test-artifacts/screenshots.

    Streamlit scrolls inside its main block, so a full-page shot of the window would stop
    at the viewport: the viewport is stretched to the content (up to
    ``SCREENSHOT_MAX_HEIGHT``) for the shot, then restored.
    """
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    def take(name: str, full: bool = True) -> Path:
        path = ARTIFACTS / f"{name}.png"
        size = page.viewport_size or VIEWPORT
        height = size["height"]
        if full:
            height = page.evaluate(
                """() => Math.max(...[document.documentElement,
                    ...document.querySelectorAll('[data-testid="stMain"],'
                    + '[data-testid="stAppViewContainer"], [data-testid="stSidebarContent"]')]
                    .map(e => e.scrollHeight))"""
            )
            height = max(size["height"], min(int(height), SCREENSHOT_MAX_HEIGHT))
        if height != size["height"]:
            page.set_viewport_size({"width": size["width"], "height": height})
            page.wait_for_timeout(800)  # charts re-layout to the taller window
        try:
            page.screenshot(path=str(path))
        finally:
            if height != size["height"]:
                page.set_viewport_size(size)
        return path

    return take


class App:
    """The Streamlit app in a Playwright page, with the few waits and reads tests need."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.errors: list[str] = []
        page.on("console", self._on_console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _on_console(self, msg: Any) -> None:
        if msg.type != "error":
            return
        where = (msg.location or {}).get("url", "")
        for pattern, text in IGNORED_CONSOLE:
            if pattern.search(where) and text in msg.text:
                return
        self.errors.append(f"console: {msg.text} ({where})")

    # ------------------------------------------------------------------ navigation

    def goto(self, path: str = "/", *, charts: int = 1, timeout: float = 60) -> float:
        """Open ``path`` and wait until the script ran and ``charts`` charts have drawn;
        returns the seconds it took."""
        start = time.perf_counter()
        self.page.goto(path)
        self.settle(charts=charts, timeout=timeout)
        return time.perf_counter() - start

    def settle(self, *, charts: int = 0, timeout: float = 60) -> None:
        """Wait until the script is not running, no skeleton or spinner is left, and at
        least ``charts`` plotly charts hold data (checked twice in a row, 0.25 s apart)."""
        script = """(n) => {
            const app = document.querySelector('[data-testid="stApp"]');
            if (!app || app.getAttribute('data-test-script-state') !== 'notRunning') return false;
            if (document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]'))
                return false;
            const drawn = [...document.querySelectorAll('.js-plotly-plot')]
                .filter(gd => gd._fullData && gd._fullData.length && gd.querySelector('.main-svg'));
            return drawn.length >= n;
        }"""
        deadline = time.time() + timeout
        calm = 0
        while calm < 2:
            if time.time() > deadline:
                raise AssertionError(
                    f"{self.page.url}: not settled with {charts} chart(s) in {timeout} s; "
                    f"exceptions: {self.exceptions()}"
                )
            calm = calm + 1 if self.page.evaluate(script, charts) else 0
            self.page.wait_for_timeout(250)

    def query(self) -> dict[str, str]:
        """The URL's query parameters (last value of each)."""
        return {k: v[-1] for k, v in parse_qs(urlsplit(self.page.url).query).items()}

    def wait_for_query(self, key: str, value: str, timeout: float = 30) -> None:
        self.until(
            lambda: self.query().get(key) == value,
            timeout,
            lambda: f"URL parameter {key}={value!r}; URL is {self.page.url}{self._box(key)}",
        )

    def _box(self, key: str) -> str:
        """What the control ``key``'s input shows, if there is one (for a failure message)."""
        box = self.widget(key).locator("input")
        return f"; its box shows {box.first.input_value()!r}" if box.count() else ""

    def until(
        self,
        condition: Callable[[], Any],
        timeout: float,
        what: Callable[[], str] | str,
        every: float = 0.25,
    ) -> Any:
        """Poll ``condition`` until it returns something truthy (returned) or fail after
        ``timeout`` seconds saying ``what`` was awaited. Waits in the page, so console
        events keep arriving."""
        try:
            return wait_for(condition, timeout, what, interval=every,
                            sleep=lambda s: self.page.wait_for_timeout(s * 1000))  # fmt: skip
        except AssertionError as exc:
            raise AssertionError(f"{exc}; exceptions on the page: {self.exceptions()}") from None

    # ------------------------------------------------------------------------ charts

    def chart(self, key: str) -> Locator:
        """The plotly chart drawn with ``st.plotly_chart(..., key=key)``."""
        return self.page.locator(f".st-key-{key} .js-plotly-plot").first

    def read_chart(self, key: str, script: str, default: Any = None) -> Any:
        """``script`` (a JS function of the plotly div) on a chart that may be redrawing
        or not drawn yet: ``default`` if it is missing, has no data yet, or was replaced
        while being read."""
        chart = self.chart(key)
        try:
            if not chart.count():
                return default
            return chart.evaluate(
                f"gd => (gd._fullLayout && gd._fullData) ? ({script})(gd) : undefined",
                timeout=5000,
            )
        except PlaywrightError:
            return default

    def chart_data(self, key: str, script: str, timeout: float = 15) -> Any:
        """``script`` (a JS function of the plotly div) on a chart, retried until the chart
        holds data: a chart being redrawn can lack ``_fullData`` or exist twice."""
        return self.until(lambda: self.read_chart(key, script), timeout, f"the data of chart {key}")

    def trace(self, key: str, index: int = 0) -> dict[str, Any]:
        """Trace ``index`` of a chart as plotly decoded it (``gd._fullData``): type, name,
        x, y, z as plain lists (typed arrays converted), and the number of traces."""
        return self.chart_data(
            key,
            f"""gd => {{
                const t = gd._fullData[{int(index)}];
                if (!t) return undefined;
                const plain = v => v == null ? null : Array.from(v, r =>
                    (r != null && typeof r === 'object' && 'length' in r) ? Array.from(r) : r);
                return {{type: t.type, name: t.name, x: plain(t.x), y: plain(t.y),
                        z: plain(t.z), n: gd._fullData.length}};
            }}""",
        )

    # ----------------------------------------------------------------------- widgets

    def widget(self, key: str) -> Locator:
        return self.page.locator(f".st-key-{key}")

    def number_input(self, key: str) -> Locator:
        return self.widget(key).locator("input").first

    def open_new_run_form(self) -> None:
        """Open the Train page's "New run" form; the tests type into it at once. (Opening it
        used to start a page run whose redraw of the form wiped text typed before it came:
        the launch test lost its steps in about one try in eight, with runs in the store.)"""
        self.page.get_by_text("New run", exact=True).click()
        expect(self.page.locator(".st-key-tr_launch button")).to_be_visible()

    def type_number(self, key: str, value: str) -> None:
        """Type into a number input and commit with Enter, once the page's run is over (as a
        person types once the page has answered: CI once lost a value typed while the run of
        the one before was still drawing, the box set back before the Enter)."""
        self.page.wait_for_function(
            """() => document.querySelector('[data-testid="stApp"]')
                ?.getAttribute('data-test-script-state') === 'notRunning'""",
            timeout=60_000,
        )
        box = self.number_input(key)
        box.fill(value)
        box.press("Enter")

    def slider(self, key: str) -> Locator:
        return self.widget(key).get_by_role("slider").first

    def step_slider(self, key: str, key_press: str = "ArrowRight", times: int = 1) -> None:
        """Move a slider by ``times`` steps with the keyboard (it is a hidden range input)."""
        handle = self.slider(key)
        handle.focus()
        for _ in range(times):
            handle.press(key_press)

    def choose(self, key: str, option: str) -> None:
        """Pick ``option`` (its displayed text) in the select box ``key``."""
        widget = self.widget(key)  # a react-aria combo box: a text input and a list button
        box = widget.get_by_role("combobox").first
        item = self.page.get_by_role("listbox").get_by_role("option", name=option, exact=True)
        for attempt in range(3):  # a rerun landing on the click can close the list at once
            widget.locator('button[aria-haspopup="listbox"]').first.click()
            try:
                item.click(timeout=5000)
                break
            except PlaywrightError:
                if attempt == 2:
                    raise
                self.page.keyboard.press("Escape")
        expect(box).to_have_value(option)

    # ------------------------------------------------------------------------ checks

    def exceptions(self) -> list[str]:
        return self.page.locator('[data-testid="stException"]').all_inner_texts()

    def assert_healthy(self) -> None:
        """No exception rendered on the page, no unexpected console error so far."""
        expect(self.page.locator('[data-testid="stException"]')).to_have_count(0)
        assert self.errors == [], "\n".join(self.errors)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.stash[_FAILED] = report.failed


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def app(page: Page, request: pytest.FixtureRequest, warm_app: str) -> Iterator[App]:
    """The page as an :class:`App`; a failed test leaves ``failed-<test>.png`` behind."""
    yield App(page)
    if request.node.stash.get(_FAILED, False):
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^A-Za-z0-9_-]+", "_", request.node.name)
        try:
            page.screenshot(path=str(ARTIFACTS / f"failed-{name}.png"))
        except Exception:  # the page may be gone; the test's own error matters more
            pass
