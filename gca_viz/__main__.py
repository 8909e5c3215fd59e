"""Command-line entry point: ``python -m gca_viz train ...`` (see :mod:`gca_viz.cli`)."""

import os
import sys

from gca_viz import _signals

_signals.install()  # before the heavy imports: an early stop request is kept, not fatal

from gca_viz.cli import main  # noqa: E402

if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1") or "1") > 1:
        # A torchrun rank, done (its process group left, its files closed): skip the
        # interpreter's teardown, where gloo's threads can abort a process ("terminate
        # called without an active exception", seen once in a two-rank test after both ranks
        # had finished), which torchrun would report as the job's failure.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)
