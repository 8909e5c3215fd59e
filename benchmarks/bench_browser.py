r"""Latency of the app in a real browser (issue 14): Chromium through Playwright, medians.

Run from the repository root::

    python benchmarks/bench_browser.py              # 7 rounds after a warm-up round
    python benchmarks/bench_browser.py --quick      # smoke run: 1 round, fewer actions
    python benchmarks/bench_browser.py --rounds 15

Two servers are started, each ``streamlit run`` on a free port through
``tests/browser/timed_server.py`` (which logs the server's time of every script run), with a
run store of their own: the app (``app.py``) and a reference page
(``benchmarks/_reference_page.py``: one slider and one small plotly chart, nothing else).
Each page is opened once (warm server), one unrecorded round of every action warms the
caches, then ``--rounds`` rounds run every action once, in turn, so that a drift of the
machine's load touches all of them alike.

How a time is taken (in the page, on the page's clock): an instrument installed before
the page's own scripts watches the script state (``data-test-script-state`` of
``stApp``), the plotly charts (``gd._fullData``, ``gd._fullLayout``, ``plotly_afterplot``)
and the first key press or pointer press after it is armed (the action's start ``t0``). The
action is done when its target holds (a chart's data differs from before the action, the
row/column inputs show the clicked cell, or enough charts are drawn) while the script is
idle (``notRunning``, no spinner or skeleton), and no chart of the page has changed or been
redrawn since; the time is taken once nothing has changed for ``--hold`` ms. A first load
is timed from the navigation's start, in a fresh browser context, until the page has as
many charts drawn as it had when first opened, the script is idle and nothing redraws.

Play: the Plotly frames of a ``▶ Play`` button are timed in the page
(``plotly_animatingframe``), and every websocket message the page sends while they play is
decoded: a message other than the sidebar status's timed fragment rerun would be a round
trip to the server. The pace of a play is a teaching choice
(``gca_viz.figures._controls.play_frame_ms``: about 5 s a play, 50 to 400 ms a frame), so the
target is the drawing: a frame drawn within 50 ms (the player could run at 20 frames per
second) and nothing sent.

Where the time goes, per action: from ``t0`` to the script state turning ``running`` (the
front end handling the input and sending it), the script run as the browser sees it
(``running`` to ``notRunning``; its messages are drawn as they arrive), the server's own
time of the run(s) (timed_server.py), and from ``notRunning`` to the last chart drawn (the
front end's work left after the server has finished); also the plotly charts the action
created as new DOM nodes and the bytes the page received over the websocket.

The machine is shared: compare each median with the reference's in the same run (ratio).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout, no install needed
    sys.path.insert(0, str(REPO_ROOT))

from tests.browser.conftest import (  # noqa: E402  (after the path set-up)
    CHROMIUM,
    CHROMIUM_ARGS,
    VIEWPORT,
    _free_port,
    cell_point,
    kill_run_processes,
)

REFERENCE = "benchmarks/_reference_page.py"
TIMED_SERVER = "tests/browser/timed_server.py"
LOAD_MS, CHANGE_MS, CLICK_MS, MIN_FPS = 2500.0, 400.0, 300.0, 20.0  # the targets

INSTRUMENT = r"""
(() => {
  if (window.__bench || window.top !== window) return;
  const B = window.__bench = {states: [], ids: new WeakMap(), next: 1, lastPlot: 0, watch: null,
                              log: []};
  new MutationObserver(records => {
    for (const r of records)
      B.states.push([performance.now(), r.target.getAttribute('data-test-script-state')]);
  }).observe(document, {subtree: true, attributes: true,
                        attributeFilter: ['data-test-script-state']});
  const log = entry => { B.log.push(entry); if (B.log.length > 4000) B.log.splice(0, 2000); };
  const onInput = () => { const w = B.watch; if (w && w.t0 === null) w.t0 = performance.now(); };
  document.addEventListener('keydown', onInput, true);
  document.addEventListener('pointerdown', onInput, true);
  // A number that changes when any value in v (nested arrays, typed arrays) changes.
  const total = v => {
    if (v == null) return 0;
    if (typeof v === 'number') return v === v ? v : 0.5;
    if (typeof v === 'string') return v.length;
    if (typeof v.length !== 'number') return 0.25;
    let s = v.length * 1e-3;
    for (let i = 0; i < v.length; i++) s += total(v[i]) * (1 + (i % 7) * 1e-3);
    return s;
  };
  const content = gd => {
    const L = gd._fullLayout || {};
    const shapes = (L.shapes || []).reduce((s, h) => s + total(h.x0) + 3 * total(h.y0), 0);
    return gd._fullData.map(t => [t.type, total(t.z), total(t.x), total(t.y)].join(','))
      .join(';') + '|' + shapes + '|' + ((L.title && L.title.text) || '');
  };
  const drawn = () => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(gd => gd._fullData && gd._fullData.length && gd.querySelector('.main-svg'));
  const idOf = gd => {
    let id = B.ids.get(gd);
    if (!id) {
      id = B.next++;
      B.ids.set(gd, id);
      B.lastPlot = performance.now();
      if (gd.on) gd.on('plotly_afterplot', () => {
        B.lastPlot = performance.now();
        log([B.lastPlot, 'plot', id]);
      });
    }
    return id;
  };
  const chartOf = key => {
    const gd = document.querySelector(`.st-key-${key} .js-plotly-plot`);
    return gd && gd._fullData && gd._fullData.length ? content(gd) : null;
  };
  const idle = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    return !!app && app.getAttribute('data-test-script-state') === 'notRunning'
      && !document.querySelector('[data-testid="stSkeleton"], [data-testid="stSpinner"]');
  };
  const met = (s, charts) => {
    if (s.kind === 'charts') return charts.length >= s.n;
    if (s.kind === 'chart') { const c = chartOf(s.key); return c !== null && c !== B.watch.base; }
    if (s.kind === 'inputs') return Object.entries(s.values).every(([k, v]) => {
      const box = document.querySelector(`.st-key-${k} input`);
      return !!box && box.value === v;
    });
    return true;  // 'idle'
  };
  const tick = () => {
    const w = B.watch;
    if (!w || w.result) return;
    const now = performance.now();
    const charts = drawn();
    const sig = charts.map(gd => idOf(gd) + '=' + content(gd)).join('\n');
    if (sig !== w.sig) { w.sig = sig; w.lastChange = now; log([now, 'change', charts.length]); }
    if (w.t0 !== null && w.ready === null && idle() && met(w.spec, charts)) w.ready = now;
    if (w.ready !== null) {
      const done = Math.max(w.ready, w.lastChange, B.lastPlot);
      if (now - done >= w.spec.hold) {
        const drawnAt = B.log.find(e => e[0] >= w.t0 && e[1] === 'change' && e[2] > 0);
        const js = performance.getEntriesByType('resource')
          .find(e => /\/PlotlyChart[^/]*\.js/.test(e.name));
        w.result = {t0: w.t0, ready: w.ready, done, charts: charts.length,
                    states: B.states.filter(s => s[0] >= w.t0), created: B.next - w.next,
                    firstChart: drawnAt ? drawnAt[0] : null, plotlyJs: js ? js.responseEnd : null};
        return;
      }
    }
    requestAnimationFrame(tick);
  };
  // spec: {kind, key | n | values, hold, start: 'input' | 'now' | 'navigation'}
  B.arm = spec => {
    const start = {input: null, now: performance.now(), navigation: 0}[spec.start];
    B.watch = {spec, t0: start, ready: null, lastChange: 0, sig: null, result: null, next: B.next,
               base: spec.kind === 'chart' ? chartOf(spec.key) : null};
    requestAnimationFrame(tick);
  };
})();
"""

RESULT = "() => { const w = window.__bench && window.__bench.watch; return w && w.result; }"

PLAY_HOOK = """gd => {
    window.__frames = [];
    window.__plots = [];
    if (!gd.__benchPlay) {
        gd.__benchPlay = true;
        gd.on('plotly_animatingframe',
              e => window.__frames.push([String(e.name), performance.now()]));
        gd.on('plotly_afterplot', () => window.__plots.push(performance.now()));
    }
    const frames = gd._transitionData._frames;
    return String(frames[frames.length - 1].name);
}"""


# ------------------------------------------------------------------------------ servers


class Server:
    """``streamlit run <script>`` on a free port, every script run timed (timed_server.py)."""

    def __init__(self, script: str, runs_dir: Path) -> None:
        self.runs_dir = runs_dir
        self.times = runs_dir / "script_times.jsonl"
        self.url = f"http://127.0.0.1:{_free_port()}"
        env = {**os.environ, "GCA_RUNS_DIR": str(runs_dir), "GCA_SCRIPT_TIMES": str(self.times)}
        flags = {
            "server.headless": "true",
            "server.port": self.url.rsplit(":", 1)[1],
            "server.address": "127.0.0.1",
            "browser.gatherUsageStats": "false",
            "server.fileWatcherType": "none",
        }
        cmd = [sys.executable, TIMED_SERVER, "run", script]
        cmd += [x for name, value in flags.items() for x in (f"--{name}", value)]
        self.log = open(runs_dir / "server.log", "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=REPO_ROOT, env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def wait(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.read() == b"ok":
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.time() > deadline:
                tail = (self.runs_dir / "server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"server {self.url} did not start:\n{tail}")
            time.sleep(0.3)

    def runs(self, start: float, end: float) -> list[dict[str, Any]]:
        """The full (not fragment) script runs that started between ``start`` and ``end``
        (``time.monotonic``, the clock timed_server.py logs on)."""
        if not self.times.exists():
            return []
        runs = [json.loads(x) for x in self.times.read_text().splitlines() if x.strip()]
        return [r for r in runs if not r["fragment"] and start <= r["start"] <= end]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        kill_run_processes(self.runs_dir)


@contextmanager
def servers(*scripts: str) -> Iterator[list[Server]]:
    """Start one server per script (all at once), yield them once all are healthy."""
    with ExitStack() as stack:
        started = []
        for script in scripts:
            runs_dir = Path(tempfile.mkdtemp(prefix="gca_bench_browser_"))
            stack.callback(shutil.rmtree, runs_dir, ignore_errors=True)
            server = Server(script, runs_dir)
            stack.callback(server.stop)
            started.append(server)
        for server in started:
            server.wait()
        yield started


# ---------------------------------------------------------------------------- samples


@dataclass
class Sample:
    """One timed action (ms). ``to_run``: ``t0`` to the script state turning ``running``;
    ``script``: ``running`` to the last ``notRunning`` before the target held; ``server``:
    the server's time of the full script runs it caused; ``after``: the last ``notRunning``
    to the last chart drawn."""

    total: float
    to_run: float | None = None
    script: float | None = None
    server: float | None = None
    after: float | None = None
    sent: int = 0  # websocket messages the page sent, timed fragment reruns left out
    received: int | None = None  # bytes the page received over the websocket
    created: int = 0  # plotly charts created (new DOM nodes) during the action
    first_chart: float | None = None  # t0 -> the first chart drawn or changed
    plotly_js: float | None = None  # t0 -> Plotly's chunk fetched (first loads)
    fps: float | None = None  # play only
    draw: float | None = None  # play only: median ms from a frame's start to its redraw
    frames: int = 0  # play only


def _sample(result: dict[str, Any], runs: list[dict[str, Any]], **more: Any) -> Sample:
    """A :class:`Sample` from the instrument's result and the server's script runs; the
    script states split it into t0 -> running -> notRunning -> done."""
    t0, ready, done = result["t0"], result["ready"], result["done"]
    starts = [t for t, state in result["states"] if state == "running"]
    ends = [t for t, state in result["states"] if state == "notRunning" and t <= ready + 1]
    split: tuple[float | None, ...] = (None, None, None)
    if starts and ends and ends[-1] >= starts[0]:
        split = (starts[0] - t0, ends[-1] - starts[0], done - ends[-1])

    def since(t: float | None) -> float | None:
        return None if t is None else t - t0

    return Sample(
        total=done - t0,
        to_run=split[0],
        script=split[1],
        after=split[2],
        server=1000 * sum(r["end"] - r["start"] for r in runs) if runs else None,
        created=int(result["created"]),
        first_chart=since(result["firstChart"]),
        plotly_js=since(result["plotlyJs"]),
        **more,
    )


def _user_messages(frames: list[Any]) -> int:
    """Websocket messages other than the timed fragment reruns (the sidebar status)."""
    from streamlit.proto.BackMsg_pb2 import BackMsg

    count = 0
    for data in frames:
        msg = BackMsg()
        try:
            msg.ParseFromString(data if isinstance(data, bytes) else data.encode())
        except Exception:  # not a BackMsg: count it
            count += 1
            continue
        if not (msg.WhichOneof("type") == "rerun_script" and msg.rerun_script.is_auto_rerun):
            count += 1
    return count


class Tab:
    """One open page of a server in its own browser context, with the instrument."""

    def __init__(self, browser: Any, server: Server, path: str, hold: float, timeout: float):
        self.server, self.path, self.hold, self.timeout = server, path, hold, timeout
        self.context = browser.new_context(viewport=VIEWPORT)
        self.context.add_init_script(INSTRUMENT)
        self.page = self.context.new_page()
        self.sent: list[Any] = []
        self.received: list[int] = []
        self.page.on("websocket", self._listen)
        self.page.goto(server.url + path)
        self.calm()
        self.charts = int(self.page.evaluate("() => window.__bench.watch.result.charts"))

    def _listen(self, ws: Any) -> None:
        ws.on("framesent", lambda data: self.sent.append(data))
        ws.on("framereceived", lambda data: self.received.append(len(data)))

    def _wait(self, spec: dict[str, Any], trigger: Callable[[], None] | None) -> dict[str, Any]:
        self.page.evaluate("spec => window.__bench.arm(spec)", {"hold": self.hold, **spec})
        if trigger is not None:
            trigger()
        self.page.wait_for_function(RESULT, timeout=self.timeout * 1000)
        return dict(self.page.evaluate(RESULT))

    def calm(self) -> None:
        """Wait until the script is idle and no chart has changed for the hold time."""
        self._wait({"kind": "idle", "start": "now"}, None)

    def measure(self, target: dict[str, Any], trigger: Callable[[], None]) -> Sample:
        """Time ``trigger`` (a key or pointer press) until ``target`` holds and all is drawn."""
        self.calm()
        start, sent, received = time.monotonic(), len(self.sent), len(self.received)
        result = self._wait({**target, "start": "input"}, trigger)
        return _sample(
            result,
            self.server.runs(start, time.monotonic()),
            sent=_user_messages(self.sent[sent:]),
            received=sum(self.received[received:]),
        )

    # ----------------------------------------------------------------- the actions

    def key(self, widget: str, key: str, target: dict[str, Any]) -> Sample:
        """Press ``key`` on the slider ``widget`` (focused first)."""
        handle = self.page.locator(f".st-key-{widget}").get_by_role("slider").first
        handle.focus()
        return self.measure(target, lambda: handle.press(key))

    def type_number(self, widget: str, value: str, target: dict[str, Any]) -> Sample:
        """Type ``value`` into the number input ``widget``; timed from the Enter press."""
        box = self.page.locator(f".st-key-{widget} input").first
        box.fill(value)
        return self.measure(target, lambda: box.press("Enter"))

    def click_text(self, widget: str, text: str, target: dict[str, Any]) -> Sample:
        option = self.page.locator(f".st-key-{widget}").get_by_text(text, exact=True).first
        return self.measure(target, option.click)

    def click_cell(self, chart: str, i: int, j: int) -> Sample:
        """Click cell (i, j) of a selectable heatmap; done when the row/column inputs show it."""
        gd = self.page.locator(f".st-key-{chart} .js-plotly-plot").first
        gd.scroll_into_view_if_needed()
        self.calm()
        x, y = cell_point(gd, i, j)
        target = {"kind": "inputs", "values": {"lab_i": str(i), "lab_j": str(j)}}
        return self.measure(target, lambda: self.page.mouse.click(x, y))

    def play(self, chart: str) -> Sample:
        """Click the chart's ▶ Play and time its frames in the page."""
        gd = self.page.locator(f".st-key-{chart} .js-plotly-plot").first
        gd.scroll_into_view_if_needed()
        self.calm()
        last = gd.evaluate(PLAY_HOOK)  # the name of the last frame
        sent = len(self.sent)
        gd.get_by_text("▶ Play").first.click()
        self.page.wait_for_function(
            "last => window.__frames.length && window.__frames.at(-1)[0] === last",
            arg=last,
            timeout=self.timeout * 1000,
        )
        self.page.wait_for_timeout(300)  # a message sent right after the last frame counts
        frames, plots = self.page.evaluate("() => [window.__frames, window.__plots]")
        span = frames[-1][1] - frames[0][1]
        shown = len(frames)
        # a frame's drawing: from its start to the first redraw that ends after it
        draws = [next((p - t for p in plots if p >= t), None) for _, t in frames]
        return Sample(
            total=span / max(shown - 1, 1),  # ms per frame
            fps=1000 * (shown - 1) / span if span > 0 else None,
            frames=shown,
            draw=_med(draws),
            sent=_user_messages(self.sent[sent:]),
        )

    def exceptions(self) -> list[str]:
        return list(self.page.locator('[data-testid="stException"]').all_inner_texts())

    def close(self) -> None:
        self.context.close()


