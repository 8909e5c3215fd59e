"""What the tests share: the repository root, waiting (on a condition, on a run store's runs
while they make progress), the run processes of a store (find them, kill them all), running a
script of the repository, a run row written straight into a store, a Streamlit server's
health, and reading an AppTest page (open it, its figures, texts and metrics).

Fixtures built on these live in tests/conftest.py (``runs_dir``, ``app_env``,
``app_store``) and tests/pages/conftest.py (a store with trained runs).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from streamlit.testing.v1 import AppTest

    from gca_viz.runs import RunStore

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # the pages import the shared `ui` module from the root
    sys.path.insert(0, str(REPO_ROOT))

# ------------------------------------------------------------------------- bad input


def names_parameter(msg: str, name: str) -> bool:
    """Whether ``msg`` names the parameter ``name`` (as a word; a one-letter name must be
    followed by a verb or punctuation, so that the article "a" does not count)."""
    word = rf"(?<![\w.]){re.escape(name)}(?!\w)"
    if len(name) == 1:
        word += r"(?=\s+(?:must|contains|has|is|are|and|or)\b|[:=,)\]'\"]|$)"
    return re.search(word, msg) is not None


def raises_naming(name: str, fn: Callable[[], Any]) -> str:
    """``fn()`` raises ``ValueError`` whose message names the parameter ``name``; the
    message."""
    import pytest

    with pytest.raises(ValueError) as info:
        fn()
    msg = str(info.value)
    assert names_parameter(msg, name), f"the message does not name {name!r}: {msg!r}"
    return msg


# --------------------------------------------------------------------------------- waiting

STALL = 60.0
"""Seconds a wait on runs tolerates without any progress (no new step, no status change, no
CPU time used by a run process) before it fails."""
CAP = 600.0
"""Seconds a wait on runs lasts at most, progress or not (a run that crawls forever)."""


def wait_for(
    cond: Callable[[], T],
    timeout: float = 60.0,
    what: str | Callable[[], str] = "",
    *,
    progress: Callable[[], Hashable] | None = None,
    cap: float = CAP,
    interval: float = 0.05,
    sleep: Callable[[float], object] = time.sleep,
) -> T:
    """Poll ``cond`` until it returns something truthy; return that.

    Without ``progress``, fail after ``timeout`` seconds. With ``progress`` (a function whose
    value changes while the awaited work advances, such as :func:`run_progress`), fail only
    after ``timeout`` seconds in which its value stayed the same, or after ``cap`` seconds
    in all: a loaded machine slows the work down, a stall is what fails. ``what`` (a text
    or a function giving one) says in the failure what was awaited; ``sleep`` waits between
    polls (a browser test waits in its page, so that its events keep arriving).
    """
    start = last_change = time.monotonic()
    seen = progress() if progress is not None else None
    while True:
        value = cond()
        if value:
            return value
        now = time.monotonic()
        if progress is not None:
            current = progress()
            if current != seen:
                seen, last_change = current, now
        capped = progress is not None and now - start > cap
        if now - last_change > timeout or capped:
            text = (what() if callable(what) else what) or cond
            if progress is None:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {text}")
            why = f"the cap of {cap:g} s" if capped else f"{timeout:g} s without progress"
            raise AssertionError(f"gave up after {now - start:.1f} s ({why}) waiting for {text}")
        sleep(interval)


def cpu_ticks(pid: int | None) -> int | None:
    """CPU time (clock ticks, user + system) that process ``pid`` has used; ``None`` if there
    is no such process (Linux ``/proc``)."""
    if not pid:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)


def run_progress(store: RunStore, *pids: int) -> Callable[[], Hashable]:
    """A ``progress`` for :func:`wait_for`: every run's status and step, and the CPU time of
    its process (a run process starting up, importing torch and loading data, records no
    step yet but uses CPU), and of ``pids`` (processes that have not registered a run yet)."""

    def now() -> Hashable:
        runs = tuple((r.id, r.status, r.step, cpu_ticks(r.pid)) for r in store.list_runs())
        return runs, tuple(cpu_ticks(p) for p in pids)

    return now


def wait_for_run(
    store: RunStore,
    cond: Callable[[], T],
    what: str,
    *,
    pids: Iterable[int] = (),
    stall: float = STALL,
    cap: float = CAP,
) -> T:
    """Wait until ``cond`` holds while the store's runs (and the processes ``pids``) keep
    making progress (see :func:`wait_for`); fail after ``stall`` seconds without progress."""
    progress = run_progress(store, *pids)
    return wait_for(cond, stall, what, progress=progress, cap=cap, interval=0.1)


def wait_for_status(store: RunStore, run_id: int, *statuses: str, stall: float = STALL) -> str:
    """Wait until run ``run_id`` has one of ``statuses`` while the store's runs make
    progress; return its status."""
    return wait_for_run(
        store,
        lambda: (s := store.get(run_id).status) in statuses and s,
        f"run {run_id} to be {' or '.join(statuses)}",
        stall=stall,
    )


# --------------------------------------------------------------------- run processes


def pid_running(pid: int | None) -> bool:
    """Whether ``pid`` is a live process, not a zombie (Linux ``/proc``)."""
    if not pid:
        return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def cmdline(pid: int) -> list[str]:
    """The command line of process ``pid`` (``[]`` if there is none)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return [a.decode(errors="replace") for a in raw.split(b"\0") if a]


