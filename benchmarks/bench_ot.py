r"""Benchmark ``gca_viz.ot.sinkhorn`` against POT's Sinkhorn solvers and the memory floor.

Run from the repository root::

    python benchmarks/bench_ot.py            # default grid, about 5 minutes on a quiet box
    python benchmarks/bench_ot.py --quick    # smoke run: n = 256, 2 repeats
    python benchmarks/bench_ot.py --device cuda   # torch on a GPU vs POT-torch, bare loops

Every solver sees the same problem: the cosine cost ``C = 1 - <x_i, y_j>/(|x_i||y_j|)``
(values in ``[0, 2]``) of two independent sets of ``n`` standard Gaussian points in
dimension 32, uniform marginals, a fixed number of Sinkhorn sweeps (``--iters``) and no
early stopping. Ours gets ``torch.from_numpy(C)``; POT gets the numpy arrays themselves, so
it runs on its numpy backend. The memory floor is ``2 * iters`` bare matrix-vector
products with the same ``n x n`` matrix, the two of a sweep (``C v`` and ``C^T v``, with
``torch.mv`` and with numpy's ``@``): a kernel-domain Sinkhorn sweep reads the kernel twice,
once each way, so no such solver beats it.

Timings are medians over ``--repeats`` runs after one warm-up run (the two slow
log-domain solvers get ``--slow-repeats`` runs, the first of which is also the check run).
Every result is checked: a plan must be finite, the solver must have run every iteration,
and one marginal must hold (a Sinkhorn iterate always satisfies the marginal of its last
half-step). Solvers of one library are timed together, round-robin over the repeats, with
a short pause whenever the next run uses the other library's threads (also between ours
and the torch floor in a round), so that one library's idle worker threads are not spinning
while the other runs. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run as a script from a checkout, no install needed
    sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(REPO_ROOT / "benchmarks"))  # (_device_refs)

import numpy as np  # noqa: E402
import ot  # noqa: E402
import torch  # noqa: E402

from gca_viz.ot import clear_cuda_graphs, cuda_graphs, sinkhorn  # noqa: E402

try:  # optional (scikit-learn depends on it): report and set numpy's BLAS threads
    import threadpoolctl
except ImportError:  # pragma: no cover - depends on the environment
    threadpoolctl = None

TABLE_TITLE = "Sinkhorn timings"
"""First line of the results table (tests look for it)."""

POT_METHODS = {"sinkhorn": "sinkhorn", "stab": "sinkhorn_stabilized", "log": "sinkhorn_log"}
"""Short name -> the ``method`` passed to ``ot.sinkhorn``."""

FEATURE_DIM = 32
F32_EPS = 1e-3  # the float32 finiteness target (item 4 of the summary)
TARGETS = {"pot_ratio": 1.0, "floor_ratio": 1.3, "plan_diff": 1e-8}
MARGINAL_TOL = {"float64": 1e-6, "float32": 1e-3}  # L1 error of the exact marginal


# ------------------------------------------------------------------------------ problem


def make_cost(n: int, seed: int) -> np.ndarray:
    """``(n, n)`` float64 cosine cost of two independent Gaussian point sets, in ``[0, 2]``."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, FEATURE_DIM))
    y = rng.standard_normal((n, FEATURE_DIM))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    return np.clip(1.0 - x @ y.T, 0.0, 2.0)


def plan_status(plan: np.ndarray, a: np.ndarray) -> str:
    """``ok``, ``nonfinite`` (NaN/inf) or ``badmarg`` (neither marginal holds)."""
    if not np.isfinite(plan).all():
        return "nonfinite"
    p = plan.astype(np.float64)
    row = float(np.abs(p.sum(1) - a).sum())
    col = float(np.abs(p.sum(0) - a).sum())
    return "ok" if min(row, col) <= MARGINAL_TOL[plan.dtype.name] else "badmarg"


# ------------------------------------------------------------------------------- timing

Check = Callable[[Any, list[str]], tuple[str, Any]]


