"""Command-line entry point: ``python -m gca_viz train ...`` (see :mod:`gca_viz.cli`)."""

import sys

from gca_viz import _signals

_signals.install()  # before the heavy imports: an early stop request is kept, not fatal

from gca_viz.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
