"""Five browser sessions at once against one real server (issue 8, "Under load").

Each session is its own Chromium with its own browser context, driven from its own thread
with its own sync Playwright (Playwright objects must stay in the thread that made them):

* ``probe``: the plan lab; it times the rerun after an ε change, first alone on the
  server, then while the four others are active;
* ``lab``: the plan lab too, with its own ε (0.333) and its own T, moved every round;
* ``sweeps``: Entropy and iterations, with its own ε of the T sweep (0.444) and its own
  largest T, moved every round;
* ``train-a`` and ``train-b``: the Train page; each launches a short run under its own name
  and step count, watches it live and moves the loss smoothing slider every round;
  ``train-a`` lets its run finish, ``train-b`` stops its run with the Stop button.

The test asserts that (a) no session sees another's widget state: afterwards each reads its
own values in its widgets and in its URL's query string; (b) both runs end ``finished`` or
``stopped`` in the store and no training process of the store is left alive; (c) the median
server-side rerun time of the probe with the five sessions active is within ``RATIO_LIMIT``
times its median alone, both measured in this test (the machine is shared, so absolute
times mean little; the load average is printed with them).

How a rerun is timed: the server is started through timed_server.py, which logs the start
and end of every script run with the widget values of its request; the probe's change is
the full run whose request carried its new ε (each value is used once). That is the
server's time. What the probe's browser sees (from the Enter key press to the script state
turning ``notRunning`` with the new ε in the URL, :func:`browser_change`) is recorded too,
but not asserted: all five browsers draw their charts on the server's two cores, and a page
busy drawing reads the rest of a run's messages late, so that time measures the test
machine more than the app (docs/reliability.md has the figures). For the same reason the
short (CI) version asserts the 3x limit on the server's own time per rerun, its wall time
less the time it waited for a CPU held by the browsers or the runs, directly or through the
GIL held by another server thread that was itself waiting for a CPU (:func:`own_time`); the
long version (``GCA_LOAD_ROUNDS`` set) asserts it on the full wall time.

Every non-probe session waits ``THINK`` seconds between two actions, as a busy person
would. The server has a run store of its own that lets two runs train at once (one thread
each), so both runs start when launched. ``GCA_LOAD_ROUNDS`` (default 7, about 100 s in all) is
the number of timed reruns per phase; more rounds make a longer version
(``GCA_LOAD_ROUNDS=40``, about six minutes). The timings go to ``test-artifacts/load.csv``;
the test prints the medians, the load average and the server's CPU use of each phase, the
server's script runs of every page, and a timeline of the sessions.
"""

from __future__ import annotations

import csv
import os
import re
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from playwright.sync_api import expect, sync_playwright

from gca_viz.runs import RunStore
from tests.browser.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCRIPT_LOG,
    VIEWPORT,
    App,
    Served,
    kill_run_processes,
    script_runs,
    serve_app,
)
from tests.helpers import REPO_ROOT, store_processes

ROUNDS = max(3, int(os.environ.get("GCA_LOAD_ROUNDS", "7")))
RATIO_LIMIT = 3.0
PHASES = ("single", "five")
THINK = 2.0  # seconds a simulated user waits between two actions
PROBE_PAUSE = 0.5  # seconds between two timed changes of the probe
BROWSER_NICENESS = 19  # the test's browsers yield the CPU to the server (browser_session)
SESSIONS = 5
ARTIFACT = REPO_ROOT / "test-artifacts" / "load.csv"

LAB_CHARTS = 3  # charts the plan lab draws with its default settings
SWEEP_CHARTS = 10  # charts of the Entropy page
RUN_A = ("load-a", "40")  # name and steps: finishes on its own
RUN_B = ("load-b", "20000")  # long enough never to finish before it is stopped

# Installed in a page once it has drawn: a log of Streamlit's script state (the
# ``data-test-script-state`` attribute of the app element, ``running`` while a script or a
# fragment runs on the server) with the page's query string at each change, and the time
# of the last Enter key press (how a number input commits a value), all on the page's clock.
INSTRUMENT = """() => {
    const app = document.querySelector('[data-testid="stApp"]');
    window.__gcaStates = [];
    window.__gcaEnter = null;
    new MutationObserver(() => window.__gcaStates.push(
        [performance.now(), app.getAttribute('data-test-script-state'), location.search]
    )).observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
    document.addEventListener('keydown', e => {
        if (e.key === 'Enter') window.__gcaEnter = performance.now();
    }, true);
}"""


