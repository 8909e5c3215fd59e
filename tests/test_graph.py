"""Fixed-iteration solves replayed from captured CUDA graphs (gca_viz/ot/_graph.py, issue 17).

Without a GPU the capture is emulated: :func:`emulated_record` stands in for the CUDA
graph with the graph's semantics (the solve reads fixed input buffers and writes fixed
output buffers, which every replay overwrites), and CPU tensors take the path of CUDA
tensors (:func:`gca_viz.ot._xp.device_path`). This checks everything but CUDA itself: the
captured function against the plain solver, the copies in and out (no result aliases
another), when a key is captured, the cache's bound, the eager fallback after a failed
capture, and that nothing changes where it does not apply. The ``gpu`` tests capture real
graphs and compare them with the eager solve to 1e-6.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gca_viz.device import cuda_syncs
from gca_viz.ot import _graph, clear_cuda_graphs, cosine_cost, cuda_graphs, sinkhorn
from gca_viz.ot._xp import device_path


class ForeignReads(TorchFunctionMode):
    """Records the tensors an op reads that are neither ``allowed`` nor made inside."""

    def __init__(self, allowed: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self.own = {t.untyped_storage().data_ptr() for t in allowed}
        self.foreign: list[str] = []

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        for x in [*args, *kwargs.values()]:
            for t in x if isinstance(x, (list, tuple)) else (x,):
                if isinstance(t, torch.Tensor) and t.untyped_storage().data_ptr() not in self.own:
                    self.foreign.append(f"{getattr(func, '__name__', func)}{tuple(t.shape)}")
        out = func(*args, **kwargs)
        for t in out if isinstance(out, (list, tuple)) else (out,):
            if isinstance(t, torch.Tensor):
                self.own.add(t.untyped_storage().data_ptr())
        return out


def emulated_record(
    run: Callable[[], tuple[torch.Tensor, ...]], inputs: tuple[torch.Tensor, ...]
) -> tuple[Callable[[], None], tuple[torch.Tensor, ...]]:
    """What :func:`gca_viz.ot._graph._record` returns, without CUDA: a replay that runs the
    solve again and writes its results into the first run's output tensors. Like a CUDA
    graph, the solve may read no tensor but its input buffers and those it makes: a graph
    would read a tensor of the capturing call at its old address on every replay."""
    with ForeignReads(inputs) as mode:
        outputs = run()
    assert mode.foreign == [], f"the captured solve reads tensors it does not own: {mode.foreign}"

    def replay() -> None:
        for out, new in zip(outputs, run(), strict=True):
            out.copy_(new)

    return replay, outputs


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """CPU solves on the device path capture through :func:`emulated_record`; yields the
    list of captures made (the number of sweeps of each)."""
    captures: list[int] = []

    def record(run: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
        recorded = emulated_record(run, inputs)
        captures.append(1)
        return recorded

    monkeypatch.setattr(_graph, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(_graph, "_record", record)
    clear_cuda_graphs()
    with device_path(), cuda_graphs(), warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # a failed capture fails the test
        yield captures
    clear_cuda_graphs()


def problem(n: int = 48, m: int = 40, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return cosine_cost(torch.randn(n, 8, generator=gen), torch.randn(m, 8, generator=gen))


CASES = {
    "balanced": {"epsilon": 0.5},
    "scheduled absorptions": {"epsilon": 0.02},  # exp(-C/ε) spans e^100: not tame
    "unbalanced": {"epsilon": 0.1, "relax_a": 1.0, "relax_b": 0.5},
}


def assert_same(got: Any, want: Any, tol: float) -> None:
    for name in ("plan", "f", "g", "errors"):
        torch.testing.assert_close(getattr(got, name), getattr(want, name), rtol=tol, atol=tol)
    assert got.n_iter == want.n_iter and got.converged == want.converged


@pytest.mark.parametrize("case", CASES)
def test_a_replayed_solve_equals_the_eager_solve(case: str, emulated: list[int]) -> None:
    C = problem().double()
    kwargs = CASES[case]
    with cuda_graphs(False):
        want = sinkhorn(C, n_iter=30, **kwargs)
    first = sinkhorn(C, n_iter=30, **kwargs)  # first sight: eager
    assert emulated == []
    second = sinkhorn(C, n_iter=30, **kwargs)  # captured, then replayed
    third = sinkhorn(C, n_iter=30, **kwargs)  # replayed
    assert len(emulated) == 1
    for got in (first, second, third):
        assert_same(got, want, 1e-12)


def test_forbidden_pairs_start_from_the_row_minima_the_graph_computes(
    emulated: list[int],
) -> None:
    """A cost with +inf entries starts from each row's minimum: the validation's row minima
    belong to one call, so the captured solve forms its own from its input buffer."""
    costs = []
    for seed in (3, 4, 5):
        C = problem(32, 32, seed=seed).double()
        C[0, 1:] = torch.inf
        C[5, :7] = torch.inf
        costs.append(C)
    with cuda_graphs(False):
        wants = [sinkhorn(C, epsilon=0.02, n_iter=20) for C in costs]
    for C, want in zip(costs, wants, strict=True):
        assert_same(sinkhorn(C, epsilon=0.02, n_iter=20), want, 1e-12)
    assert len(emulated) == 1


def test_each_replay_reads_its_own_cost_and_no_result_aliases_another(
    emulated: list[int],
) -> None:
    costs = [problem(seed=s) for s in range(4)]
    with cuda_graphs(False):
        wants = [sinkhorn(C, epsilon=0.3, n_iter=25) for C in costs]
    got = [sinkhorn(C, epsilon=0.3, n_iter=25) for C in costs]  # one key: 3 replays
    assert len(emulated) == 1
    for g, w in zip(got, wants, strict=True):  # earlier results survive later replays
        assert_same(g, w, 1e-5)
    assert len({g.plan.data_ptr() for g in got}) == len(got)


def test_a_key_is_captured_on_its_second_sight_and_four_are_kept(emulated: list[int]) -> None:
    C = problem()
    for eps in (0.1, 0.2, 0.3, 0.4, 0.5):  # five keys, each seen twice
        sinkhorn(C, epsilon=eps, n_iter=10)
        sinkhorn(C, epsilon=eps, n_iter=10)
    assert len(emulated) == 5
    assert len(_graph._graphs) == _graph._KEEP == 4
    sinkhorn(C, epsilon=0.5, n_iter=10)  # kept: replayed
    sinkhorn(C, epsilon=0.5, n_iter=11)  # another key (T), first sight: eager
    assert len(emulated) == 5
    sinkhorn(C, epsilon=0.1, n_iter=10)  # dropped with its count: first sight again
    assert len(emulated) == 5
    sinkhorn(C, epsilon=0.1, n_iter=10)
    assert len(emulated) == 6


def test_a_failed_capture_warns_once_and_the_key_runs_eagerly(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    attempts: list[int] = []

    def refuse(run: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
        attempts.append(1)
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(_graph, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(_graph, "_record", refuse)
    clear_cuda_graphs()
    C = problem()
    with cuda_graphs(False):
        want = sinkhorn(C, epsilon=0.4, n_iter=15)
    try:
        with device_path(), cuda_graphs():
            sinkhorn(C, epsilon=0.4, n_iter=15)
            with pytest.warns(RuntimeWarning, match=r"could not capture a CUDA graph.*eagerly"):
                got = sinkhorn(C, epsilon=0.4, n_iter=15)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                again = sinkhorn(C, epsilon=0.4, n_iter=15)
    finally:
        clear_cuda_graphs()
    assert attempts == [1]
    assert_same(got, want, 1e-5)
    assert_same(again, want, 1e-5)


def test_what_is_not_a_fixed_iteration_solve_without_autograd_is_never_captured(
    emulated: list[int],
) -> None:
    C = problem()
    for _ in range(2):
        sinkhorn(C, epsilon=0.5, n_iter=10, tol=1e-9)
        sinkhorn(C, epsilon=0.5, n_iter=10, history=True)
        sinkhorn(C, epsilon=0.5, n_iter=10, method="log")
        z = torch.randn(48, 8, requires_grad=True)
        sinkhorn(cosine_cost(z, z.detach()[:40]), epsilon=0.5, n_iter=10).plan.sum().backward()
    assert emulated == [] and not _graph._graphs


def test_graphs_are_off_by_default_and_the_switch_restores_what_it_found() -> None:
    assert not _graph.enabled()
    with cuda_graphs():
        assert _graph.enabled()
        with cuda_graphs(False):
            assert not _graph.enabled()
        assert _graph.enabled()
    assert not _graph.enabled()
    env = {**os.environ, "GCA_CUDA_GRAPHS": "1"}
    code = "from gca_viz.ot import _graph; print(_graph.enabled())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "True", out.stderr


def test_a_cpu_solve_is_unchanged_by_the_switch() -> None:
    C = problem()
    want = sinkhorn(C, epsilon=0.3, n_iter=20)
    with cuda_graphs():
        for _ in range(3):
            assert_same(sinkhorn(C, epsilon=0.3, n_iter=20), want, 0.0)
    assert not _graph._graphs


# ----------------------------------------------------------------------------- on a GPU

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_graph_replays_match_the_eager_solve(case: str, dtype: torch.dtype) -> None:
    clear_cuda_graphs()
    C = problem(512, 384).to("cuda", dtype)
    kwargs = CASES[case]
    want = sinkhorn(C, n_iter=100, **kwargs)
    with cuda_graphs():
        got = [sinkhorn(C * s, n_iter=100, **kwargs) for s in (1.0, 1.0, 1.0)]
        other = sinkhorn(C.flip(0), n_iter=100, **kwargs)  # a replay on new values
    clear_cuda_graphs()
    for g in got:
        assert_same(g, want, 1e-6)
    assert_same(other, sinkhorn(C.flip(0), n_iter=100, **kwargs), 1e-6)
    assert_same(got[1], want, 1e-6)  # not overwritten by the later replays


@pytest.mark.gpu
@needs_cuda
def test_a_cuda_graph_replay_syncs_no_more_than_the_eager_solve() -> None:
    clear_cuda_graphs()
    C = problem(1024, 1024).to("cuda", torch.float32)
    with cuda_graphs():
        sinkhorn(C, epsilon=0.1, n_iter=100)
        sinkhorn(C, epsilon=0.1, n_iter=100)  # captured
        replayed = cuda_syncs(lambda: sinkhorn(C, epsilon=0.1, n_iter=100))
    clear_cuda_graphs()
    assert replayed <= 3


def test_inference_mode_has_graphs_of_its_own_and_a_later_solve_outside_it_works(
    emulated: list[int],
) -> None:
    C = problem()
    with cuda_graphs(False):
        want = sinkhorn(C, epsilon=0.3, n_iter=12)
    with torch.inference_mode():
        for _ in range(3):
            assert_same(sinkhorn(C, epsilon=0.3, n_iter=12), want, 1e-6)
    with torch.no_grad():
        for _ in range(3):
            assert_same(sinkhorn(C, epsilon=0.3, n_iter=12), want, 1e-6)
    assert len(emulated) == 2  # one graph per mode
    assert all(not b.is_inference() for g in _graph._graphs.values() for b in g.inputs)


def test_the_switch_holds_in_its_own_thread_only() -> None:
    seen: list[bool] = []
    with cuda_graphs():
        other = threading.Thread(target=lambda: seen.append(_graph.enabled()))
        other.start()
        other.join()
        assert _graph.enabled()
    assert seen == [False]


def test_keys_seen_once_are_remembered_up_to_a_bound(emulated: list[int]) -> None:
    C = problem(12, 10)
    for k in range(_graph._SEEN_MAX + 10):  # distinct ε, each seen once
        sinkhorn(C, epsilon=0.1 + 0.001 * k, n_iter=3)
    assert len(_graph._seen) == _graph._SEEN_MAX and emulated == []
    sinkhorn(C, epsilon=0.1, n_iter=3)  # forgotten: a first sight again
    assert emulated == []
    sinkhorn(C, epsilon=0.1 + 0.001 * (_graph._SEEN_MAX + 9), n_iter=3)  # remembered
    assert len(emulated) == 1
