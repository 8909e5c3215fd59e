"""Input and output validation of the OT functions.

Checks of Python parameters read nothing from the arrays. Checks of array values read
them once per call: every reduction a call needs (the cost's range, the marginals' extremes
and masses, rows with no finite entry) is formed first and read together
(:meth:`~gca_viz.ot._xp.Namespace.floats`), so that a solve on a GPU waits for the device
once for its validation and once for its result.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from gca_viz._validate import dtype_name, integer, number, positive, relaxation
from gca_viz.ot._xp import NUMPY, TORCH_HOST, Array, Namespace, namespace


def _to_tensor(x: Any, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert ``x`` to a floating tensor (on ``like``'s device and dtype when given)."""
    if isinstance(x, torch.Tensor):
        t = x
        refuse_vmap(t, name)
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - numpy raises many types
            raise ValueError(f"{name} must be an array or tensor, got {type(x).__name__}") from exc
        if arr.dtype == object or not (
            np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_
        ):
            raise ValueError(f"{name} must hold numbers, got dtype {arr.dtype}")
        if np.iscomplexobj(arr):
            raise ValueError(f"{name} must be real, got dtype {arr.dtype}")
        if arr.dtype not in (np.float32, np.float64):
            arr = arr.astype(np.float64)
        t = torch.from_numpy(np.asarray(arr, order="C"))  # (0-d stays 0-d)
    if t.is_complex():
        raise ValueError(f"{name} must be real, got dtype {t.dtype}")
    if like is not None:
        return t.to(device=like.device, dtype=like.dtype)
    if t.dtype not in (torch.float32, torch.float64):
        t = t.to(torch.float64 if not t.is_floating_point() else torch.float32)
    return t


def refuse_vmap(t: torch.Tensor, name: str) -> None:
    """Refuse a tensor batched by ``torch.func.vmap``, for the solvers and the losses, in
    words (torch's own, "Cannot access data pointer", came from deep inside): the solvers
    read their data to stay stable, one problem per call. ``torch.func.grad``, ``jacrev``,
    ``jacfwd`` and ``hessian`` are fine."""
    batched = getattr(torch._C._functorch, "is_batchedtensor", None)
    if batched is not None and batched(t):
        raise ValueError(
            f"{name} is batched by torch.func.vmap, which gca_viz does not support (Sinkhorn's "
            "iterations read the data to keep float32 stable): one problem per call, in a "
            "loop; torch.func.grad, jacrev, jacfwd and hessian work"
        )


def _real(value: Any, name: str) -> float:
    """``value`` as a float (numbers only): :func:`gca_viz._validate.number`."""
    return number(value, name)


def _check_epsilon(
    epsilon: Any, dtype: torch.dtype | None = None, scale: float | None = None
) -> float:
    """``epsilon`` as a float: finite and ``> 0``; with ``dtype``, within its range; with
    ``scale`` (the magnitude of the cost, at least 1), at least the rounding error
    ``scale * machine eps`` of the cost, below which ``exp(-C/ε)`` is noise or inf."""
    eps = positive(epsilon, "epsilon")
    if dtype is not None:
        # ε and 1/ε must be normal numbers of the dtype, and ε log(...) terms must not
        # overflow (|log| <= ~745 for any positive double).
        info = torch.finfo(dtype)
        if not info.tiny <= eps <= info.max / 4096:
            raise ValueError(
                f"epsilon = {epsilon!r} is outside the range a {dtype_name(dtype)} cost supports "
                f"([{info.tiny:.3g}, {info.max / 4096:.3g}])"
            )
        if scale is not None and eps < scale * info.eps:
            raise ValueError(
                f"epsilon = {epsilon!r} is below the rounding error of a {dtype_name(dtype)} "
                f"cost of magnitude {scale:.3g} (it must be >= {scale * info.eps:.3g}); use a "
                "larger epsilon or float64"
            )
    return eps


def _check_relax(relax: float | None, name: str) -> float | None:
    """A marginal weight ``λ > 0``; ``None`` or ``inf``: a hard marginal (``None``)."""
    return relaxation(relax, name)


def _numpy_result(cost: Any, lead: str = "cost", **others: Any) -> bool:
    """Whether a function's results are numpy arrays (``cost``, the argument named ``lead``
    whose kind they take, is not a torch tensor); refuses a torch tensor among ``others``
    (marginals, a potential, a second point set) beside such a lead: a numpy result dropped
    their device and gradient (a marginal that required grad failed after the whole solve,
    in torch's own words)."""
    if isinstance(cost, torch.Tensor):
        return False
    for name, value in others.items():
        if isinstance(value, torch.Tensor):
            raise ValueError(
                f"{lead} and {name} must both be torch tensors when {name} is one: {lead} is a "
                f"{type(cost).__name__}; pass torch.as_tensor({lead}, dtype={name}.dtype, "
                f"device={name}.device) (the results take {lead}'s kind)"
            )
    return True