def browser_change(app: App, key: str, value: str, charts: int) -> float:
    """Type ``value`` into the number input ``key``; return the rerun time the browser sees.

    It runs from the Enter key press that commits the value (in the page) to the first
    moment the page's script state turns ``notRunning`` with ``key=value`` in its URL
    (matching the query string skips the fragment runs around it). Besides the server's
    script run it holds the browser's own work: handling the key, and taking in the run's
    messages, which a busy page reads late (Chromium reads a websocket only as fast as the
    page consumes it). The page is then left to settle (charts drawn).
    """
    app.page.evaluate("() => { window.__gcaStates.length = 0; window.__gcaEnter = null; }")
    app.type_number(key, value)
    try:
        app.wait_for_query(key, value, timeout=30)
    except AssertionError:  # lost under five sessions' load, as the others' typing can be:
        app.page.evaluate("() => { window.__gcaStates.length = 0; window.__gcaEnter = null; }")
        app.type_number(key, value)  # typed again, timed from this Enter
        app.wait_for_query(key, value, timeout=120)
    app.settle(charts=charts, timeout=120)
    enter, states = app.page.evaluate("() => [window.__gcaEnter, window.__gcaStates]")
    assert enter is not None, "the Enter key press was not seen"
    done = [
        t
        for t, state, search in states
        if t >= enter
        and state == "notRunning"
        and parse_qs(search.lstrip("?")).get(key, [None])[-1] == value
    ]
    assert done, f"no finished script run with {key}={value}; states seen: {states}"
    return float(done[0] - enter) / 1000


def server_run(log: Path, key: str, value: float, timeout: float = 30) -> dict[str, Any]:
    """The full (not fragment) script run whose request carried ``key=value``: the run that
    a change made (values are unique to one session's change in this test)."""
    deadline = time.time() + timeout
    while True:
        for run in script_runs(log):
            if not run["fragment"] and run["widgets"].get(key) == value:
                return run
        if time.time() > deadline:
            raise AssertionError(f"no script run with {key}={value} in {log}")
        time.sleep(0.1)


def own_time(run: dict[str, Any]) -> float:
    """The server's own time for a script run: its wall time less the time it waited for a
    CPU, directly or one step removed.

    A script thread is, at any moment, on a CPU (``cpu``), ready but waiting for one
    (``runqueue``) or blocked, nearly always on the GIL that another thread of the server
    holds. The holder is itself either on a CPU (the other sessions' real load on the
    server, which counts) or waiting for one (the machine's load, which does not). Which
    thread held the GIL when is not recorded, but the holders can have been on a CPU for at
    most the CPU time that the server's other threads used during the run (``others_cpu``),
    so the own time is ``cpu + min(blocked, others_cpu)``: the most the rerun can have
    taken on a machine with CPUs to spare. Alone on a quiet server the blocked time is a few
    milliseconds and the own time is the wall time less the wait for a CPU.
    """
    wall = run["end"] - run["start"]
    blocked = max(0.0, wall - run["cpu"] - run["runqueue"])
    return float(run["cpu"] + min(blocked, max(0.0, run["others_cpu"])))


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used so far, from ``/proc/<pid>/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def progress(app: App) -> tuple[str, int]:
    """``(status, step)`` from the Train page's live monitor; ``("", -1)`` until drawn."""
    bar = app.page.locator('[data-testid="stMain"] [data-testid="stProgress"]')
    if not bar.count():
        return "", -1
    try:
        text = bar.first.inner_text(timeout=5000)
    except Exception:  # redrawn while read
        return "", -1
    found = re.search(r"(\w+)\s*·\s*step (\d+) of (\d+)", text)
    return (found.group(1), int(found.group(2))) if found else ("", -1)


