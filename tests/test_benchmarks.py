"""The OT benchmark script runs end to end (its ``--quick`` smoke mode)."""

import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_bench_ot_quick_runs() -> None:
    proc = subprocess.run(
        [sys.executable, "benchmarks/bench_ot.py", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert "Sinkhorn timings" in proc.stdout
    assert "ours/POT" in proc.stdout and "ours/flr" in proc.stdout  # the table header
    assert "bare/flr" in proc.stdout and "reference: bare / floor" in proc.stdout
    assert "Summary of the targets" in proc.stdout
