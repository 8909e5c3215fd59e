"""Whether a run's process lives, and why it died: what :meth:`gca_viz.runs.RunStore.reconcile`
reads from the operating system (``/proc`` on Linux, signals elsewhere) and the run's log."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path


def run_alive(pid: int | None, external: int | bool, config: str) -> bool:
    """Whether the process of a ``running`` row lives (:meth:`gca_viz.runs.RunStore.reconcile`
    asks)."""
    if not external:
        return alive(pid)
    try:
        host = json.loads(config).get("recorder", {}).get("host")
    except (ValueError, AttributeError):
        host = None
    if host != socket.gethostname():
        return True  # another machine's pid means nothing here: the heartbeat decides
    return alive(pid, any_program=True)


def alive(pid: int | None, any_program: bool = False) -> bool:
    """Whether ``pid`` is a live (non-zombie) process running gca_viz (``any_program``:
    running anything, as an external run's script does)."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if Path(f"/proc/{pid}").exists():  # Linux: rule out zombies and a recycled pid
        found = _proc(pid)
        if found is None:
            return False
        state, cmdline = found
        return is_run_process(state, b"gca_viz" if any_program else cmdline)
    return True


def _proc(pid: int) -> tuple[str, bytes] | None:
    """``(state, command line)`` of ``pid`` from ``/proc``; ``None`` when it cannot be read
    (gone, or no ``/proc`` on this machine)."""
    try:
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0], Path(f"/proc/{int(pid)}/cmdline").read_bytes()
    except (OSError, IndexError):
        return None


def trains(pid: int | None, store_dir: str, run_id: int) -> bool:
    """Whether ``pid`` is a live process training run ``run_id`` of the store in
    ``store_dir`` (its command line names both, as the store starts it: ``--store DIR
    --run-id N``). A pid recycled by another process, or one this machine cannot inspect
    (no ``/proc``), is not: a caller that would signal it or wait on it leaves it alone."""
    found = _proc(pid) if pid else None
    if found is None or not is_run_process(*found):
        return False
    args = found[1].split(b"\0")
    want = [b"--store", os.fsencode(store_dir), b"--run-id", str(run_id).encode()]
    return all(
        any(args[k : k + 2] == want[j : j + 2] for k in range(len(args) - 1)) for j in (0, 2)
    )


def is_run_process(state: str, cmdline: bytes) -> bool:
    """Whether a process in ``/proc`` state ``state`` with command line ``cmdline`` is a
    live run: not a zombie, and running gca_viz. An empty command line counts as ours: a
    process still inside ``execve`` (``Popen`` has returned, the new program's arguments
    are not mapped yet) can show one, and a run launched a moment ago may be in that
    window; a recycled pid has the other program's command line."""
    return state != "Z" and (not cmdline or b"gca_viz" in cmdline)


def last_error_line(log: Path) -> str:
    """The last line of a run's log if it reports an exception (``SomeError: text``) or is
    the command line's own error line (``error: text``: a store it could not write before
    training started), the reason a run that could not record its own failure died; else
    ``""``."""
    try:
        with open(log, "rb") as fh:
            fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
            tail = fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    lines = [line.strip() for line in tail.splitlines() if line.strip()]
    last = lines[-1] if lines else ""
    head = last.split(":", 1)[0]
    said = head.endswith(("Error", "Exception")) or head == "error"
    return last[:500] if ":" in last and said else ""
