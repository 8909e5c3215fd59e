"""A small tmpfs for the fault tests (a disk that fills up, a read-only file system).

Mounting needs root (or CAP_SYS_ADMIN); where it is refused the test is skipped with the
reason."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest


def mount_tmpfs(where: Path, options: str) -> None:
    """Mount a tmpfs with ``options`` (for example ``"size=1m"`` or ``"ro,size=1m"``) on
    ``where`` (created if missing); skip the test if mounting is not permitted."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs ({done.stderr.strip() or done.returncode})")


def umount(where: Path) -> None:
    """Unmount ``where``, retrying for 5 s (a process or connection that just closed may
    still hold a file), then lazily."""
    for _ in range(50):
        if subprocess.run(["umount", str(where)], capture_output=True).returncode == 0:
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(where)], capture_output=True)
