"""Forward + backward time of every loss in ``gca_viz.losses.LOSSES``, as ratios to INCE.

Joint layout (``2N x 2N``, SimCLR's), ``d = 128``, CPU, float32, each method at its paper
defaults (``ε = 0.5``, ``T = 10`` sweeps). Every method is timed in the same process on the
same embeddings, interleaved round by round so machine noise hits all of them alike; the
table quotes medians. A reference line times a naive GCA-INCE that forms
``diag(u) K diag(v)`` with dense matrix products, the implementation the paper's code uses.

Target (issue 3): ``gca_ince`` and ``gca_uot`` take at most 3x the time of ``ince``.

    python benchmarks/bench_losses.py [--sizes 256 512] [--repeats 15] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import torch

from gca_viz import losses


def dense_gca_ince(z1: torch.Tensor, z2: torch.Tensor, eps: float = 0.5, n_iter: int = 10):
    """Reference only: kernel-domain Sinkhorn with dense ``diag(u) @ K @ diag(v)`` products."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    n2 = z.shape[0]
    K = torch.exp((z @ z.T - 1) / eps) * (1 - torch.eye(n2))  # (2N, 2N), self-pairs removed
    P = K
    for _ in range(n_iter):
        P = torch.diag(1 / P.sum(1)) @ P  # row projection
        P = P @ torch.diag(1 / P.sum(0))  # column projection
    idx = torch.arange(n2)
    return -torch.log(P[idx, (idx + n2 // 2) % n2]).mean()


def time_step(fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], z1, z2) -> float:
    a = z1.detach().clone().requires_grad_(True)
    b = z2.detach().clone().requires_grad_(True)
    start = time.perf_counter()
    fn(a, b).backward()
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--quick", action="store_true", help="N = 64, 3 repeats (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.sizes, args.repeats = [64], 3
    torch.set_num_threads(os.cpu_count() or 1)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, joint layout")

    for n in args.sizes:
        gen = torch.Generator().manual_seed(n)
        z1 = torch.randn(n, args.dim, generator=gen)
        z2 = z1 + 0.5 * torch.randn(n, args.dim, generator=gen)
        fns: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
            name: losses.get(name, layout="joint") for name in losses.LOSSES
        }
        fns["dense diag(u)K diag(v) (ref)"] = dense_gca_ince
        times: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():  # warm-up
            time_step(fn, z1, z2)
        for _ in range(args.repeats):
            for name, fn in fns.items():
                times[name].append(time_step(fn, z1, z2))
        ref = statistics.median(times["ince"])
        print(f"\nN = {n} (plan {2 * n} x {2 * n}), d = {args.dim}, {args.repeats} repeats")
        print(f"{'method':<32}{'fwd+bwd ms':>12}{'x ince':>9}  target")
        for name, ts in times.items():
            med = statistics.median(ts)
            target = ""
            if name in ("gca_ince", "gca_uot"):
                target = "PASS (<= 3x)" if med / ref <= 3.0 else "FAIL (> 3x)"
            print(f"{name:<32}{1e3 * med:>12.2f}{med / ref:>9.2f}  {target}")


if __name__ == "__main__":
    main()
