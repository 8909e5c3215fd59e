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

from gca_viz import losses
from gca_viz.device import cuda_syncs
from gca_viz.ot import _graph, clear_cuda_graphs, cosine_cost, cuda_graphs, sinkhorn
from gca_viz.ot._xp import device_path
from tests.test_sync import ReadCounter


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


class Captures(list[int]):
    """The captures made (one entry each), and the number of replays of all of them."""

    replays = 0


@pytest.fixture
def emulated(monkeypatch: pytest.MonkeyPatch) -> Iterator[Captures]:
    """CPU solves on the device path capture through :func:`emulated_record`; yields the
    captures made (a solve under autograd makes two: its forward and its backward)."""
    captures = Captures()

    def record(run: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
        replay, outputs = emulated_record(run, inputs)
        captures.append(1)

        def counted() -> None:
            captures.replays += 1
            replay()

        return counted, outputs

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


def test_what_is_not_a_fixed_iteration_solve_is_never_captured(emulated: list[int]) -> None:
    C = problem()
    for _ in range(2):
        sinkhorn(C, epsilon=0.5, n_iter=10, tol=1e-6)
        sinkhorn(C, epsilon=0.5, n_iter=10, history=True)
        sinkhorn(C, epsilon=0.5, n_iter=10, method="log")
    assert emulated == [] and not _graph._graphs


# ------------------------------------------------------------------------ under autograd

SOLVING_LOSSES = [name for name in losses.LOSSES if "n_iter" in losses.get(name).params]


def _value_and_grads(
    loss: Any, z1: torch.Tensor, z2: torch.Tensor, graphs: bool
) -> list[torch.Tensor]:
    a, b = z1.clone().requires_grad_(), z2.clone().requires_grad_()
    with cuda_graphs(graphs):
        value = loss(a, b)
        value.backward()
    assert a.grad is not None and b.grad is not None
    return [value.detach(), a.grad, b.grad]


@pytest.mark.parametrize("layout", ["joint", "cross"])
@pytest.mark.parametrize("name", SOLVING_LOSSES)
def test_a_loss_replayed_under_autograd_has_the_eager_value_and_gradients(
    name: str, layout: str, emulated: Captures
) -> None:
    """Training steps of every loss with a solve: the forward and the backward of the solve
    are captured on the second step and replayed from then on."""
    gen = torch.Generator().manual_seed(1)
    loss = losses.get(name, layout=layout, epsilon=0.05)  # (ε = 0.05: scheduled absorptions)
    for step in range(4):  # a new batch each step
        z1 = torch.randn(20, 8, generator=gen, dtype=torch.float64)
        z2 = z1 + 0.4 * torch.randn(20, 8, generator=gen, dtype=torch.float64)
        want = _value_and_grads(loss, z1, z2, graphs=False)
        got = _value_and_grads(loss, z1, z2, graphs=True)
        if step == 0:
            assert emulated == []  # first sight: eager
        for g, w in zip(got, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-14)
    assert len(emulated) == 2  # the solve's forward and its backward
    assert emulated.replays >= 2 * 2 + 2  # steps 2 and 3 replay both (step 1: capture)


def test_two_solves_of_one_shape_before_one_backward_get_their_own_gradients(
    emulated: Captures,
) -> None:
    """A captured backward recomputes from its own node's inputs: the second forward of the
    same key does not overwrite what the first one's backward reads."""

    def grads(graphs: bool) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(2)
        xs = [torch.randn(30, 6, generator=gen, dtype=torch.float64) for _ in range(4)]
        for x in xs:
            x.requires_grad_()
        with cuda_graphs(graphs):
            total = torch.zeros((), dtype=torch.float64)
            for k in range(3):  # the key is captured at k = 1
                for x, y, w in ((xs[0], xs[1], 1.0), (xs[2], xs[3], -2.0)):
                    res = sinkhorn(cosine_cost(x * (k + 1), y), epsilon=0.1, n_iter=15)
                    total = total + w * (res.plan * torch.arange(30.0)).sum() + res.f.sum()
            total.backward()
        return [x.grad for x in xs]  # type: ignore[misc]

    want = grads(False)
    got = grads(True)
    assert len(emulated) == 2 and emulated.replays >= 2 * 4  # 4 forwards, 4 backwards
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_a_marginal_that_requires_a_gradient_gets_the_eager_one(emulated: Captures) -> None:
    C = problem(24, 20).double()

    def grads(graphs: bool) -> tuple[torch.Tensor, torch.Tensor]:
        a = torch.linspace(1.0, 2.0, 24, dtype=torch.float64).requires_grad_()
        c = C.clone().requires_grad_()
        with cuda_graphs(graphs):
            for _ in range(3):
                res = sinkhorn(c, a / a.sum(), epsilon=0.2, n_iter=12, relax_b=0.5)
                (res.plan**2).sum().backward()
        return a.grad, c.grad  # type: ignore[return-value]

    want = grads(False)
    got = grads(True)
    assert len(emulated) == 2
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-12, atol=1e-12)