def is_run_process(pid: int | None, data_dir: Path) -> bool:
    """A live ``gca_viz`` process of the store in ``data_dir`` (a pid recorded long ago may
    belong to another process by now)."""
    if not pid:
        return False
    args = cmdline(pid)
    return "gca_viz" in args and str(data_dir.resolve()) in args and pid_running(pid)


def store_processes(data_dir: Path) -> list[int]:
    """Pids of the store's run processes that are still alive."""
    from gca_viz.runs import RunStore

    if not (data_dir / "runs.db").exists():
        return []
    return [
        int(r.pid or 0) for r in RunStore(data_dir).list_runs() if is_run_process(r.pid, data_dir)
    ]


def kill_runs(data_dir: Path, *, grace: float = 0.0, cancel_queued: bool = True) -> list[int]:
    """Kill every run of the store in ``data_dir``: cancel the queued runs first (so that a
    finishing run cannot start another; unless ``cancel_queued`` is false), then signal its
    live run processes (SIGTERM and, ``grace`` seconds later, SIGKILL; at once with no
    grace) and wait until they are gone. Returns the pids that were still alive."""
    from gca_viz.runs import RunStore

    if not (data_dir / "runs.db").exists():
        return []
    store = RunStore(data_dir)
    killed: list[int] = []
    for _ in range(2):  # a run the first round's cancel raced with is caught by the second
        if cancel_queued:
            with store._db(write=True) as db:
                db.execute("UPDATE runs SET status='stopped' WHERE status='queued'")
        pids = [p for p in store_processes(data_dir) if p not in killed]
        for sig in (signal.SIGTERM, signal.SIGKILL) if grace else (signal.SIGKILL,):
            for pid in pids:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            if sig == signal.SIGTERM:
                deadline = time.monotonic() + grace
                while time.monotonic() < deadline and any(pid_running(p) for p in pids):
                    time.sleep(0.1)
        killed += pids
    wait_for(lambda: not any(pid_running(p) for p in killed), 20, "killed runs to exit")
    return killed


# ------------------------------------------------------------------ scripts, servers


