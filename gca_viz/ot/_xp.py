"""The array namespace the OT code is written against: numpy or torch, chosen per call.

Each algorithm of this package is written once, against ``ns.xp``, which is the ``numpy``
or the ``torch`` module (both spell ``exp``, ``log``, ``abs``, ``amax(x, axis=, keepdims=)``,
``ones_like``, ``concat``, ``multiply(a, b, out=)``, ``@`` and broadcasting alike), plus the
few methods of :class:`Namespace` whose best form differs between the two: in-place passes
over a matrix (autograd forbids some in torch), the kernel's exponential, log-sum-exp, and
:meth:`Namespace.floats`, which reads several scalars at once.

Which one runs (:func:`namespace`):

* numpy for numpy inputs and CPU tensors outside autograd. numpy's element-wise passes run
  on the calling thread and its products on OpenBLAS's threads, while torch's passes run on
  a second pool (OpenMP) whose spinning idle threads slow the products down on a machine
  with few cores (bench_ot, n = 1024, 2 cores: 18-32 ms against 11 ms per float32 solve);
  and a numpy call on a short vector costs 1-4 us against 3-15 us for a torch op.
* torch under autograd and on every other device.

``Namespace.host`` says whether reading a value (``float(x)``) is free: true on the CPU;
false on an accelerator, where each read waits for the device. Code that reads values to
decide what to do next (the absorbing engine's per-half-step check) does so only when
``host`` is true; on a device it decides on the device and reads once, at the end.

:func:`device_path` (private, for tests) makes CPU tensors take the path that CUDA tensors
take, torch with ``host`` false, so that a machine without a GPU can count its reads.
"""

from __future__ import annotations

import abc
import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from types import ModuleType
from typing import Any

import numpy as np
import torch

Array = torch.Tensor | np.ndarray
"""A torch tensor or a numpy array; functions return the type they were given."""

_DEVICE_PATH: ContextVar[bool] = ContextVar("gca_viz_ot_device_path", default=False)


@contextlib.contextmanager
def device_path() -> Iterator[None]:
    """Inside the block, CPU tensors and numpy arrays take the path of CUDA tensors (torch
    ops, no free reads). For tests only; it changes no result beyond rounding. A context
    variable, so other threads are not affected."""
    token = _DEVICE_PATH.set(True)
    try:
        yield
    finally:
        _DEVICE_PATH.reset(token)


@contextlib.contextmanager
def host_side() -> Iterator[None]:
    """Inside the block the tensors are the host's own, even within :func:`device_path`:
    work that runs on the CPU whatever the batch's device (a loss's target, built from
    host-side labels, before it moves). Outside the tests it changes nothing."""
    token = _DEVICE_PATH.set(False)
    try:
        yield
    finally:
        _DEVICE_PATH.reset(token)


def pretending() -> bool:
    """Whether :func:`device_path` is in effect here (the tests' read counter asks)."""
    return _DEVICE_PATH.get()


