"""Does GCA-UOT beat INCE on noisy views at this scale? A small training sweep.

Each setting trains an MLP on digits (the demo runs' config: 300 steps, batch 256, 3-D
embeddings) with a share ``p`` of each batch's positive pairs mismatched (the second view
swapped with another sample's, :func:`gca_viz.augment.mismatch_views`, strength ``s``), for
several seeds, and evaluates k-NN accuracy on clean test digits and on test digits corrupted
with severity 0.5 (:func:`gca_viz.augment.corrupt`), of the backbone features ``h`` and of
the normalised 3-D embeddings ``ẑ`` (``_z`` in the results). Methods:

* ``ince``: INCE (NT-Xent) at the setting's ``ε``.
* ``gca_ince``: GCA-INCE (balanced Sinkhorn, ``T = 10``): what the full solve does without the
  relaxation.
* ``gca_uot``: the preset (``λ1 = λ2 = 0.2``, ``r2 = 0.2``, ``q = 0.6``, ``T = 10``).
* ``gca_uot_l0.01``: the preset with ``λ1 = λ2 = 0.01`` (looser marginals).
* ``gca_uot_kl``: the preset without its RINCE term (``r2 = 0``): the relaxation alone.
* ``gca_uot_l100``: the preset with ``λ1 = λ2 = 100`` (marginals nearly held): its RINCE
  term without the relaxation.
* ``rince``: RINCE (``q = 1``), the robust term alone, for reference.

For every setting the table gives mean ± standard deviation over seeds and, per method, the
paired difference to INCE (same seeds, same batches and augmentations): mean, its standard
error, and ``beats`` when the mean exceeds twice the standard error. Results are written as
JSON (``--out``) so ``benchmarks/README.md``'s table can be rebuilt from them.

    python benchmarks/sweep_noisy.py [--seeds 3] [--shares 0 0.3 0.6] [--epsilons 0.5 0.2]
        [--steps 300] [--out sweep_noisy.json] [--quick]
    python benchmarks/sweep_noisy.py --merge a.json b.json --out sweep_noisy.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from gca_viz import demo
from gca_viz.train import TrainConfig, Trainer

METHODS: dict[str, dict[str, Any]] = {
    "ince": {"method": "ince"},
    "gca_ince": {"method": "gca_ince"},
    "gca_uot": {"method": "gca_uot"},
    "gca_uot_l0.01": {"method": "gca_uot", "loss_params": {"relax_a": 0.01, "relax_b": 0.01}},
    "gca_uot_kl": {"method": "gca_uot", "loss_params": {"r2": 0.0}},
    "gca_uot_l100": {"method": "gca_uot", "loss_params": {"relax_a": 100.0, "relax_b": 100.0}},
    "rince": {"method": "rince"},
}
"""Sweep name -> TrainConfig fields."""
TEST_CORRUPTION = 0.5
TESTS = ("clean", "corrupted", "clean_z", "corrupted_z")
"""A run's accuracies: k-NN of the backbone features h on clean and corrupted test digits,
and (``_z``) of the 3-D embeddings ẑ."""


def run_one(
    method: str, share: float, strength: float, eps: float, seed: int, steps: int, augment: str
) -> dict[str, float]:
    """Train one run in this process; its clean and corrupted k-NN accuracies."""
    spec = METHODS[method]
    loss_params = {**spec.get("loss_params", {}), "epsilon": eps}
    cfg = TrainConfig.from_dict(
        {
            **demo.demo_config("demo-ince"),
            "method": spec["method"],
            "loss_params": loss_params,
            "augment": augment,
            "steps": steps,
            "seed": seed,
            "noisy_pairs": share,
            "noisy_strength": strength,
            "eval_every": 0,
            "snapshot_every": 0,
            "checkpoint_every": 0,
            "threads": 1,
        }
    )
    trainer = Trainer(cfg)
    trainer.fit()
    clean = trainer.evaluate()
    trainer.config.eval_corruption = TEST_CORRUPTION
    corrupted = trainer.evaluate()
    return {
        "clean": clean["knn_acc"],
        "corrupted": corrupted["knn_acc"],
        "clean_z": clean["knn_acc_embedding"],
        "corrupted_z": corrupted["knn_acc_embedding"],
    }


def summarise(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean, sd and the paired difference to INCE per (setting, method)."""
    rows = []
    key = ("augment", "share", "strength", "epsilon")
    settings = sorted({tuple(r[k] for k in key) for r in results})
    for setting in settings:
        here = [r for r in results if tuple(r[k] for k in key) == setting]
        base = {r["seed"]: r for r in here if r["method"] == "ince"}
        for method in METHODS:
            runs = sorted((r for r in here if r["method"] == method), key=lambda r: r["seed"])
            if not runs:
                continue
            row: dict[str, Any] = dict(zip(key, setting, strict=True)) | {"method": method}
            for test in TESTS:
                if any(test not in r for r in runs):  # (a file from before the embedding's)
                    continue
                values = [r[test] for r in runs]
                row[test] = statistics.fmean(values)
                row[f"{test}_sd"] = statistics.stdev(values) if len(values) > 1 else math.nan
                diffs = [r[test] - base[r["seed"]][test] for r in runs if r["seed"] in base]
                if method != "ince" and len(diffs) > 1:
                    mean = statistics.fmean(diffs)
                    se = statistics.stdev(diffs) / math.sqrt(len(diffs))
                    row[f"{test}_diff"], row[f"{test}_se"] = mean, se
                    row[f"{test}_beats"] = mean > 2 * se and mean > 0
            row["seeds"] = len(runs)
            rows.append(row)
    return rows