def _check_count(value: Any, name: str) -> int:
    """A number of sweeps: an integer ``>= 1`` (not a bool); a whole float (``3.0``, as a
    config file or JSON writes it) counts as its integer, as the losses' ``n_iter`` does
    (the solver refused what the loss took)."""
    if isinstance(value, float | np.floating) and math.isfinite(value) and value.is_integer():
        value = int(value)
    return integer(value, name, 1)


def _cost_matrix(cost: Array) -> torch.Tensor:
    """``cost`` as a tensor, checked to be a non-empty 2-D matrix (values checked later)."""
    C = _to_tensor(cost, "cost")
    if C.ndim != 2 or C.shape[0] == 0 or C.shape[1] == 0:
        batch = " (one problem per call: loop over a batch)" if C.ndim == 3 else ""
        raise ValueError(f"cost must be a non-empty 2-D matrix, got shape {tuple(C.shape)}{batch}")
    return C


def _marginal(x: Array | None, name: str, size: int, like: torch.Tensor) -> torch.Tensor:
    """``x`` as a tensor of shape ``(size,)`` (uniform ``1/size`` for ``None``); its values
    are checked by :func:`_check_problem`."""
    if x is None:
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    t = _to_tensor(x, name, like=like)
    if t.ndim != 1 or t.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {tuple(t.shape)}")
    return t


@dataclass(frozen=True)
class _Checked:
    """What validating a problem learnt about it, for the engines."""

    lowest: float  # min C
    highest: float  # max C (+inf: forbidden pairs)
    highest_finite: float | None  # max of the finite entries (device path, or trusted)
    row_min: Any  # (n,) each row's min of C when the check computed it, else None
    masses: tuple[float, ...]  # sum of each marginal

    @property
    def top(self) -> float:
        """The largest entry that bounds ``K~`` from below: the finite maximum where known."""
        return self.highest if self.highest_finite is None else self.highest_finite


_TRUSTED: ContextVar[tuple[_Checked, tuple[int, tuple[int, ...]]] | None] = ContextVar(
    "gca_viz_ot_trusted", default=None
)


def _identity(x: Any) -> tuple[int, tuple[int, ...]]:
    """The address and shape of a tensor's or array's data (a numpy view of a CPU tensor
    has the tensor's); a tensor without storage (wrapped by a ``torch.func`` transform) is
    known by the object itself (a negative number: no address)."""
    if isinstance(x, torch.Tensor):
        try:
            return x.data_ptr(), tuple(x.shape)
        except RuntimeError:
            return -id(x), tuple(x.shape)
    return int(x.__array_interface__["data"][0]), tuple(x.shape)


@contextmanager
def trusted(checked: _Checked, cost: Any) -> Iterator[None]:
    """Inside the block the OT functions given the cost matrix ``cost`` itself (the same
    data) take ``checked`` for what validating their problem would find, and read nothing
    for it; :func:`~gca_viz.ot.row_projection` also leaves its result unchecked. Any other
    cost is validated as usual. For a caller that knows those values without reading the
    device and checks what it computes from the result: a loss, whose cosine cost of
    embeddings the cost itself checked lies in ``[0, 2]`` (``+inf`` on an excluded
    diagonal), whose marginals it checked on the host, and whose value it checks for NaN
    and inf."""
    token = _TRUSTED.set((checked, _identity(cost)))
    try:
        yield
    finally:
        _TRUSTED.reset(token)


def _trusted_for(C: Any) -> _Checked | None:
    """What :func:`trusted` says of the cost ``C``, or ``None`` (validate it)."""
    known = _TRUSTED.get()
    return known[0] if known is not None and known[1] == _identity(C) else None


def _problem_namespace(C: Any, *others: Any) -> Namespace:
    """The namespace of a problem on ``C`` and ``others``: :func:`namespace`'s, except
    that a CPU problem a loss vouches for (:func:`trusted`) stays in torch without autograd
    too, so that a loss runs the same operations with and without it."""
    ns = namespace(C, *others)
    if ns is NUMPY and isinstance(C, torch.Tensor) and _trusted_for(C) is not None:
        return TORCH_HOST
    return ns


