r"""Server-side rerun time of the app's pages after a control change (Streamlit's AppTest).

Run from the repository root::

    python benchmarks/bench_app.py            # N = 256, 7 reruns per control
    python benchmarks/bench_app.py --quick    # smoke run: N = 64, 3 reruns per control
    python benchmarks/bench_app.py --pages plan_lab --repeats 11

Every entry of :data:`CASES` names a page, the query string it opens with (the batch size
``N`` is set there) and the controls to move. For each control the benchmark alternates
between two values: the first two reruns fill the page's caches (reported as ``cold``, the
slower of the two), the remaining ones hit them (reported as the median, ``warm``). That
median is what a user feels when dragging a slider back and forth; ``cold`` is the cost of a
setting never seen before.

A real server compiles a page script once and keeps the bytecode; AppTest recompiles it on
every run (about 20-30 ms for a page of a few hundred lines). By default one compiled-script
cache is shared across runs, as in the server; ``--no-script-cache`` measures AppTest as is.
The time covers the whole script run (router, sidebar, page) plus AppTest's own bookkeeping,
not the browser's drawing. Other engineers add their pages as further :class:`Case` entries.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout, no install needed
    sys.path.insert(0, str(REPO_ROOT))


@dataclass(frozen=True)
class Change:
    """A control to move: the widget kind (AppTest accessor), its key and two values."""

    kind: str
    key: str
    values: tuple[Any, Any]


@dataclass(frozen=True)
class Case:
    """A page, the query string it opens with, and the controls to move on it."""

    page: str
    query: dict[str, str]
    changes: Sequence[Change]
    target_ms: float | None = None  # budget of the warm median, if the page has one
    quick_query: dict[str, str] = field(default_factory=dict)  # overrides for --quick


CASES: list[Case] = [
    Case(
        "views/plan_lab.py",
        {"lab_n": "256"},
        [
            Change("toggle", "lab_log", (True, False)),
            Change("selectbox", "lab_view", ("cost", "P2T")),
            Change("number_input", "lab_i", (17, 3)),
            Change("number_input", "lab_eps", (0.2, 0.1)),
            Change("slider", "lab_T", (12, 10)),
            Change("selectbox", "lab_target", ("class", "pairs")),
            Change("select_slider", "lab_l1_slider", (0.5, 0.2)),
        ],
        target_ms=150.0,
        quick_query={"lab_n": "64"},
    ),
    Case(
        "views/entropy.py",
        {"ent_n": "256", "ent_cap": "300"},
        [
            Change("number_input", "ent_eps_T", (0.2, 0.1)),
            Change("slider", "ent_T", (20, 30)),
            Change("select_slider", "ent_l1_slider", (0.5, 0.2)),
            Change("slider", "ent_num", (8, 12)),
        ],
        quick_query={"ent_n": "32", "ent_cap": "100"},
    ),
]
"""The pages and controls measured; add an entry per page."""


def _share_script_cache() -> None:
    """Make AppTest keep one compiled-script cache across runs, as the server does."""
    from streamlit.runtime.scriptrunner.script_cache import ScriptCache
    from streamlit.testing.v1 import app_test, local_script_runner

    shared = ScriptCache()
    app_test.ScriptCache = lambda: shared  # type: ignore[attr-defined,misc]
    local_script_runner.ScriptCache = lambda: shared  # type: ignore[attr-defined,misc]


def _widget(at: Any, kind: str, key: str) -> Any:
    return getattr(at, kind)(key=key)


def _timed_run(at: Any) -> float:
    start = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - start
    if at.exception:
        raise RuntimeError(f"the page raised: {at.exception[0].value}")
    return elapsed


def run_case(case: Case, repeats: int, quick: bool, timeout: float) -> list[dict[str, Any]]:
    """Open the page once, then move each control ``repeats`` times; one row per control."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO_ROOT / "app.py"), default_timeout=timeout)
    for key, value in {**case.query, **(case.quick_query if quick else {})}.items():
        at.query_params[key] = value
    at.run()
    at.switch_page(case.page)
    first = _timed_run(at)
    rows = [{"page": case.page, "control": "(first render)", "cold": first, "warm": None}]
    for change in case.changes:
        times = []
        for r in range(repeats):
            _widget(at, change.kind, change.key).set_value(change.values[r % 2])
            times.append(_timed_run(at))
        warm = statistics.median(times[2:]) if len(times) > 2 else None
        rows.append(
            {
                "page": case.page,
                "control": change.key,
                "cold": max(times[:2]),
                "warm": warm,
                "target": case.target_ms,
            }
        )
    return rows


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:8.0f}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--repeats", type=int, default=7, help="reruns per control (>= 3)")
    parser.add_argument("--quick", action="store_true", help="small batches, 3 reruns")
    parser.add_argument("--pages", nargs="*", help="only pages whose path contains these")
    parser.add_argument(
        "--no-script-cache", action="store_true", help="let AppTest recompile the page on every run"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per run")
    args = parser.parse_args(argv)
    repeats = 3 if args.quick else max(3, args.repeats)

    os.environ.setdefault("GCA_RUNS_DIR", tempfile.mkdtemp(prefix="gca_bench_runs_"))
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    if not args.no_script_cache:
        _share_script_cache()
    cases = [c for c in CASES if not args.pages or any(p in c.page for p in args.pages)]
    print(f"Server-side rerun times (ms), {repeats} reruns per control, values alternating;")
    print("cold = the slower of the first two (cache fill), warm = median of the rest.")
    print(f"Compiled-script cache shared across runs: {not args.no_script_cache}\n")
    header = f"{'page':<22} {'control':<16} {'cold':>8} {'warm':>8}  target"
    print(header)
    print("-" * len(header))
    failed = False
    for case in cases:
        for row in run_case(case, repeats, args.quick, args.timeout):
            target = row.get("target")
            verdict = ""
            if target is not None and row["warm"] is not None and not args.quick:
                ok = 1000 * row["warm"] <= target
                failed |= not ok
                verdict = f"<= {target:.0f}: {'PASS' if ok else 'FAIL'}"
            print(
                f"{Path(row['page']).stem:<22} {row['control']:<16} {_ms(row['cold'])} "
                f"{_ms(row['warm'])}  {verdict}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