def first_load(
    browser: Any, server: Server, path: str, charts: int, hold: float, timeout: float
) -> Sample:
    """Open ``path`` in a fresh browser context; time it from the navigation's start."""
    context = browser.new_context(viewport=VIEWPORT)
    arm = {"kind": "charts", "n": charts, "hold": hold, "start": "navigation"}
    context.add_init_script(
        INSTRUMENT + f"\nwindow.__bench && window.__bench.arm({json.dumps(arm)});"
    )
    try:
        page = context.new_page()
        received: list[int] = []
        page.on("websocket", lambda ws: ws.on("framereceived", lambda d: received.append(len(d))))
        start = time.monotonic()
        page.goto(server.url + path)
        page.wait_for_function(RESULT, timeout=timeout * 1000)
        result = page.evaluate(RESULT)
        return _sample(result, server.runs(start, time.monotonic()), received=sum(received))
    finally:
        context.close()


# ----------------------------------------------------------------------------- plan


@dataclass
class Action:
    """A measured action: its row name, target, the reference row it is compared with, and
    ``run(round)``, which returns one or more samples."""

    name: str
    run: Callable[[int], Sample]
    target: str = "-"  # "load", "change", "click", "play"
    reference: str | None = None
    samples: list[Sample] = field(default_factory=list)