def run_python(*args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    """``python *args`` in the repository root (a script path and its arguments, or ``-c``
    and code), output captured as text; ``env`` adds environment variables."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **env} if env else None,
    )


def wait_until_healthy(
    port: int, proc: subprocess.Popen[Any], log: Path, timeout: float = 90
) -> None:
    """Wait until the Streamlit server ``proc`` answers ``ok`` on ``/_stcore/health`` at
    ``port``; fail with the end of its ``log`` if it exits or takes ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = f"http://127.0.0.1:{port}/_stcore/health"
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.read() == b"ok":
                    return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text()[-3000:])
        time.sleep(0.3)


def stop_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM ``proc``; SIGKILL it if it is still there after ``timeout`` seconds."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# ----------------------------------------------------------------------------- stores


def add_run(store: RunStore, *, config: dict[str, Any] | str | None = None, **row: Any) -> int:
    """A run row written straight into the store (no process), for a test to read; its
    columns are ``row`` (name "fake", status "queued" and created now unless given)."""
    if not isinstance(config, str):
        config = json.dumps(config or {"steps": 5, "device": "cpu"})
    values = {"name": "fake", "status": "queued", "created": time.time(), **row, "config": config}
    with store._db(write=True) as db:
        cur = db.execute(
            f"INSERT INTO runs ({', '.join(values)}) VALUES ({', '.join('?' * len(values))})",
            tuple(values.values()),
        )
    return int(cur.lastrowid or 0)


def update_run(store: RunStore, run_id: int, **row: Any) -> None:
    """Set columns of a run's row straight in the store."""
    with store._db(write=True) as db:
        sets = ", ".join(f"{k}=?" for k in row)
        db.execute(f"UPDATE runs SET {sets} WHERE id=?", (*row.values(), run_id))


def store_without_demos(path: Path) -> RunStore:
    """A store whose shipped demo runs count as installed already (none are imported), so
    a test sees exactly the runs it made."""
    from gca_viz import demo
    from gca_viz.runs import RunStore

    store = RunStore(path)
    demo.install(store, source=path / "no-demo-runs")
    return store


def record_external_run(
    data_dir: Path, *, batch: int, dim: int, classes: int, name: str = "mine", **recorder: Any
) -> Any:
    """A finished run of 6 steps recorded by :class:`gca_viz.watch.Recorder`, as a training
    loop of the user's own writes it (a GCA-INCE loss on ``batch`` random pairs in ``dim``
    dimensions of ``classes`` classes, a snapshot every 2 steps); the recorder."""
    import torch

    from gca_viz import losses
    from gca_viz.watch import Recorder

    rec = Recorder(data_dir, name=name, loss=losses.get("gca_ince", n_iter=3), snapshot_every=2,
                   config={"steps": 6}, **recorder)  # fmt: skip
    for step in range(1, 7):
        z1 = torch.randn(batch, dim)
        rec.step(step, loss=1.0 / step)
        rec.batch(
            step, z1, z1 + 0.1 * torch.randn(batch, dim), labels=torch.arange(batch) % classes
        )
    rec.finish()
    return rec


# -------------------------------------------------------------------- AppTest pages


def view(page: str) -> str:
    """The path of an app page's script, ``views/<page>.py``."""
    return str(REPO_ROOT / "views" / f"{page}.py")


def open_app(page: str | None = None, *, timeout: float = 60, **query: str) -> AppTest:
    """The app as a browser opens it: ``app.py`` with the URL's ``query``, then ``page``
    (``views/<name>.py``) chosen in its navigation; no exception raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert_clean(at)
    return at


def open_page(name: str, *, timeout: float = 60) -> AppTest:
    """One page's script on its own (``views/<name>.py``, not through the app's router),
    run once; no exception raised."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(view(name), default_timeout=timeout)
    at.run()
    assert_clean(at)
    return at


def open_quiet_page(name: str) -> tuple[AppTest, dict[str, dict[str, Any]]]:
    """``views/<name>.py`` on its own (:func:`open_page`), showing no error and no warning;
    the page and its figures (:func:`charts`)."""
    at = open_page(name)
    assert not at.error and not at.warning, texts([*at.error, *at.warning])
    return at, charts(at)