@dataclass
class Run:
    """One solver (or floor) timed on one problem."""

    name: str
    library: str  # "torch" or "numpy": runs of one library are timed together
    fn: Callable[[], Any]  # the timed call
    repeats: int
    check: Check | None = None  # (output, warnings) -> (status, plan as numpy)
    check_fn: Callable[[], Any] | None = None  # the checked call, if it differs (POT log=True)
    check_is_sample: bool = False  # slow solvers: the check run is also timed, no warm-up
    times_ms: list[float] = field(default_factory=list)
    status: str = "ok"  # ok | nonfinite | badmarg | abort@k | short@k | error
    plan: Any = None
    output: Any = None
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok" and bool(self.times_ms)

    @property
    def finite(self) -> bool:
        return self.plan is not None and bool(np.isfinite(self.plan).all())

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else math.nan

    def warm_up(self) -> None:
        """The first call: its result is checked (and timed for slow solvers)."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            try:
                out = (self.check_fn or self.fn)()
            except Exception as exc:  # a benchmark reports a crash, it does not stop
                self.status, self.error = "error", f"{type(exc).__name__}: {exc}"
                return
            elapsed = (time.perf_counter() - t0) * 1e3
        if self.check_is_sample:
            self.times_ms.append(elapsed)
        self.output = out
        if self.check is not None:
            self.status, self.plan = self.check(out, [str(w.message) for w in caught])

    @property
    def timed_repeats(self) -> int:
        return self.repeats - 1 if self.check_is_sample else self.repeats

    def time_once(self) -> None:
        if self.status == "error":
            return
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            self.fn()
            self.times_ms.append((time.perf_counter() - t0) * 1e3)


def run_block(runs: list[Run], pause: float, budget: float) -> None:
    """Warm up every run, then time them round-robin (repeat r of each, then r + 1).

    A run stops repeating once its timed runs add up to ``budget`` seconds (it always gets
    at least one), so a slow solver cannot stretch the benchmark without bound."""
    if not runs:
        return
    time.sleep(pause)  # let the other library's worker threads go idle
    for r in runs:
        r.warm_up()
    last = runs[-1].library
    for rep in range(max(r.timed_repeats for r in runs)):
        for r in runs:
            if rep < r.timed_repeats and (not r.times_ms or sum(r.times_ms) < budget * 1e3):
                if r.library != last:  # the other library's threads still spin: wait
                    time.sleep(pause)
                last = r.library
                r.time_once()


def time_all(runs: list[Run], args: argparse.Namespace) -> None:
    """Time torch runs together, then numpy runs together."""
    for library in ("torch", "numpy"):
        run_block([r for r in runs if r.library == library], args.pause, args.solver_budget)


# ------------------------------------------------------------------------------ solvers


def ours_run(
    name: str,
    Ct: torch.Tensor,
    at: torch.Tensor,
    eps: float,
    iters: int,
    method: str,
    reps: int,
    slow: bool = False,
) -> Run:
    def call() -> Any:
        return sinkhorn(Ct, at, at, epsilon=eps, n_iter=iters, method=method)

    def check(res: Any, _warned: list[str]) -> tuple[str, Any]:
        plan = res.plan.detach().cpu().numpy()
        if res.n_iter != iters:
            return f"short@{res.n_iter}", plan
        return plan_status(plan, at.numpy()), plan

    # On the CPU the absorbing engine makes its passes and products in numpy (OpenBLAS
    # threads), the log engine in torch (OpenMP threads).
    library = "numpy" if method == "absorb" and Ct.device.type == "cpu" else "torch"
    return Run(name, library, call, reps, check, check_is_sample=slow)


def pot_check(iters: int, a: np.ndarray) -> Check:
    """Status of a POT result computed with ``log=True``: every iteration, a valid plan?"""

    def check(out: Any, warned: list[str]) -> tuple[str, Any]:
        plan, log = out
        last = int(log.get("niter", log.get("n_iter", -1)))  # index of the last iteration
        if not np.isfinite(plan).all():
            return "nonfinite", plan
        if any("numerical errors" in w.lower() for w in warned):
            return f"abort@{last}", plan  # NaN/inf scalings: POT returned the stale iterate
        if last != iters - 1:
            return f"short@{last + 1}", plan
        return plan_status(plan, a), plan

    return check


def pot_call(
    C: np.ndarray, a: np.ndarray, eps: float, method: str, iters: int, stop: float, log: bool
) -> Any:
    with warnings.catch_warnings():
        if not log:
            warnings.simplefilter("ignore")
        return ot.sinkhorn(
            a, a, C, eps, method=method, numItermax=iters, stopThr=stop, log=log, warn=False
        )


def pot_run(
    name: str,
    C: np.ndarray,
    a: np.ndarray,
    eps: float,
    iters: int,
    method: str,
    reps: int,
    slow: bool = False,
) -> Run:
    return Run(
        name,
        "numpy",
        lambda: pot_call(C, a, eps, method, iters, 0.0, log=False),
        reps,
        pot_check(iters, a),
        check_fn=lambda: pot_call(C, a, eps, method, iters, 0.0, log=True),
        check_is_sample=slow,
    )


def floor_runs(C: np.ndarray, Ct: torch.Tensor, iters: int, reps: int) -> list[Run]:
    """``2 * iters`` bare matrix-vector products with the cost matrix, torch and numpy: the
    two of a sweep, ``C v`` and ``C^T v``, ``iters`` times (square ``C``). With several BLAS
    threads the transposed product is the slower one (here 8-9% for the pair).

    Third, the ``bare`` reference: the floor plus the passes over the matrix that every
    kernel-domain solver returning a plan must add (build the kernel, scale it into the
    plan), in plain numpy with no checks. ``bare / floor`` shows how close to the floor
    any such solver can get on this machine."""
    n = C.shape[1]
    v_np = np.full(n, 1.0 / n, dtype=C.dtype)
    v_t = torch.from_numpy(v_np.copy())
    C_T, Ct_T = C.T, Ct.T

    def torch_mv() -> None:
        for _ in range(iters):
            torch.mv(Ct, v_t)
            torch.mv(Ct_T, v_t)

    def numpy_mv() -> None:
        for _ in range(iters):
            C @ v_np
            C_T @ v_np

    a = np.full(n, 1.0 / n, dtype=C.dtype)

    def bare() -> np.ndarray:
        # The work any kernel-domain solver that returns the plan adds to the floor: build
        # a kernel (one scaling pass and a base-2 exp into a new matrix), the products with
        # the scalings u = a / (K v), v = a / (K^T u), and the plan u_i K_ij v_j (two
        # passes). No checks, no stabilisation: K = 2^(-C) keeps every entry normal at any
        # ε (subnormal entries would slow the products down), so the time does not depend
        # on ε.
        K = np.multiply(C, -1.0)
        np.exp2(K, out=K)
        v = np.ones(n, dtype=C.dtype)
        u = v
        for _ in range(iters):
            u = a / (K @ v)
            v = a / (K.T @ u)
        K *= v
        K *= u[:, None]
        return K

    def bare_check(plan: np.ndarray, _warned: list[str]) -> tuple[str, Any]:
        # its plan must be a Sinkhorn iterate too (of the kernel 2^(-C)): one marginal holds
        return plan_status(plan, a), None

    return [
        Run("floor torch", "torch", torch_mv, reps),
        Run("floor numpy", "numpy", numpy_mv, reps),
        Run("bare numpy", "numpy", bare, reps, check=bare_check),
    ]


# ----------------------------------------------------------------------------- the grid


@dataclass
class Row:
    n: int
    dtype: str
    eps: float
    runs: dict[str, Run]  # keys: ours, ours_log, sinkhorn, stab, log, floor_t, floor_np, bare

    def get(self, key: str) -> Run | None:
        return self.runs.get(key)

    def fastest_pot(self) -> Run | None:
        ok = [r for k in POT_METHODS if (r := self.runs.get(k)) is not None and r.ok]
        return min(ok, key=lambda r: r.median_ms) if ok else None

    def pot_ratio(self) -> float:
        ours, best = self.get("ours"), self.fastest_pot()
        if ours is None or not ours.ok or best is None:
            return math.nan
        return ours.median_ms / best.median_ms

    def floor_ratio(self, key: str = "ours") -> float:
        """Median over rounds of ``key``'s run (ours, or the bare reference) / the faster
        floor of the same round: they were timed back to back in each round, so a drift of
        the machine's speed cancels."""
        run = self.get(key)
        floors = [r.times_ms for k in ("floor_t", "floor_np") if (r := self.get(k)) and r.ok]
        if run is None or not run.ok or not floors:
            return math.nan
        rounds = min(len(run.times_ms), *(len(t) for t in floors))
        return statistics.median(run.times_ms[i] / min(t[i] for t in floors) for i in range(rounds))

    def bare_ratio(self) -> float:
        """Median over rounds of the bare reference solver / the faster floor."""
        return self.floor_ratio("bare")

    def plan_ref(self) -> Run | None:
        """The POT plan compared with ours: log, else stabilized, else plain sinkhorn."""
        for key in ("log", "stab", "sinkhorn"):
            r = self.get(key)
            if r is not None and r.status == "ok" and r.plan is not None:
                return r
        return None

    def plan_diff(self) -> float:
        ours, ref = self.get("ours"), self.plan_ref()
        if ours is None or ours.plan is None or ref is None:
            return math.nan
        return float(np.abs(ours.plan.astype(np.float64) - ref.plan.astype(np.float64)).max())


