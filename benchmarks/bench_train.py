"""Training throughput of every method on digits, and the default run's time to accuracy.

1. Steps per second of each method in ``gca_viz.losses.LOSSES`` with the default config
   (digits, MLP, batch 256, joint layout, ``ε = 0.5``, ``T = 10``), as a ratio to ``ince``
   measured in the same process, methods interleaved round by round; medians quoted.
2. The default run (``TrainConfig()``) trained until its linear-probe accuracy reaches the
   target, evaluating every ``--eval-every`` steps; the wall time includes evaluation.
3. Reference lines from the same run: logistic regression and k-NN on raw pixels.

Targets (issue 4): the default digits run reaches >= 95% linear-probe accuracy within 30 s
on 2 CPU cores; every GCA method's step time is within 1.5x of ``ince``'s.

With ``--encoder`` (for example ``resnet18 --image-size 32 --batch 512``, a CIFAR-sized
step on a GPU) the benchmark instead times one optimisation step of that encoder and a
projection head on random ``3 x S x S`` images, two cheap views on the device (noise and a
flip), for every method and for a plain NT-Xent (``nt_xent`` of ``_device_refs``, SimCLR's loss
as ``F.cross_entropy`` over the ``2N x 2N`` similarities), the reference of the ratios. On
CUDA, GCA-INCE, GCA-UOT and GCA-RINCE are timed a second time with their solves replayed
from CUDA graphs (``<method> graph``, :func:`gca_viz.ot.cuda_graphs`), and the step targets
of issue 17 are judged on the faster of the two.

    python benchmarks/bench_train.py [--device cpu|cuda] [--steps 20] [--quick]
    python benchmarks/bench_train.py --device cuda --encoder resnet18 --image-size 32 --batch 512
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # (_device_refs)

from _device_refs import nt_xent

from gca_viz import data, losses, metrics, models
from gca_viz.device import keep_freed_memory
from gca_viz.ot import cuda_graphs
from gca_viz.train import TrainConfig, Trainer, set_threads

GRAPHED = ("gca_ince", "gca_uot", "gca_rince")  # also timed with gca_viz.ot.cuda_graphs
STEP_TARGETS = {"ince": 1.03, "gca_ince": 1.10, "gca_uot": 1.20}  # x nt_xent


def encoder_step_times(args: argparse.Namespace) -> None:
    """Median ms per optimisation step of ``args.encoder`` + a projection head on random
    images, for every method and :func:`nt_xent`, rounds interleaved."""
    device = torch.device(args.device)
    shape = (3, args.image_size, args.image_size)
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, *shape, generator=gen).to(device)
    names = ["ince", "gca_ince"] if args.quick else list(losses.LOSSES)
    fns = {"nt_xent (ref)": nt_xent}
    fns.update({name: losses.get(name, layout="joint") for name in names})
    steppers = {}
    for name, loss in fns.items():
        torch.manual_seed(0)
        model = models.ContrastiveModel(args.encoder, shape, out_dim=128).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=0.01)

        def step(model=model, opt=opt, loss=loss) -> None:
            noise = 0.1 * torch.randn_like(images)
            z1, z2 = model(images + noise), model(images.flip(-1) - noise)
            opt.zero_grad(set_to_none=True)
            loss(z1, z2).backward()
            opt.step()

        steppers[name] = step
        if device.type == "cuda" and name in GRAPHED:

            def graphed(step=step) -> None:
                with cuda_graphs():  # the loss's solve, forward and backward, replayed
                    step()

            steppers[f"{name} graph"] = graphed
    times: dict[str, list[float]] = {name: [] for name in steppers}
    for step in steppers.values():  # warm-up (twice: a graph is captured on its second call)
        step()
        step()
    for _ in range(args.rounds):
        for name, step in steppers.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / args.steps)
    ref = statistics.median(times["nt_xent (ref)"])
    print(
        f"\n{args.encoder} on {args.batch} random {shape[0]}x{shape[1]}x{shape[2]} images, "
        f"device {device}, {args.rounds} rounds of {args.steps} steps"
    )
    print(f"{'method':<16}{'ms/step':>10}{'x nt_xent':>11}  target (issue 17, on a GPU)")
    best: dict[str, float] = {}
    for name, ts in times.items():
        med = statistics.median(ts)
        base = name.removesuffix(" graph")
        best[base] = min(best.get(base, math.inf), med / ref)
        print(f"{name:<16}{1e3 * med:>10.2f}{med / ref:>11.2f}")
    for name, limit in STEP_TARGETS.items():
        if name in best:
            verdict = "PASS" if best[name] <= limit else "FAIL"
            how = " (the faster of eager and graph)" if name in GRAPHED else ""
            print(f"{name}{how} within {limit:.2f}x of nt_xent: {verdict}")
    if device.type != "cuda":
        print("(graph rows: CUDA only)")


def step_times(device: str, steps: int, rounds: int, threads: int) -> dict[str, list[float]]:
    trainers = {
        name: Trainer(TrainConfig(method=name, device=device, steps=10**6, threads=threads))
        for name in losses.LOSSES
    }
    for t in trainers.values():  # warm-up
        for _ in range(3):
            t.train_step()
    times: dict[str, list[float]] = {name: [] for name in trainers}
    for _ in range(rounds):
        for name, t in trainers.items():
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            for _ in range(steps):
                t.train_step()
            if device == "cuda":
                torch.cuda.synchronize()
            times[name].append((time.perf_counter() - start) / steps)
    return times


def time_to_accuracy(device: str, target: float, eval_every: int, budget: int) -> None:
    start = time.perf_counter()
    trainer = Trainer(TrainConfig(device=device, steps=budget))
    setup = time.perf_counter() - start
    print(f"\ndefault run (TrainConfig(), device={trainer.device}): set-up {setup:.1f} s")
    print(f"{'step':>6}{'wall s':>9}{'probe':>8}{'knn':>8}{'knn(z)':>8}")
    acc0 = trainer.evaluate()
    print(
        f"{0:>6}{time.perf_counter() - start:>9.1f}{acc0['probe_acc']:>8.3f}"
        f"{acc0['knn_acc']:>8.3f}{acc0['knn_acc_embedding']:>8.3f}  (random encoder)"
    )
    reached = None
    while trainer.step < budget:
        for _ in range(eval_every):
            trainer.train_step()
        ev = trainer.evaluate()
        wall = time.perf_counter() - start
        print(
            f"{trainer.step:>6}{wall:>9.1f}{ev['probe_acc']:>8.3f}{ev['knn_acc']:>8.3f}"
            f"{ev['knn_acc_embedding']:>8.3f}"
        )
        if reached is None and ev["probe_acc"] >= target:
            reached = wall
            break
    verdict = f"PASS: {reached:.1f} s" if reached is not None and reached <= 30 else "FAIL"
    print(f"target probe >= {target:.2f} within 30 s: {verdict}")


def raw_pixel_references() -> None:
    train, test = data.load_dataset("digits").split(0.25, seed=0)
    flat = (train.x.flatten(1), test.x.flatten(1))
    lr = metrics.linear_probe_accuracy(flat[0], train.y, flat[1], test.y)
    knn = metrics.knn_accuracy(flat[0], train.y, flat[1], test.y, k=5)
    print(
        f"\nreference on raw pixels (same split): logistic regression {lr:.3f}, "
        f"k-NN (k=5, cosine) {knn:.3f}"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=20, help="steps per timing round")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--eval-every", type=int, default=25)
    ap.add_argument("--target", type=float, default=0.95)
    ap.add_argument("--quick", action="store_true", help="2 rounds of 3 steps (smoke test)")
    ap.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads (0: torch's default, one per physical core)",
    )
    ap.add_argument("--encoder", default=None, help="time this encoder on random images instead")
    ap.add_argument("--image-size", type=int, default=32, help="side S of the random images")
    ap.add_argument("--batch", type=int, default=512, help="images per step (with --encoder)")
    args = ap.parse_args()
    keep_freed_memory()  # as a training process does (gca_viz.device)
    if args.quick:
        args.steps, args.rounds = 3, 2
    print(f"torch {torch.__version__}, device {args.device}")
    set_threads(args.threads)  # before any trainer (its threads=0 keeps it)
    if args.encoder is not None:
        if args.quick:  # a smoke run: a tiny step of the same code, three losses
            args.steps, args.rounds = 1, 1
            args.image_size, args.batch = min(args.image_size, 8), min(args.batch, 8)
        encoder_step_times(args)
        return
    times = step_times(args.device, args.steps, args.rounds, args.threads)
    print(f"{torch.get_num_threads()} torch threads")
    ref = statistics.median(times["ince"])
    print(f"\n{'method':<12}{'ms/step':>10}{'steps/s':>10}{'x ince':>9}  target (<= 1.5x)")
    for name, ts in times.items():
        med = statistics.median(ts)
        gca = name.startswith("gca_")
        verdict = ("PASS" if med / ref <= 1.5 else "FAIL") if gca else ""
        print(f"{name:<12}{1e3 * med:>10.2f}{1 / med:>10.1f}{med / ref:>9.2f}  {verdict}")
    raw_pixel_references()
    time_to_accuracy(args.device, args.target, args.eval_every, budget=10 if args.quick else 2000)


if __name__ == "__main__":
    main()