def plan(
    browser: Any, app: Server, ref: Server, hold: float, timeout: float, quick: bool
) -> tuple[list[Action], list[Tab]]:
    """Open the pages (warm server) and list the actions of a round, in order; with
    ``quick``, only the Plan lab and the reference."""
    # The root first: a page opened by its own path before the server ran app.py's router
    # would be served without it (see tests/browser/test_deep_link.py).
    reference = Tab(browser, ref, "/", hold, timeout)
    story = None if quick else Tab(browser, app, "/", hold, timeout)
    lab = Tab(browser, app, "/plan_lab", hold, timeout)
    entropy = None if quick else Tab(browser, app, "/entropy", hold, timeout)

    def load(tab: Tab) -> Callable[[int], Sample]:
        return lambda r: first_load(browser, tab.server, tab.path, tab.charts, hold, timeout)

    def arrow(r: int) -> str:
        return "ArrowRight" if r % 2 == 0 else "ArrowLeft"

    def chart(key: str) -> dict[str, Any]:
        return {"kind": "chart", "key": key}

    cells = [(7, 12), (20, 30)]
    change, slider = "change", "reference: move the slider"
    actions = [
        Action("reference: first load", load(reference)),
        Action("Plan lab: first load", load(lab), "load", "reference: first load"),
        Action(
            "reference: move the slider",
            lambda r: reference.key("ref_k", arrow(r), chart("ref_chart")),
        ),
        Action(
            "Plan lab: type ε + Enter",
            lambda r: lab.type_number("lab_eps", ("0.3", "0.1")[r % 2], chart("lab_chart_player")),
            change,
            slider,
        ),
        Action(
            "Plan lab: T slider",
            lambda r: lab.key("lab_T", arrow(r), chart("lab_chart_player")),
            change,
            slider,
        ),
        Action(
            "Plan lab: click a cell",
            lambda r: lab.click_cell("lab_chart_player", *cells[r % 2]),
            "click",
            slider,
        ),
        Action("Plan lab: ▶ play (ms/frame)", lambda r: lab.play("lab_chart_player"), "play"),
    ]
    if quick:
        quick_rows = {"T slider"}
        actions = [a for a in actions if a.name.split(": ", 1)[1] not in quick_rows]
        return actions, [reference, lab]
    assert story is not None and entropy is not None
    actions[1:1] = [Action("Story: first load", load(story), "load", "reference: first load")]
    actions.insert(3, Action("Entropy: first load", load(entropy), "load", "reference: first load"))
    actions += [
        Action(
            "Story: switch step 1 -> 2",
            lambda r: story.click_text(
                "story_step", "2 · Sinkhorn lowers it", chart("story_player")
            ),
            change,
            slider,
        ),
        Action(
            "Story: ε slider (step 2)",
            lambda r: story.key("story_eps_slider", arrow(r), chart("story_player")),
            change,
            slider,
        ),
        Action("Story: ▶ play (ms/frame)", lambda r: story.play("story_player"), "play"),
        Action(
            "Story: switch step 2 -> 1",
            lambda r: story.click_text(
                "story_step", "1 · InfoNCE is a KL divergence", chart("story_p1")
            ),
            change,
            slider,
        ),
        Action(
            "Entropy: values of ε slider",
            lambda r: entropy.key("ent_num", arrow(r), chart("ent_chart_entropy")),
            change,
            slider,
        ),
    ]
    return actions, [reference, story, lab, entropy]