@dataclass
class Shared:
    """What the sessions' threads share: the server, the phases and the results."""

    url: str
    server_pid: int
    script_log: Path  # the server's script runs (timed_server.py)
    ready: threading.Barrier = field(default_factory=lambda: threading.Barrier(SESSIONS))
    single_done: threading.Event = field(default_factory=threading.Event)
    probe_done: threading.Event = field(default_factory=threading.Event)
    abort: threading.Event = field(default_factory=threading.Event)
    closed: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    timings: list[dict[str, Any]] = field(default_factory=list)
    runs: dict[str, int] = field(default_factory=dict)  # session -> id of its run
    actions: dict[str, int] = field(default_factory=dict)  # session -> actions in the loop
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # load, server CPU
    events: list[tuple[float, str, str]] = field(default_factory=list)  # (time, who, what)
    start: float = field(default_factory=time.perf_counter)

    def active(self) -> bool:
        """Whether the loaded phase goes on (the probe is still timing reruns)."""
        return not self.probe_done.is_set() and not self.abort.is_set()

    def mark(self, who: str, what: str) -> None:
        self.events.append((time.perf_counter() - self.start, who, what))

    def wait_ready(self, who: str) -> None:
        self.mark(who, "ready")
        self.ready.wait(timeout=300)


@contextmanager
def browser_session(url: str) -> Iterator[App]:
    """A Chromium of this thread with a fresh context (its own cookies, its own Streamlit
    session) and one page on the app.

    This thread runs at a lower CPU priority (see :func:`browsers_yield`; on Linux a nice
    value belongs to a thread and what it starts).
    """
    if hasattr(os, "nice"):
        os.nice(BROWSER_NICENESS)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(base_url=url, viewport=VIEWPORT)
            yield App(context.new_page())
        finally:
            browser.close()


