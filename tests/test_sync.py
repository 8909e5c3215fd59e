"""Device-to-host reads of a solve and of every loss, on the path CUDA tensors take.

On a GPU every read of a tensor's value (``float(x)``, ``x.item()``, ``bool(x)``,
``x.tolist()``, ``x.cpu()``, ``torch.nonzero``, ...) makes the host wait for the device.
Issue 17: a solve and a loss make a fixed number of them whatever ``n_iter`` is, at most 3
for a solve without ``tol`` and ``history`` (validation included), and none per sweep.

Without a GPU the reads are counted on the CPU: :class:`ReadCounter` (a torch function
mode) records every call that would read a CUDA tensor, and
:func:`gca_viz.ot._xp.device_path` makes CPU tensors take the path CUDA tensors take (torch
ops throughout, the checks folded into flags read once). A plain CPU solve runs in numpy,
so counting it would say nothing about the GPU. The ``gpu`` tests count the real
synchronisations with ``torch.cuda.set_sync_debug_mode`` where CUDA is available.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch
from torch.overrides import TorchFunctionMode

from gca_viz import losses
from gca_viz.device import cuda_syncs
from gca_viz.ot import cosine_cost, row_projection, sinkhorn, sqeuclidean_cost
from gca_viz.ot._xp import device_path, pretending

# Calls that read a tensor's values on the host (on a CUDA tensor: a sync).
READS = {
    "item",
    "tolist",
    "__bool__",
    "__float__",
    "__int__",
    "__index__",
    "__format__",
    "__repr__",
    "__array__",
    "numpy",
    "cpu",
    "nonzero",
    "argwhere",
    "masked_select",
    "unique",
}


class ReadCounter(TorchFunctionMode):
    """Records the torch calls that read values on the host, with the frame that made them.

    Besides :data:`READS`: indexing with a boolean mask (its result's size depends on the
    values). Not a read inside :func:`gca_viz.ot._xp.host_side` (tensors the host owns
    whatever the batch's device, as a loss's target before it moves). Not seen:
    ``x.to("cpu")``, since here every tensor is on the CPU already (a marginal moved to the
    cost's device is one such call); the library reads through ``.cpu()``, which is
    counted."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[str] = []

    def __torch_function__(
        self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (name in READS or _mask_index(name, args)) and pretending():
            self.reads.append(name)
        return func(*args, **kwargs)


def _mask_index(name: str, args: tuple[Any, ...]) -> bool:
    if name != "__getitem__" or len(args) < 2:
        return False
    index = args[1] if isinstance(args[1], tuple) else (args[1],)
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in index)


@contextmanager
def counting() -> Iterator[list[str]]:
    """The reads made inside the block, on the device path."""
    with device_path(), ReadCounter() as counter:
        yield counter.reads


def reads_of(call: Callable[[], Any]) -> list[str]:
    with counting() as reads:
        call()
    return list(reads)


def _points(n: int = 24, d: int = 6, seed: int = 0, grad: bool = False) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, d, generator=gen).requires_grad_(grad)


def test_the_counter_sees_reads_and_the_device_path_takes_torch() -> None:
    x = torch.randn(5)
    reads = reads_of(lambda: (float(x.max()), bool(x.sum() > 0), x.tolist(), x[x > 0]))
    assert reads == ["__float__", "__bool__", "tolist", "__getitem__"]
    with device_path():
        C = cosine_cost(x[:, None].repeat(1, 2) + torch.arange(2.0))
        assert isinstance(sinkhorn(C, epsilon=0.5, n_iter=3).plan, torch.Tensor)


CASES = {
    "balanced": {},
    "unbalanced": {"relax_a": 0.3, "relax_b": 0.7},
    "forbidden pairs": {"exclude_self": True},
    "small epsilon": {"epsilon": 0.01},  # scheduled absorptions
    "given marginals": {"marginals": True},
}


@pytest.mark.parametrize("grad", [False, True], ids=["no-grad", "autograd"])
@pytest.mark.parametrize("case", list(CASES))
def test_a_solve_reads_the_device_at_most_three_times_whatever_n_iter(
    case: str, grad: bool
) -> None:
    kw = dict(CASES[case])
    exclude = kw.pop("exclude_self", False)
    epsilon = kw.pop("epsilon", 0.5)
    given = kw.pop("marginals", False)
    x = _points(grad=grad)
    C = cosine_cost(x, exclude_self=True) if exclude else cosine_cost(x, _points(seed=1))
    a = torch.full((24,), 1 / 24) if given else None

    def solve(n_iter: int) -> Callable[[], Any]:
        return lambda: sinkhorn(C, a, a, epsilon=epsilon, n_iter=n_iter, **kw)

    counts = {t: len(reads_of(solve(t))) for t in (10, 50)}
    assert counts[10] == counts[50] <= 3, counts
    with device_path():  # the device path solves the same problem
        res = solve(50)()
    torch.testing.assert_close(res.plan, solve(50)().plan, rtol=1e-4, atol=1e-7)


def test_the_device_path_falls_back_to_the_log_engine_in_a_fixed_number_of_reads() -> None:
    """At ε = 1e-3 in float32 a kernel step leaves its bounds: the flag read with the result
    sends the solve to the log engine, still in three reads, whatever n_iter."""
    x, y = _points(32, 8), _points(32, 8, seed=1)
    C = cosine_cost(x, y)
    counts = {t: len(reads_of(lambda t=t: sinkhorn(C, epsilon=1e-3, n_iter=t))) for t in (10, 50)}
    assert counts[10] == counts[50] == 3
    with device_path():
        res = sinkhorn(C, epsilon=1e-3, n_iter=50)
    ref = sinkhorn(C, epsilon=1e-3, n_iter=50, method="log")
    torch.testing.assert_close(res.plan, ref.plan, rtol=0, atol=1e-6)