# ----------------------------------------------------------------------------- report

TARGET_TEXT = {
    "load": f"<= {LOAD_MS:.0f}",
    "change": f"<= {CHANGE_MS:.0f}",
    "click": f"<= {CLICK_MS:.0f}",
    "play": f"draw <= {1000 / MIN_FPS:.0f} ms, 0 sent",
}


def _med(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return statistics.median(kept) if kept else None


def _fmt(value: float | None, width: int = 7, digits: int = 0) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.{digits}f}"


def verdict(action: Action) -> str:
    if action.target == "-" or not action.samples:
        return "" if action.samples else "NO DATA"
    median = statistics.median(s.total for s in action.samples)
    if action.target == "play":
        draw = _med([s.draw for s in action.samples])  # (the pace is play_frame_ms's)
        ok = draw is not None and draw <= 1000 / MIN_FPS
        ok = ok and all(s.sent == 0 for s in action.samples)
    else:
        limit = {"load": LOAD_MS, "change": CHANGE_MS, "click": CLICK_MS}[action.target]
        ok = median <= limit
    return "PASS" if ok else "FAIL"


WHERE = """
Where the time goes (medians, ms):
  to run  t0 -> script state 'running': the front end takes the input and sends it (a first
          load: loads the page, boots and connects)
  script  'running' -> 'notRunning' as the browser sees it (it reads and draws the run's
          messages as they arrive, so a busy page stretches it)
  server  the server's own time of the full script runs (timed_server.py)
  after   'notRunning' -> the last chart drawn
  front   total - server: everything but the server's script time
  1st     t0 -> the first chart drawn or changed
  new     plotly charts created (new DOM nodes, a full newPlot) by the action
  KB      received over the websocket
  ('-' in to run and script: the run was too short for the page to ever show 'running')"""