def _check_problem(
    ns: Namespace,
    C: Any,
    marginals: Sequence[tuple[str, Any, bool]] = (),
    vectors: Sequence[tuple[str, Any]] = (),
) -> _Checked:
    """Check the values of a cost ``C`` (``(n, m)``, in ``ns``), of the marginals
    ``(name, (k,) array, given)`` (a default one is not checked) and of the vectors
    ``(name, array)`` that must be finite; read in one go.

    Raises ``ValueError`` naming the parameter: a marginal with NaN or inf, an entry below
    the dtype's smallest normal number, or one ``<= 0``; a vector with NaN or inf; a cost
    with NaN, ``-inf``, or a row or column with no finite entry.

    On the host the row and column reductions run only if the cost holds ``+inf`` (only
    then can a line be all ``+inf``; whole-matrix reductions cost half of per-line ones in
    numpy); on a device they run always, to keep to one read. For the cost :func:`trusted`
    names, the values it was given, and no read.
    """
    known = _trusted_for(C)
    if known is not None:
        return known
    xp = ns.xp
    Cd = ns.detach(C)
    if ns.host:
        values: list[Any] = [xp.amin(Cd), xp.amax(Cd)]
        row_min = None
    else:  # every reduction before the one read; the finite maximum serves the engine
        row_min = xp.amin(Cd, axis=1)
        finite = torch.nan_to_num(Cd, nan=math.nan, posinf=-math.inf)
        values = [xp.amin(row_min), xp.amax(Cd), xp.amax(row_min)]
        values += [xp.amax(xp.amin(Cd, axis=0)), xp.amax(finite)]
    for _, m, _ in marginals:
        md = ns.detach(m)
        values += [xp.amin(md), xp.amax(md), xp.sum(md)]
    values += [xp.amax(xp.abs(ns.detach(v))) for _, v in vectors]
    got = ns.floats(values)
    cost, rest = got[:2] if ns.host else got[:5], got[2 if ns.host else 5 :]
    for i, (name, m, given) in enumerate(marginals):
        if given:
            _check_marginal_values(name, rest[3 * i], rest[3 * i + 1], ns.finfo(m).tiny, m.dtype)
    for (name, _), top in zip(vectors, rest[3 * len(marginals) :], strict=True):
        if not math.isfinite(top):
            raise ValueError(f"{name} must be finite, got NaN or inf entries")
    lowest, highest = cost[0], cost[1]
    if math.isnan(lowest) or math.isnan(highest):
        raise ValueError("cost contains NaN")
    if lowest == -math.inf:
        raise ValueError("cost contains -inf; use +inf for forbidden pairs")
    if highest == math.inf:
        if ns.host:
            row_min = xp.amin(Cd, axis=1)
        for axis, name in ((1, "row"), (0, "column")):
            least = row_min if axis == 1 else xp.amin(Cd, axis=0)
            if ns.host or cost[2 if axis == 1 else 3] == math.inf:  # (max of the line minima)
                bad = ns.tensor(least == math.inf).nonzero().flatten()
                if len(bad):
                    raise ValueError(
                        f"cost {name} {int(bad[0])} has no finite entry, so no plan can move "
                        "its mass"
                    )
    masses = tuple(rest[3 * i + 2] for i in range(len(marginals)))
    return _Checked(lowest, highest, None if ns.host else cost[4], row_min, masses)


def _or_float64(dtype: Any, words: str = ", or use float64") -> str:
    """The advice to compute in float64, unless ``dtype`` is float64 already (the messages
    said "or use float64" to float64 input)."""
    return "" if str(dtype).endswith("float64") else words


def _check_marginal_values(name: str, low: float, high: float, tiny: float, dtype: Any) -> None:
    if low >= tiny and high < math.inf:  # (False for NaN)
        return
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"{name} contains NaN or inf")
    if low > 0:  # subnormal masses lose their precision (and the plan)
        raise ValueError(
            f"{name} has entries below {tiny:.3g}, the smallest normal {dtype_name(dtype)} number; "
            "rescale the marginals" + _or_float64(dtype, " (or use float64)")
        )
    raise ValueError(f"{name} must be strictly positive (drop zero-mass points from the problem)")


def _check_cost_values(C: torch.Tensor) -> tuple[float, float]:
    """Reject NaN and -inf, and rows or columns with no finite entry; return the smallest
    and the largest entry of the cost (the largest may be ``+inf``, a forbidden pair)."""
    ns = namespace(C)
    checked = _check_problem(ns, ns.native(C))
    return checked.lowest, checked.highest