def print_table(rows: list[dict[str, Any]], z: str = "") -> None:
    """The table of the backbone's accuracies (``z=""``) or the embedding's (``"_z"``)."""
    tests = (f"clean{z}", f"corrupted{z}")
    head = (
        f"{'augment':>9}{'p':>6}{'s':>5}{'ε':>6}  {'method':<15}{'clean':>15}"
        f"{'corrupted':>16}{'Δ clean vs INCE':>24}{'Δ corrupted vs INCE':>24}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        if tests[0] not in r:
            continue
        diffs = [
            f"{r[f'{t}_diff']:+.3f} ± {r[f'{t}_se']:.3f}{'  beats' if r[f'{t}_beats'] else ''}"
            if f"{t}_diff" in r
            else ""
            for t in tests
        ]
        print(
            f"{r['augment']:>9}{r['share']:>6g}{r['strength']:>5g}{r['epsilon']:>6g}  "
            f"{r['method']:<15}"
            + "".join(f"{r[t]:>8.3f} ± {r[f'{t}_sd']:.3f}" for t in tests)
            + "".join(f"{d:>24}" for d in diffs)
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--shares", type=float, nargs="+", default=[0.0, 0.3, 0.6])
    ap.add_argument("--strength", type=float, default=1.0)
    ap.add_argument("--epsilons", type=float, nargs="+", default=[0.5, 0.2])
    ap.add_argument("--augment", nargs="+", default=["standard"])
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=None, help="write the runs and table as JSON")
    ap.add_argument("--quick", action="store_true", help="2 seeds, 30 steps, one setting")
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="+",
        default=None,
        help="train nothing: summarise the runs of these --out files together",
    )
    ap.add_argument("--note", default=None, help="a line stored in the --out file")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.steps, args.shares, args.epsilons = 2, 30, [0.5], [0.5]
    grid = list(itertools.product(args.augment, args.shares, args.epsilons, range(args.seeds)))
    results = merge(args.merge) if args.merge else []
    if args.merge:
        grid = []
    start = time.perf_counter()
    for k, (augment, share, eps, seed) in enumerate(grid, start=1):
        for method in args.methods:
            acc = run_one(method, share, args.strength, eps, seed, args.steps, augment)
            results.append(
                {
                    "augment": augment,
                    "share": share,
                    "strength": args.strength,
                    "epsilon": eps,
                    "seed": seed,
                    "method": method,
                    "steps": args.steps,
                    **acc,
                }
            )
        elapsed = time.perf_counter() - start
        print(f"[{k}/{len(grid)}] {augment} p={share:g} ε={eps:g} seed {seed}: {elapsed:.0f} s")
    rows = summarise(results)
    steps = "/".join(sorted({str(r.get("steps", "?")) for r in results}))
    seeds = max(Counter(run_key(r)[:-1] for r in results).values())
    print(
        f"\nk-NN accuracy, {steps} steps, up to {seeds} seeds, test corruption "
        f"{TEST_CORRUPTION:g}; Δ = paired mean difference to INCE ± its standard error\n"
    )
    for z, what in (("", "backbone h"), ("_z", "embedding ẑ")):
        print(f"k-NN accuracy of the {what}:\n")
        print_table(rows, z)
        key = f"corrupted{z}"
        wins = [r for r in rows if r.get(f"{key}_beats") and r["method"].startswith("gca_uot")]
        print()
        if wins:
            best = max(wins, key=lambda r: r[f"{key}_diff"])
            print(
                f"GCA-UOT beats INCE on corrupted test views ({what}) in {len(wins)} "
                f"setting(s); largest: {best['method']} at augment={best['augment']}, "
                f"p={best['share']:g}, ε={best['epsilon']:g}: {best[f'{key}_diff']:+.3f} ± "
                f"{best[f'{key}_se']:.3f}\n"
            )
        else:
            print(f"GCA-UOT does not beat INCE on corrupted test views ({what}) in any setting.\n")
    if args.out is not None:
        note = {"note": args.note} if args.note else {}
        args.out.write_text(json.dumps({**note, "runs": results, "table": rows}, indent=1))


def run_key(run: dict[str, Any]) -> tuple[Any, ...]:
    """What names a run: its setting, method and seed."""
    return tuple(run[k] for k in ("augment", "share", "strength", "epsilon", "method", "seed"))


def merge(files: list[Path]) -> list[dict[str, Any]]:
    """The runs of several ``--out`` files, each (setting, method, seed) once: a run trained
    in two of them must have given the same accuracies (training is deterministic on one
    machine), else the files came from different code and cannot be pooled."""
    runs: dict[tuple[Any, ...], dict[str, Any]] = {}
    for file in files:
        for run in json.loads(file.read_text())["runs"]:
            key = run_key(run)
            if key in runs and any(runs[key].get(t) != run.get(t) for t in TESTS):
                raise SystemExit(f"--merge: {file} trained {key} to other accuracies")
            runs.setdefault(key, run)
    return list(runs.values())


if __name__ == "__main__":
    main()