class Namespace(abc.ABC):
    """numpy or torch, plus the operations whose best form differs between them.

    Methods whose name ends in ``_`` may reuse their argument's memory: use what they
    return. In torch they are written so that autograd can differentiate through them."""

    xp: ModuleType
    host: bool  # reading a value costs nothing

    @abc.abstractmethod
    def native(self, x: Any) -> Any:
        """``x`` (a tensor or an array) in this namespace, sharing memory where it can."""

    def tensor(self, x: Any) -> torch.Tensor:
        """``x`` as a torch tensor (sharing a numpy array's memory)."""
        return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))

    def detach(self, x: Any) -> Any:
        return x

    def floats(self, values: Sequence[Any]) -> list[float]:
        """Scalars (0-d arrays, tensors or numbers) as Python floats, in one read."""
        return [float(v) for v in values]

    def finfo(self, x: Any) -> Any:
        return np.finfo(x.dtype)

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        """No floating-point warnings (inf and NaN are checked explicitly)."""
        return contextlib.nullcontext()

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        return contextlib.nullcontext()

    @abc.abstractmethod
    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        """An uninitialised array of ``like``'s dtype (and device)."""

    @abc.abstractmethod
    def mv(self, K: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        """The products with ``K`` and ``K^T``."""

    @abc.abstractmethod
    def peak(self, x: Any) -> float:
        """The largest entry, read as a float."""

    @abc.abstractmethod
    def logsumexp(self, x: Any, axis: int) -> Any:
        """``log sum exp`` along ``axis``."""

    def logsumexp_(self, x: Any, axis: int) -> Any:
        """:meth:`logsumexp`, free to overwrite ``x``."""
        return self.logsumexp(x, axis)

    @abc.abstractmethod
    def sub_scaled(self, vector: Any, C: Any, alpha: float) -> Any:
        """``vector - alpha C`` (``vector`` broadcast) in a new matrix."""

    @abc.abstractmethod
    def scaled(self, C: Any, alpha: float) -> Any:
        """``alpha C`` in a new matrix."""

    @abc.abstractmethod
    def one_minus_(self, x: Any) -> Any:
        """``1 - x``."""

    @abc.abstractmethod
    def clamp_min_(self, x: Any, low: float) -> Any:
        """``max(x, low)``."""

    @abc.abstractmethod
    def fill_diagonal(self, x: Any, value: float) -> Any:
        """``x`` with ``value`` on its diagonal."""

    @abc.abstractmethod
    def exp2_(self, x: Any) -> Any:
        """``2^x``."""

    @abc.abstractmethod
    def exp_floor_(self, log_x: Any, tiny: float) -> Any:
        """``exp(log_x)`` with the entries below ``tiny`` set to 0."""


class _Numpy(Namespace):
    xp = np
    host = True

    def native(self, x: Any) -> Any:
        return x.detach().numpy() if isinstance(x, torch.Tensor) else x

    def quiet(self) -> contextlib.AbstractContextManager[Any]:
        return np.errstate(all="ignore")

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        return np.empty(shape, dtype=like.dtype)

    def mv(self, K: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        return K.dot, K.T.dot

    def peak(self, x: Any) -> float:
        """(``np.maximum.reduce`` skips ``np.max``'s argument handling.)"""
        return np.maximum.reduce(x)  # type: ignore[no-any-return]

    def logsumexp_(self, x: Any, axis: int) -> Any:
        """``log sum exp`` along ``axis``, computed in ``x``'s memory (four passes)."""
        top = np.amax(x, axis=axis, keepdims=True)
        top[~np.isfinite(top)] = 0.0  # (a line of -inf stays -inf)
        x -= top
        np.exp(x, out=x)
        out = np.log(np.sum(x, axis=axis))
        out += np.squeeze(top, axis=axis)
        return out

    def logsumexp(self, x: Any, axis: int) -> Any:
        return self.logsumexp_(x.copy(), axis)

    def sub_scaled(self, vector: Any, C: Any, alpha: float) -> Any:
        """``vector - alpha C``, ``vector`` broadcast (two passes, into a new matrix)."""
        out = np.multiply(C, -alpha, out=_matrix(C.shape, C.dtype))
        out += vector
        return out

    def scaled(self, C: Any, alpha: float) -> Any:
        return np.multiply(C, alpha, out=_matrix(C.shape, C.dtype))

    def one_minus_(self, x: Any) -> Any:
        return np.subtract(1.0, x, out=x)

    def clamp_min_(self, x: Any, low: float) -> Any:
        return np.maximum(x, low, out=x)

    def fill_diagonal(self, x: Any, value: float) -> Any:
        np.fill_diagonal(x, value)
        return x

    def exp2_(self, x: Any) -> Any:
        return np.exp2(x, out=x)

    def exp_floor_(self, log_x: Any, tiny: float) -> Any:
        """``exp(log_x)`` with the entries below ``tiny`` set to 0: exp, then a multiply by
        the mask (two fast passes; a masked assignment is 10x slower when most entries are
        masked)."""
        np.exp(log_x, out=log_x)
        log_x *= log_x >= tiny
        return log_x


class _Torch(Namespace):
    xp = torch

    def __init__(self, host: bool) -> None:
        self.host = host

    def native(self, x: Any) -> Any:
        return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))

    def detach(self, x: Any) -> Any:
        return x.detach()

    def floats(self, values: Sequence[Any]) -> list[float]:
        """The tensors among ``values`` go to the host in one stacked copy (in the dtype of
        the first floating one); Python numbers stay on the host."""
        tensors = [v.detach() for v in values if isinstance(v, torch.Tensor)]
        if not tensors:
            return [float(v) for v in values]
        dtype = next((t.dtype for t in tensors if t.is_floating_point()), torch.float64)
        read = iter(torch.stack([t.to(dtype).reshape(()) for t in tensors]).tolist())
        return [float(next(read)) if isinstance(v, torch.Tensor) else float(v) for v in values]

    def finfo(self, x: Any) -> Any:
        return torch.finfo(x.dtype)

    def no_grad(self) -> contextlib.AbstractContextManager[Any]:
        return torch.no_grad()

    def empty(self, shape: tuple[int, ...], like: Any) -> Any:
        return torch.empty(shape, dtype=like.dtype, device=like.device)

    def mv(self, K: Any) -> tuple[Callable[[Any], Any], Callable[[Any], Any]]:
        return (lambda x: torch.mv(K, x)), (lambda x: torch.mv(K.T, x))

    def peak(self, x: Any) -> float:
        return float(x.detach().amax())

    def logsumexp(self, x: Any, axis: int) -> Any:
        return torch.logsumexp(x, dim=axis)

    def sub_scaled(self, vector: Any, C: Any, alpha: float) -> Any:
        """``vector - alpha C`` in one pass."""
        return torch.sub(vector, C, alpha=alpha)

    def scaled(self, C: Any, alpha: float) -> Any:
        return C * alpha

    def one_minus_(self, x: Any) -> Any:
        return torch.rsub(x, 1.0)

    def clamp_min_(self, x: Any, low: float) -> Any:
        return x.clamp_(min=low)

    def fill_diagonal(self, x: Any, value: float) -> Any:
        """Out of place: in-place writes into a tensor autograd saved would break its
        backward."""
        eye = torch.eye(x.shape[0], x.shape[1], dtype=torch.bool, device=x.device)
        return x.masked_fill(eye, value)

    def exp2_(self, x: Any) -> Any:
        return x.exp2_()

    def exp_floor_(self, log_x: Any, tiny: float) -> Any:
        """The threshold comes before the exp, which autograd needs (exp saves its output)."""
        torch.threshold_(log_x, math.log(tiny), -math.inf)  # x if x > t else -inf
        return log_x.exp_()