def bench_cell(C: np.ndarray, eps: float, args: argparse.Namespace) -> dict[str, Run]:
    n = C.shape[0]
    a = np.full(n, 1.0 / n, dtype=C.dtype)
    Ct, at = torch.from_numpy(C), torch.from_numpy(a)
    it, reps, slow = args.iters, args.repeats, min(args.slow_repeats, args.repeats)
    with_log = n <= args.log_max_n or args.full
    paired = max(reps, args.floor_repeats)
    runs: dict[str, Run] = {"ours": ours_run("ours", Ct, at, eps, it, "absorb", paired)}
    runs["floor_t"], runs["floor_np"], runs["bare"] = floor_runs(C, Ct, it, paired)
    # Ours, the floors and the bare reference round-robin in one block: ours / floor is a
    # target, so both sides of it are timed side by side under the same machine load.
    paired_runs = [runs["ours"], runs["floor_t"], runs["floor_np"], runs["bare"]]
    run_block(paired_runs, args.pause, args.solver_budget)
    others: dict[str, Run] = {}
    if with_log:
        others["ours_log"] = ours_run("ours-log", Ct, at, eps, it, "log", slow, slow=True)
    others["sinkhorn"] = pot_run("POT sinkhorn", C, a, eps, it, POT_METHODS["sinkhorn"], reps)
    others["stab"] = pot_run("POT stabilized", C, a, eps, it, POT_METHODS["stab"], reps)
    if with_log:
        others["log"] = pot_run("POT log", C, a, eps, it, POT_METHODS["log"], slow, slow=True)
    time_all(list(others.values()), args)
    runs.update(others)
    return runs


