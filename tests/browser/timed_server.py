"""``streamlit`` with every script run timed, for the load test (test_load.py).

``python tests/browser/timed_server.py run app.py [options]`` is ``streamlit run app.py
[options]`` in the same process, except that each script run (a full page run or a fragment
run) appends one JSON line to the file named by ``$GCA_SCRIPT_TIMES``::

    {"session": ..., "start": ..., "end": ..., "cpu": ..., "runqueue": ...,
     "others_cpu": ..., "others_runqueue": ..., "fragment": false,
     "widgets": {"lab_eps": 0.105, ...}}

``start`` and ``end`` are on the monotonic clock, ``cpu`` is the script thread's CPU time,
``runqueue`` the time it was ready to run but waited for a CPU (for the rest of the run it
waited for something else: the GIL, a lock, the disk); ``others_cpu`` and
``others_runqueue`` are the same two times summed over the server's other threads during
the run (the other sessions' scripts, the event loop, ...), so that a test can tell how much
of a wait for the GIL was a wait for a CPU one step removed; ``widgets`` holds the values of
the keyed widgets the browser sent with the request, so a test can find the run that
carried a change it made. This is the server-side time of a rerun: what the browser sees
on top of it (sending the change, drawing the charts) depends on the machine the browser
runs on, which in a test is the server's.

It wraps ``ScriptRunner._run_script``, a private method of Streamlit: if a Streamlit release
renames it, this script stops at once with a message instead of timing nothing.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import threading
import time
from typing import Any

from streamlit.runtime.scriptrunner import script_runner


def _widgets(rerun_data: Any) -> dict[str, Any]:
    """``{key: value}`` of the keyed widgets in a rerun request (ids end in ``-<key>``)."""
    states = getattr(rerun_data, "widget_states", None)
    out: dict[str, Any] = {}
    for w in states.widgets if states is not None else ():
        parts = w.id.split("-", 2)
        kind = w.WhichOneof("value")
        if len(parts) == 3 and kind in ("double_value", "int_value", "string_value", "bool_value"):
            out[parts[2]] = getattr(w, kind)
    return out


def _schedstat(task: str) -> tuple[float, float]:
    """``(on a CPU, ready to run but waiting for a CPU)``, in seconds, of one thread of this
    process so far (Linux ``schedstat``; zeros where it is missing or the thread is gone)."""
    try:
        with open(f"/proc/self/task/{task}/schedstat") as fh:
            fields = fh.read().split()
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


# Streamlit starts a thread per script run and per spinner, so threads come and go during
# a run: a Python thread adds its final times here as it ends, and its id goes to _ENDED so
# that the listing of live threads does not count it twice.
_ENDED_TIMES = [0.0, 0.0]
_ENDED: set[str] = set()
_ENDED_LOCK = threading.Lock()


def _count_ended_threads() -> None:
    """Make every Python thread started from now on add its times to ``_ENDED_TIMES``."""
    original = getattr(threading.Thread, "_bootstrap_inner", None)
    if original is None:  # a Python without it: ended threads go uncounted
        return

    def bootstrap_inner(self: threading.Thread) -> None:
        me = str(threading.get_native_id())
        with _ENDED_LOCK:
            _ENDED.discard(me)  # a reused thread id
        try:
            original(self)
        finally:
            times = _schedstat(me)
            with _ENDED_LOCK:
                _ENDED_TIMES[0] += times[0]
                _ENDED_TIMES[1] += times[1]
                _ENDED.add(me)

    threading.Thread._bootstrap_inner = bootstrap_inner  # type: ignore[attr-defined]


def _process_schedstat() -> tuple[float, float]:
    """:func:`_schedstat` summed over the threads this process has had: those alive now and
    the Python threads that have ended."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0.0, 0.0
    with _ENDED_LOCK:
        stats = [_schedstat(task) for task in tasks if task not in _ENDED]
        ended = tuple(_ENDED_TIMES)
    return ended[0] + sum(s[0] for s in stats), ended[1] + sum(s[1] for s in stats)


def install(path: str) -> None:
    """Time every script run of this process into ``path`` (JSON lines)."""
    original = getattr(script_runner.ScriptRunner, "_run_script", None)
    if original is None:
        raise SystemExit("timed_server.py: streamlit's ScriptRunner has no _run_script any more")
    _count_ended_threads()
    log = open(path, "a", buffering=1)  # open for the life of the server
    lock = threading.Lock()

    def timed(self: Any, rerun_data: Any) -> Any:
        me = str(threading.get_native_id())
        all_before = _process_schedstat()  # read outside the timed span
        start, cpu, queued = time.monotonic(), time.thread_time(), _schedstat(me)[1]
        try:
            return original(self, rerun_data)
        finally:
            end, cpu, queued = (
                time.monotonic(),
                time.thread_time() - cpu,
                _schedstat(me)[1] - queued,
            )
            all_after = _process_schedstat()  # less this thread's own share, below
            record = {
                "session": getattr(self, "_session_id", ""),
                "start": start,
                "end": end,
                "cpu": cpu,
                "runqueue": queued,
                "others_cpu": all_after[0] - all_before[0] - cpu,
                "others_runqueue": all_after[1] - all_before[1] - queued,
                "fragment": bool(getattr(rerun_data, "fragment_id_queue", None)),
                "widgets": _widgets(rerun_data),
            }
            with lock:
                log.write(json.dumps(record) + "\n")

    script_runner.ScriptRunner._run_script = timed  # type: ignore[method-assign]


if __name__ == "__main__":
    install(os.environ["GCA_SCRIPT_TIMES"])
    sys.path[0] = os.getcwd()  # as ``python -m streamlit`` has it, not this file's folder
    sys.argv = ["streamlit", *sys.argv[1:]]
    runpy.run_module("streamlit", run_name="__main__", alter_sys=True)
