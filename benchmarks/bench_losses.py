"""Forward + backward time of every loss in ``gca_viz.losses.LOSSES``, as ratios to INCE.

Joint layout (``2N x 2N``, SimCLR's), ``d = 128``, float32, each method at its paper
defaults (``ε = 0.5``, ``T = 10`` sweeps), on the CPU or on ``--device``. Every method is
timed in the same process on the same embeddings, interleaved round by round so machine
noise hits all of them alike; the table quotes medians. Reference lines (GCA-INCE's plan
and loss computed other ways):

* a naive GCA-INCE that forms ``diag(u) K diag(v)`` with dense matrix products, the
  implementation the paper's code uses;
* a plain NT-Xent (SimCLR's ``cross_entropy`` form): what ``ince`` computes, written the
  usual way;
* on CUDA, ``gca_ince graph`` and ``gca_uot graph``: the same losses with their solves
  replayed from CUDA graphs (:func:`gca_viz.ot.cuda_graphs`);
* with ``--device``: POT's ``ot.sinkhorn`` on its torch backend (autograd through its
  loop), the bare kernel-domain loop in plain torch (eager), that loop with its forward
  and backward captured in CUDA graphs (CUDA only), and GCA-INCE in OTT-JAX (jitted,
  differentiated through its sweeps; when ``ott-jax`` is installed with JAX's build for
  the device, else a line says why not).

Target (issue 3): ``gca_ince`` and ``gca_uot`` take at most 3x the time of ``ince``.

    python benchmarks/bench_losses.py [--sizes 256 512] [--repeats 15] [--quick]
    python benchmarks/bench_losses.py --device cuda [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # (_device_refs)

from _device_refs import graphed_loss, nt_xent, ott_gca_ince, pot_torch, sync

from gca_viz import losses
from gca_viz.device import keep_freed_memory
from gca_viz.ot import cuda_graphs

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def dense_gca_ince(z1: torch.Tensor, z2: torch.Tensor, eps: float = 0.5, n_iter: int = 10):
    """Reference only: kernel-domain Sinkhorn with dense ``diag(u) @ K @ diag(v)`` products."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    n2 = z.shape[0]
    eye = torch.eye(n2, device=z.device)
    K = torch.exp((z @ z.T - 1) / eps) * (1 - eye)  # (2N, 2N), self-pairs removed
    P = K
    for _ in range(n_iter):
        P = torch.diag(1 / P.sum(1)) @ P  # row projection
        P = P @ torch.diag(1 / P.sum(0))  # column projection
    idx = torch.arange(n2, device=z.device)
    return -torch.log(P[idx, (idx + n2 // 2) % n2]).mean()


class BareGCAINCE(torch.nn.Module):
    """Reference only: GCA-INCE by the bare kernel-domain loop ``u = μ / K v``,
    ``v = ν / K^T u`` in plain torch (no checks), ``-log P_i,pos(i)`` averaged."""

    def __init__(self, eps: float = 0.5, n_iter: int = 10) -> None:
        super().__init__()
        self.eps, self.n_iter = eps, n_iter

    def forward(self, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
        z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
        n2 = z.shape[0]
        K = torch.exp((z @ z.T - 1) / self.eps) * (1 - torch.eye(n2, device=z.device))
        mu = torch.full((n2,), 1.0 / n2, device=z.device, dtype=z.dtype)
        v = torch.ones_like(mu)
        for _ in range(self.n_iter):
            u = mu / torch.mv(K, v)
            v = mu / torch.mv(K.T, u)
        idx = torch.arange(n2, device=z.device)
        pos = (idx + n2 // 2) % n2
        return -torch.log(n2 * u * K[idx, pos] * v[pos]).mean()


def pot_gca_ince(z1: torch.Tensor, z2: torch.Tensor, eps: float = 0.5, n_iter: int = 10):
    """Reference only: GCA-INCE's plan from POT's ``ot.sinkhorn`` (torch backend)."""
    z = torch.nn.functional.normalize(torch.cat([z1, z2]), dim=1)  # (2N, d)
    n2 = z.shape[0]
    eye = torch.eye(n2, device=z.device, dtype=torch.bool)
    C = (1 - z @ z.T).masked_fill(eye, float("inf"))  # (2N, 2N), self-pairs excluded
    mu = torch.full((n2,), 1.0 / n2, device=z.device, dtype=z.dtype)
    P = pot_torch(C, mu, mu, eps, n_iter, "sinkhorn")
    idx = torch.arange(n2, device=z.device)
    return -torch.log(n2 * P[idx, (idx + n2 // 2) % n2]).mean()


def time_step(fn: Loss, z1: torch.Tensor, z2: torch.Tensor) -> float:
    a = z1.detach().clone().requires_grad_(True)
    b = z2.detach().clone().requires_grad_(True)
    sync(a.device)
    start = time.perf_counter()
    fn(a, b).backward()
    sync(a.device)
    return time.perf_counter() - start


def replayed(loss: Loss) -> Loss:
    """``loss`` with its solve, forward and backward, replayed from CUDA graphs
    (:func:`gca_viz.ot.cuda_graphs`; captured on the warm-up's second call)."""

    def call(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        with cuda_graphs():
            return loss(a, b)

    return call


def _time_call(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()  # (it waits for its result)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--device", default=None, help="cuda (or cpu): add the device references")
    ap.add_argument("--quick", action="store_true", help="N = 64, 3 repeats (smoke test)")
    args = ap.parse_args()
    keep_freed_memory()  # as a training process does (gca_viz.device)
    if args.quick:
        args.sizes, args.repeats = [64], 3
    device = torch.device(args.device or "cpu")
    torch.set_num_threads(os.cpu_count() or 1)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, joint layout, "
        f"device {device}"
    )

    for n in args.sizes:
        gen = torch.Generator().manual_seed(n)
        z1 = torch.randn(n, args.dim, generator=gen)
        z2 = (z1 + 0.5 * torch.randn(n, args.dim, generator=gen)).to(device)
        z1 = z1.to(device)
        fns: dict[str, Loss] = {name: losses.get(name, layout="joint") for name in losses.LOSSES}
        fns["dense diag(u)K diag(v) (ref)"] = dense_gca_ince
        fns["plain NT-Xent (ref)"] = nt_xent  # ince's loss, written plainly
        ott_call = ott_gca_ince(z1, z2) if args.device is not None else None
        if args.device is not None:
            fns["POT-torch sinkhorn (ref)"] = pot_gca_ince
            fns["bare loop, eager (ref)"] = BareGCAINCE()
            if device.type == "cuda":
                fns["bare loop, CUDA graph (ref)"] = graphed_loss(BareGCAINCE(), z1, z2)
                for name in ("gca_ince", "gca_uot"):
                    fns[f"{name} graph"] = replayed(fns[name])
        times: dict[str, list[float]] = {k: [] for k in fns}
        for fn in fns.values():  # warm-up (twice: a graph is captured on its second call)
            time_step(fn, z1, z2)
            time_step(fn, z1, z2)
        if callable(ott_call):
            times["OTT-JAX gca_ince (ref)"] = []
        for _ in range(args.repeats):
            for name, fn in fns.items():
                times[name].append(time_step(fn, z1, z2))
            if callable(ott_call):
                times["OTT-JAX gca_ince (ref)"].append(_time_call(ott_call))
        ref = statistics.median(times["ince"])
        print(f"\nN = {n} (plan {2 * n} x {2 * n}), d = {args.dim}, {args.repeats} repeats")
        print(f"{'method':<32}{'fwd+bwd ms':>12}{'x ince':>9}  target")
        for name, ts in times.items():
            med = statistics.median(ts)
            target = ""
            if name in ("gca_ince", "gca_uot"):
                target = "PASS (<= 3x)" if med / ref <= 3.0 else "FAIL (> 3x)"
            print(f"{name:<32}{1e3 * med:>12.2f}{med / ref:>9.2f}  {target}")
        if args.device is not None and device.type != "cuda":
            print(f"{'bare loop, CUDA graph (ref)':<32}{'n/a':>12}  (CUDA only)")
        if isinstance(ott_call, str):
            print(f"{'OTT-JAX gca_ince (ref)':<32}{'n/a':>12}  ({ott_call})")


if __name__ == "__main__":
    main()