# ---------------------------------------------------------------------------- reporting


COLUMNS = [
    ("n", 5),
    ("dtype", 7),
    ("ε", 6),
    ("ours", 8),
    ("ours-log", 9),
    ("POT skh", 9),
    ("POT stab", 9),
    ("POT log", 9),
    ("floor t", 8),
    ("floor np", 8),
    ("bare np", 8),
    ("ours/POT", 8),
    ("ours/flr", 8),
    ("bare/flr", 8),
    ("max|ΔP|", 8),
    ("finite", 6),
]


def fmt_ms(r: Run | None) -> str:
    if r is None:
        return "-"
    if r.status != "ok":
        return r.status
    short = "*" if len(r.times_ms) < r.repeats else ""  # the solver budget cut the repeats
    return f"{r.median_ms:.1f}{short}"


def fmt_num(x: float, spec: str) -> str:
    return "-" if not math.isfinite(x) else format(x, spec)


def format_row(cells: list[str]) -> str:
    return "  ".join(c.rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True))


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    slow = min(args.slow_repeats, args.repeats)
    print(
        f"\n{TABLE_TITLE} ({args.iters} sweeps; median ms over {args.repeats} runs after a"
        f" warm-up, ours and the floors {max(args.repeats, args.floor_repeats)},"
        f" log solvers {slow})"
    )
    header = format_row([name for name, _ in COLUMNS])
    print(header)
    print("-" * len(header))
    for row in rows:
        ours = row.get("ours")
        finite = "-" if ours is None or ours.status == "error" else ("yes" if ours.finite else "NO")
        cells = [
            str(row.n),
            row.dtype,
            f"{row.eps:g}",
            fmt_ms(ours),
            fmt_ms(row.get("ours_log")),
            fmt_ms(row.get("sinkhorn")),
            fmt_ms(row.get("stab")),
            fmt_ms(row.get("log")),
            fmt_ms(row.get("floor_t")),
            fmt_ms(row.get("floor_np")),
            fmt_ms(row.get("bare")),
            fmt_num(row.pot_ratio(), ".2f"),
            fmt_num(row.floor_ratio(), ".2f"),
            fmt_num(row.bare_ratio(), ".2f"),
            fmt_num(row.plan_diff(), ".1e"),
            finite,
        ]
        print(format_row(cells))
    print(
        "\nours = gca_viz sinkhorn (method='absorb'), ours-log = method='log'; POT skh/stab/log"
        " = ot.sinkhorn method 'sinkhorn' /\n'sinkhorn_stabilized' / 'sinkhorn_log' (stopThr=0,"
        " numItermax=iters); floor t / floor np = 2*iters bare mat-vec products\n(C v and C^T v"
        " alternating; torch.mv / numpy @), timed round-robin with ours in each row; ours/POT ="
        " ours / fastest POT solver with a valid plan;\nours/flr = median over rounds of ours /"
        " min(floor t, floor np) in the same round; bare np = a bare numpy kernel-domain"
        " solver on the same matrix (kernel\nby exp2, the products, the plan scaling; no"
        " checks or stabilisation), bare/flr its ratio to the floor, timed in the same\n"
        "rounds: what any solver that returns a plan can reach here; max|ΔP| = max"
        " |P_ours - P_POT| against POT log (else stabilized, else\nsinkhorn) after the same"
        " number of sweeps: POT updates columns first and ours rows first, so this is the\ndistance"
        " between two different iterates, not an error (see 'Same iterates' below).\n"
        "Statuses instead of a time: nonfinite = NaN/inf in the plan; abort@k = POT met NaN/inf"
        " scalings at iteration k and\nreturned the stale iterate; badmarg = finite plan but"
        f" neither marginal holds (L1 error > {MARGINAL_TOL['float64']:g} in float64,\n"
        f"{MARGINAL_TOL['float32']:g} in float32); short@k = stopped after k iterations."
        f" '-' = not run (log solvers only for n <= {args.log_max_n} unless --full).\n"
        f"* = fewer runs than asked: a solver stops repeating after {args.solver_budget:g} s"
        " of timed runs (--solver-budget)."
    )
    errors = [
        f"  n={row.n} {row.dtype} ε={row.eps:g} {r.name}: {r.error}"
        for row in rows
        for r in row.runs.values()
        if r.status == "error"
    ]
    if errors:
        print("Errors:\n" + "\n".join(errors))


# ------------------------------------------------------------------------ extra checks


