"""``streamlit`` with every script run timed, for the load test (test_load.py).

``python tests/browser/timed_server.py run app.py [options]`` is ``streamlit run app.py
[options]`` in the same process, except that each script run (a full page run or a fragment
run) appends one JSON line to the file named by ``$GCA_SCRIPT_TIMES``::

    {"session": ..., "start": ..., "end": ..., "cpu": ..., "runqueue": ...,
     "fragment": false, "widgets": {"lab_eps": 0.105, ...}}

``start`` and ``end`` are on the monotonic clock, ``cpu`` is the script thread's CPU time,
``runqueue`` the time it was ready to run but waited for a CPU (for the rest of the run it
waited for something else: the GIL, a lock, the disk), and ``widgets`` holds the values of
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


def _runqueue_wait() -> float:
    """Seconds this thread has spent ready to run but waiting for a CPU (Linux schedstat;
    0 where it is missing)."""
    try:
        with open(f"/proc/self/task/{threading.get_native_id()}/schedstat") as fh:
            return int(fh.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        return 0.0


def install(path: str) -> None:
    """Time every script run of this process into ``path`` (JSON lines)."""
    original = getattr(script_runner.ScriptRunner, "_run_script", None)
    if original is None:
        raise SystemExit("timed_server.py: streamlit's ScriptRunner has no _run_script any more")
    log = open(path, "a", buffering=1)  # open for the life of the server
    lock = threading.Lock()

    def timed(self: Any, rerun_data: Any) -> Any:
        start, cpu, queued = time.monotonic(), time.thread_time(), _runqueue_wait()
        try:
            return original(self, rerun_data)
        finally:
            record = {
                "session": getattr(self, "_session_id", ""),
                "start": start,
                "end": time.monotonic(),
                "cpu": time.thread_time() - cpu,
                "runqueue": _runqueue_wait() - queued,
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
