"""The recorder's overhead on a training step (gca_viz.watch.Recorder, issue 18).

The loop is the default run's step (``TrainConfig()``: digits, MLP, batch 256, InfoNCE in
the joint layout) on one :class:`gca_viz.train.Trainer`; "with" segments also call
``rec.step(step, loss=...)`` and ``rec.batch(step, z1, z2, labels=y)`` every step, with a
snapshot every ``--snapshot-every`` steps (plan, metrics, embeddings). Each "with" segment
makes its own Recorder (registering a run in a temporary store) and finishes it inside the
timed region, so the figure includes registration, the background thread's writes and the
final flush: an upper bound for a long run. Segments of ``--steps`` steps alternate
("without", "with") for ``--rounds`` rounds on the same trainer; the overhead is the
median "with" time over the median "without" time, minus 1 (wall clock, and process CPU
time, which counts the writer thread's work on another core too). It also prints the
recorder's own work per step, which a loaded machine does not blur: the loop's time inside
``rec.step`` and ``rec.batch``, and the writer thread's CPU time (``Recorder.writer_cpu``).

Target (issue 18): below 3% with snapshots every 50 steps on the CPU default model.

    python benchmarks/bench_watch.py [--device cpu|cuda] [--steps 200] [--rounds 7] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import warnings

import torch

from gca_viz.train import TrainConfig, Trainer
from gca_viz.watch import Recorder


def segment(trainer: Trainer, steps: int, rec: Recorder | None) -> float:
    """Train ``steps`` steps; return the seconds spent inside the recorder's calls."""
    inside = 0.0
    for _ in range(steps):
        logs = trainer.train_step()
        if rec is not None:
            start = time.perf_counter()
            assert trainer._last_batch is not None
            z1, z2, idx = trainer._last_batch
            rec.step(trainer.step, loss=logs["loss"], step_time=logs["step_time"])
            rec.batch(trainer.step, z1, z2, labels=trainer.train_set.y[idx])
            inside += time.perf_counter() - start
    return inside


def timed(trainer: Trainer, steps: int, store: str | None, every: int) -> tuple[float, ...]:
    """``(wall, process CPU, loop time inside the recorder's calls, the recorder's writer
    thread's CPU)`` per step."""
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    sync()
    start, cpu = time.perf_counter(), time.process_time()
    rec = None
    if store is not None:
        rec = Recorder(store, name="bench", loss=trainer.loss_fn, snapshot_every=every)
    inside = segment(trainer, steps, rec)
    if rec is not None:
        rec.finish()
    sync()
    wall = time.perf_counter() - start
    writer = rec.writer_cpu if rec is not None else 0.0
    return wall / steps, (time.process_time() - cpu) / steps, inside / steps, writer / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=200, help="steps per segment")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--snapshot-every", type=int, default=50)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: all cores)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 rounds of 20 steps")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.rounds, args.snapshot_every = 20, 2, 10
    trainer = Trainer(TrainConfig(device=args.device, steps=10**7, threads=args.threads))
    segment(trainer, 5, None)  # warm-up
    without: list[tuple[float, ...]] = []
    with_rec: list[tuple[float, ...]] = []
    with tempfile.TemporaryDirectory() as store, warnings.catch_warnings():
        warnings.simplefilter("error")  # a recorder warning would make the figure meaningless
        for _ in range(args.rounds):
            without.append(timed(trainer, args.steps, None, args.snapshot_every))
            with_rec.append(timed(trainer, args.steps, store, args.snapshot_every))
    print(
        f"device {trainer.device}, {torch.get_num_threads()} threads, {args.rounds} rounds of "
        f"{args.steps} steps, a snapshot every {args.snapshot_every} steps"
    )
    print(f"{'ms / step':>10}{'wall median':>13}{'min':>8}{'max':>8}{'CPU median':>12}")
    for name, rows in (("without", without), ("with", with_rec)):
        wall, cpu = [r[0] * 1e3 for r in rows], [r[1] * 1e3 for r in rows]
        print(
            f"{name:>10}{statistics.median(wall):>13.2f}{min(wall):>8.2f}{max(wall):>8.2f}"
            f"{statistics.median(cpu):>12.2f}"
        )
    overhead = {
        kind: statistics.median(r[i] for r in with_rec) / statistics.median(r[i] for r in without)
        - 1
        for i, kind in enumerate(("wall", "CPU"))
    }
    base = statistics.median(r[0] for r in without)
    inside = statistics.median(r[2] for r in with_rec) / base
    writer = statistics.median(r[3] for r in with_rec) / base
    paired = sorted(w[0] / b[0] - 1 for w, b in zip(with_rec, without, strict=True))
    print(
        f"overhead: wall {overhead['wall']:+.2%} (paired rounds "
        f"{', '.join(f'{p:+.1%}' for p in paired)}), process CPU {overhead['CPU']:+.2%}"
    )
    print(
        f"the recorder's own work per step, as a share of a step: {inside:.2%} in the loop's "
        f"calls (the loop waits for it), {writer:.2%} CPU of its writer thread (another core)"
    )
    print(f"target < 3% (wall): {'PASS' if overhead['wall'] < 0.03 else 'FAIL'}")


if __name__ == "__main__":
    main()