def float32_small_eps(n: int, args: argparse.Namespace) -> dict[str, str]:
    """Finiteness in float32 at ε = 1e-3 (one run each, ``iters`` sweeps)."""
    C = make_cost(n, args.seed).astype(np.float32)
    a = np.full(n, 1.0 / n, dtype=np.float32)
    Ct, at = torch.from_numpy(C), torch.from_numpy(a)
    it = args.iters
    runs = [
        ours_run("ours", Ct, at, F32_EPS, it, "absorb", 0),
        pot_run("POT sinkhorn", C, a, F32_EPS, it, POT_METHODS["sinkhorn"], 0),
        pot_run("POT stabilized", C, a, F32_EPS, it, POT_METHODS["stab"], 0),
    ]
    out: dict[str, str] = {}
    for r in runs:
        r.warm_up()
        if r.status == "ok":
            p = r.plan.astype(np.float64)
            row_err = float(np.abs(p.sum(1) - 1.0 / n).sum())
            col_err = float(np.abs(p.sum(0) - 1.0 / n).sum())
            text = (
                f"finite (all {it} sweeps; marginal L1 errors: rows {row_err:.1e},"
                f" columns {col_err:.1e})"
            )
        elif r.status == "error":
            text = f"NOT finite (raised {r.error})"
        elif r.status.startswith("abort@"):
            text = (
                f"NOT finite (NaN/inf scalings at iteration {r.status[6:]};"
                " POT returned the stale previous iterate)"
            )
        elif r.status == "nonfinite":
            text = "NOT finite (NaN/inf in the plan)"
        else:
            text = f"finite, but invalid ({r.status})"
        out[r.name] = text
    print(f"\nFinite in float32 at ε = {F32_EPS:g} (n = {n}, {it} sweeps, one run each):")
    for name, text in out.items():
        print(f"  {name:<16} {text}")
    return out


@dataclass
class Convergence:
    eps: float
    diff: float = math.nan
    note: str = ""
    same_iterates: int = 0  # > 0: neither solver converges; compared after this many sweeps


def converged_plans(n: int, rows: list[Row], args: argparse.Namespace) -> list[Convergence]:
    """Plan equality at convergence (float64): ours and POT both run to a tight tolerance.

    With equal sweep counts the plans differ because POT updates the columns first; at
    convergence both reach the same unique plan. Ours runs first, its sweep cap set from its
    timed cost per sweep and ``--conv-budget``; POT then gets 1.5x ours' sweep count, with
    the first of ``sinkhorn_log``, ``sinkhorn``, ``sinkhorn_stabilized`` that fits the budget
    and returns a valid, converged plan.

    Where ours does not converge within the budget (small ε: the error falls like ``1/k``,
    so no Sinkhorn solver converges in reasonable time), POT's plain ``sinkhorn`` on ``C^T``
    (whose column-first order is our row-first order) runs the same number of sweeps as
    ours, within the budget, and the two unconverged plans are compared: the plan either
    library returns for that problem and sweep count.
    """
    C = make_cost(n, args.seed)
    a = np.full(n, 1.0 / n)
    Ct, at = torch.from_numpy(C), torch.from_numpy(a)
    print(
        f"\nPlan equality at convergence (n = {n}, float64; ours tol = {args.conv_tol:g} on"
        f" ||P 1 - μ||_1, POT stopThr = {args.conv_stop_thr:g}\non ||P^T 1 - ν||_2;"
        f" at most {args.conv_max_iter} sweeps and about {args.conv_budget:g} s per solver):"
    )
    out = []
    for eps in args.eps:
        row = next((r for r in rows if r.n == n and r.dtype == "float64" and r.eps == eps), None)
        per_iter = {}  # seconds per sweep, from the timing table
        for key in ("ours", "log", "sinkhorn", "stab"):
            r = row.get(key) if row else None
            per_iter[key] = r.median_ms / 1e3 / args.iters if r and r.ok else math.nan
        result = Convergence(eps)
        out.append(result)
        cap = args.conv_max_iter
        if math.isfinite(per_iter["ours"]):
            cap = max(args.iters, min(cap, int(args.conv_budget / per_iter["ours"])))
        t0 = time.perf_counter()
        res = sinkhorn(Ct, at, at, epsilon=eps, n_iter=cap, tol=args.conv_tol)
        t_ours = time.perf_counter() - t0
        if not res.converged:
            unconverged_plans(C, a, eps, res, t_ours, per_iter["sinkhorn"], result, args)
            print(f"  ε={eps:<6g} {result.note}")
            continue
        k = res.n_iter
        max_iter = int(1.5 * k) + 50
        tried = []
        for key in ("log", "sinkhorn", "stab"):
            est = per_iter[key]
            if not math.isfinite(est) or max_iter * est > args.conv_budget:
                continue
            method = POT_METHODS[key]
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                t0 = time.perf_counter()
                P, log = pot_call(C, a, eps, method, max_iter, args.conv_stop_thr, log=True)
                t_pot = time.perf_counter() - t0
            last = int(log.get("niter", log.get("n_iter", -1)))
            pot_err = float(log["err"][-1]) if log.get("err") else math.nan
            aborted = any("numerical errors" in str(w.message).lower() for w in caught)
            status = plan_status(P, a)
            if last >= max_iter - 1 or aborted or status != "ok":
                tried.append(f"{method}: not converged/invalid ({status}, error {pot_err:.1e})")
                continue
            result.diff = float(np.abs(res.plan.numpy() - P).max())
            result.note = (
                f"ours {k} sweeps ({t_ours:.1f} s, error {float(res.errors[-1]):.1e}), POT"
                f" {method} {last + 1} iterations ({t_pot:.1f} s, error {pot_err:.1e})"
            )
            break
        if not math.isfinite(result.diff):
            why = "; ".join(tried) if tried else "every POT solver would exceed the budget"
            result.note = f"n/a (ours converged in {k} sweeps; POT: {why})"
            print(f"  ε={eps:<6g} {result.note}")
            continue
        print(f"  ε={eps:<6g} max|P_ours - P_POT| = {result.diff:.2e}   [{result.note}]")
    same_iterates(C, a, args)
    return out