def assert_clean(at: AppTest) -> None:
    """The last run raised no exception."""
    assert not at.exception, [e.message for e in at.exception]


def rerun(at: AppTest) -> AppTest:
    """Run the page again; no exception raised."""
    at.run()
    assert_clean(at)
    return at


def assert_no_runs_yet(at: AppTest) -> None:
    """A page that needs runs, on a store without any: it says how to get some, and draws
    nothing and shows no error."""
    assert "No runs yet" in texts(at.info)
    assert not at.error and not at.get("plotly_chart")


def texts(elements: Iterable[Any]) -> str:
    """The values of page elements (captions, errors, markdown...), joined by spaces."""
    return " ".join(str(e.value) for e in elements)


def charts(at: AppTest) -> dict[str, dict[str, Any]]:
    """Every figure the page drew, decoded, by the key it was drawn with
    (tests/plotly_json.py: ``st.plotly_chart``'s and the live charts')."""
    from tests.plotly_json import page_figures

    return page_figures(at)


def figure(at: AppTest, title_start: str) -> dict[str, Any]:
    """The first figure whose title starts with ``title_start``."""
    from tests.plotly_json import title_of

    found = charts(at)
    for spec in found.values():
        if title_of(spec).startswith(title_start):
            return spec
    titles = [title_of(spec) for spec in found.values()]
    raise AssertionError(f"no figure titled {title_start!r}: {titles}")


def heat(fig: dict[str, Any]) -> Any:
    """A heatmap figure's matrix (its first trace's ``z``) as floats."""
    import numpy as np

    return np.asarray(fig["data"][0]["z"], dtype=float)


def names(fig: dict[str, Any]) -> list[str]:
    """The names of a figure's traces shown in its legend."""
    return [t.get("name") for t in fig["data"] if t.get("showlegend", True) and t.get("name")]


def metrics(at: AppTest) -> dict[str, str]:
    """The page's ``st.metric`` values by label."""
    return {m.label: str(m.value) for m in at.metric}


def metric(at: AppTest, label_start: str) -> str:
    """The value of the first metric whose label starts with ``label_start``."""
    found = [v for k, v in metrics(at).items() if k.startswith(label_start)]
    assert found, list(metrics(at))
    return found[0]


def table(at: AppTest, column: str) -> Any:
    """The first dataframe with a column named ``column`` (as a pandas DataFrame)."""
    for frame in at.dataframe:
        if column in frame.value.columns:
            return frame.value
    raise AssertionError(f"no table with a column {column!r}")


def linear_rgb(color: str) -> Any:
    """Linear-light RGB (sRGB's transfer undone) of ``#rrggbb`` or ``rgb(r, g, b)``."""
    import re

    import numpy as np

    if color.startswith("#"):
        values = [int(color[k : k + 2], 16) for k in (1, 3, 5)]
    else:
        values = [float(v) for v in re.findall(r"[\d.]+", color)[:3]]
    c = np.asarray(values, dtype=float) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def relative_luminance(color: str) -> float:
    """WCAG's relative luminance of a colour (see :func:`linear_rgb`); the contrast of two
    is ``(L1 + 0.05) / (L2 + 0.05)``, white's luminance being 1."""
    return float(linear_rgb(color) @ [0.2126, 0.7152, 0.0722])


def contrast_with_white(color: str) -> float:
    """WCAG contrast ratio of a colour against white."""
    return 1.05 / (relative_luminance(color) + 0.05)


def cielab(color: str) -> Any:
    """CIELAB (D65) of an sRGB colour (see :func:`linear_rgb`): ``ΔE`` between two colours
    is the distance of theirs."""
    import numpy as np

    to_xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722],
                       [0.0193, 0.1192, 0.9505]])  # fmt: skip
    xyz = to_xyz @ linear_rgb(color) / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > 0.008856, np.cbrt(xyz), 7.787 * xyz + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])