def report(actions: list[Action]) -> bool:
    """Print the tables; True when every target passed."""
    by_name = {a.name: a for a in actions}
    header = (
        f"{'action':<32} {'n':>3} {'median':>7} {'min':>7} {'max':>7} {'ref':>7} "
        f"{'ratio':>6}  {'target':<18} verdict"
    )
    print(header)
    print("-" * len(header))
    passed = True
    for a in actions:
        if not a.samples:
            print(f"{a.name:<32} {0:>3}  (no sample)")
            passed = False
            continue
        totals = [s.total for s in a.samples]
        median = statistics.median(totals)
        ref = by_name.get(a.reference or "")
        ref_med = statistics.median(s.total for s in ref.samples) if ref and ref.samples else None
        ratio = f"{median / ref_med:6.1f}" if ref_med else f"{'-':>6}"
        v = verdict(a)
        passed &= v != "FAIL"
        print(
            f"{a.name:<32} {len(totals):>3} {_fmt(median)} {_fmt(min(totals))} "
            f"{_fmt(max(totals))} {_fmt(ref_med)} {ratio}  {TARGET_TEXT.get(a.target, '-'):<18} {v}"
        )
    print(WHERE)
    header = (
        f"{'action':<32} {'to run':>7} {'script':>7} {'server':>7} {'after':>7} "
        f"{'front':>7} {'1st':>7} {'new':>4} {'KB':>5} {'total':>7}"
    )
    print(header)
    print("-" * len(header))
    for a in actions:
        if a.target == "play" or not a.samples:
            continue
        s = a.samples
        cells = [
            _med([x.to_run for x in s]),
            _med([x.script for x in s]),
            _med([x.server for x in s]),
            _med([x.after for x in s]),
            _med([x.total - x.server if x.server is not None else None for x in s]),
            _med([x.first_chart for x in s]),
        ]
        kb = _med([x.received / 1024 if x.received is not None else None for x in s])
        new, total = _med([x.created for x in s]), _med([x.total for x in s])
        print(
            f"{a.name:<32} {' '.join(_fmt(c) for c in cells)} "
            f"{_fmt(new, 4)} {_fmt(kb, 5)} {_fmt(total)}"
        )
    loads = [a for a in actions if "first load" in a.name and a.samples]
    if loads:
        print("\nFirst loads (medians, ms from the navigation's start): Plotly's chunk fetched")
        print("(it is parsed and run after), the first chart drawn, all charts drawn and idle")
        for a in loads:
            print(
                f"{a.name:<32} plotly.js {_fmt(_med([x.plotly_js for x in a.samples]))}  "
                f"first chart {_fmt(_med([x.first_chart for x in a.samples]))}  "
                f"done {_fmt(_med([x.total for x in a.samples]))}"
            )
    plays = [a for a in actions if a.target == "play" and a.samples]
    if plays:
        print("\nPlay (Plotly frames in the page): frames per second, the time a frame takes to")
        print("redraw (from its start to plotly_afterplot), frames shown, messages sent to the")
        print("server while playing (the sidebar status's timed fragment reruns left out)")
        for a in plays:
            fps = [s.fps for s in a.samples if s.fps is not None]
            print(
                f"{a.name:<32} fps median {_fmt(_med(list(fps)), 5, 1)} min {_fmt(min(fps), 5, 1)}"
                f"  draw ms/frame {_fmt(_med([s.draw for s in a.samples]), 5)}"
                f"  frames {sorted({s.frames for s in a.samples})}"
                f"  sent {sum(s.sent for s in a.samples)}"
            )
    return passed