_HUGE_PAGE = 2 << 20  # bytes of a transparent huge page on x86-64 Linux


def _matrix(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array, aligned to a 2 MiB huge page from 4 MiB up: kept for speed,
    see benchmarks/README.md ("The kernel's memory")."""
    nbytes = math.prod(shape) * np.dtype(dtype).itemsize
    if nbytes < 2 * _HUGE_PAGE:
        return np.empty(shape, dtype=dtype)
    raw = np.empty(nbytes + _HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    out: np.ndarray = raw[start : start + nbytes].view(dtype).reshape(shape)
    return out


NUMPY = _Numpy()
TORCH_HOST = _Torch(host=True)  # CPU tensors under autograd
TORCH_DEVICE = _Torch(host=False)  # tensors on an accelerator


def namespace(*arrays: Any) -> Namespace:
    """The namespace for a call on ``arrays`` (see the module docstring)."""
    tensors = [a for a in arrays if isinstance(a, torch.Tensor)]
    if _DEVICE_PATH.get() or any(t.device.type != "cpu" for t in tensors):
        return TORCH_DEVICE
    if any(t.requires_grad or wrapped(t) for t in tensors):
        return TORCH_HOST
    return NUMPY


def wrapped(t: torch.Tensor) -> bool:
    """Whether ``t`` carries derivatives without ``requires_grad``: wrapped by a
    ``torch.func`` transform (``jacfwd``'s forward mode) or a dual tensor of
    ``torch.autograd.forward_ad``. Numpy would drop them (``jacfwd`` failed on "Cannot access
    data pointer")."""
    functorch = getattr(torch._C._functorch, "is_functorch_wrapped_tensor", None)
    if functorch is not None and functorch(t):
        return True
    forward = torch.autograd.forward_ad
    if getattr(forward, "_current_level", 0) < 0:  # no dual level entered: no tangents
        return False
    return forward.unpack_dual(t).tangent is not None


def machine_epsilon(x: Any) -> float:
    """The machine epsilon of ``x``'s floating dtype (``x`` an array, a tensor or a dtype of
    numpy or torch); float64's for integers and anything without a floating dtype."""
    if isinstance(x, type) and issubclass(x, np.generic):  # np.float32, a scalar type
        x = np.dtype(x)
    dtype = x if isinstance(x, torch.dtype | np.dtype) else getattr(x, "dtype", x)
    if isinstance(dtype, torch.dtype):
        return float(torch.finfo(dtype).eps) if dtype.is_floating_point else _EPS64
    try:
        kind = np.dtype(dtype) if dtype is not None else None
    except TypeError:
        return _EPS64
    return float(np.finfo(kind).eps) if kind is not None and kind.kind == "f" else _EPS64


_EPS64 = float(np.finfo(np.float64).eps)


def output(x: Any, as_numpy: bool) -> Array:
    """``x`` (numpy or torch) as a numpy array when the caller passed numpy, else a tensor."""
    if as_numpy:
        return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(x)
