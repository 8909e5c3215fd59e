"""A small tmpfs for the fault tests (a disk that fills up, a read-only file system).

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped with the
reason."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def try_mount_tmpfs(where: Path, options: str) -> str:
    """Mount a tmpfs with ``options`` (for example ``"size=1m"`` or ``"ro,size=1m"``) on
    ``where`` (created if missing); return ``""`` if it is mounted, else why not."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit {done.returncode}")


def mount_tmpfs(where: Path, options: str) -> None:
    """:func:`try_mount_tmpfs`, skipping the test if mounting is not permitted."""
    why_not = try_mount_tmpfs(where, options)
    if why_not:
        pytest.skip(f"cannot mount a tmpfs ({why_not})")


def umount(where: Path) -> None:
    """Unmount ``where``, retrying for 5 s (a process or connection that just closed may
    still hold a file), then lazily."""
    for _ in range(50):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(where)], capture_output=True)