def _children() -> dict[int, list[int]]:
    """``{pid: [child pids]}`` of every process, from ``/proc``."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(ppid, []).append(int(entry.name))
    return children


@contextmanager
def browsers_yield() -> Iterator[None]:
    """Keep the test's browsers at a lower CPU priority than the server while it lasts.

    The five browsers stand in for people at their own computers, but here they draw
    their charts on the server's two cores. Every half second each thread of each process
    started from here on by this test process (the Playwright drivers, every Chromium
    process) gets the nice value ``BROWSER_NICENESS``: the browsers then take the CPU the
    server leaves, instead of taking turns with it. The servers, their runs and any other
    browser already running are left alone. Chromium sets its processes' priorities itself
    (as root it even raises some), hence the repeats.
    """
    stop = threading.Event()
    before = set(_children().get(os.getpid(), []))

    def loop() -> None:
        while not stop.wait(0.5):
            children = _children()
            todo = [c for c in children.get(os.getpid(), []) if c not in before]
            ours = list(todo)
            while todo:
                for child in children.get(todo.pop(), []):
                    ours.append(child)
                    todo.append(child)
            for pid in ours:
                try:
                    tids = [int(t) for t in os.listdir(f"/proc/{pid}/task")]
                except OSError:
                    continue
                for tid in tids:
                    try:
                        if os.getpriority(os.PRIO_PROCESS, tid) != BROWSER_NICENESS:
                            os.setpriority(os.PRIO_PROCESS, tid, BROWSER_NICENESS)
                    except OSError:  # gone meanwhile
                        pass

    thread = threading.Thread(target=loop, daemon=True)
    if hasattr(os, "setpriority"):
        thread.start()
    try:
        yield
    finally:
        stop.set()


# A download button's file can be gone when a lagging browser checks it: Streamlit checks
# the URL of an eagerly built download (the Entropy page's CSVs) when it draws the button,
# and a file that no run references any more is deleted after two passes of its orphan
# collection, which every script run of every session makes. Counted, reported, not failed.
STALE_DOWNLOAD = (
    re.compile(r"404 \(Not Found\) \(http://[^)]+/media/[0-9a-f]+\.\w+\)$"),
    re.compile(r"Download Button source error - 404"),
)


def healthy(sh: Shared, who: str, app: App) -> None:
    """``app.assert_healthy()``, with stale-download 404s taken out and counted."""
    stale = [e for e in app.errors if any(p.search(e) for p in STALE_DOWNLOAD)]
    if stale:
        sh.mark(who, f"{len(stale)} stale download check(s): {stale}")
        app.errors[:] = [e for e in app.errors if e not in stale]
    app.assert_healthy()


def move_slider(sh: Shared, who: str, app: App, key: str, target: str) -> None:
    """Step the slider ``key`` to ``target`` (one step away) and wait for the URL to have it.

    A key press can be lost when a rerun the server started itself (the Train page reruns
    when a run's status changes) redraws the slider while the press is on its way: the press
    is then repeated, from the value the slider shows, and the loss is noted.
    """

    def press() -> None:
        shown = float(app.slider(key).input_value())
        if shown != float(target):
            app.step_slider(key, "ArrowRight" if shown < float(target) else "ArrowLeft")

    until_in_url(sh, who, app, key, target, press, "a key press")


def type_value(sh: Shared, who: str, app: App, key: str, value: str) -> None:
    """Type ``value`` into the number input ``key`` and wait for the URL to have it.

    Typed text can be lost the same way, when a rerun the server started itself (a
    fragment's refresh, a run's status change) redraws the box between the typing and the
    Enter: the value is then typed again, and the loss is noted.
    """
    until_in_url(sh, who, app, key, value, lambda: app.type_number(key, value), "typed text")


def until_in_url(
    sh: Shared, who: str, app: App, key: str, value: str, act: Callable[[], None], what: str
) -> None:
    """Do ``act`` until the URL has ``key=value`` (four tries), noting each lost try."""
    for attempt in range(4):
        act()
        try:
            app.wait_for_query(key, value, timeout=20 if attempt < 3 else 120)
            return
        except AssertionError:
            if attempt == 3:
                raise
            sh.mark(who, f"{key}: {what} to {value} was lost (URL {app.query().get(key)})")


def think(app: App) -> None:
    app.page.wait_for_timeout(THINK * 1000)


def alternate_until_done(
    sh: Shared,
    who: str,
    app: App,
    charts: int,
    slider: tuple[str, tuple[int, int]],
    number: tuple[str, str],
) -> None:
    """While the other sessions are active, move ``slider`` = (key, (a, b)) back and forth
    between a and b (starting at b), counting each settled move; then check that the slider
    and the number input ``number`` = (key, value) kept their values, in the page and the URL,
    and that the session is healthy."""
    key, (a, b) = slider
    t = b
    while sh.active():
        t = a if t == b else b
        move_slider(sh, who, app, key, str(t))
        app.settle(charts=charts, timeout=120)
        sh.actions[who] = sh.actions.get(who, 0) + 1
        think(app)
    expect(app.number_input(number[0])).to_have_value(number[1])
    expect(app.slider(key)).to_have_value(str(t))
    assert app.query().get(number[0]) == number[1]
    assert app.query().get(key) == str(t)
    healthy(sh, who, app)


# ------------------------------------------------------------------------------ sessions


def probe(sh: Shared) -> None:
    """Times ε changes in the plan lab: ``ROUNDS`` alone, ``ROUNDS`` with the four other
    sessions active, and ``ROUNDS`` alone again once they have closed (the single-session
    time is the median of both lone phases, so that a change in the machine's load during
    the test weighs less)."""
    with browser_session(sh.url) as app:
        sh.mark("probe", "browser up")
        app.goto("/", charts=0)  # the router runs first on a fresh server
        app.goto("/plan_lab", charts=LAB_CHARTS)
        app.page.evaluate(INSTRUMENT)
        value = 0.1
        for phase in ("single", "five", "single after"):
            if phase == "five":
                sh.mark("probe", "single phase timed")
                sh.single_done.set()
                sh.wait_ready("probe")
            elif phase == "single after":
                sh.probe_done.set()
                sh.mark("probe", "five-session phase timed")
                for _ in range(SESSIONS - 1):
                    while not sh.closed.acquire(timeout=1):
                        if sh.abort.is_set():
                            return
                sh.mark("probe", "alone again")
            load, cpu, clock = os.getloadavg()[0], cpu_seconds(sh.server_pid), time.monotonic()
            for r in range(ROUNDS):
                value = round(value + 0.001, 3)  # a new ε each time: Sinkhorn really runs
                browser = browser_change(app, "lab_eps", str(value), LAB_CHARTS)
                run = server_run(sh.script_log, "lab_eps", value)
                sh.timings.append(
                    {
                        "phase": phase,
                        "round": r,
                        "lab_eps": value,
                        "server_s": round(run["end"] - run["start"], 4),
                        "server_cpu_s": round(run["cpu"], 4),
                        "server_runqueue_s": round(run["runqueue"], 4),
                        "others_cpu_s": round(run["others_cpu"], 4),
                        "others_runqueue_s": round(run["others_runqueue"], 4),
                        "server_own_s": round(own_time(run), 4),
                        "browser_s": round(browser, 4),
                        "load1": round(os.getloadavg()[0], 2),
                    }
                )
                app.page.wait_for_timeout(PROBE_PAUSE * 1000)
            sh.phases[phase] = {
                "start": clock,
                "end": time.monotonic(),
                "load1 start": round(load, 2),
                "load1 end": round(os.getloadavg()[0], 2),
                "server CPU %": round(
                    100 * (cpu_seconds(sh.server_pid) - cpu) / (time.monotonic() - clock), 1
                ),
            }
        # Its own state, after the other sessions moved the same keys on the same page.
        expect(app.number_input("lab_eps")).to_have_value(f"{value:.3f}")
        assert app.query().get("lab_eps") == str(value)
        expect(app.slider("lab_T")).to_have_value("10")  # untouched here, moved by "lab"
        assert app.query().get("lab_T") == "10"
        healthy(sh, "probe", app)


def lab_user(sh: Shared) -> None:
    """The plan lab with ε = 0.333, moving T between 12 and 13."""
    with browser_session(sh.url) as app:
        sh.mark("lab", "browser up")
        app.goto("/plan_lab", charts=LAB_CHARTS)
        type_value(sh, "lab", app, "lab_eps", "0.333")
        for t in (11, 12, 13):  # one key press at a time: a rerun can swallow a quick second
            move_slider(sh, "lab", app, "lab_T", str(t))
        app.settle(charts=LAB_CHARTS, timeout=120)
        sh.wait_ready("lab")
        alternate_until_done(sh, "lab", app, LAB_CHARTS, ("lab_T", (12, 13)), ("lab_eps", "0.333"))


def sweeps_user(sh: Shared) -> None:
    """Entropy and iterations with the T sweep at ε = 0.444, moving the largest T."""
    with browser_session(sh.url) as app:
        sh.mark("sweeps", "browser up")
        app.goto("/entropy?ent_n=32&ent_cap=300", charts=SWEEP_CHARTS, timeout=120)
        type_value(sh, "sweeps", app, "ent_eps_T", "0.444")
        app.settle(charts=SWEEP_CHARTS, timeout=120)
        sh.wait_ready("sweeps")
        alternate_until_done(
            sh, "sweeps", app, SWEEP_CHARTS, ("ent_T", (31, 30)), ("ent_eps_T", "0.444")
        )


def train_user(sh: Shared, who: str, name: str, steps: str, stop: bool) -> None:
    """The Train page: launch a run called ``name`` of ``steps`` steps (batch 64), watch
    it while moving the smoothing slider, then let it finish or stop it (``stop``)."""
    with browser_session(sh.url) as app:
        sh.mark(who, "browser up")
        page = app.page
        app.goto("/train", charts=1, timeout=120)  # demo runs: the lecture pair's curves
        app.open_new_run_form()
        type_value(sh, who, app, "tr_steps", steps)
        type_value(sh, who, app, "tr_batch", "64")
        name_box = app.widget("tr_name").locator("input").first
        name_box.fill(name)
        name_box.press("Enter")
        app.settle(timeout=120)
        page.locator(".st-key-tr_launch button").click()
        launched = page.get_by_text(re.compile(r"Launched run #\d+"))
        expect(launched).to_be_visible(timeout=120_000)
        run_id = int(re.findall(r"#(\d+)", launched.inner_text())[0])
        sh.runs[who] = run_id
        sh.mark(who, f"launched run #{run_id}")
        app.wait_for_query("tr_run", str(run_id), timeout=120)
        sh.wait_ready(who)
        smooth = 0.6
        while sh.active():
            smooth = 0.65 if smooth == 0.6 else 0.6
            move_slider(sh, who, app, "tr_smooth", str(smooth))
            app.settle(timeout=120)
            sh.actions[who] = sh.actions.get(who, 0) + 1
            think(app)
        sh.mark(who, f"loop over; run #{run_id} {progress(app)}")
        if stop:  # once it trains (it may have waited in the queue for the other run)
            app.until(
                lambda: (p := progress(app))[0] == "running" and p[1] > 0,
                180,
                lambda: f"run #{run_id} to train; progress {progress(app)}",
            )
            page.locator(".st-key-tr_stop").get_by_role("button", name="Stop", exact=True).click()
            sh.mark(who, f"Stop pressed at step {progress(app)[1]}")
        app.until(
            lambda: progress(app)[0] in ("finished", "stopped"),
            240,
            lambda: f"run #{run_id} to end; progress {progress(app)}",
        )
        # Its own run and settings: not the other Train session's run, name or steps.
        assert app.query().get("tr_run") == str(run_id)
        assert progress(app)[0] == ("stopped" if stop else "finished")
        sh.mark(who, f"run #{run_id} {progress(app)[0]}")
        assert app.query().get("tr_steps") == steps
        assert app.query().get("tr_smooth") == str(smooth)
        # the run carries this session's name; the box emptied at the launch (the next run
        # took the same name) and not to the other session's name
        run_choice = app.widget("tr_run").get_by_role("combobox").first
        expect(run_choice).to_have_value(re.compile(rf"^#{run_id} {name} · "))
        expect(name_box).to_have_value("")
        expect(app.number_input("tr_steps")).to_have_value(steps)
        healthy(sh, who, app)


# ------------------------------------------------------------------------------ the test


@pytest.fixture(scope="module")
def load_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server of this module alone, with its own run store where two runs train at once
    (one thread each), so both sessions' runs start at once."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium (see README)")
    runs_dir = tmp_path_factory.mktemp("load-runs")
    RunStore(runs_dir, max_concurrent=2)
    with serve_app(runs_dir, script_times=runs_dir / SCRIPT_LOG) as served:
        yield served


def _guarded(sh: Shared, fn: Callable[..., None], *args: Any) -> None:
    """Run a session; if it fails, release the others (abort the barrier and the loops)."""
    try:
        fn(sh, *args)
    except BaseException:
        sh.abort.set()
        sh.ready.abort()
        sh.single_done.set()
        raise
    sh.closed.release()  # its browser is closed


def _results(futures: list[Future[None]], timeout: float) -> None:
    """Wait for every session; re-raise the first failure (a broken barrier is only the
    echo of another session's failure)."""
    deadline = time.time() + timeout
    errors: list[tuple[int, BaseException]] = []
    for fut in futures:
        try:
            fut.result(timeout=max(1.0, deadline - time.time()))
        except threading.BrokenBarrierError as exc:
            errors.append((1, exc))
        except BaseException as exc:
            errors.append((0, exc))
    if errors:
        raise min(errors, key=lambda e: e[0])[1]


COLUMNS = ["phase", "round", "lab_eps", "server_s", "server_cpu_s", "server_runqueue_s"]
COLUMNS += ["others_cpu_s", "others_runqueue_s", "server_own_s", "browser_s", "load1"]


def write_timings(rows: list[dict[str, Any]]) -> None:
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    with open(ARTIFACT, "w", newline="") as fh:
        writer = csv.DictWriter(fh, COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


PAGES = {"lab_": "plan lab", "ent_": "entropy", "tr_": "train"}


def run_summary(runs: list[dict[str, Any]], start: float, end: float) -> list[str]:
    """One line per page and kind of run (full page run, fragment run) that started
    between ``start`` and ``end``: the median duration and the count."""
    groups: dict[str, list[float]] = {}
    for run in runs:
        if start <= run["start"] <= end:
            keys = "".join(run["widgets"])
            page = next((name for prefix, name in PAGES.items() if prefix in keys), "other")
            kind = "fragment" if run["fragment"] else "page"
            groups.setdefault(f"{page} ({kind})", []).append(run["end"] - run["start"])
    return [
        f"{name:<22} {statistics.median(v):6.3f} s  x{len(v)}" for name, v in sorted(groups.items())
    ]


def test_five_sessions_at_once(load_server: Served) -> None:
    start = time.perf_counter()
    sh = Shared(str(load_server), load_server.pid, load_server.runs_dir / SCRIPT_LOG, start=start)
    with browsers_yield(), ThreadPoolExecutor(SESSIONS) as pool:
        futures = [pool.submit(_guarded, sh, probe)]
        while not sh.single_done.wait(0.5):  # the single-session phase first, alone
            if futures[0].done():
                break
        if not sh.abort.is_set():
            futures += [
                pool.submit(_guarded, sh, lab_user),
                pool.submit(_guarded, sh, sweeps_user),
                pool.submit(_guarded, sh, train_user, "train-a", *RUN_A, False),
                pool.submit(_guarded, sh, train_user, "train-b", *RUN_B, True),
            ]
        try:
            _results(futures, timeout=900)
        finally:
            sh.abort.set()
            write_timings(sh.timings)
            print("\nseconds since the start, session, event:")
            for t, who, what in sorted(sh.events):
                print(f"  {t:6.1f}  {who:<8} {what}")

    # (b) every run ended cleanly, and its process with it
    store = RunStore(load_server.runs_dir)
    ended = {who: store.get(run_id) for who, run_id in sh.runs.items()}
    assert {who: (r.name, r.status) for who, r in ended.items()} == {
        "train-a": (RUN_A[0], "finished"),
        "train-b": (RUN_B[0], "stopped"),
    }
    assert ended["train-a"].step == int(RUN_A[1])
    assert 0 < ended["train-b"].step < int(RUN_B[1])
    deadline = time.time() + 30  # a run process exits just after it writes its status
    while store_processes(load_server.runs_dir) and time.time() < deadline:
        time.sleep(0.2)
    assert kill_run_processes(load_server.runs_dir) == [], "a run process outlived its run"

    # (c) reruns under load within RATIO_LIMIT times the single-session time
    def median(phase: str, column: str) -> float:
        lone = phase == "single"  # alone, before and after the five-session phase
        rows = [t for t in sh.timings if (t["phase"] != "five" if lone else t["phase"] == phase)]
        return float(statistics.median(t[column] for t in rows))

    single, five = median("single", "server_s"), median("five", "server_s")
    print(
        f"\nserver-side rerun after an ε change in the plan lab, medians of {2 * ROUNDS} "
        f"alone and {ROUNDS} with {SESSIONS} sessions: alone "
        f"{single:.3f} s, with {SESSIONS} sessions {five:.3f} s, ratio {five / single:.2f} "
        f"(limit {RATIO_LIMIT}); of which on a CPU {median('single', 'server_cpu_s'):.3f} s "
        f"and {median('five', 'server_cpu_s'):.3f} s, waiting for a CPU "
        f"{median('single', 'server_runqueue_s'):.3f} s and "
        f"{median('five', 'server_runqueue_s'):.3f} s, own time (see own_time) "
        f"{median('single', 'server_own_s'):.3f} s and {median('five', 'server_own_s'):.3f} s "
        f"(the other threads of the server waited for a CPU "
        f"{median('single', 'others_runqueue_s'):.3f} s and "
        f"{median('five', 'others_runqueue_s'):.3f} s per rerun); as the probe's browser saw it "
        f"{median('single', 'browser_s'):.3f} s and {median('five', 'browser_s'):.3f} s"
    )
    print(f"actions of the other sessions during the five-session phase: {sh.actions}")
    print(f"test took {time.perf_counter() - start:.0f} s; timings in {ARTIFACT}")
    print("script runs on the server per phase (median seconds, count), by page:")
    for phase, info in sh.phases.items():
        print(f"  {phase}: {dict((k, v) for k, v in info.items() if k not in ('start', 'end'))}")
        for line in run_summary(script_runs(sh.script_log), info["start"], info["end"]):
            print(f"    {line}")
    # On this 2-core test machine the five browsers and the two runs share the server's
    # cores, which a deployment's (students' own) browsers do not: the CI version asserts
    # the server's own time per rerun (its wall time less the time it waited for a CPU,
    # directly or through the GIL: own_time), the long version (GCA_LOAD_ROUNDS set) the
    # full wall time.
    if "GCA_LOAD_ROUNDS" not in os.environ:
        own = {ph: median(ph, "server_own_s") for ph in PHASES}
        assert own["five"] <= RATIO_LIMIT * own["single"], (
            f"the server's own time per rerun with {SESSIONS} sessions is "
            f"{own['five'] / own['single']:.2f}x its single-session time "
            f"({own['five']:.3f} s vs {own['single']:.3f} s)"
        )
        return
    assert five <= RATIO_LIMIT * single, (
        f"server-side reruns with {SESSIONS} sessions take {five / single:.2f}x their "
        f"single-session time ({five:.3f} s vs {single:.3f} s), of which waiting for a CPU "
        f"{median('five', 'server_runqueue_s'):.3f} s vs "
        f"{median('single', 'server_runqueue_s'):.3f} s (the machine's load average went "
        f"{sh.phases['single']['load1 start']} -> {sh.phases['five']['load1 end']})"
    )
