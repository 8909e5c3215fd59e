"""Stop signals that arrive while a process is still starting up.

``python -m gca_viz`` installs :func:`install` before importing torch, so a SIGTERM sent
right after launch (a user pressing Stop at once) is remembered instead of killing the
process; the training loop's own handlers then read :data:`received`.
"""

import signal
from types import FrameType

received = False
"""Whether SIGTERM or SIGINT arrived since :func:`install`."""


def _mark(signum: int, frame: FrameType | None) -> None:
    global received
    received = True


def install() -> None:
    """Remember SIGTERM and SIGINT instead of dying on them."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _mark)
