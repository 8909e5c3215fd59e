"""Property-based fuzz tests of the public API against bad input (issue 8, "Bad input").

The property, for every public function of :mod:`gca_viz.ot`, :mod:`gca_viz.losses`,
:mod:`gca_viz.targets` and :mod:`gca_viz.metrics`: a call with arbitrary input (any shape,
including empty, 1-D and 3-D; float16/32/64, bfloat16, int, bool and complex dtypes; numpy
arrays, torch tensors and Python lists; NaN, inf, zero vectors, huge and tiny values; any
``ε`` and ``λ``, including 0, negative, NaN, inf, 1e-30 and 1e30) either

* returns finite values: every float in the result is finite (the documented exceptions
  are ``+inf`` on excluded self-pairs of a cost, ``-inf`` in a log-plan where a plan entry
  is 0, and ``nan`` from ``SinkhornResult.contraction`` with too few sweeps), every plan is
  non-negative; or
* raises ``ValueError`` whose message names a parameter of the call (as a word).

Nothing else may escape: no ``TypeError`` (the library's convention, followed here, is a
``ValueError`` naming the parameter even for a value of the wrong Python type), no
``RuntimeError`` from torch, no ``IndexError``, no ``ZeroDivisionError``, no ``NaN``
returned silently. Warnings are ignored. Losses are also differentiated: the gradient
must be finite when the batch and parameters are moderate (float32/64, rows of size 1e-4
to 1e4, ``1e-3 <= ε <= 1e3``, other weights 1e-6 to 1e6); outside that range the true
gradient can overflow (it scales like ``1 / (ε |z|)``), so it is not checked.

Profiles: the default (CI) profile runs a modest, derandomized number of examples per test
(reproducible, well under a minute on two slow cores). The long profile is random:

    GCA_FUZZ_EXAMPLES=3000 python -m pytest tests/test_fuzz.py -q   # 3000 examples per test
    HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py -q   # 2000 examples per test

With ``GCA_FUZZ_REPORT=path.json`` the tests also write how many inputs each API function
was called with and how many returned finite values or raised ``ValueError``.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import os
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gca_viz import losses, metrics, ot, targets
from gca_viz.losses import COSTS, DIVERGENCES, LOSSES, PROJECTIONS, TARGETS
from tests.helpers import names_parameter, raises_naming

R = TypeVar("R")

# ---------------------------------------------------------------------------- profiles

_HEALTH = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "gca-fuzz-ci",
    max_examples=25,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=_HEALTH,
)
_LONG_EXAMPLES = int(os.environ.get("GCA_FUZZ_EXAMPLES", "0") or 0)
settings.register_profile(
    "gca-fuzz-long",
    max_examples=_LONG_EXAMPLES or 2000,
    deadline=None,
    derandomize=False,
    database=None,
    suppress_health_check=_HEALTH,
)
_LONG = _LONG_EXAMPLES > 0 or os.environ.get("HYPOTHESIS_PROFILE") == "long"
FUZZ = settings.get_profile("gca-fuzz-long" if _LONG else "gca-fuzz-ci")
"""The settings every fuzz test runs under (applied per test, not loaded globally)."""

# ---------------------------------------------------------------------------- outcomes

TALLY: defaultdict[str, Counter[str]] = defaultdict(Counter)
"""Per API function: calls, calls that returned finite (checked) values, ValueErrors."""


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    yield
    path = os.environ.get("GCA_FUZZ_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump({k: dict(v) for k, v in sorted(TALLY.items())}, fh, indent=1)


def _call(api: str, fn: Callable[[], R], names: Sequence[str]) -> R | None:
    """Run ``fn``; ``None`` if it raised ``ValueError`` naming one of ``names``.

    Any other exception propagates and fails the test."""
    TALLY[api]["calls"] += 1
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            out = fn()
    except ValueError as exc:
        msg = str(exc)
        assert any(names_parameter(msg, name) for name in names), (
            f"{api}: the ValueError names none of {list(names)}: {msg!r}"
        )
        TALLY[api]["ValueError"] += 1
        return None
    return out


def _finite_returned(api: str) -> None:
    TALLY[api]["finite"] += 1


def _np(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().to(torch.float64).numpy()
    return np.asarray(x, dtype=np.float64)


def _assert_finite(x: Any, what: str) -> None:
    arr = _np(x)
    assert np.isfinite(arr).all(), f"{what} is not finite: {arr!r}"


def _assert_plan(x: Any, what: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    arr = _np(x)
    if shape is not None:
        assert arr.shape == shape, f"{what} has shape {arr.shape}, expected {shape}"
    assert np.isfinite(arr).all(), f"{what} is not finite: {arr!r}"
    assert (arr >= 0).all(), f"{what} has negative entries: {arr!r}"
    return arr


def _assert_log_plan(x: Any, what: str, forbidden: np.ndarray | None = None) -> None:
    """A log-plan: no NaN, no +inf; ``-inf`` exactly allowed (an entry of 0), and required
    where the cost forbids the pair."""
    arr = _np(x)
    assert not np.isnan(arr).any(), f"{what} has NaN: {arr!r}"
    assert not (arr == np.inf).any(), f"{what} has +inf: {arr!r}"
    if forbidden is not None:
        assert (arr[forbidden] == -np.inf).all(), f"{what} is not -inf on forbidden pairs"


# -------------------------------------------------------------------------- strategies
#
# Every input is drawn as "good" (valid, but with extreme values: zero vectors, tiny and
# huge scales, every real dtype and container) or, with a small probability per argument,
# "bad" (wrong shape, NaN/inf, complex, wrong Python type), so that about half of the
# calls exercise the numerics and the rest the validation.

P_BAD = 0.1
SPECIALS = (math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-300, -1e300, 1e300, 5e-324, 1e308)
SCALES = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1e-300, 1e-30, 1e-8, 1e8, 1e30, 1e300, 1e-40, 1e38)
REAL_DTYPES = ("float64", "float64", "float32", "float32", "float16", "bfloat16", "int64", "bool")
FLOAT_DTYPES = ("float64", "float64", "float32", "float32", "float16", "bfloat16")
CONTAINERS = ("numpy", "numpy", "torch", "torch", "list")
JUNK = (None, "x", math.nan, math.inf, -math.inf, -1, 0, True, [1.0], object(), 1 + 1j)
JUNK_ARRAYS = (None, "abc", 3.0, [[1.0, "a"]], [[1.0], [2.0, 3.0]], object())


def chance(p: float) -> st.SearchStrategy[bool]:
    """``True`` with probability about ``p`` (``st.floats(0, 1) < p`` is far from that:
    hypothesis favours boundary values). The simplest draw, which hypothesis also
    favours, is ``False``."""
    return st.sampled_from(range(100)).map(lambda k: k >= 100 * (1 - p))


def weighted(*options: tuple[int, st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    """One of ``options``, each ``(weight, strategy)`` chosen with probability about
    proportional to its weight (``st.one_of`` picks its distinct branches evenly)."""
    cumulative = list(itertools.accumulate(w for w, _ in options))
    strategies = [strategy for _, strategy in options]
    return st.sampled_from(range(cumulative[-1])).flatmap(
        lambda k: strategies[bisect.bisect_right(cumulative, k)]
    )


def _either(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any], p_bad: float = P_BAD):
    """``good``, or ``bad`` with probability about ``p_bad``."""
    return chance(p_bad).flatmap(lambda is_bad: bad if is_bad else good)


def _convert(x: np.ndarray, dtype: str, container: str) -> Any:
    """``x`` (float64) cast to ``dtype`` and wrapped in ``container``."""
    x = np.asarray(x)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if container == "torch":
            if dtype == "bfloat16":
                return torch.from_numpy(x.astype(np.float32)).to(torch.bfloat16)
            return torch.from_numpy(np.ascontiguousarray(x.astype(dtype)))
        arr = x.astype("float32" if dtype == "bfloat16" else dtype)
        return arr.tolist() if container == "list" else arr


@st.composite
def values(
    draw: st.DrawFn,
    shape: tuple[int, ...],
    low: float = -1.0,
    high: float = 1.0,
    specials: float = 0.0,
) -> np.ndarray:
    """A float64 array: entries in ``[low, high]`` times a random scale (0, tiny, huge),
    with special values (NaN, inf, ...) injected with probability ``specials``."""
    base = draw(hnp.arrays(np.float64, shape, elements=st.floats(low, high)))
    with np.errstate(all="ignore"):
        x = np.array(base * draw(st.sampled_from(SCALES)))
    if x.size and draw(chance(specials)):
        flat = x.reshape(-1)
        for _ in range(draw(st.integers(1, 3))):
            flat[draw(st.integers(0, x.size - 1))] = draw(st.sampled_from(SPECIALS))
    return x


@st.composite
def wrapped(
    draw: st.DrawFn,
    x: np.ndarray,
    dtypes: Sequence[str] = REAL_DTYPES,
    containers: Sequence[str] = CONTAINERS,
) -> Any:
    return _convert(x, draw(st.sampled_from(dtypes)), draw(st.sampled_from(containers)))


ANY_SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)


@st.composite
def bad_array(draw: st.DrawFn, shape: tuple[int, ...], low: float = -1.0) -> Any:
    """An array that is wrong in one way: shape, NaN/inf entries, complex dtype, or not an
    array of numbers at all."""
    how = draw(st.sampled_from(["shape", "specials", "complex", "junk"]))
    if how == "junk":
        return draw(st.sampled_from(JUNK_ARRAYS))
    if how == "shape":
        shape = draw(ANY_SHAPE)
    x = draw(values(shape, low=low, specials=1.0 if how == "specials" else 0.1))
    dtypes = ("complex128",) if how == "complex" else REAL_DTYPES
    return draw(wrapped(x, dtypes))


def array(
    shape: tuple[int, ...],
    low: float = -1.0,
    high: float = 1.0,
    dtypes: Sequence[str] = REAL_DTYPES,
    containers: Sequence[str] = CONTAINERS,
    p_bad: float = P_BAD,
) -> st.SearchStrategy[Any]:
    """Mostly a valid array of ``shape`` (any real dtype and container), sometimes a bad one."""
    good = values(shape, low, high).flatmap(lambda x: wrapped(x, dtypes, containers))
    return _either(good, bad_array(shape, low), p_bad)


def _shape(x: Any) -> tuple[int, ...]:
    try:
        return tuple(np.shape(x))
    except ValueError:  # a ragged list
        return ()


def _rows(x: Any) -> int:
    shape = _shape(x)
    return shape[0] if shape else 1


def _cols(x: Any) -> int:
    shape = _shape(x)
    return shape[-1] if len(shape) == 2 else 2


_EXTREME = [1e-30, 1e30, 1e-300, 1e300, 1e-8, 1e8, 1e-40, 1e38, 5e-324, 1e308]
EPSILON = weighted(
    (6, st.sampled_from([0.5, 0.1, 1.0, 2.0, 0.05, 1e-2, 1e-3])),
    (2, st.sampled_from(_EXTREME)),
    (1, st.floats(min_value=0.0, exclude_min=True)),
    (1, st.sampled_from([0.0, -0.5, math.nan, math.inf, -math.inf, None, "eps", [0.5], 1j])),
)
"""ε: mostly ordinary, often extreme (1e-300 to 1e308), sometimes invalid."""
RELAX = weighted(
    (6, st.sampled_from([None, 0.2, 1.0, 0.01, 10.0, math.inf])),
    (2, st.sampled_from(_EXTREME)),
    (1, st.floats(min_value=0.0, exclude_min=True)),
    (1, st.sampled_from([0.0, -1.0, math.nan, -math.inf, "x", [1.0]])),
)
"""λ (relax_a / relax_b): mostly ordinary or None, often extreme, sometimes invalid."""


# ------------------------------------------------------------------------------- costs


def _check_cost(out: Any, x: Any, shape: tuple[int, int], exclude_self: bool, kind: str) -> None:
    assert isinstance(out, torch.Tensor) == isinstance(x, torch.Tensor), "wrong return type"
    c = _np(out)
    assert c.shape == shape, f"cost has shape {c.shape}, expected {shape}"
    finite = np.ones(shape, dtype=bool)
    if exclude_self:
        assert (np.diagonal(c) == np.inf).all(), "exclude_self must put +inf on the diagonal"
        np.fill_diagonal(finite, False)
    assert np.isfinite(c[finite]).all(), f"{kind} cost is not finite: {c!r}"
    tol = 1e-2  # float16/bfloat16 inputs are computed in float32
    assert (c[finite] >= -tol).all(), f"{kind} cost is negative: {c!r}"
    if kind == "cosine":
        assert (c[finite] <= 2 + tol).all(), f"cosine cost exceeds 2: {c!r}"


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["cosine", "sqeuclidean"]))
def test_fuzz_costs(data: st.DataObject, kind: str) -> None:
    fn = ot.cosine_cost if kind == "cosine" else ot.sqeuclidean_cost
    n, d = data.draw(st.integers(1, 6), label="n"), data.draw(st.integers(1, 4), label="d")
    x = data.draw(array((n, d)), label="x")
    y = None
    if data.draw(st.booleans(), label="use y"):
        y = data.draw(array((data.draw(st.integers(1, 6), label="m"), d)), label="y")
    exclude_self = data.draw(st.booleans(), label="exclude_self")
    api = f"ot.{kind}_cost"
    out = _call(api, lambda: fn(x, y, exclude_self=exclude_self), ["x", "y", "exclude_self"])
    if out is not None:
        _check_cost(out, x, (_rows(x), _rows(x) if y is None else _rows(y)), exclude_self, kind)
        _finite_returned(api)


# ------------------------------------------------------------------------------ solver


@st.composite
def cost_matrix(draw: st.DrawFn) -> Any:
    """Mostly a valid ``(n, m)`` cost (entries in [0, 2] times a scale, sometimes negative,
    sometimes with forbidden ``+inf`` pairs), sometimes a bad one."""
    n, m = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    if draw(chance(P_BAD)):
        return draw(bad_array((n, m), low=0.0))
    x = draw(values((n, m), low=0.0, high=2.0))
    if draw(chance(0.25)):  # forbidden pairs
        for _ in range(draw(st.integers(1, max(1, x.size // 2)))):
            x[draw(st.integers(0, n - 1)), draw(st.integers(0, m - 1))] = math.inf
    if draw(chance(0.1)):
        x = x - draw(st.sampled_from([1.0, 1e3, 1e30, 1e300]))  # negative costs are allowed
    return draw(wrapped(x))


@st.composite
def marginal(draw: st.DrawFn, size: int, mass: float) -> Any:
    """``None`` (uniform), a positive vector of total ``mass``, or a bad one."""
    kind = draw(st.sampled_from(["none", "none", "good", "good", "good", "good", "bad"]))
    if kind == "none":
        return None
    if kind == "bad":
        return draw(bad_array((size,), low=-1.0))
    p = draw(hnp.arrays(np.float64, (size,), elements=st.floats(0.05, 1.0)))
    return draw(wrapped(p / p.sum() * mass, ("float64", "float64", "float32")))


def _check_result(res: ot.SinkhornResult, C: Any, hist: bool) -> None:
    n, m = _shape(C)
    forbidden = _np(C) == np.inf
    _assert_plan(res.plan, "plan", (n, m))
    assert (_np(res.plan)[forbidden] == 0).all(), "plan puts mass on a forbidden pair"
    _assert_log_plan(res.log_plan, "log_plan", forbidden)
    _assert_finite(res.f, "f")
    _assert_finite(res.g, "g")
    assert _np(res.f).shape == (n,) and _np(res.g).shape == (m,)
    errors = _np(res.errors)
    assert np.isfinite(errors).all() and (errors >= 0).all(), f"errors: {errors!r}"
    assert res.n_iter == len(errors) >= 1
    assert len(res.history) == (2 * res.n_iter if hist else 0)
    for k, p in enumerate(res.history):
        _assert_plan(p, f"history[{k}]", (n, m))
    for prop in ("mass", "marginal_error", "entropy", "transport_cost"):
        value = getattr(res, prop)
        assert math.isfinite(value), f"{prop} = {value}"
    assert all(0 <= r <= 1 for r in res.rho), f"rho = {res.rho}"  # 0: λ underflows vs ε
    c = res.contraction
    assert math.isnan(c) or math.isfinite(c), f"contraction = {c}"


MASSES = st.sampled_from([1.0, 1.0, 1.0, 1.0, 3.0, 1e-30, 1e30, 1e-300, 1e300])


@FUZZ
@given(data=st.data(), unbalanced=st.booleans())
def test_fuzz_sinkhorn(data: st.DataObject, unbalanced: bool) -> None:
    C = data.draw(cost_matrix(), label="cost")
    n, m = ((*_shape(C), 1, 1))[:2]
    mass = data.draw(MASSES, label="mass")
    a, b = data.draw(marginal(n, mass), label="a"), data.draw(marginal(m, mass), label="b")
    epsilon = data.draw(EPSILON, label="epsilon")
    relax_a = data.draw(RELAX, label="relax_a") if unbalanced else None
    relax_b = data.draw(RELAX, label="relax_b") if unbalanced else None
    max_iter = data.draw(
        _either(st.integers(1, 30), st.sampled_from([0, -1, 2.5, None, True, "3"])),
        label="max_iter",
    )
    tol = data.draw(
        _either(st.sampled_from([0.0, 0.0, 1e-9, 1e-3]), st.sampled_from([-1.0, math.nan, "t"])),
        label="tol",
    )
    method = data.draw(_either(st.sampled_from(["absorb", "log"]), st.just("bad")), label="method")
    history = data.draw(st.booleans(), label="history")
    api = "ot.sinkhorn(unbalanced)" if unbalanced else "ot.sinkhorn(balanced)"

    def call() -> ot.SinkhornResult:
        return ot.sinkhorn(
            C,
            a,
            b,
            epsilon=epsilon,
            n_iter=max_iter,
            tol=tol,
            relax_a=relax_a,
            relax_b=relax_b,
            history=history,
            method=method,
        )

    names = ["cost", "a", "b", "epsilon", "n_iter", "tol", "relax_a", "relax_b", "method"]
    res = _call(api, call, names)
    if res is not None:
        assert isinstance(res.plan, torch.Tensor) == isinstance(C, torch.Tensor)
        _check_result(res, C, history)
        _finite_returned(api)


@FUZZ
@given(data=st.data())
def test_fuzz_row_projection(data: st.DataObject) -> None:
    C = data.draw(cost_matrix(), label="cost")
    n, m = ((*_shape(C), 1, 1))[:2]
    a = data.draw(marginal(n, data.draw(MASSES)), label="a")
    g = None
    if data.draw(st.booleans(), label="use g"):
        g = data.draw(array((m,), low=-3.0, high=3.0), label="g")
    epsilon = data.draw(EPSILON, label="epsilon")
    relax_a = data.draw(RELAX, label="relax_a")
    out = _call(
        "ot.row_projection",
        lambda: ot.row_projection(C, a, g=g, epsilon=epsilon, relax_a=relax_a),
        ["cost", "a", "g", "epsilon", "relax_a"],
    )
    if out is None:
        return
    log_plan, f = out
    assert _np(log_plan).shape == (n, m)
    _assert_log_plan(log_plan, "log_plan", _np(C) == np.inf)
    _assert_finite(f, "f")
    if relax_a is None or relax_a == math.inf:  # (a relaxed row step may scale mass up a lot)
        _assert_plan(np.exp(_np(log_plan)), "plan", (n, m))
    _finite_returned("ot.row_projection")


@FUZZ
@given(data=st.data())
def test_fuzz_exact_ot(data: st.DataObject) -> None:
    C = data.draw(cost_matrix(), label="cost")
    n, m = ((*_shape(C), 1, 1))[:2]
    mass = data.draw(MASSES, label="mass")
    a, b = data.draw(marginal(n, mass), label="a"), data.draw(marginal(m, mass), label="b")
    plan = _call("ot.exact_ot", lambda: ot.exact_ot(C, a, b), ["cost", "a", "b"])
    if plan is not None:
        assert isinstance(plan, torch.Tensor) == isinstance(C, torch.Tensor)
        p = _assert_plan(plan, "exact plan", (n, m))
        assert (p[_np(C) == np.inf] == 0).all(), "exact plan uses a forbidden pair"
        _finite_returned("ot.exact_ot")


# ------------------------------------------------------------------------------ losses

GOOD_PARAMS: dict[str, tuple[Any, ...]] = {
    "epsilon": (0.5, 0.1, 1.0, 0.05, 1e-3, 1e-30, 1e30, 1e-300, 1e300, 5e-324),
    "n_iter": (1, 2, 3, 10, 50, 5.0),
    "relax_a": (0.2, 1.0, None, math.inf, 1e-30, 1e30, 1e-300, 1e300),
    "relax_b": (0.2, 1.0, None, math.inf, 1e-30, 1e30, 1e-300, 1e300),
    "q": (0.6, 1.0, 0.98, 1e-30, 1e-300, 0.5),
    "lam": (0.01, 0.0, 1.0, 1e-30, 1e30, 1e300),
    "r1": (1.0, 0.0, 1e30, 1e-30, 1e300),
    "r2": (0.2, 0.0, 1e30, 1e-30, 1e300),
    "lam_p": (0.2, 0.0, 1e30, 1e-30, 1e300),
    "end": ("column", "row"),
    "gamma": (0.1, 0.0, 1.0, 1e-30, 1e-300),
    "alpha": (0.2, 0.0, 1.0, 1e-30),
    "beta": (0.0, 0.5, 1.0, 1e-300),
}
BAD_PARAMS: dict[str, tuple[Any, ...]] = {
    "epsilon": (0.0, -0.5, math.nan, math.inf, None, "eps"),
    "n_iter": (0, -1, 2.5, math.inf, math.nan, None, "3", True),
    "relax_a": (0.0, -1.0, math.nan, -math.inf, "x"),
    "relax_b": (0.0, -1.0, math.nan, -math.inf, "x"),
    "q": (0.0, 1.5, -0.5, math.nan, None, math.inf),
    "lam": (-1.0, math.inf, math.nan),
    "r1": (-1.0, math.nan, math.inf),
    "r2": (-1.0, math.inf),
    "lam_p": (-1.0, math.nan),
    "end": ("middle", None, 3),
    "gamma": (2.0, -0.1, math.nan, None, "g"),
    "alpha": (-1.0, math.inf, 1.5),
    "beta": (-1.0, math.nan),
}
PARAM_KEYS = sorted(GOOD_PARAMS)
LOSS_ERROR_NAMES = (
    *PARAM_KEYS,
    "z1",
    "z2",
    "labels",
    "domains",
    "target",
    "target_matrix",
    "layout",
    "loss",
    "cost",
    "projection",
    "divergence",
    "bogus",
)
LOSS_PARAM_NAMES = {name: set(losses.get(name).params) for name in LOSSES}


@st.composite
def param_value(draw: st.DrawFn, key: str) -> Any:
    bad = st.one_of(st.sampled_from(BAD_PARAMS[key]), st.sampled_from(JUNK))
    return draw(_either(st.sampled_from(GOOD_PARAMS[key]), bad))


@st.composite
def loss_params(draw: st.DrawFn, own: set[str]) -> dict[str, Any]:
    """Overrides of some of the loss's own parameters, rarely of a foreign one, and of the
    layout and target."""
    params: dict[str, Any] = {}
    for key in sorted(own):
        if draw(chance(0.4)):
            params[key] = draw(param_value(key))
    foreign = [key for key in [*PARAM_KEYS, "bogus"] if key not in own]
    if draw(chance(0.05)):
        params[draw(st.sampled_from(foreign))] = 1.0
    if draw(chance(0.2)):
        layouts = st.sampled_from(["cross", "joint"])
        params["layout"] = draw(_either(layouts, st.sampled_from(["diagonal", None, 3])))
    if draw(chance(0.3)):
        target = st.sampled_from(["pairs", "class", "domain", "custom"])
        params["target"] = draw(_either(target, st.sampled_from(["nope", None])))
        if params["target"] in ("class", "domain") and draw(st.booleans()):
            key = "gamma" if params["target"] == "class" else "alpha"
            params[key] = draw(param_value(key))
    return params


@st.composite
def embeddings(draw: st.DrawFn) -> tuple[Any, Any]:
    """A batch ``(z1, z2)``: mostly valid ``(N, d)`` float tensors (any float dtype,
    any scale, zero rows possible), z2 often close to z1; sometimes bad."""
    n, d = draw(st.integers(2, 6)), draw(st.integers(1, 4))
    dtypes = ("float32", "float32", "float64", "float64", "float16", "bfloat16")
    x = draw(values((n, d)))
    close = draw(st.booleans())
    y = x + 0.1 * draw(values((n, d))) if close else draw(values((n, d)))
    for v in (x, y):  # mostly no zero rows (their cosine is undefined)
        if draw(chance(0.8)):
            v[np.abs(v).max(axis=1) == 0, 0] = 1.0
    z1 = draw(_either(wrapped(x, dtypes, ("torch",)), bad_array((n, d)), p_bad=0.05))
    z2 = draw(_either(wrapped(y, dtypes, ("torch",)), bad_array((n, d)), p_bad=0.05))
    floats = all(isinstance(z, torch.Tensor) and z.is_floating_point() for z in (z1, z2))
    if floats and z1.dtype != z2.dtype:
        z2 = draw(_either(st.just(z2.to(z1.dtype)), st.just(z2)))
    if isinstance(z1, torch.Tensor) and z1.is_floating_point() and draw(st.booleans()):
        z1.requires_grad_(True)
    return z1, z2


@st.composite
def side_info(draw: st.DrawFn, n: int) -> Any:
    """Labels or domains for ``n`` samples: mostly valid, sometimes not."""
    good = st.lists(st.integers(0, 2), min_size=n, max_size=n).flatmap(
        lambda v: st.sampled_from([v, [f"c{k}" for k in v], torch.tensor(v), np.array(v)])
    )
    bad = st.sampled_from([None, 5, [[1, 2]], np.zeros((n, 2)), [1] * (n + 1), [[1]] * n])
    return draw(_either(good, bad))


@st.composite
def target_matrix(draw: st.DrawFn, n: int, layout: Any) -> Any:
    """A custom target for ``n`` samples in ``layout``: mostly valid (positive entries,
    zero diagonal in the joint layout), sometimes bad."""
    size = 2 * n if layout == "joint" else n
    if draw(chance(P_BAD)):
        return draw(bad_array((size, size), low=0.0))
    x = draw(hnp.arrays(np.float64, (size, size), elements=st.floats(0.0, 1.0)))
    x = x + np.eye(size) if layout != "joint" else x + np.roll(np.eye(size), n, axis=1)
    if layout == "joint":
        np.fill_diagonal(x, 0.0)
    with np.errstate(all="ignore"):
        x = x * draw(st.sampled_from([1.0, 1.0, 1e-300, 1e300, 1e-30, 1e30]))
    return draw(wrapped(x))


def _check_loss_output(out: losses.LossOutput) -> None:
    _assert_finite(out.loss, "loss")
    _assert_finite(out.per_row, "per_row")
    n = out.cost.shape[0]
    _assert_plan(out.target, "target", (n, n))
    _assert_plan(out.plan, "plan", (n, n))
    _assert_plan(out.kernel, "kernel", (n, n))
    c = _np(out.cost)
    forbidden = c == np.inf
    assert np.isfinite(c[~forbidden]).all(), f"cost: {c!r}"
    _assert_log_plan(out.log_plan, "log_plan", forbidden)
    _assert_finite(out.f, "f")
    _assert_finite(out.g, "g")
    for key, value in out.diagnostics.items():
        assert math.isfinite(value), f"diagnostics[{key!r}] = {value}"


def _moderate(loss: losses.GCALoss, z1: torch.Tensor, z2: Any) -> bool:
    """Whether the batch and parameters are in a range where the gradient is finite."""
    for z in (z1, z2):
        if z.dtype not in (torch.float32, torch.float64):
            return False
        top = z.detach().abs().amax(dim=1)
        if not bool(((top >= 1e-4) & (top <= 1e4)).all()):
            return False
    for key, value in loss.params.items():
        low, high = (1e-3, 1e3) if key == "epsilon" else (1e-6, 1e6)
        if isinstance(value, float) and value != 0 and not low <= value <= high:
            return False
    return True


def _run_loss(api: str, loss: losses.GCALoss, data: st.DataObject) -> None:
    """Call ``loss`` (forward, backward, inspect) on a fuzzed batch."""
    z1, z2 = data.draw(embeddings(), label="z1, z2")
    n = _rows(z1)
    labels = data.draw(side_info(n), label="labels")
    domains = data.draw(side_info(n), label="domains")
    value = _call(api, lambda: loss(z1, z2, labels=labels, domains=domains), LOSS_ERROR_NAMES)
    if value is None:
        return
    _assert_finite(value, f"{api} value")
    if value.requires_grad:
        value.backward()
        assert z1.grad is not None
        if _moderate(loss, z1, z2):  # else the gradient may overflow, e.g. 1 / (ε |z|)
            _assert_finite(z1.grad, f"{api} gradient")
    with torch.no_grad():
        out = loss.inspect(z1, z2, labels=labels, domains=domains)
    _check_loss_output(out)
    assert torch.allclose(out.loss.double(), value.detach().double(), rtol=1e-3, atol=1e-5)
    _finite_returned(api)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(LOSSES)))
def test_fuzz_losses_get(data: st.DataObject, name: str) -> None:
    params = data.draw(loss_params(LOSS_PARAM_NAMES[name]), label="params")
    if params.get("target") == "custom":
        layout = params.get("layout", LOSSES[name].layout)
        params["target_matrix"] = data.draw(target_matrix(4, layout), label="target_matrix")
    api = f"losses.get({name!r})"
    loss = _call(api, lambda: losses.get(name, **params), LOSS_ERROR_NAMES)
    if loss is not None:
        _finite_returned(api)
        _run_loss(f"{api}(z1, z2)", loss, data)


def test_fuzz_losses_get_unknown_name() -> None:
    for name in ("nope", "", "INCE", None, 3, ["ince"]):
        _call("losses.get(unknown)", lambda n=name: losses.get(n), ["loss"])  # type: ignore[misc]
        assert TALLY["losses.get(unknown)"]["ValueError"] > 0


STAGES = {
    "cost": _either(st.sampled_from(sorted(COSTS)), st.just("nope")),
    "target": _either(st.sampled_from(sorted(TARGETS)), st.just("nope")),
    "projection": _either(st.sampled_from(sorted(PROJECTIONS)), st.just("nope")),
    "divergence": _either(st.sampled_from(sorted(DIVERGENCES)), st.just("nope")),
}


@FUZZ
@given(data=st.data(), **STAGES)
def test_fuzz_compose(
    data: st.DataObject, cost: str, target: str, projection: str, divergence: str
) -> None:
    own: set[str] = set()
    chosen = ((TARGETS, target), (PROJECTIONS, projection), (DIVERGENCES, divergence))
    for registry, stage in chosen:
        if stage in registry:
            own |= {p.name for p in registry[stage].params}
    params = data.draw(loss_params(own), label="params")
    params.pop("target", None)
    if target == "custom":
        layout = params.get("layout", "cross")
        params["target_matrix"] = data.draw(target_matrix(4, layout), label="target_matrix")
    loss = _call(
        "losses.compose",
        lambda: losses.compose(cost, target, projection, divergence, **params),
        LOSS_ERROR_NAMES,
    )
    if loss is not None:
        _finite_returned("losses.compose")
        _run_loss("losses.compose(...)(z1, z2)", loss, data)


@FUZZ
@given(data=st.data(), name=st.sampled_from(sorted(LOSSES)))
def test_fuzz_set_params(data: st.DataObject, name: str) -> None:
    loss = losses.get(name)
    own = sorted(LOSS_PARAM_NAMES[name])
    key = data.draw(_either(st.sampled_from(own), st.sampled_from([*PARAM_KEYS, "bogus"])))
    value = data.draw(param_value(key) if key in GOOD_PARAMS else st.just(1.0), label="value")
    before = dict(loss.params)
    done = _call("GCALoss.set_params", lambda: loss.set_params(**{key: value}) or True, [key])
    if done is None:
        assert loss.params == before, "a rejected set_params changed the parameters"
        return
    _finite_returned("GCALoss.set_params")
    _run_loss("GCALoss.set_params -> loss(z1, z2)", loss, data)


# ----------------------------------------------------------------------------- targets

N_VALUES = _either(
    st.integers(1, 6),
    st.sampled_from([0, -1, 2.5, 3.0, None, True, "3", np.float64(3.0), [3]]),
)
GOOD_N = st.one_of(st.integers(1, 6), st.sampled_from([np.int64(3), np.int32(2)]))
LAYOUTS = _either(st.sampled_from(["cross", "joint"]), st.sampled_from(["diagonal", None, 3]))
WEIGHT = _either(
    st.one_of(st.floats(0.0, 1.0), st.sampled_from([0.0, 1.0, 1e-30, 1e-300, 5e-324])),
    st.one_of(st.sampled_from([-0.1, math.nan, math.inf, 1e30, 1.5]), st.sampled_from(JUNK)),
)
TARGET_NAMES = ("n", "layout", "labels", "domains", "gamma", "alpha", "beta", "target", "matrix")


def _check_target(out: Any) -> None:
    assert isinstance(out, torch.Tensor)
    P = _assert_plan(out, "target")
    assert P.ndim == 2 and P.shape[0] == P.shape[1] >= 1
    assert (P.sum(1) > 0).all() and (P.sum(0) > 0).all(), "target has an empty row or column"


def _size(n: Any) -> int:
    return int(n) if isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 1 else 3


@FUZZ
@given(data=st.data(), which=st.sampled_from(sorted(TARGETS)))
def test_fuzz_targets(data: st.DataObject, which: str) -> None:
    n = data.draw(N_VALUES, label="n")
    layout = data.draw(LAYOUTS, label="layout")
    side = data.draw(side_info(_size(n)), label="labels/domains")
    if which == "pairs":
        api, call = "targets.pair_target", lambda: targets.pair_target(n, layout)
    elif which == "class":
        gamma = data.draw(WEIGHT, label="gamma")
        api = "targets.class_target"

        def call() -> Any:
            return targets.class_target(side, gamma, layout)
    elif which == "domain":
        alpha, beta = data.draw(WEIGHT, label="alpha"), data.draw(WEIGHT, label="beta")
        api = "targets.domain_target"

        def call() -> Any:
            return targets.domain_target(side, alpha, beta, layout)
    else:
        matrix = data.draw(target_matrix(_size(n), layout), label="matrix")
        api = "targets.custom_target"

        def call() -> Any:
            return targets.custom_target(matrix, n, layout)

    out = _call(api, call, TARGET_NAMES)
    if out is not None:
        _check_target(out)
        _finite_returned(api)


@FUZZ
@given(data=st.data(), name=_either(st.sampled_from(sorted(TARGETS)), st.just("nope")))
def test_fuzz_build_target(data: st.DataObject, name: str) -> None:
    n = data.draw(N_VALUES, label="n")
    layout = data.draw(LAYOUTS, label="layout")
    labels = data.draw(st.one_of(st.none(), side_info(_size(n))), label="labels")
    domains = data.draw(st.one_of(st.none(), side_info(_size(n))), label="domains")
    matrix = data.draw(st.one_of(st.none(), target_matrix(_size(n), layout)), label="matrix")
    params = {
        k: data.draw(WEIGHT, label=k)
        for k in ("gamma", "alpha", "beta", "bogus")
        if data.draw(chance(0.02 if k == "bogus" else 0.3))
    }

    def call() -> Any:
        return targets.build_target(
            name, n, layout, labels=labels, domains=domains, matrix=matrix, **params
        )

    out = _call("targets.build_target", call, (*TARGET_NAMES, "bogus"))
    if out is not None:
        _check_target(out)
        _finite_returned("targets.build_target")


@FUZZ
@given(data=st.data())
def test_fuzz_target_helpers(data: st.DataObject) -> None:
    n = data.draw(N_VALUES, label="n")
    layout = data.draw(LAYOUTS, label="layout")
    idx = _call("targets.partner", lambda: targets.partner(n, layout), ["n", "layout"])
    if idx is not None:
        assert isinstance(idx, torch.Tensor) and idx.dtype == torch.int64
        assert sorted(idx.tolist()) == list(range(len(idx))), "partner is not a permutation"
        _finite_returned("targets.partner")
    lay = _call("targets.check_layout", lambda: targets.check_layout(layout), ["layout"])
    if lay is not None:
        assert lay in ("cross", "joint")
        _finite_returned("targets.check_layout")
    size = _size(n)
    T = data.draw(array((size, size), low=0.0, containers=("torch",)), label="target")
    out = _call("targets.target_marginals", lambda: targets.target_marginals(T), ["target"])
    if out is not None:
        mu, nu = out
        _assert_plan(mu, "mu", (T.shape[0],))
        _assert_plan(nu, "nu", (T.shape[1],))
        _finite_returned("targets.target_marginals")


# ----------------------------------------------------------------------------- metrics

METRIC_NAMES = (
    "z",
    "z1",
    "z2",
    "t",
    "normalize",
    "plan",
    "target",
    "a",
    "b",
    "labels",
    "train_z",
    "train_y",
    "test_z",
    "test_y",
    "train_d",
    "test_d",
    "k",
    "max_iter",
    "C",
    "seed",
)
NORMALIZE = _either(st.booleans(), st.sampled_from(JUNK))


@st.composite
def labels_for(draw: st.DrawFn, n: int) -> Any:
    """Class labels for ``n`` samples: ints, strings, floats (mostly valid)."""
    good = st.lists(st.integers(0, 2), min_size=n, max_size=n).flatmap(
        lambda v: st.sampled_from(
            [np.array(v), torch.tensor(v), v, np.array([f"c{k}" for k in v]), np.array(v) + 0.5]
        )
    )
    bad = st.sampled_from([None, 5, np.zeros((n, 2)), [0] * (n + 1), [math.nan] * n, "ab"])
    return draw(_either(good, bad))


def points(n: int | None = None, d: int | None = None) -> st.SearchStrategy[Any]:
    ns = st.integers(1, 6) if n is None else st.just(n)
    ds = st.integers(1, 4) if d is None else st.just(d)
    return st.tuples(ns, ds).flatmap(lambda shape: array(shape))


@FUZZ
@given(data=st.data(), fn=st.sampled_from(["alignment", "uniformity", "std", "erank"]))
def test_fuzz_metrics_embeddings(data: st.DataObject, fn: str) -> None:
    z = data.draw(points(), label="z")
    normalize = data.draw(NORMALIZE, label="normalize")
    if fn == "alignment":
        z2 = data.draw(points(_rows(z), _cols(z)), label="z2")
        api, call = "metrics.alignment", lambda: metrics.alignment(z, z2, normalize=normalize)
    elif fn == "uniformity":
        t = data.draw(
            _either(
                st.sampled_from([2.0, 1.0, 1e-30, 1e30, 1e-300, 1e300]),
                st.sampled_from([0.0, -1.0, *JUNK]),
            ),
            label="t",
        )
        api, call = "metrics.uniformity", lambda: metrics.uniformity(z, t=t, normalize=normalize)
    elif fn == "std":
        api, call = "metrics.embedding_std", lambda: metrics.embedding_std(z)
    else:
        api, call = "metrics.effective_rank", lambda: metrics.effective_rank(z)
    out = _call(api, call, METRIC_NAMES)
    if out is not None:
        assert isinstance(out, float) and math.isfinite(out), f"{api} = {out}"
        _finite_returned(api)


@FUZZ
@given(data=st.data(), fn=st.sampled_from(["entropy", "marginal", "positive", "compact"]))
def test_fuzz_metrics_plans(data: st.DataObject, fn: str) -> None:
    if fn == "compact":
        z = data.draw(points(), label="z")
        labels = data.draw(labels_for(_rows(z)), label="labels")
        normalize = data.draw(NORMALIZE, label="normalize")
        api = "metrics.compactness"

        def call() -> Any:
            return metrics.compactness(z, labels, normalize=normalize)
    else:
        n, m = data.draw(st.integers(1, 5), label="n"), data.draw(st.integers(1, 5), label="m")
        plan = data.draw(array((n, m), low=0.0), label="plan")
        if fn == "entropy":
            api, call = "metrics.plan_entropy", lambda: metrics.plan_entropy(plan)
        elif fn == "marginal":
            a = data.draw(array((n,), low=0.0), label="a")
            b = data.draw(array((m,), low=0.0), label="b")
            api, call = "metrics.marginal_error", lambda: metrics.marginal_error(plan, a, b)
        else:
            target = data.draw(st.one_of(st.none(), array((n, m), low=0.0)), label="target")
            api, call = "metrics.positive_mass", lambda: metrics.positive_mass(plan, target)
    out = _call(api, call, METRIC_NAMES)
    if out is not None:
        assert isinstance(out, float) and math.isfinite(out), f"{api} = {out}"
        if fn == "positive":
            assert -1e-9 <= out <= 1 + 1e-9, f"{api} = {out}"
        _finite_returned(api)


@FUZZ
@given(data=st.data(), fn=st.sampled_from(["knn", "probe", "domain"]))
def test_fuzz_metrics_downstream(data: st.DataObject, fn: str) -> None:
    train_z = data.draw(points(data.draw(st.integers(2, 8))), label="train_z")
    test_z = data.draw(points(data.draw(st.integers(1, 4)), _cols(train_z)), label="test_z")
    train_y = data.draw(labels_for(_rows(train_z)), label="train_y")
    test_y = data.draw(labels_for(_rows(test_z)), label="test_y")
    if fn == "knn":
        k = data.draw(_either(st.integers(1, 30), st.sampled_from([0, -1, 2.5, *JUNK])), label="k")
        api = "metrics.knn_accuracy"

        def call() -> Any:
            return metrics.knn_accuracy(train_z, train_y, test_z, test_y, k=k)
    else:
        max_iter = data.draw(_either(st.integers(1, 50), st.sampled_from(JUNK)), label="max_iter")
        C = data.draw(
            _either(
                st.sampled_from([1.0, 0.1, 1e-30, 1e30, 1e300, 5e-324]),
                st.sampled_from([0.0, -1.0, *JUNK]),
            ),
            label="C",
        )
        seed = data.draw(_either(st.integers(0, 3), st.sampled_from(JUNK)), label="seed")
        probe = metrics.linear_probe_accuracy if fn == "probe" else metrics.domain_accuracy
        api = f"metrics.{probe.__name__}"

        def call() -> Any:
            return probe(train_z, train_y, test_z, test_y, max_iter=max_iter, C=C, seed=seed)

    out = _call(api, call, METRIC_NAMES)
    if out is not None:
        assert isinstance(out, float) and 0.0 <= out <= 1.0, f"{api} = {out}"
        _finite_returned(api)


# ------------------------------------------------------------------- regression tests
#
# One test per bug the fuzzing found (each failed before its fix in the library). Those of
# gca_viz.targets and gca_viz.metrics are in tests/test_targets.py and tests/test_metrics.py;
# those of gca_viz.ot and gca_viz.losses belong in tests/test_ot.py and tests/test_losses.py.


@pytest.mark.parametrize("scale", [1e-300, 1e-160, 1e160, 1e300])
def test_cosine_cost_of_tiny_and_huge_rows(scale: float) -> None:
    """The row norm underflowed to 0 (NaN cost) or overflowed (cost 1 for every pair)."""
    x = np.array([[1.0, 0.0], [1.0, 1.0]]) * scale
    y = np.array([[1.0, 0.0], [0.0, -1.0]])
    expected = 1 - np.array([[1.0, 0.0], [1 / np.sqrt(2), -1 / np.sqrt(2)]])
    np.testing.assert_allclose(ot.cosine_cost(x, y), expected, atol=1e-12)
    xt = torch.tensor([[1e-30, 2e-30], [3e30, -1e30]], dtype=torch.float32)
    np.testing.assert_allclose(ot.cosine_cost(xt).diagonal().numpy(), [0.0, 0.0], atol=1e-6)


def test_cosine_cost_gradient_unchanged_by_row_scaling() -> None:
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(4, 3, dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: ot.cosine_cost(t, y), (x,))


def test_sqeuclidean_cost_overflow_is_a_value_error() -> None:
    """||x - y||^2 overflowed to inf (and inf - inf = NaN) silently."""
    raises_naming("x", lambda: ot.sqeuclidean_cost(np.array([[1e200, 1e200]]), np.zeros((1, 2))))
    big = torch.tensor([[1e30, 0.0]], dtype=torch.float32)
    raises_naming("x", lambda: ot.sqeuclidean_cost(big, -big))


@pytest.mark.parametrize("epsilon", [1e-39, 1e-300, 5e-324, 1e300])
def test_epsilon_outside_float32_range(epsilon: float) -> None:
    """torch raised RuntimeError ("value cannot be converted to type float without
    overflow") or the plan came out NaN."""
    C = torch.rand(3, 4, generator=torch.Generator().manual_seed(0))
    raises_naming("epsilon", lambda: ot.sinkhorn(C, epsilon=epsilon, n_iter=3))
    raises_naming("epsilon", lambda: ot.row_projection(C, epsilon=epsilon))


@pytest.mark.parametrize(
    ("cost", "epsilon", "relax"),
    [
        ([[0.2, 0.9], [0.7, 0.1]], 1e-20, None),  # ε below the cost's rounding error: inf plan
        ([[0.2, 0.9], [0.7, 0.1]], 1e308, None),  # ε log(.) overflows: NaN plan
        ([[-9.2e18]], 0.5, 1.0),  # relaxed and very negative: the plan is exp(6e18)
        ([[1e38, 1.5e38], [0.0, 1e38]], 0.5, None),  # float32: <P, C> overflowed
    ],
)
def test_sinkhorn_non_finite_solution_is_a_value_error(
    cost: list[list[float]], epsilon: float, relax: float | None
) -> None:
    """NaN/inf plans, potentials or residuals were returned silently."""
    dtype = np.float32 if max(map(max, cost)) >= 1e38 else np.float64
    C = np.array(cost, dtype=dtype)
    for method in ("absorb", "log"):
        raises_naming(
            "epsilon",
            lambda m=method: ot.sinkhorn(  # type: ignore[misc]
                C, epsilon=epsilon, relax_a=relax, relax_b=relax, n_iter=5, method=m
            ),
        )


def test_row_projection_below_rounding_error_is_a_value_error() -> None:
    """A 1.78e300 cost with ε = 0.1 gave a log-plan of pure rounding noise (exp: inf)."""
    raises_naming("epsilon", lambda: ot.row_projection(np.array([[1.78125e300]]), epsilon=0.1))


@pytest.mark.parametrize("cost", [np.array([[True, False], [False, True]]), [[1, 0], [0, 1]]])
def test_sinkhorn_result_of_bool_or_list_cost(cost: Any) -> None:
    """The result kept the raw bool input as its cost, and log_plan raised RuntimeError."""
    res = ot.sinkhorn(cost, epsilon=0.5, n_iter=5)
    assert res.cost.dtype == np.float64
    _assert_log_plan(res.log_plan, "log_plan")
    assert math.isfinite(res.transport_cost)


def test_exact_ot_plan_is_non_negative() -> None:
    """HiGHS returned -2e-8 for a zero entry of the plan."""
    b = np.full(3, 1 / 3, dtype=np.float32)
    plan = ot.exact_ot(np.zeros((3, 3)), None, b)
    assert (plan >= 0).all()
    np.testing.assert_allclose(plan.sum(0), b, rtol=1e-6)


@pytest.mark.parametrize("name", [["ince"], {"a": 1}])
def test_unhashable_stage_names(name: Any) -> None:
    """`name in dict` raised TypeError: unhashable type."""
    raises_naming("loss", lambda: losses.get(name))
    raises_naming("cost", lambda: losses.compose(name, "pairs", "row", "kl"))


@pytest.mark.parametrize("matrix", [5, np.array(2.0), np.zeros((0, 0))])
def test_custom_target_matrix_without_rows(matrix: Any) -> None:
    """len() of a scalar raised TypeError; an empty matrix blamed an unknown `n`."""
    raises_naming(
        "target_matrix", lambda: losses.get("ince", target="custom", target_matrix=matrix)
    )


def test_loss_names_the_embeddings_with_a_zero_row() -> None:
    """The cosine cost's message named its own argument `x`, not z1."""
    z = torch.ones(3, 2)
    z[1] = 0.0
    msg = raises_naming("z1", lambda: losses.get("ince")(z, torch.ones(3, 2)))
    assert msg.startswith("z1 row 1 is all zero")


@pytest.mark.parametrize(
    ("name", "epsilon", "dtype"),
    [
        ("byol", 1e-300, torch.float32),  # P = K: NaN plan; inspect raised "plan contains NaN"
        ("byol", 1e-30, torch.float32),  # K = exp(-C/ε) of a rounding-negative C: inf kernel
        ("gca_ince", 1e-30, torch.float32),
        ("ince", 1e-20, torch.float64),
    ],
)
def test_loss_epsilon_below_the_cost_resolution(
    name: str, epsilon: float, dtype: torch.dtype
) -> None:
    z1 = torch.tensor([[1.0, 1.0, 1.0], [1.0, 0.5, 0.0], [0.0, 1.0, 0.3]], dtype=dtype)
    z2 = z1 + 0.01
    loss = losses.get(name, epsilon=epsilon)
    raises_naming("epsilon", lambda: loss(z1, z2))
    raises_naming("epsilon", lambda: loss.inspect(z1, z2))


def test_loss_inspect_when_the_kernel_underflows() -> None:
    """BYOL's plan P = K = exp(-C/ε) underflows to 0 for small ε: forward worked but
    inspect() raised "plan must have positive total mass" from the entropy diagnostic."""
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    out = losses.get("byol", epsilon=1e-10).inspect(z1, -z1)  # every C_ij >= 1
    assert out.diagnostics["mass"] == 0.0
    assert out.diagnostics["positive_mass"] == pytest.approx(0.0)  # (the positives cost 2)
    assert out.diagnostics["entropy"] == pytest.approx(math.log(2))


def test_non_finite_loss_is_a_value_error() -> None:
    """RINCE's (λ Z)^q / q overflows for λ = 1e308: the loss inf was returned silently."""
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    loss = losses.get("rince", lam=1e308, q=1.0)
    raises_naming("epsilon", lambda: loss(z1, z1 + 0.1))


def test_custom_target_that_underflows_the_embeddings_dtype() -> None:
    """A 1e-300 target is valid in float64 but 0 in float32: the loss blamed `a`."""
    loss = losses.get("ince", target="custom", target_matrix=np.eye(3) * 1e-300)
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    raises_naming("target_matrix", lambda: loss(z, z + 0.1))
    assert math.isfinite(float(loss(z.double(), z.double() + 0.1)))
