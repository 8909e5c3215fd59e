"""Command-line entry point: ``python -m gca_viz``.

Only ``--version`` exists so far; training commands will be added here.
"""

import sys

from gca_viz import __version__

USAGE = "usage: python -m gca_viz --version"


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    args = sys.argv[1:] if argv is None else argv
    if args == ["--version"]:
        print(f"gca_viz {__version__}")
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
