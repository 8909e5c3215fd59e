"""Demo runs: a CLI run directory imports into the store; the shipped demo runs install once."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gca_viz import demo
from gca_viz.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]


def test_cli_run_directory_imports_as_a_finished_run(tmp_path: Path) -> None:
    out = tmp_path / "cli-run"
    cfg = {
        "steps": 4,
        "batch_size": 32,
        "out_dim": 3,
        "eval_every": 2,
        "snapshot_every": 2,
        "encoder_params": {"hidden": 32},
        "head_hidden": 32,
        "device": "cpu",
    }
    (tmp_path / "cfg.json").write_text(json.dumps(cfg))
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "gca_viz",
            "train",
            "--config",
            str(tmp_path / "cfg.json"),
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    store = RunStore(tmp_path / "store", max_concurrent=1)
    run_id = store.import_directory(out, name="imported")
    info = store.get(run_id)
    assert (info.status, info.step, info.name) == ("finished", 4, "imported")
    assert info.config["out_dim"] == 3
    loss = store.metrics(run_id, ["loss"])["loss"]
    assert loss[:, 0].tolist() == [1, 2, 3, 4]
    snaps = store.snapshots(run_id, "embeddings")
    assert [s for s, _ in snaps] == [2, 4]
    arrays = store.load_snapshot(snaps[-1][1])
    assert arrays is not None and arrays["z"].shape[1] == 3
    assert (store.run_dir(run_id) / "checkpoint.pt").exists()


def test_import_rejects_a_directory_that_is_not_a_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store", max_concurrent=1)
    (tmp_path / "junk").mkdir()
    with pytest.raises(ValueError, match="not a run directory"):
        store.import_directory(tmp_path / "junk")
    assert store.list_runs() == []


def test_shipped_demo_runs_install_once(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "store", max_concurrent=1)
    ids = demo.install(store)
    assert len(ids) == len(demo.DEMO_RUNS)
    assert demo.install(store) == []  # only once, even after the user deletes some
    for run_id in ids:
        info = store.get(run_id)
        assert info.status == "finished" and info.step == info.config["steps"]
        assert info.config["out_dim"] == 3  # the Geometry page draws the sphere
        snaps = store.snapshots(run_id, "embeddings")
        assert len(snaps) >= 5
        z = store.load_snapshot(snaps[-1][1])["z"]  # type: ignore[index]
        np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, rtol=1e-4)
        latest = store.latest_metrics(run_id)
        assert latest["probe_acc"][1] > 0.9 and latest["knn_acc_embedding"][1] > 0.5