def _machine() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    return (
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (default 7)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round, fewer actions")
    parser.add_argument(
        "--hold", type=float, default=400.0, help="ms with nothing changing that end an action"
    )
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per action")
    args = parser.parse_args(argv)
    rounds = 1 if args.quick else max(1, args.rounds)
    warm_up = not args.quick  # --quick: the pages are opened once, no warm-up round
    if not Path(CHROMIUM).exists():
        print(f"{CHROMIUM} is missing: apt-get install -y chromium")
        return 2

    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import sync_playwright
    from streamlit import __version__ as streamlit_version

    with servers("app.py", REFERENCE) as (app, ref), sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        print(f"Browser latency: Chromium {browser.version}, Streamlit {streamlit_version}")
        print(f"Machine: {_machine()}")
        actions, tabs = plan(browser, app, ref, args.hold, args.timeout, args.quick)
        print(
            f"{rounds} round(s){' after a warm-up round' if warm_up else ''}, every action once "
            f"per round; times in ms "
            f"from the key/pointer press (first loads: from the navigation's start) to the "
            f"charts drawn with the script idle, nothing changing for {args.hold:.0f} ms after\n"
        )
        failures = 0
        first = 1 if warm_up else 0  # round 0 warms the caches unless --quick
        for r in range(rounds + first):
            for action in actions:
                try:
                    sample = action.run(r)
                except (PlaywrightError, KeyError, TypeError) as exc:
                    failures += 1
                    print(f"round {r}, {action.name}: failed: {str(exc).splitlines()[0][:200]}")
                    continue
                if r >= first:
                    action.samples.append(sample)
        for tab in tabs:
            if tab.exceptions():
                print(f"warning: {tab.path} shows an exception: {tab.exceptions()[0][:300]}")
            tab.close()
        browser.close()
        passed = report(actions)
        print(f"\nMachine after the run: {_machine()}")
    return 0 if (passed and not failures) or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