def test_with_tol_the_device_path_reads_every_eight_sweeps() -> None:
    C = cosine_cost(_points(), _points(seed=1))
    with counting() as reads:
        res = sinkhorn(C, epsilon=0.5, n_iter=400, tol=1e-30)  # never met: all 400 sweeps
    assert res.n_iter == 400 and len(reads) <= 2 + 400 // 8
    with device_path():
        stopped = sinkhorn(C, epsilon=0.5, n_iter=400, tol=1e-5)
    first = int((sinkhorn(C, epsilon=0.5, n_iter=400).errors <= 1e-5).nonzero()[0]) + 1
    assert first <= stopped.n_iter < first + 8 and stopped.converged


def test_row_projection_and_the_costs_read_a_fixed_number_of_times() -> None:
    x, y = _points(), _points(seed=1)
    assert len(reads_of(lambda: cosine_cost(x, y))) == 1
    assert len(reads_of(lambda: sqeuclidean_cost(x, y, exclude_self=True))) == 1
    C = cosine_cost(x, y)
    assert len(reads_of(lambda: row_projection(C, epsilon=0.5))) == 2


def _loss_reads(name: str, n_iter: int | None, layout: str) -> list[str]:
    params = {} if n_iter is None else {"n_iter": n_iter}
    loss = losses.get(name, layout=layout, **params)
    z1, z2 = _points(16, 8, grad=True), _points(16, 8, seed=1, grad=True)
    return reads_of(lambda: loss(z1, z2).backward())


# One read for the cost (it checks the embeddings' values too), one for a solve's result
# (its flag, its residual, finite potentials), one for the loss's finiteness, as a plain
# NT-Xent's two (its cross-entropy's checks). Nothing for the target, its marginals and
# positives (found on the host where the target is built), nor for validating the OT
# problem (a cosine cost of checked embeddings lies in [0, 2]; ot._checks.trusted) or the
# row step's result (the loss's finiteness covers it).
LOSS_READS = {"ince": 2, "rince": 2, "byol": 2}  # every other loss: 3 (one solve)


@pytest.mark.parametrize("layout", ["cross", "joint"])
@pytest.mark.parametrize("name", list(losses.LOSSES))
def test_a_loss_reads_the_device_a_fixed_number_of_times_whatever_n_iter(
    name: str, layout: str
) -> None:
    """Forward and backward; a loss without sweeps is counted once."""
    iterative = "n_iter" in losses.get(name).params
    few = _loss_reads(name, 10 if iterative else None, layout)
    assert len(few) <= LOSS_READS.get(name, 3), few
    if iterative:
        assert few == _loss_reads(name, 50, layout)


@pytest.mark.parametrize(
    ("target", "side"),
    [("class", {"labels": [0, 1, 0, 2] * 4}), ("domain", {"domains": [0, 1] * 8})],
)
def test_a_target_from_host_labels_reads_nothing_from_the_device(
    target: str, side: dict[str, list[int]]
) -> None:
    loss = losses.compose("cosine", target, "sinkhorn", "kl", n_iter=10)
    z1, z2 = _points(16, 8, grad=True), _points(16, 8, seed=1, grad=True)
    side_t = {k: torch.tensor(v) for k, v in side.items()}
    reads = reads_of(lambda: loss(z1, z2, **side_t).backward())
    assert len(reads) <= 3, reads
    with device_path():
        value = loss(z1, z2, **side_t)
    torch.testing.assert_close(value, loss(z1, z2, **side_t), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("epsilon", [0.5, 0.05])  # (0.05: absorptions on a schedule)
@pytest.mark.parametrize("name", ["gca_ince", "gca_uot", "gca_rince", "ince"])
def test_the_device_path_gives_the_host_paths_loss_and_gradients(name: str, epsilon: float) -> None:
    def value_and_grads(device: bool) -> list[torch.Tensor]:
        z1, z2 = _points(16, 8, grad=True), _points(16, 8, seed=1, grad=True)
        loss = losses.get(name, layout="joint", epsilon=epsilon)
        with device_path() if device else contextlib.nullcontext():
            value = loss(z1, z2)
        return [value.detach(), *torch.autograd.grad(value, (z1, z2))]

    for got, want in zip(value_and_grads(True), value_and_grads(False), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------- on a GPU


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_counting_cuda_syncs_needs_cuda() -> None:
    with pytest.raises(RuntimeError, match="CUDA"):
        cuda_syncs(lambda: None)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("epsilon", [0.5, 0.01])
def test_cuda_solve_syncs_a_fixed_number_of_times(epsilon: float) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    x = torch.randn(256, 16, device="cuda", generator=gen)
    C = cosine_cost(x, torch.randn(256, 16, device="cuda", generator=gen))
    counts = {t: cuda_syncs(lambda t=t: sinkhorn(C, epsilon=epsilon, n_iter=t)) for t in (10, 50)}
    assert counts[10] == counts[50] <= 3, counts


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["gca_ince", "gca_uot", "gca_rince"])
def test_cuda_loss_syncs_do_not_grow_with_n_iter(name: str) -> None:
    gen = torch.Generator(device="cuda").manual_seed(0)
    z1 = torch.randn(128, 32, device="cuda", generator=gen, requires_grad=True)
    z2 = torch.randn(128, 32, device="cuda", generator=gen, requires_grad=True)
    counts = {
        t: cuda_syncs(lambda t=t: losses.get(name, layout="joint", n_iter=t)(z1, z2).backward())
        for t in (10, 50)
    }
    assert counts[10] == counts[50], counts
