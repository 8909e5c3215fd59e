"""The benchmark scripts run end to end (their ``--quick`` smoke modes)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import gca_viz.experiments as ex
from tests.helpers import run_python


def _run(*argv: str, timeout: int = 120) -> str:
    """The standard output of ``python *argv``, which must succeed."""
    proc = run_python(*argv, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-4000:]
    return proc.stdout


@pytest.mark.slow
def test_bench_ot_quick_runs() -> None:
    out = _run("benchmarks/bench_ot.py", "--quick")
    assert "Sinkhorn timings" in out
    assert "ours/POT" in out and "ours/flr" in out  # the table header
    assert "bare/flr" in out and "reference: bare / floor" in out
    assert "Summary of the targets" in out


def test_bench_ot_device_mode_runs_on_the_cpu() -> None:
    """``--device`` (cuda on a GPU) times torch tensors against POT's torch backend and the
    bare loops; on the CPU the CUDA-graph columns (ours and the bare loop) and the read
    count say n/a."""
    out = _run(
        "benchmarks/bench_ot.py",
        "--device",
        "cpu",
        "--quick",
        "--eps",
        "0.5",
        "--dtypes",
        "float32",
    )
    assert "Sinkhorn timings on cpu" in out
    cols = ("ours graph", "POT skh", "POT log", "OTT kern", "OTT log", "bare graph",
            "ours/bare", "graph/bare", "ours/OTT", "reads")  # fmt: skip
    assert all(col in out for col in cols)
    row = next(line.split() for line in out.splitlines() if line.split()[:2] == ["256", "float32"])
    assert len(row) == 15  # n, dtype, ε, ours, ours graph, POT skh, POT log, OTT kern, ...
    assert row[4] == row[10] == row[14] == "n/a" and row[12] == "-"  # no CUDA: no graphs, reads
    if importlib.util.find_spec("ott") is None:  # OTT-JAX is optional: a note says it is missing
        assert row[7] == row[8] == "n/a" and row[13] == "-"
        assert "OTT-JAX columns n/a: ott-jax is not installed" in out
    else:
        assert float(row[7]) > 0 and float(row[8]) > 0 and float(row[13]) > 0


def test_bench_losses_device_mode_runs_on_the_cpu() -> None:
    out = _run("benchmarks/bench_losses.py", "--device", "cpu", "--quick")
    names = ("gca_ince", "plain NT-Xent (ref)", "POT-torch sinkhorn (ref)",
             "bare loop, eager (ref)")  # fmt: skip
    assert all(name in out for name in names)
    assert "bare loop, CUDA graph (ref)" in out and "(CUDA only)" in out
    ott = next(line for line in out.splitlines() if line.startswith("OTT-JAX gca_ince (ref)"))
    if importlib.util.find_spec("ott") is None:  # optional: the line says why it is missing
        assert "n/a" in ott and "ott-jax is not installed" in ott
    else:
        assert float(ott.split()[3]) > 0


def test_bench_train_encoder_mode_runs_on_the_cpu() -> None:
    """``--encoder resnet18 --image-size 32 --batch 512`` on a GPU; a tiny step here."""
    out = _run("benchmarks/bench_train.py", "--encoder", "resnet18", "--quick", "--threads", "1")
    assert "resnet18 on 8 random 3x8x8 images" in out
    assert "nt_xent (ref)" in out and "gca_ince" in out and "x nt_xent" in out


def test_sweep_noisy_quick_runs_and_pairs_the_seeds(tmp_path: Path) -> None:
    """The noisy-views sweep trains every method, prints the backbone's and the
    embedding's tables and verdicts, and its paired differences are computed from the same
    seeds; --merge pools files and refuses one whose run of the same seed differs."""
    out = tmp_path / "sweep.json"
    printed = _run(
        "benchmarks/sweep_noisy.py", "--quick", "--steps", "5", "--out", str(out), timeout=300
    )
    assert "Δ corrupted vs INCE" in printed and "GCA-UOT" in printed
    assert "of the backbone h" in printed and "of the embedding ẑ" in printed
    data = json.loads(out.read_text())
    runs, table = data["runs"], data["table"]
    assert {r["method"] for r in runs} == set(ex.SWEEP_METHODS)  # every arm, each titled
    tests = ("clean", "corrupted", "clean_z", "corrupted_z")
    assert all(0.0 <= r[t] <= 1.0 for r in runs for t in tests)
    uot = next(r for r in table if r["method"] == "gca_uot")
    for test in tests:
        by = {(r["method"], r["seed"]): r[test] for r in runs}
        diffs = [by[("gca_uot", s)] - by[("ince", s)] for s in (0, 1)]
        assert uot[f"{test}_diff"] == pytest.approx(sum(diffs) / 2)
    # the rows read back through the library, every test present
    rows = ex.noisy_sweep_results(out)
    assert all(set(r.mean) == set(tests) for r in rows)
    # --merge: the same runs twice pool to the same table; a run retrained differently stops it
    merged = tmp_path / "merged.json"
    _run("benchmarks/sweep_noisy.py", "--merge", str(out), str(out), "--out", str(merged))
    assert json.loads(merged.read_text())["table"] == table
    other = tmp_path / "other.json"
    runs[0]["clean_z"] += 0.01
    other.write_text(json.dumps({"runs": runs, "table": table}))
    proc = run_python("benchmarks/sweep_noisy.py", "--merge", str(out), str(other), timeout=120)
    assert proc.returncode != 0 and "trained" in proc.stderr and "other accuracies" in proc.stderr


@pytest.mark.slow
def test_bench_browser_quick_runs() -> None:
    """The browser benchmark starts the app and the reference page, times the Plan lab's
    actions in Chromium and prints its tables (needs /usr/bin/chromium)."""
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("/usr/bin/chromium is missing: apt-get install -y chromium (see README)")
    out = _run("benchmarks/bench_browser.py", "--quick", timeout=180)
    assert "action" in out and "median" in out and "ratio" in out and "verdict" in out
    for row in (
        "reference: first load",
        "Plan lab: first load",
        "reference: move the slider",
        "Plan lab: type ε + Enter",
        "Plan lab: click a cell",
        "Plan lab: ▶ play (ms/frame)",
    ):
        line = next((x for x in out.splitlines() if x.startswith(row)), "")
        assert line and "(no sample)" not in line, f"{row!r} missing in:\n{out}"
    assert "Where the time goes" in out and "failed:" not in out
    assert "fps median" in out


@pytest.mark.slow
def test_bench_app_quick_runs() -> None:
    out = _run("benchmarks/bench_app.py", "--quick", "--pages", "plan_lab", timeout=300)
    assert "plan_lab" in out and "lab_eps" in out


@pytest.mark.slow
def test_the_watch_overhead_benchmark_runs() -> None:
    out = _run("benchmarks/bench_watch.py", "--quick", "--threads", "1", timeout=300)
    assert "overhead" in out and "target < 3%" in out


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_the_gpu_check_script_stops_at_once_without_cuda(tmp_path: Path) -> None:
    """benchmarks/gpu_checks.sh runs the GPU checks as one script on a machine lent a GPU;
    without CUDA it says so and runs nothing."""
    done = subprocess.run(
        ["bash", "benchmarks/gpu_checks.sh", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHON": sys.executable},
    )
    assert done.returncode != 0 and "no CUDA here" in done.stderr
    assert not (tmp_path / "out" / "gpu-tests.txt").exists()