def unconverged_plans(
    C: np.ndarray,
    a: np.ndarray,
    eps: float,
    res: Any,
    t_ours: float,
    pot_per_iter: float,
    result: Convergence,
    args: argparse.Namespace,
) -> None:
    """Fill ``result`` for an ε where ours did not converge: ours and POT ``sinkhorn`` on
    ``C^T`` after the same number of sweeps (at most what fits ``--conv-budget`` for POT)."""
    why = (
        f"ours not converged in budget: {res.n_iter} sweeps, {t_ours:.1f} s,"
        f" error {float(res.errors[-1]):.1e}"
    )
    k = res.n_iter
    if math.isfinite(pot_per_iter):
        k = max(args.iters, min(k, int(args.conv_budget / pot_per_iter)))
    else:
        result.note = f"n/a ({why}; POT sinkhorn gave no valid plan in the timing table)"
        return
    ours = (
        res
        if k == res.n_iter
        else sinkhorn(
            torch.from_numpy(C), torch.from_numpy(a), torch.from_numpy(a), epsilon=eps, n_iter=k
        )
    )
    t0 = time.perf_counter()
    P = pot_call(np.ascontiguousarray(C.T), a, eps, "sinkhorn", k, 0.0, log=False)
    t_pot = time.perf_counter() - t0
    status = plan_status(P, a)
    if status != "ok":
        result.note = f"n/a ({why}; POT sinkhorn on C^T after {k} sweeps: {status})"
        return
    result.diff = float(np.abs(ours.plan.numpy() - P.T).max())
    result.same_iterates = k
    result.note = (
        f"max|P_ours - (P_POT on C^T)^T| = {result.diff:.2e} after {k} sweeps each, unconverged"
        f" [{why}; POT sinkhorn {t_pot:.1f} s]"
    )


def same_iterates(C: np.ndarray, a: np.ndarray, args: argparse.Namespace) -> None:
    """Cross-check of the table's max|ΔP|: POT on the transposed problem updates in our
    order, so after the same number of sweeps the plans agree to rounding."""
    Ct, at = torch.from_numpy(C), torch.from_numpy(a)
    CT = np.ascontiguousarray(C.T)
    print(
        f"  Same iterates: after {args.iters} sweeps, ours on C vs POT on C^T (POT's"
        " column-first order on C^T is our row-first order on C):"
    )
    for eps in args.eps:
        ours = sinkhorn(Ct, at, at, epsilon=eps, n_iter=args.iters).plan.numpy()
        for key in ("sinkhorn", "log"):
            if key == "log" and C.shape[0] > args.log_max_n and not args.full:
                continue
            run = pot_run("POT", CT, a, eps, args.iters, POT_METHODS[key], 0)
            run.warm_up()
            if run.status == "ok":
                diff = float(np.abs(ours - run.plan.T).max())
                print(
                    f"    ε={eps:<6g} max|P_ours - (P_POT on C^T)^T| = {diff:.2e}"
                    f"  (POT {POT_METHODS[key]})"
                )
                break
        else:
            print(f"    ε={eps:<6g} n/a (no POT solver gave a valid plan on C^T)")


# ------------------------------------------------------------------------------ summary


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("PASS" if ok else "FAIL")


def print_summary(
    n: int,
    rows: list[Row],
    conv: list[Convergence],
    f32: dict[str, str] | None,
    args: argparse.Namespace,
) -> None:
    print(f"\nSummary of the targets at n = {n}:")
    cells = [r for r in rows if r.n == n]
    if not cells:
        print(f"  (1), (2): n/a, n = {n} is not in --sizes")
    for label, target, fn in (
        ("(1) ours / fastest valid POT <= 1.0", TARGETS["pot_ratio"], Row.pot_ratio),
        ("(2) ours / memory floor      <= 1.3", TARGETS["floor_ratio"], Row.floor_ratio),
        ("    reference: bare / floor  <= 1.3", TARGETS["floor_ratio"], Row.bare_ratio),
    ):
        for dtype in args.dtypes:
            parts = []
            for eps in args.eps:
                row = next((r for r in cells if r.dtype == dtype and r.eps == eps), None)
                if row is None:
                    continue
                x = fn(row)
                ok = None if not math.isfinite(x) else x <= target
                parts.append(f"ε={eps:g} {verdict(ok)} ({fmt_num(x, '.2f')})")
            if parts:
                print(f"  {label} [{dtype}]: " + "; ".join(parts))
    if conv:
        parts = []
        for c in conv:
            ok = None if not math.isfinite(c.diff) else c.diff <= TARGETS["plan_diff"]
            shown = f"{c.diff:.1e}" if math.isfinite(c.diff) else "see above"
            if c.same_iterates:
                shown += f", same {c.same_iterates} sweeps: no solver converges here"
            parts.append(f"ε={c.eps:g} {verdict(ok)} ({shown})")
        print("  (3) plan difference to POT at convergence <= 1e-8 [float64]: " + "; ".join(parts))
    if f32 is not None:
        ok = f32.get("ours", "").startswith("finite")
        print(f"  (4) ours finite in float32 at ε={F32_EPS:g}: {verdict(ok)}")


