"""Command-line entry point: ``python -m gca_viz train ...`` (see :mod:`gca_viz.cli`)."""

import sys

from gca_viz.cli import main

if __name__ == "__main__":
    sys.exit(main())