def test_a_replayed_solve_refuses_a_second_derivative(emulated: Captures) -> None:
    C = problem(16, 16).double().requires_grad_()
    with cuda_graphs():
        for _ in range(2):
            sinkhorn(C, epsilon=0.3, n_iter=5)
        res = sinkhorn(C, epsilon=0.3, n_iter=5)  # replayed
        (grad,) = torch.autograd.grad(res.f.sum(), C, create_graph=True)
        with pytest.raises(RuntimeError, match=r"second derivative.*method='log'"):
            grad.sum().backward()
    assert len(emulated) == 2


def test_a_failed_backward_capture_leaves_the_training_step_eager(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[int] = []

    def forward_only(run: Any, inputs: tuple[torch.Tensor, ...]) -> Any:
        calls.append(len(inputs))
        if len(inputs) == 5:  # (C, μ, ν, f̄, ḡ): the backward
            raise RuntimeError("operation not permitted when stream is capturing")
        return emulated_record(run, inputs)

    monkeypatch.setattr(_graph, "_DEVICES", ("cuda", "cpu"))
    monkeypatch.setattr(_graph, "_record", forward_only)
    clear_cuda_graphs()
    gen = torch.Generator().manual_seed(3)
    z1, z2 = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    loss = losses.get("gca_uot", layout="joint")
    want = _value_and_grads(loss, z1, z2, graphs=False)
    try:
        with device_path():
            _value_and_grads(loss, z1, z2, graphs=True)
            with pytest.warns(RuntimeWarning, match="could not capture a CUDA graph"):
                got = _value_and_grads(loss, z1, z2, graphs=True)
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                again = _value_and_grads(loss, z1, z2, graphs=True)
    finally:
        clear_cuda_graphs()
    assert calls == [3, 5]
    for result in (got, again):
        for g, w in zip(result, want, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-5, atol=1e-7)


def test_a_replayed_training_step_reads_the_device_no_more_than_an_eager_one(
    emulated: Captures,
) -> None:
    gen = torch.Generator().manual_seed(4)
    z1, z2 = torch.randn(16, 8, generator=gen), torch.randn(16, 8, generator=gen)
    loss = losses.get("gca_ince", layout="joint", n_iter=40)

    def reads(graphs: bool) -> int:
        with ReadCounter() as counter:
            _value_and_grads(loss, z1, z2, graphs)
        return len(counter.reads)

    eager = reads(False)
    reads(True)
    reads(True)  # captured
    replayed = reads(True)
    assert len(emulated) == 2 and emulated.replays >= 4
    assert replayed <= eager <= 3


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


@pytest.mark.gpu
@needs_cuda
@pytest.mark.parametrize("name", ["gca_ince", "gca_uot", "gca_rince"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_cuda_training_steps_replayed_under_autograd_match_the_eager_ones(
    name: str, dtype: torch.dtype
) -> None:
    """Real CUDA graphs of a loss's solve, forward and backward: value and gradients of
    each step as eager, to 1e-6 relative (float32) / 1e-12 (float64), and no more syncs."""
    clear_cuda_graphs()
    gen = torch.Generator(device="cuda").manual_seed(0)
    loss = losses.get(name, layout="joint")
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    try:
        for _ in range(4):
            z1 = torch.randn(256, 64, device="cuda", dtype=dtype, generator=gen)
            z2 = z1 + 0.5 * torch.randn(256, 64, device="cuda", dtype=dtype, generator=gen)
            want = _value_and_grads(loss, z1, z2, graphs=False)
            got = _value_and_grads(loss, z1, z2, graphs=True)
            for g, w in zip(got, want, strict=True):
                torch.testing.assert_close(g, w, rtol=tol, atol=tol * 1e-2)
        assert len(_graph._graphs) == 1
        eager = cuda_syncs(lambda: _value_and_grads(loss, z1, z2, graphs=False))
        replayed = cuda_syncs(lambda: _value_and_grads(loss, z1, z2, graphs=True))
        assert replayed <= eager, (replayed, eager)
    finally:
        clear_cuda_graphs()


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