def _check_solution(
    ns: Namespace,
    eps: float,
    dtype: Any,
    potentials: Sequence[Any],
    others: Sequence[Any] = (),
    extras: Sequence[Any] = (),
    valid: Any = True,
) -> list[float] | None:
    """Read, in one go, ``extras`` and what shows whether the solution is representable;
    ``None`` (and no other check) when the flag ``valid`` (a boolean, or a 0-d tensor from
    the device path) came out false. Raises ``ValueError`` when

    * a potential or another vector came out NaN or inf: the cost is too large, or relaxed
      and very negative, for ``ε`` in ``dtype``. For :func:`sinkhorn` the others are the
      residuals (``SinkhornResult.errors``); the last one is that of the returned plan, finite iff
      every row sum, hence (entries being ``>= 0``) every entry of the plan is;
    * ``ε`` is below the rounding error of the potentials, ``max |f|, |g|`` times the
      machine epsilon: then ``(f_i + g_j - C_ij) / ε`` on the plan's support is rounding
      noise of order 1 or more, and ``exp`` of it garbage or inf.

    ``max |x|`` propagates NaN and inf: one reduction per vector flags any non-finite entry.
    Returns the floats of ``extras``.
    """
    xp = ns.xp
    vectors = [ns.detach(v).reshape(-1) for v in (*potentials, *others)]
    tops = [xp.amax(xp.abs(v)) if v.shape[0] else 0.0 for v in vectors]
    got = ns.floats([valid, *tops, *extras])
    if not got[0]:
        return None
    tops_f = got[1 : 1 + len(tops)]
    scale = max(tops_f[: len(potentials)])
    if not all(math.isfinite(x) for x in tops_f):
        raise ValueError(
            f"epsilon = {eps:g}: the potentials or the plan overflow {dtype_name(dtype)} for "
            "this cost; rescale the cost or use a larger epsilon (or other relax_a / relax_b)"
            + _or_float64(dtype)
        )
    if eps < scale * ns.finfo(vectors[0]).eps:
        raise ValueError(
            f"epsilon = {eps:g} is below the rounding error of the potentials (magnitude "
            f"{scale:.3g}) in {dtype_name(dtype)}; use a larger epsilon or rescale the cost"
            + _or_float64(dtype)
        )
    return got[1 + len(tops) :]


def _points_pair(x: Array, y: Array | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``y`` (``x`` again when ``None``) as tensors of ``x``'s device and dtype,
    2-D, non-empty, with the same feature dimension (values checked by
    :func:`_check_rows`). Two floating dtypes or two devices that differ are refused, and so
    is a torch ``y`` beside a ``x`` that is not a tensor (the result takes ``x``'s kind)."""
    xt = _to_tensor(x, "x")
    _check_shape(xt, "x")
    if y is None:
        return xt, xt
    _numpy_result(x, "x", y=y)  # (the cost takes x's kind)
    x_kind, y_kind = _float_kind(x), _float_kind(y)
    if x_kind and y_kind and x_kind != y_kind:  # (else the argument order picks the precision)
        raise ValueError(f"x and y must have the same dtype: {x_kind} != {y_kind}; cast one")
    if isinstance(y, torch.Tensor) and y.device != xt.device:
        raise ValueError(f"x and y must be on the same device: {xt.device} != {y.device}")
    yt = _to_tensor(y, "y", like=xt)
    _check_shape(yt, "y")
    if yt.shape[1] != xt.shape[1]:
        raise ValueError(
            f"y must have the same feature dimension as x: {yt.shape[1]} != {xt.shape[1]}"
        )
    return xt, yt


def _float_kind(x: Any) -> str | None:
    """The floating dtype of a tensor or numpy array (``"float32"``), else ``None``."""
    dtype = getattr(x, "dtype", None)
    if isinstance(dtype, torch.dtype):
        return dtype_name(dtype) if dtype.is_floating_point else None
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return str(dtype)
    return None


def _check_shape(x: torch.Tensor, name: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")


def _check_rows(
    ns: Namespace, peaks: Sequence[tuple[str, Any]], zero_rows: bool, extras: Sequence[Any] = ()
) -> list[float]:
    """From each point set's ``(n, 1)`` largest ``|entry|`` per row, in one read: raise if
    one holds NaN or inf, or (with ``zero_rows``) has an all-zero row. Returns the floats
    of ``extras``."""
    xp = ns.xp
    got = ns.floats([r(p) for _, p in peaks for r in (xp.amax, xp.amin)] + list(extras))
    for i, (name, _) in enumerate(peaks):
        if not math.isfinite(got[2 * i]):
            raise ValueError(f"{name} contains NaN or inf")
    for i, (name, _) in enumerate(peaks):
        if zero_rows and got[2 * i + 1] == 0:
            raise ValueError(f"{name} has an all-zero row; its cosine similarity is undefined")
    return got[2 * len(peaks) :]