# --------------------------------------------------------------------------------- main


def set_threads(n: int) -> str:
    """Give torch (and numpy's BLAS, when threadpoolctl is present) ``n`` threads."""
    torch.set_num_threads(n)
    if threadpoolctl is None:
        return "numpy BLAS threads: unknown (no threadpoolctl)"
    threadpoolctl.threadpool_limits(limits=n, user_api="blas")
    blas = [
        f"{i['internal_api']} {i['num_threads']} threads"
        for i in threadpoolctl.threadpool_info()
        if i["user_api"] == "blas" and "numpy" in i["filepath"]
    ]
    return f"numpy BLAS: {', '.join(blas) or 'unknown'}"


def machine_info(blas: str) -> None:
    print("GCA Explorer OT benchmark")
    print(f"  python {platform.python_version()} on {platform.platform()}")
    print(
        f"  cpu cores {os.cpu_count()}; torch {torch.__version__}"
        f" ({torch.get_num_threads()} threads); numpy {np.__version__} ({blas});"
        f" POT {ot.__version__}"
    )
    env_keys = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "OMP_WAIT_POLICY")
    env = [f"{k}={os.environ[k]}" for k in env_keys if k in os.environ]
    print(f"  thread environment: {' '.join(env) if env else '(none set)'}")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024, 2048])
    p.add_argument("--eps", type=float, nargs="+", default=[0.5, 0.05, 0.005])
    p.add_argument("--iters", type=int, default=100, help="Sinkhorn sweeps per run")
    p.add_argument("--repeats", type=int, default=5, help="timed runs (after one warm-up)")
    p.add_argument(
        "--floor-repeats",
        type=int,
        default=11,
        help="rounds of ours and the two floors (at least --repeats; ours/flr is their median)",
    )
    p.add_argument("--dtypes", nargs="+", default=["float64", "float32"])
    p.add_argument("--quick", action="store_true", help="smoke run: n = 256 only, 2 repeats")
    p.add_argument(
        "--full", action="store_true", help="also run the log-domain solvers above --log-max-n"
    )
    p.add_argument("--log-max-n", type=int, default=1024, help="largest n for the log solvers")
    p.add_argument(
        "--slow-repeats", type=int, default=2, help="runs of ours-log and POT log (no warm-up)"
    )
    p.add_argument("--target-n", type=int, default=1024, help="n of the summary and checks")
    p.add_argument(
        "--threads", type=int, default=None, help="torch and BLAS threads (default: cores)"
    )
    p.add_argument("--pause", type=float, default=0.2, help="seconds between torch and numpy")
    p.add_argument(
        "--solver-budget",
        type=float,
        default=3.0,
        help="seconds of timed runs per solver and problem before repeats are cut",
    )
    p.add_argument(
        "--device",
        default=None,
        help="cuda (or cpu, for a smoke run): time torch tensors on that device against POT's "
        "torch backend and a bare loop, eager and as a CUDA graph (see device_table)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--conv-tol", type=float, default=1e-12, help="ours' tol at convergence")
    p.add_argument("--conv-stop-thr", type=float, default=1e-13, help="POT's stopThr")
    p.add_argument("--conv-max-iter", type=int, default=20000)
    p.add_argument("--conv-budget", type=float, default=10.0, help="seconds per solver")
    args = p.parse_args(argv)
    for dt in args.dtypes:
        if dt not in ("float64", "float32"):
            p.error(f"--dtypes must be float64 or float32, got {dt!r}")
    if min(args.sizes) < 2 or args.iters < 1 or args.repeats < 1 or args.slow_repeats < 1:
        p.error("--sizes must be >= 2 and --iters, --repeats, --slow-repeats >= 1")
    if args.quick:
        args.sizes, args.repeats, args.floor_repeats, args.target_n = [256], 2, 2, 256
        args.conv_budget = min(args.conv_budget, 3.0)
    return args


def _device_calls(
    C: torch.Tensor, a: torch.Tensor, eps: float, iters: int
) -> dict[str, Callable[[], Any]]:
    from _device_refs import bare_loop, pot_torch

    return {
        "ours": lambda: sinkhorn(C, a, a, epsilon=eps, n_iter=iters),
        "POT skh": lambda: pot_torch(C, a, a, eps, iters, "sinkhorn"),
        "POT log": lambda: pot_torch(C, a, a, eps, iters, "sinkhorn_log"),
        "bare": lambda: bare_loop(C, a, a, eps, iters),
    }


