"""Finished demo runs, so a lecture can start the moment the app opens.

:data:`DEMO_RUNS` are short runs on the embedded data with 3-D embeddings (the sphere the
Geometry page draws). :func:`generate` trains them with the project's own command line
(``python -m gca_viz train --out DIR``) into ``assets/demo_runs``; the files are shipped with
the repository. :func:`install` imports them into a run store once, as finished runs.

    python -m gca_viz.demo            # regenerate assets/demo_runs (about a minute)
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "demo_runs"
"""Where the shipped demo runs live (one ``--out`` directory each)."""

_COMMON: dict[str, Any] = {
    "dataset": "digits",
    "out_dim": 3,
    "steps": 300,
    "batch_size": 256,
    "eval_every": 50,
    "snapshot_every": 30,
    "checkpoint_every": 0,
    "eval_subset": 300,
    "seed": 0,
    "device": "cpu",
}

DEMO_RUNS: dict[str, dict[str, Any]] = {
    "demo-ince": {"method": "ince"},
    "demo-gca-ince": {"method": "gca_ince", "loss_params": {"epsilon": 0.2}},
    "demo-gca-uot": {"method": "gca_uot"},
    "demo-ince-extreme": {"method": "ince", "augment": "extreme"},
    "demo-gca-uot-extreme": {"method": "gca_uot", "augment": "extreme"},
}
"""Demo run name -> the config fields that differ from the shared ones."""

_MARKER = "demo_runs_installed"


def demo_config(name: str) -> dict[str, Any]:
    """The full config of demo run ``name``."""
    return {**_COMMON, **DEMO_RUNS[name]}


def generate(dest: Path = ASSETS) -> list[Path]:
    """Train every demo run with the CLI into ``dest/<name>``; returns the directories."""
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in DEMO_RUNS:
        run_dir = dest / name
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "cfg.json"
            cfg.write_text(json.dumps(demo_config(name)))
            cmd = [
                sys.executable,
                "-m",
                "gca_viz",
                "train",
                "--config",
                str(cfg),
                "--out",
                str(run_dir),
                "--log-every",
                "5",
            ]
            subprocess.run(cmd, check=True)
        _prune(run_dir)
        out.append(run_dir)
    return out


def _prune(run_dir: Path) -> None:
    """Keep the shipped files small: no checkpoint, and only the last plan snapshot (the
    embedding snapshots, a few KB each, are what the Geometry page animates)."""
    (run_dir / "checkpoint.pt").unlink(missing_ok=True)
    plans = sorted((run_dir / "snapshots").glob("*_plan.npz"))
    for path in plans[:-1]:
        path.unlink()


def install(store: Any, source: Path = ASSETS) -> list[int]:
    """Import the shipped demo runs into ``store`` (a :class:`gca_viz.runs.RunStore`) unless
    that was done before; returns the new run ids (empty when nothing was imported)."""
    with store._db(write=True) as db:
        done = db.execute("SELECT value FROM settings WHERE key=?", (_MARKER,)).fetchone()
        if done:
            return []
        db.execute("INSERT INTO settings VALUES (?, '1')", (_MARKER,))
    return [
        store.import_directory(source / name, name=name)
        for name in DEMO_RUNS
        if (source / name / "config.json").exists()
    ]


if __name__ == "__main__":
    for path in generate():
        print(path)