def device_table(args: argparse.Namespace) -> None:
    """Torch tensors on ``args.device``: ours (every validation and check, the plan), POT's
    ``sinkhorn`` and ``sinkhorn_log`` on its torch backend, and the bare loop of
    ``_device_refs`` eager and replayed from a CUDA graph (CUDA only); medians of
    ``--repeats`` runs after a warm-up, the device synchronised around each. ``reads``: the
    host synchronisations of one of our solves (CUDA only; ``tests/test_sync.py`` counts
    them on the CPU)."""
    from _device_refs import GraphedLoop, device_reads, ott_sinkhorn, time_ms

    device = torch.device(args.device)
    cols = ["ours", "ours graph", "POT skh", "POT log", "OTT kern", "OTT log", "bare",
            "bare graph", "ours/bare", "graph/bare", "ours/OTT", "reads"]  # fmt: skip
    missing: set[str] = set()
    print(f"\n{TABLE_TITLE} on {device} ({args.iters} sweeps; median ms over {args.repeats} runs)")

    def row(cells: list[str]) -> str:
        return "  ".join(c.rjust(10) for c in cells)

    print(row(["n", "dtype", "ε", *cols]))
    for n in args.sizes:
        C64 = make_cost(n, args.seed)
        for dtype in args.dtypes:
            C = torch.from_numpy(C64).to(device=device, dtype=getattr(torch, dtype))
            a = torch.full((n,), 1.0 / n, dtype=C.dtype, device=device)
            for eps in args.eps:
                calls = _device_calls(C, a, eps, args.iters)
                if device.type == "cuda":
                    calls["bare graph"] = GraphedLoop(C, a, a, eps, args.iters)
                for name, lse in (("OTT kern", False), ("OTT log", True)):
                    ott = ott_sinkhorn(C, eps, args.iters, lse)
                    if isinstance(ott, str):
                        missing.add(ott)
                    else:
                        calls[name] = ott
                ms = {k: time_ms(call, device, args.repeats) for k, call in calls.items()}
                if device.type == "cuda":
                    with cuda_graphs():  # captured on time_ms's warm-up call's second sight
                        calls["ours"]()
                        ms["ours graph"] = time_ms(calls["ours"], device, args.repeats)
                    clear_cuda_graphs()
                reads = device_reads(calls["ours"], device)
                cells = [fmt_num(ms[k], ".2f") if k in ms else "n/a" for k in cols[:8]]
                cells.append(fmt_num(ms["ours"] / ms["bare"], ".2f"))
                graphed = ms.get("ours graph", math.nan) / ms.get("bare graph", math.nan)
                cells.append(fmt_num(graphed, ".2f"))
                otts = [ms[k] for k in ("OTT kern", "OTT log") if k in ms]
                best_ott = min(otts) if otts else math.nan
                best_ours = min(ms["ours"], ms.get("ours graph", math.inf))
                cells.append(fmt_num(best_ours / best_ott, ".2f"))
                cells.append("n/a" if reads is None else str(reads))
                print(row([str(n), dtype, f"{eps:g}", *cells]))
    print(
        "ours = gca_viz sinkhorn; ours graph = the same replayed from its CUDA graph "
        "(gca_viz.ot.cuda_graphs, CUDA only); POT skh / log = ot.sinkhorn method 'sinkhorn' / "
        "'sinkhorn_log' on torch tensors (stopThr=0); OTT kern / log = OTT-JAX's Sinkhorn, "
        "lse_mode False / True, jitted, the same sweeps; bare = kernel exp, the products and the "
        "plan in plain torch, no checks; bare graph = the same replayed from a CUDA graph (CUDA "
        "only); graph/bare = ours graph / bare graph; ours/OTT = our fastest / OTT's fastest; "
        "reads = host synchronisations of one of our "
        "eager solves (CUDA only)"
    )
    for reason in sorted(missing):
        print(f"OTT-JAX columns n/a: {reason}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    blas = set_threads(args.threads or os.cpu_count() or 1)
    machine_info(blas)
    if args.device is not None:
        device_table(args)
        return 0
    t_start = time.perf_counter()
    rows: list[Row] = []
    for n in args.sizes:
        C64 = make_cost(n, args.seed)
        for dtype in args.dtypes:
            C = np.ascontiguousarray(C64.astype(dtype))
            for eps in args.eps:
                rows.append(Row(n, dtype, eps, bench_cell(C, eps, args)))
                elapsed = time.perf_counter() - t_start
                print(f"  [{elapsed:5.0f} s] n={n} {dtype} ε={eps:g}", file=sys.stderr, flush=True)
    print_table(rows, args)
    f32 = float32_small_eps(args.target_n, args) if "float32" in args.dtypes else None
    conv = converged_plans(args.target_n, rows, args) if "float64" in args.dtypes else []
    print_summary(args.target_n, rows, conv, f32, args)
    print(f"\nTotal time {time.perf_counter() - t_start:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
