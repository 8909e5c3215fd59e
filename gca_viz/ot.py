r"""Optimal-transport core: cost matrices, entropic Sinkhorn (balanced and unbalanced), exact OT.

Notation follows ``docs/math.md`` (sections 1, 2 and 8):

* ``C`` is an ``(n, m)`` cost matrix, ``ε > 0`` the entropic regulariser and
  ``K = exp(-C / ε)`` the Gibbs kernel.
* ``μ = a`` (length ``n``) and ``ν = b`` (length ``m``) are the marginals.
* ``f``, ``g`` are the dual potentials; every plan is formed in the log domain as
  ``P_ij = exp((f_i + g_j - C_ij) / ε)``.
* Half-steps are numbered ``P^(0) = K``, ``P^(1)`` (first row step, the InfoNCE plan),
  ``P^(2)`` (first column step), ...; ``max_iter = T`` sweeps are ``2T`` half-steps.

Public API::

    from gca_viz.ot import cosine_cost, sqeuclidean_cost, sinkhorn, exact_ot
    from gca_viz.ot import row_projection  # one row half-step (the InfoNCE plan)

Everything accepts torch tensors (any device, float32 or float64) and numpy arrays, and
returns the type it was given. The solver is differentiable through its unrolled iterations.

References:
    Cuturi (2013), Sinkhorn distances: lightspeed computation of optimal transport. NeurIPS.
    Chizat, Peyré, Schmitzer, Vialard (2018), Scaling algorithms for unbalanced optimal
    transport problems. Math. Comp.
    Schmitzer (2019), Stabilized sparse scaling algorithms for entropy regularized transport
    problems. SIAM J. Sci. Comput.
    Peyré and Cuturi (2019), Computational optimal transport, chapter 4.
    Chen, Lin, Liu, Xiao, Dyer (2024), Your contrastive learning problem is secretly a
    distribution alignment problem. NeurIPS.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from gca_viz.device import torch_threads

Array = torch.Tensor | np.ndarray
"""A torch tensor or a numpy array; functions return the type they were given."""

SINKHORN_LATEX = (
    r"P^\star = \arg\min_{P\,\mathbf{1} = \mu,\ P^\top \mathbf{1} = \nu}"
    r" \langle P, C\rangle - \varepsilon H(P),\qquad"
    r" P^\star_{ij} = \exp\!\big((f_i + g_j - C_{ij})/\varepsilon\big)"
)
"""The balanced entropic OT problem solved by :func:`sinkhorn`."""

UNBALANCED_LATEX = (
    r"P^\star = \arg\min_{P \ge 0} \langle P, C\rangle - \varepsilon H(P)"
    r" + \lambda_1 \mathrm{KL}(P\mathbf{1}\,\|\,\mu)"
    r" + \lambda_2 \mathrm{KL}(P^\top\mathbf{1}\,\|\,\nu)"
)
"""The unbalanced entropic OT problem solved by :func:`sinkhorn` with relaxed marginals."""

LOG_UPDATE_LATEX = (
    r"f_i \leftarrow \rho_1\big(\varepsilon\log\mu_i"
    r" - \varepsilon\,\mathrm{LSE}_j\,\tfrac{g_j - C_{ij}}{\varepsilon}\big),\quad"
    r" g_j \leftarrow \rho_2\big(\varepsilon\log\nu_j"
    r" - \varepsilon\,\mathrm{LSE}_i\,\tfrac{f_i - C_{ij}}{\varepsilon}\big),\quad"
    r" \rho = \tfrac{\lambda}{\lambda + \varepsilon}"
)
"""The log-domain Sinkhorn updates (``ρ = 1`` for a hard marginal)."""

# Scalings u = exp((F - f)/ε) are absorbed into the potentials once |log u| exceeds this
# bound, so kernel-domain steps never overflow and never lose the plan to underflow: the
# products K~ v stay below n e^bound (float32: 2.4e17 n against a maximum of 3.4e38), and a
# product below sqrt(tiny) is redone by log-sum-exp (see _check_step).
_ABSORB_LOG_BOUND = {torch.float64: 50.0, torch.float32: 40.0}


# --------------------------------------------------------------------------- conversion


def _to_tensor(x: Any, name: str, like: torch.Tensor | None = None) -> torch.Tensor:
    """Convert ``x`` to a floating tensor (on ``like``'s device and dtype when given)."""
    if isinstance(x, torch.Tensor):
        t = x
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


def _host(*tensors: torch.Tensor) -> list[np.ndarray] | None:
    """The tensors as numpy arrays sharing their memory when all live on the CPU outside
    autograd, else ``None``. Vector checks use them: a numpy call on a short vector costs a
    fraction of a torch op's dispatch (measured here: 1-4 us against 3-15 us)."""
    if any(t.device.type != "cpu" or t.requires_grad for t in tensors):
        return None
    return [t.numpy() for t in tensors]


def _like_input(x: torch.Tensor, as_numpy: bool) -> Array:
    """Return ``x`` as a numpy array when the caller passed numpy, else unchanged."""
    return x.detach().cpu().numpy() if as_numpy else x


def _real(value: Any, message: str) -> float:
    """``value`` as a float, or ``ValueError(f"{message}, got {value!r}")``. Numbers only
    (Python, numpy and 0-d torch ones): a string such as ``"0.5"`` or a bool is refused, not
    converted, since it is most likely a mistake (a value read from a file unparsed, a flag
    passed in the wrong place)."""
    if isinstance(value, (str, bytes, bool, np.bool_)):
        raise ValueError(f"{message}, got {value!r} ({type(value).__name__})")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # (RuntimeError: a tensor of many entries)
        raise ValueError(f"{message}, got {value!r}") from None


def _check_epsilon(
    epsilon: Any, dtype: torch.dtype | None = None, scale: float | None = None
) -> float:
    """``epsilon`` as a float: finite and ``> 0``; with ``dtype``, within its range; with
    ``scale`` (the magnitude of the cost, at least 1), at least the rounding error
    ``scale * machine eps`` of the cost, below which ``exp(-C/ε)`` is noise or inf."""
    eps = _real(epsilon, "epsilon must be a positive number")
    if not math.isfinite(eps) or eps <= 0:
        raise ValueError(f"epsilon must be finite and > 0, got {epsilon!r}")
    if dtype is not None:
        # ε and 1/ε must be normal numbers of the dtype, and ε log(...) terms must not
        # overflow (|log| <= ~745 for any positive double).
        info = torch.finfo(dtype)
        if not info.tiny <= eps <= info.max / 4096:
            raise ValueError(
                f"epsilon = {epsilon!r} is outside the range a {dtype} cost supports "
                f"([{info.tiny:.3g}, {info.max / 4096:.3g}])"
            )
        if scale is not None and eps < scale * info.eps:
            raise ValueError(
                f"epsilon = {epsilon!r} is below the rounding error of a {dtype} cost of "
                f"magnitude {scale:.3g} (it must be >= {scale * info.eps:.3g}); use a larger "
                "epsilon or float64"
            )
    return eps


def _check_solution(
    eps: float,
    dtype: torch.dtype,
    potentials: list[torch.Tensor],
    others: list[torch.Tensor],
) -> None:
    """Raise ``ValueError`` (after one device sync) if the solution is not representable:

    * a potential or another vector came out NaN or inf: the cost is too large, or relaxed
      and very negative, for ``ε`` in ``dtype``. For :func:`sinkhorn` the others are the
      residuals ``||P 1 - μ̃||_1``; the last one is that of the returned plan, finite iff
      every row sum, hence (entries being ``>= 0``) every entry of the plan is;
    * ``ε`` is below the rounding error of the potentials, ``max |f|, |g|`` times the
      machine epsilon: then ``(f_i + g_j - C_ij) / ε`` on the plan's support is rounding
      noise of order 1 or more, and ``exp`` of it garbage or inf.
    """
    vectors = [v.detach().reshape(-1) for v in potentials + others]
    # max |x| propagates NaN and inf: one reduction per vector flags any non-finite entry
    host = _host(*vectors)
    if host is not None:
        tops = [float(np.abs(v).max()) if v.size else 0.0 for v in host]
    else:
        tops = torch.stack(
            [v.abs().amax() if v.numel() else v.new_zeros(()) for v in vectors]
        ).tolist()
    scale = max(tops[: len(potentials)])
    if not all(math.isfinite(x) for x in tops):
        raise ValueError(
            f"epsilon = {eps:g}: the potentials or the plan overflow {dtype} for this cost; "
            "rescale the cost, use a larger epsilon (or other relax_a / relax_b) or float64"
        )
    if eps < scale * torch.finfo(dtype).eps:
        raise ValueError(
            f"epsilon = {eps:g} is below the rounding error of the potentials (magnitude "
            f"{scale:.3g}) in {dtype}; use a larger epsilon, rescale the cost or use float64"
        )


def _check_points(x: torch.Tensor, name: str) -> None:
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (samples, features), got shape {tuple(x.shape)}")
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be non-empty, got shape {tuple(x.shape)}")
    host = _host(x.detach())
    finite = np.isfinite(host[0]).all() if host is not None else torch.isfinite(x).all()
    if not bool(finite):
        raise ValueError(f"{name} contains NaN or inf")


def _points_pair(x: Array, y: Array | None) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` and ``y`` (``x`` again when ``None``) as checked tensors of ``x``'s device and
    dtype, with the same feature dimension."""
    xt = _to_tensor(x, "x")
    _check_points(xt, "x")
    if y is None:
        return xt, xt
    yt = _to_tensor(y, "y", like=xt)
    _check_points(yt, "y")
    if yt.shape[1] != xt.shape[1]:
        raise ValueError(
            f"y must have the same feature dimension as x: {yt.shape[1]} != {xt.shape[1]}"
        )
    return xt, yt


# --------------------------------------------------------------------------------- costs


def cosine_cost(x: Array, y: Array | None = None, *, exclude_self: bool = False) -> Array:
    r"""Cosine cost matrix ``C_ij = 1 - <x_i, y_j> / (||x_i|| ||y_j||)``.

    .. math::
        C_{ij} = 1 - s_{ij}, \qquad s_{ij} = \frac{\langle x_i, y_j\rangle}{\|x_i\|\,\|y_j\|}
        \in [-1, 1]

    where ``s`` is the cosine similarity (never clamped, ``docs/math.md`` section 8), so
    ``C`` lies in ``[0, 2]`` and the Gibbs kernel ``K = exp(-C/ε)`` lies in ``(0, 1]``.

    Args:
        x: ``(n, d)`` embeddings (rows need not be normalised; zero rows are rejected).
        y: ``(m, d)`` embeddings, or ``None`` to compare ``x`` with itself.
        exclude_self: put ``+inf`` on the diagonal (``K_ii = 0``), the joint layout's way of
            excluding self-pairs. Needs a square result.

    Returns:
        ``(n, m)`` cost matrix, same type, device and dtype as ``x``; differentiable.

    Raises:
        ValueError: if ``x`` or ``y`` is not 2-D, is empty, has NaN/inf or a zero row, if
            the feature dimensions differ, or if ``exclude_self`` is asked of a non-square
            cost.
    """
    as_numpy = not isinstance(x, torch.Tensor)
    xt, yt = _points_pair(x, y)
    host = _host(xt, yt)  # numpy on the CPU outside autograd (see _host_matrix)
    units: list[Any] = []  # x, then y, on the unit sphere: (n, d), (m, d)
    for i, (name, t) in enumerate((("x", xt), ("y", yt))[: 1 if y is None else 2]):
        if host is not None:
            peak: Any = np.abs(host[i]).max(axis=1, keepdims=True)  # (n, 1)
        else:
            peak = t.detach().abs().amax(dim=1, keepdim=True)
        if bool((peak == 0).any()):
            raise ValueError(f"{name} has an all-zero row; its cosine similarity is undefined")
        units.append(_unit_rows_host(host[i], peak) if host is not None else _unit_rows(t, peak))
    xn, yn = units[0], units[-1]
    if exclude_self:
        _check_square((xt.shape[0], yt.shape[0]))
    if host is not None:
        cost_np = xn @ yn.T  # (n, m)
        np.subtract(1.0, cost_np, out=cost_np)
        if exclude_self:
            np.fill_diagonal(cost_np, np.inf)
        return _like_input(torch.from_numpy(cost_np), as_numpy)
    cost = 1.0 - xn @ yn.T  # (n, m)
    if exclude_self:
        cost = _exclude_diagonal(cost)
    return _like_input(cost, as_numpy)


def _unit_rows_host(a: np.ndarray, peak: np.ndarray) -> np.ndarray:
    """:func:`_unit_rows` in numpy (no autograd)."""
    a = a / peak
    a /= np.linalg.norm(a, axis=1, keepdims=True)
    return a


def _unit_rows(t: torch.Tensor, peak: torch.Tensor) -> torch.Tensor:
    """Rows divided by their L2 norm. Each row is first divided by its largest ``|entry|``,
    ``peak`` ``(n, 1)`` (detached, a constant for autograd: the direction does not depend on
    it), so that the norm of a tiny or huge row neither underflows to 0 (NaN) nor overflows
    (a zero direction)."""
    t = t / peak
    unit: torch.Tensor = t / t.norm(dim=1, keepdim=True)
    return unit


def sqeuclidean_cost(x: Array, y: Array | None = None, *, exclude_self: bool = False) -> Array:
    r"""Squared Euclidean cost matrix ``C_ij = ||x_i - y_j||^2``.

    .. math::
        C_{ij} = \|x_i\|^2 + \|y_j\|^2 - 2\langle x_i, y_j\rangle \;\ge\; 0

    (the expansion is clipped at 0, which only removes rounding error).

    Args:
        x: ``(n, d)`` points.
        y: ``(m, d)`` points, or ``None`` to compare ``x`` with itself.
        exclude_self: put ``+inf`` on the diagonal; needs a square result.

    Returns:
        ``(n, m)`` cost matrix, same type, device and dtype as ``x``; differentiable.

    Raises:
        ValueError: as :func:`cosine_cost` (zero rows are fine here), and if ``x`` and
            ``y`` are so large that squared distances overflow the dtype.
    """
    as_numpy = not isinstance(x, torch.Tensor)
    xt, yt = _points_pair(x, y)
    host = _host(xt, yt)  # numpy on the CPU outside autograd (see _host_matrix)
    if host is not None:
        x_np, y_np = host
        with np.errstate(over="ignore"):  # an overflow is inf: refused just below
            sq_x_np, sq_y_np = (x_np * x_np).sum(axis=1), (y_np * y_np).sum(axis=1)  # (n,), (m,)
        largest = float(sq_x_np.max() + sq_y_np.max())
    else:
        sq_x, sq_y = (xt * xt).sum(dim=1), (yt * yt).sum(dim=1)  # (n,), (m,)
        largest = float(sq_x.detach().amax() + sq_y.detach().amax())
    # C_ij <= 2 (|x_i|^2 + |y_j|^2), and every partial sum is bounded likewise.
    if not 2 * largest <= torch.finfo(xt.dtype).max:
        raise ValueError(f"x and y are too large: squared distances overflow {xt.dtype}")
    if exclude_self:
        _check_square((xt.shape[0], yt.shape[0]))
    if host is not None:
        cost_np = x_np @ y_np.T
        cost_np *= -2.0
        cost_np += sq_x_np[:, None]
        cost_np += sq_y_np[None, :]
        np.maximum(cost_np, 0.0, out=cost_np)
        if exclude_self:
            np.fill_diagonal(cost_np, np.inf)
        return _like_input(torch.from_numpy(cost_np), as_numpy)
    cost = (-2.0 * (xt @ yt.T)).add_(sq_x[:, None]).add_(sq_y[None, :]).clamp_(min=0.0)
    if exclude_self:
        cost = _exclude_diagonal(cost)
    return _like_input(cost, as_numpy)


def _check_square(shape: tuple[int, int]) -> None:
    if shape[0] != shape[1]:
        raise ValueError(f"exclude_self needs a square cost, got shape {tuple(shape)}")


def _exclude_diagonal(cost: torch.Tensor) -> torch.Tensor:
    """``cost`` with ``+inf`` on its diagonal (square: see :func:`_check_square`)."""
    eye = torch.eye(cost.shape[0], dtype=torch.bool, device=cost.device)
    return cost.masked_fill(eye, math.inf)


# ------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class SinkhornResult:
    r"""Output of :func:`sinkhorn`: potentials, plan and convergence diagnostics.

    Fields (``n x m`` problem; arrays have the type, device and dtype of the input cost):
        plan: ``(n, m)`` plan ``P_ij = exp((f_i + g_j - C_ij) / ε)`` after the last sweep.
        log_plan: ``(n, m)`` its logarithm (``-inf`` where ``C_ij = +inf``), exact even where
            ``plan`` underflows.
        f: ``(n,)`` row potential; g: ``(m,)`` column potential.
        errors: ``(n_iter,)`` marginal error after each sweep (detached). Balanced:
            ``||P 1 - μ||_1`` (the column marginal is exact after a column step).
            Unbalanced: ``||P 1 - μ̃||_1`` with ``μ̃ = μ exp(-f / λ1)`` (or ``μ`` for a hard
            row marginal), the row marginal that the optimality condition of the relaxed
            problem demands; it is 0 exactly at the solution.
        n_iter: number of full sweeps performed.
        converged: whether the last error is at most ``tol`` (or, with ``tol = 0``, at most
            ``sqrt(machine eps)`` times the mass of ``μ``).
        history: ``(P^(1), ..., P^(2 n_iter))``, the plan after every half-step, when
            ``history=True``; else empty.
        cost, a, b, epsilon, relax_a, relax_b: the problem that was solved. numpy inputs
            are copies; torch inputs are the tensors passed in (no copy), and the properties
            that read them (``log_plan`` when formed on first use, ``transport_cost``,
            ``marginal_error``) raise ``RuntimeError`` once one was modified in place.
    """

    plan: Array
    f: Array
    g: Array
    errors: Array
    n_iter: int
    converged: bool
    history: tuple[Array, ...]
    cost: Array
    a: Array
    b: Array
    epsilon: float
    relax_a: float | None = None
    relax_b: float | None = None
    _log_plan: Array | None = field(default=None, repr=False, compare=False)
    # (tensor, its version counter) for the torch inputs kept above
    _versions: tuple[tuple[torch.Tensor, int], ...] = field(default=(), repr=False, compare=False)

    def _inputs_unchanged(self, *names: str) -> None:
        """Raise if one of the kept torch inputs ``names`` (of cost, a, b) was modified in
        place after the solve."""
        for name, (t, version) in zip(("cost", "a", "b"), self._versions, strict=False):
            if name in names and t._version != version:
                raise RuntimeError(
                    f"the {name} passed to sinkhorn() was modified in place after the call, "
                    f"and this property reads it; pass {name}.clone() if you reuse the buffer"
                )

    @property
    def log_plan(self) -> Array:
        """``(n, m)`` ``log P_ij = (f_i + g_j - C_ij) / ε`` (formed on first use when the
        solver produced the plan without it)."""
        if self._log_plan is None:
            self._inputs_unchanged("cost")
            C, f, g = _as_torch(self.cost), _as_torch(self.f), _as_torch(self.g)
            host = _host(C, f, g)
            if host is not None:  # numpy on the CPU (see _host_matrix)
                C_np, f_np, g_np = host
                out = np.empty(C_np.shape, dtype=C_np.dtype)
                with np.errstate(invalid="ignore", over="ignore"):
                    log_plan = torch.from_numpy(_log_plan_host(C_np, f_np, g_np, self.epsilon, out))
            else:
                log_plan = _log_plan(C, f, g, self.epsilon)
            object.__setattr__(
                self, "_log_plan", _like_input(log_plan, isinstance(self.plan, np.ndarray))
            )
        return self._log_plan  # type: ignore[return-value]

    @property
    def row_marginal(self) -> Array:
        """``(n,)`` row sums ``P 1``."""
        return self.plan.sum(1)

    @property
    def col_marginal(self) -> Array:
        """``(m,)`` column sums ``P^T 1``."""
        return self.plan.sum(0)

    @property
    def mass(self) -> float:
        """Total mass ``sum_ij P_ij`` (1 for balanced problems with probability marginals)."""
        p = self.plan
        return float(p.detach().sum() if isinstance(p, torch.Tensor) else p.sum())

    @property
    def marginal_error(self) -> float:
        """``||P 1 - μ||_1 + ||P^T 1 - ν||_1`` against the *given* marginals.

        For an unbalanced problem this measures how far the relaxation moved the
        marginals, not convergence (see ``errors``)."""
        self._inputs_unchanged("a", "b")
        p, a, b = (_as_torch(x).detach() for x in (self.plan, self.a, self.b))
        host = _host(p, a, b)
        if host is not None:  # numpy on the CPU (see _host_matrix)
            p_np, a_np, b_np = host
            return float(np.abs(p_np.sum(1) - a_np).sum() + np.abs(p_np.sum(0) - b_np).sum())
        return float((p.sum(1) - a).abs().sum() + (p.sum(0) - b).abs().sum())

    @property
    def entropy(self) -> float:
        r"""``H(P) = -sum_ij P_ij (log P_ij - 1)`` (``docs/math.md`` section 2; ``0 log 0 = 0``)."""
        p = _as_torch(self.plan).detach()
        host = _host(p)
        if host is not None:  # numpy on the CPU (see _host_matrix)
            p_np = host[0]
            log_p = np.zeros_like(p_np)
            np.log(p_np, out=log_p, where=p_np > 0)
            log_p -= 1.0
            log_p *= p_np
            return float(-log_p.sum())
        return float(-(torch.special.xlogy(p, p) - p).sum())

    @property
    def transport_cost(self) -> float:
        """``<P, C> = sum_ij P_ij C_ij`` (entries with ``C_ij = +inf`` carry no mass)."""
        self._inputs_unchanged("cost")
        p = _as_torch(self.plan).detach()
        c = _as_torch(self.cost).detach()
        host = _host(p, c)
        if host is not None:  # numpy on the CPU (see _host_matrix)
            p_np, c_np = host
            with np.errstate(invalid="ignore"):  # 0 * inf: masked below
                pc = p_np * c_np
            pc[~(p_np > 0)] = 0.0
            return float(pc.sum())
        return float(torch.where(p > 0, p * c, torch.zeros_like(p)).sum())

    @property
    def rho(self) -> tuple[float, float]:
        """``(ρ1, ρ2)`` with ``ρ = λ / (λ + ε)``; 1 for a hard marginal."""
        return (_rho(self.relax_a, self.epsilon), _rho(self.relax_b, self.epsilon))

    @property
    def contraction(self) -> float:
        """Measured contraction per sweep: the median ratio ``errors[t+1] / errors[t]`` over the
        second half of the sweeps (ratios whose errors sit at rounding level are skipped).

        For unbalanced problems this tends to ``ρ1 ρ2`` (``docs/math.md`` section 4); ``nan`` when
        fewer than two usable sweeps exist."""
        err = _as_torch(self.errors).double().cpu()
        floor = 100 * torch.finfo(_as_torch(self.plan).dtype).eps * max(self.mass, 1e-300)
        start = len(err) // 2
        ratios = [
            float(err[t + 1] / err[t])
            for t in range(start, len(err) - 1)
            if float(err[t + 1]) > floor and float(err[t]) > floor
        ]
        return float(np.median(ratios)) if ratios else math.nan


def _as_torch(x: Array) -> torch.Tensor:
    return x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))


def _log_plan(
    C: torch.Tensor,
    f: torch.Tensor | None,
    g: torch.Tensor | None,
    eps: float,
) -> torch.Tensor:
    """``(f_i + g_j - C_ij) / ε``, shape ``(n, m)``, as ``f_i/ε - C_ij/ε + g_j/ε`` in two
    passes over the matrix; ``None`` stands for a zero potential (one pass when ``g`` is)."""
    out = C * (-1.0 / eps) if f is None else torch.sub((f / eps)[:, None], C, alpha=1.0 / eps)
    return out if g is None else out.add_(g / eps)


def _log_plan_host(
    C: np.ndarray, f: np.ndarray | None, g: np.ndarray | None, eps: float, out: np.ndarray
) -> np.ndarray:
    """:func:`_log_plan` in numpy, into ``out``: one pass, plus one for each potential
    that is not ``None`` (zero)."""
    np.multiply(C, -1.0 / eps, out=out)
    if f is not None:
        out += (f / eps)[:, None]
    if g is not None:
        out += (g / eps)[None, :]
    return out


_HUGE_PAGE = 2 << 20  # bytes of a transparent huge page on x86-64 Linux


def _matrix_buffer(shape: tuple[int, int], dtype: torch.dtype) -> torch.Tensor:
    """An uninitialised CPU ``shape`` tensor (numpy's memory), aligned to a 2 MiB huge page
    when the matrix takes at least 4 MiB. numpy asks the kernel for
    transparent huge pages on allocations of that size; aligned, the whole matrix lies in
    them, so a product that sweeps it evicts two TLB entries per 4 MiB instead of 1024,
    and the small vector operations between the products stay fast (measured with
    ``bench_ot.py`` at n = 1024 in float32: ours / floor 1.15-1.35 over five runs, against
    1.22-1.38 over three without). Costs up to 2 MiB of address space beyond the matrix."""
    nbytes = shape[0] * shape[1] * torch.finfo(dtype).bits // 8
    np_dtype = np.float32 if dtype == torch.float32 else np.float64
    if nbytes < 2 * _HUGE_PAGE:
        return torch.from_numpy(np.empty(shape, dtype=np_dtype))
    raw = np.empty(nbytes + _HUGE_PAGE, dtype=np.uint8)
    start = -raw.ctypes.data % _HUGE_PAGE
    view = raw[start : start + nbytes].view(np_dtype)
    return torch.from_numpy(view.reshape(shape))


def _host_matrix(C: torch.Tensor, needs_grad: bool) -> bool:
    """Whether the passes over an ``(n, m)`` matrix run in numpy: on the CPU without
    autograd.

    numpy's element-wise passes run on the calling thread and its matrix-vector products
    on OpenBLAS's threads; torch's element-wise passes run on a second pool (OpenMP). A
    pool's threads spin for milliseconds after each use, so on a machine with few cores,
    alternating the two makes each wait for the CPU the other's idle threads hold. Measured
    at n = 1024, 100 sweeps, on two cores, side by side in one process (medians over
    ε in {0.5, 0.05, 0.005}): validating, building the kernel and scaling the plan with
    torch took 18.4-32.3 ms per solve in float32 (21.0-22.2 ms in float64); in numpy,
    11.0-11.5 ms (15.9-18.1 ms), against 7.5-8.0 ms (13.3-13.9 ms) for the 200 bare
    products. With one thread each, both took the same time.

    The cost functions and the result's properties follow the same rule (through
    :func:`_host`), since a cost built with torch right before a solve leaves torch's idle
    threads spinning through the solve's products (measured: 20.3 ms against 13.7 ms for a
    float32 solve after the cost, n = 1024, ε = 0.05).
    """
    return not needs_grad and C.device.type == "cpu"


def _rho(relax: float | None, epsilon: float) -> float:
    return 1.0 if relax is None else relax / (relax + epsilon)


# ------------------------------------------------------------------------------- solver


def sinkhorn(
    cost: Array,
    a: Array | None = None,
    b: Array | None = None,
    *,
    epsilon: float,
    max_iter: int = 100,
    tol: float = 0.0,
    relax_a: float | None = None,
    relax_b: float | None = None,
    history: bool = False,
    method: Literal["absorb", "log"] = "absorb",
) -> SinkhornResult:
    r"""Entropic optimal transport by Sinkhorn iterations in the log domain.

    Balanced (``relax_a = relax_b = None``):

    .. math::
        P^\star = \arg\min_{P \mathbf 1 = \mu,\ P^\top \mathbf 1 = \nu}
            \langle P, C\rangle - \varepsilon H(P), \qquad H(P) = -\sum_{ij} P_{ij}(\log P_{ij} - 1)

    Unbalanced (a marginal with weight ``λ`` is a KL penalty instead of a constraint):

    .. math::
        P^\star = \arg\min_{P \ge 0} \langle P, C\rangle - \varepsilon H(P)
            + \lambda_1 \mathrm{KL}(P\mathbf 1 \| \mu)
            + \lambda_2 \mathrm{KL}(P^\top\mathbf 1 \| \nu)

    Each sweep is a row step then a column step on the dual potentials:

    .. math::
        f_i \leftarrow \rho_1\big(\varepsilon\log\mu_i - \varepsilon\,\mathrm{LSE}_j
            \tfrac{g_j - C_{ij}}{\varepsilon}\big), \quad
        g_j \leftarrow \rho_2\big(\varepsilon\log\nu_j - \varepsilon\,\mathrm{LSE}_i
            \tfrac{f_i - C_{ij}}{\varepsilon}\big), \quad
        P_{ij} = e^{(f_i + g_j - C_{ij})/\varepsilon}

    where:
        * ``C`` is the ``(n, m)`` cost, ``ε`` the regulariser, ``K = exp(-C/ε)``;
        * ``μ = a``, ``ν = b`` the marginals (uniform ``1/n``, ``1/m`` by default);
        * ``λ1 = relax_a``, ``λ2 = relax_b`` and ``ρ = λ / (λ + ε)``; a hard marginal has
          ``ρ = 1``. ``λ -> inf`` recovers balanced OT, ``λ -> 0`` gives ``P -> K``;
        * ``LSE`` is log-sum-exp; starting from ``g = 0``, the first row step yields the
          InfoNCE plan ``P^(1)_ij = μ_i softmax_j(-C_ij / ε)``.

    Two engines compute the same iterates (tests check that they agree to 1e-10):

    * ``method="absorb"`` (default): Schmitzer's stabilised scheme. The potentials live in
      the log domain; between absorptions each half-step is one matrix-vector product with
      the stabilised kernel ``K~_ij = exp((f_i + g_j - C_ij)/ε)`` and scalings
      ``u = exp((f' - f)/ε)``, ``v = exp((g' - g)/ε)``. Once ``|log u|`` or ``|log v|``
      exceeds a bound the scalings are absorbed into ``f``, ``g`` and ``K~`` is rebuilt;
      a step whose product would underflow is done by log-sum-exp instead. Cost per sweep:
      two passes over the kernel, the memory floor of any kernel-domain Sinkhorn.
    * ``method="log"``: every half-step by log-sum-exp (the reference; several times slower).

    Args:
        cost: ``(n, m)`` cost matrix ``C`` (torch tensor on any device, float32/float64, or
            numpy array). ``+inf`` entries are forbidden pairs; ``NaN``/``-inf`` are errors.
        a: ``(n,)`` row marginal ``μ > 0``; default ``1/n``.
        b: ``(m,)`` column marginal ``ν > 0``; default ``1/m``.
        epsilon: regulariser ``ε > 0`` (finite down to ``1e-3`` in float32 for costs in
            ``[0, 2]``).
        max_iter: number of sweeps ``T >= 1`` (``2T`` half-steps).
        tol: if ``> 0``, stop after the first sweep whose marginal error is ``<= tol``.
        relax_a: ``λ1 > 0``, the KL weight of the row marginal; ``None`` (or ``inf``) keeps
            it a hard constraint.
        relax_b: ``λ2 > 0``, likewise for the column marginal.
        history: keep the plan after every half-step in ``result.history``.
        method: ``"absorb"`` (default) or ``"log"``, see above.

    Returns:
        A frozen :class:`SinkhornResult`. Arrays have the type of ``cost``.

    Raises:
        ValueError: naming the parameter, for ``epsilon <= 0`` or not finite; a cost that is
            not 2-D, empty, or holds ``NaN`` or ``-inf``; a row or column of the cost with
            no finite entry; marginals of the wrong shape, negative, zero, subnormal or
            non-finite; balanced marginals whose totals differ; ``max_iter < 1``;
            ``tol < 0``; ``relax_a``/``relax_b`` ``<= 0``; an unknown ``method``; a
            ``history`` that is not a bool; an ``epsilon`` outside the range of the cost's
            dtype or below the rounding error of the potentials (``max |f|, |g|`` times
            machine epsilon), or a solution (potentials, residuals, plan) that overflows the
            dtype.

    Example:
        >>> import torch
        >>> z1, z2 = torch.randn(8, 16), torch.randn(8, 16)
        >>> res = sinkhorn(cosine_cost(z1, z2), epsilon=0.5, max_iter=50)
        >>> bool(res.converged), tuple(res.plan.shape)
        (True, (8, 8))
    """
    as_numpy = not isinstance(cost, torch.Tensor)
    C = _cost_matrix(cost)
    n, m = C.shape
    eps = _check_epsilon(epsilon, C.dtype)
    mu = _check_marginal(a, "a", n, C)
    nu = _check_marginal(b, "b", m, C)
    lam_a = _check_relax(relax_a, "relax_a")
    lam_b = _check_relax(relax_b, "relax_b")
    mass = None  # sum(a), once known
    if lam_a is None and lam_b is None:
        sa, sb = torch.stack([mu.detach().sum(), nu.detach().sum()]).tolist()
        mass = sa
        if not math.isclose(sa, sb, rel_tol=1e-5):
            raise ValueError(
                f"balanced OT needs marginals of equal mass: sum(a) = {sa:.8g} but "
                f"sum(b) = {sb:.8g}; rescale them or relax a marginal (relax_a / relax_b)"
            )
    if isinstance(max_iter, bool) or not isinstance(max_iter, (int, np.integer)) or max_iter < 1:
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    tol_f = _real(tol, "tol must be a number >= 0")
    if not math.isfinite(tol_f) or tol_f < 0:
        raise ValueError(f"tol must be finite and >= 0, got {tol!r}")
    if method not in ("absorb", "log"):
        raise ValueError(f"method must be 'absorb' or 'log', got {method!r}")
    if not isinstance(history, (bool, np.bool_)):
        raise ValueError(f"history must be True or False, got {history!r}")
    cost_range = _cost_range(C)

    problem = _Problem(C, mu, nu, eps, _rho(lam_a, eps), _rho(lam_b, eps), lam_a, lam_b, cost_range)
    engine = _solve_absorb if method == "absorb" else _solve_log
    # Torch on one thread while numpy's BLAS does the products (see device.torch_threads).
    with torch_threads(1 if C.device.type == "cpu" and not problem.needs_grad else None):
        f, g, errs, plans, plan = engine(problem, int(max_iter), tol_f, history)
        log_plan = None  # formed on first use if the engine gave the plan (no autograd)
        if plan is None:
            log_plan = problem.log_plan(f, g)
            plan = torch.exp(log_plan)
    if errs and not isinstance(errs[0], torch.Tensor):  # numpy scalars of the CPU engine
        errors = torch.from_numpy(np.array(errs, dtype=np.float64)).to(C.dtype)
    else:
        errors = torch.stack(errs).detach()
    _check_solution(eps, C.dtype, [f, g], [errors])  # (errors[-1] covers the plan)
    if mass is None:
        mass = float(mu.detach().sum())
    threshold = tol_f if tol_f > 0 else math.sqrt(torch.finfo(C.dtype).eps) * mass
    converged = float(errors[-1]) <= threshold

    def out(x: torch.Tensor) -> Array:
        return _like_input(x, as_numpy)

    def kept(x: torch.Tensor) -> Array:  # an input kept on the result (see SinkhornResult)
        return x.numpy().copy() if as_numpy else x

    return SinkhornResult(
        plan=out(plan),
        f=out(f),
        g=out(g),
        errors=out(errors),
        n_iter=len(errs),
        converged=converged,
        history=tuple(out(p) for p in plans),
        cost=kept(C),  # the validated float matrix (not a bool/int/list input)
        a=kept(mu),
        b=kept(nu),
        epsilon=eps,
        relax_a=lam_a,
        relax_b=lam_b,
        _log_plan=None if log_plan is None else out(log_plan),
        _versions=() if as_numpy else tuple((t, t._version) for t in (C, mu, nu)),
    )


def _cost_matrix(cost: Array) -> torch.Tensor:
    """``cost`` as a tensor, checked to be a non-empty 2-D matrix (values checked later)."""
    C = _to_tensor(cost, "cost")
    if C.ndim != 2 or C.shape[0] == 0 or C.shape[1] == 0:
        raise ValueError(f"cost must be a non-empty 2-D matrix, got shape {tuple(C.shape)}")
    return C


def _check_marginal(x: Array | None, name: str, size: int, like: torch.Tensor) -> torch.Tensor:
    if x is None:
        return torch.full((size,), 1.0 / size, dtype=like.dtype, device=like.device)
    t = _to_tensor(x, name, like=like)
    if t.ndim != 1 or t.shape[0] != size:
        raise ValueError(f"{name} must have shape ({size},), got {tuple(t.shape)}")
    tiny = torch.finfo(t.dtype).tiny  # subnormal masses lose their precision (and the plan)
    host = _host(t.detach())
    if host is not None:
        ok = bool(host[0].min() >= tiny and host[0].max() < math.inf)  # (False for NaN)
    else:
        ok = bool((torch.isfinite(t) & (t >= tiny)).all())  # one device sync
    if ok:
        return t
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{name} contains NaN or inf")
    if bool((t > 0).all()):
        raise ValueError(
            f"{name} has entries below {tiny:.3g}, the smallest normal {t.dtype} number; "
            "rescale the marginals (or use float64)"
        )
    raise ValueError(f"{name} must be strictly positive (drop zero-mass points from the problem)")


def _check_relax(relax: float | None, name: str) -> float | None:
    if relax is None:
        return None
    lam = _real(relax, f"{name} must be a number > 0 or None")
    if math.isnan(lam) or lam <= 0:
        raise ValueError(f"{name} must be > 0 (or None for a hard marginal), got {relax!r}")
    return None if math.isinf(lam) else lam


def _check_cost_values(C: torch.Tensor, host: bool | None = None) -> tuple[float, float]:
    """Reject NaN and -inf, and rows or columns with no finite entry; return the smallest
    and the largest entry of the cost (the largest may be ``+inf``, a forbidden pair).
    See :func:`_cost_range`."""
    lowest, highest, _ = _cost_range(C, host)
    return lowest, highest


def _cost_range(
    C: torch.Tensor, host: bool | None = None
) -> tuple[float, float, torch.Tensor | None]:
    """:func:`_check_cost_values`, plus each row's minimum, ``(n,)``, when the check
    computed it (the cost holds ``+inf``), else ``None``: the engine starts from it.

    Two reductions over the whole matrix and one device sync (whole-matrix reductions cost
    about half of per-row ones in numpy); the row and column reductions run only if the cost
    holds ``+inf``, since only then can a row or column be all ``+inf``. On the CPU the
    reductions run in numpy (see :func:`_host_matrix`); ``host`` overrides that choice (the
    tests run both ways on the CPU).
    """
    Cd = C.detach()
    on_host = Cd.device.type == "cpu" if host is None else host
    C_np = Cd.numpy() if on_host else None
    if C_np is not None:  # NaN propagates through both
        lowest, highest = float(C_np.min()), float(C_np.max())
    else:
        lowest, highest = torch.stack([Cd.amin(), Cd.amax()]).tolist()
    if math.isnan(lowest) or math.isnan(highest):
        raise ValueError("cost contains NaN")
    if lowest == -math.inf:
        raise ValueError("cost contains -inf; use +inf for forbidden pairs")
    row_min = None
    if highest == math.inf:
        for axis, name in ((1, "row"), (0, "column")):
            least = torch.from_numpy(C_np.min(axis=axis)) if C_np is not None else Cd.amin(axis)
            bad = torch.nonzero(least == math.inf).flatten()
            if len(bad):
                raise ValueError(
                    f"cost {name} {int(bad[0])} has no finite entry, so no plan can move its mass"
                )
            if axis == 1:
                row_min = least
    return lowest, highest, row_min


def _row_range(C: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each row's minimum and maximum of ``C``, ``(n,)`` each (numpy on the CPU)."""
    Cd = C.detach()
    if Cd.device.type == "cpu":
        C_np = Cd.numpy()
        return torch.from_numpy(C_np.min(axis=1)), torch.from_numpy(C_np.max(axis=1))
    return Cd.amin(dim=1), Cd.amax(dim=1)


@dataclass(frozen=True)
class _Problem:
    """A validated problem in torch form, with the helpers both engines share."""

    C: torch.Tensor  # (n, m)
    mu: torch.Tensor  # (n,)
    nu: torch.Tensor  # (m,)
    eps: float
    rho_a: float
    rho_b: float
    lam_a: float | None
    lam_b: float | None
    # min and max of C, and each row's min when the validation computed it (_cost_range)
    cost_range: tuple[float, float, torch.Tensor | None] | None = None

    @property
    def needs_grad(self) -> bool:
        """Whether autograd tracks the problem (then no numpy fast path, no buffer reuse)."""
        return torch.is_grad_enabled() and any(t.requires_grad for t in (self.C, self.mu, self.nu))

    def log_plan(self, f: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """``(f_i + g_j - C_ij) / ε``, see :func:`_log_plan`."""
        return _log_plan(self.C, f, g, self.eps)

    def row_target(self, f: torch.Tensor) -> torch.Tensor:
        """Row marginal demanded at optimality: ``μ`` (hard) or ``μ exp(-f / λ1)``."""
        return self.mu if self.lam_a is None else self.mu * torch.exp(-f / self.lam_a)

    def lse_rows(self, g: torch.Tensor) -> torch.Tensor:
        """``LSE_j (g_j - C_ij) / ε``, shape ``(n,)``."""
        return torch.logsumexp(self.scores_rows(g), dim=1)

    def scores_rows(self, g: torch.Tensor) -> torch.Tensor:
        """``(g_j - C_ij) / ε``, shape ``(n, m)``, in one pass."""
        return (g / self.eps)[None, :].sub(self.C, alpha=1.0 / self.eps)

    def lse_cols(self, f: torch.Tensor) -> torch.Tensor:
        """``LSE_i (f_i - C_ij) / ε``, shape ``(m,)``."""
        return torch.logsumexp((f / self.eps)[:, None].sub(self.C, alpha=1.0 / self.eps), dim=0)

    def row_step(self, lse: torch.Tensor) -> torch.Tensor:
        return self.rho_a * self.eps * (torch.log(self.mu) - lse)

    def col_step(self, lse: torch.Tensor) -> torch.Tensor:
        return self.rho_b * self.eps * (torch.log(self.nu) - lse)


# (f, g, errors per sweep, plans per half-step, the plan if formed without autograd, or None)
_Solved = tuple[torch.Tensor, torch.Tensor, list[Any], list[torch.Tensor], torch.Tensor | None]


def _solve_log(p: _Problem, max_iter: int, tol: float, keep: bool) -> _Solved:
    """Reference engine: every half-step by log-sum-exp."""
    n, m = p.C.shape
    f = torch.zeros(n, dtype=p.C.dtype, device=p.C.device)
    g = torch.zeros(m, dtype=p.C.dtype, device=p.C.device)
    errors: list[torch.Tensor] = []
    plans: list[torch.Tensor] = []
    lse = p.lse_rows(g)
    for t in range(max_iter + 1):
        if t > 0:  # residual of sweep t: P 1 = exp(f/ε + LSE_j((g_j - C_ij)/ε))
            with torch.no_grad():
                errors.append(torch.dist(torch.exp(f / p.eps + lse), p.row_target(f), p=1))
            if t == max_iter or (tol > 0 and float(errors[-1]) <= tol):
                break
        f = p.row_step(lse)
        if keep:
            plans.append(torch.exp(p.log_plan(f, g)))
        g = p.col_step(p.lse_cols(f))
        if keep:
            plans.append(torch.exp(p.log_plan(f, g)))
        lse = p.lse_rows(g)
    return f, g, errors, plans, None


def _solve_absorb(p: _Problem, max_iter: int, tol: float, keep: bool) -> _Solved:
    """Stabilised kernel-domain engine with absorption (same iterates as :func:`_solve_log`).

    State: absorbed potentials ``f``, ``g``, the kernel ``K~ = exp((f + g - C)/ε)`` and
    scalings ``u``, ``v``; the true potentials are ``f + ε log u`` and ``g + ε log v``.
    A row step is ``u = (μ_eff / (K~ v))^ρ1`` with ``μ_eff = μ exp(-f/λ1)`` (``μ`` if hard):
    the log-domain update rewritten with
    ``LSE_j((g_j + ε log v_j - C_ij)/ε) = log(K~ v)_i - f_i/ε``.

    The half-steps between two absorptions run in one stretch (:func:`_advance`). Under
    autograd that stretch is one :class:`_HalfSteps` node whose backward pass walks the
    recorded scalings in reverse and forms the kernel's gradient with a single matrix
    product, instead of one ``(n, m)`` outer product per half-step.
    """
    C = p.C
    bound = _ABSORB_LOG_BOUND.get(C.dtype, 20.0)
    lowest, highest, row_min = p.cost_range if p.cost_range is not None else _cost_range(C)
    g = torch.zeros(C.shape[1], dtype=C.dtype, device=C.device)  # (m,)
    if -bound <= -highest / p.eps and -lowest / p.eps <= bound:
        # Every entry of exp(-C/ε) lies in [e^-bound, e^bound]: start from f = 0, which
        # saves the row reductions and a pass over the matrix in the kernel's build.
        f = torch.zeros(C.shape[0], dtype=C.dtype, device=C.device)
        state = _AbsorbState(p, f, g, highest, f_is_zero=True)
    elif row_min is not None:  # the cost holds +inf: the validation's row minima start it;
        # a row's maximum is +inf, so log K~ has no lower bound and highest serves as well
        state = _AbsorbState(p, row_min, g, highest)
    else:  # f = row minimum of C, so that every row of K~ has an entry equal to 1
        row_min, row_max = _row_range(C)
        state = _AbsorbState(p, row_min, g, row_max)
    errors: list[Any] = []
    plans: list[torch.Tensor] = []
    fused = p.needs_grad and not keep
    h = 0
    while True:
        run = _Run(
            state, h, 2 * max_iter, tol, math.exp(-bound), math.exp(bound), errors, keep, fused
        )
        if fused:
            state.u, state.v = _HalfSteps.apply(
                state.K, state.mu_eff, state.nu_eff, state.u, state.v, run
            )
        else:
            state.u, state.v = _advance(run, state.u, state.v, fast=not p.needs_grad)
        h = run.h
        if run.done:
            break
        if run.action == "absorb":
            state.absorb()
        elif run.action == "recover":
            state.recover_rows() if (h - 1) % 2 == 0 else state.recover_cols()
        if keep:
            plans.append(state.plan())
    host = _host(state.f, state.g, state.u, state.v)
    if host is not None:  # (numpy: see _host)
        f_np, g_np, u_np, v_np = host
        f_out = torch.from_numpy(f_np + p.eps * np.log(u_np))
        g_out = torch.from_numpy(g_np + p.eps * np.log(v_np))
    else:
        f_out = state.f + p.eps * torch.log(state.u)
        g_out = state.g + p.eps * torch.log(state.v)
    # Without autograd the kernel buffer is free: scale it into the plan u_i K~_ij v_j.
    plan = None
    if _host_matrix(C, p.needs_grad):
        K_np = state.K.numpy()
        K_np *= state.v.detach().numpy()[None, :]
        K_np *= state.u.detach().numpy()[:, None]
        plan = state.K
    elif not p.needs_grad:
        plan = state.K.mul_(state.v[None, :]).mul_(state.u[:, None])
    return f_out, g_out, errors, plans, plan


@dataclass
class _Run:
    """Control and record of a stretch of kernel-domain half-steps (no absorption inside).

    Half-step ``h`` (counted over the whole solve from 0) is a row step when ``h`` is even.
    Every row step after the first also yields the residual of the sweep just finished,
    ``|u * (K~ v) - μ_target|_1``, from the product it computes anyway.
    """

    state: _AbsorbState
    h: int  # half-steps done so far
    max_half: int  # 2 T
    tol: float
    lo: float  # bounds on the scalings before an absorption
    hi: float
    errors: list[Any]  # one residual per finished sweep, 0-d tensor or numpy scalar
    single: bool  # stop after one half-step (to record the history)
    record: bool  # keep the steps for _HalfSteps.backward
    action: str = "ok"  # "ok", or what the last half-step needs: "absorb" / "recover"
    done: bool = False
    # (row step?, input scaling, product, output scaling) per half-step, for the backward
    steps: list[tuple[bool, Any, Any, Any]] = field(default_factory=list)


def _advance(
    run: _Run, u: torch.Tensor, v: torch.Tensor, fast: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Half-steps ``u = (μ_eff / K~ v)^ρ1`` and ``v = (ν_eff / K~^T u)^ρ2`` until the last
    sweep, the tolerance, or a half-step that needs an absorption (it is kept) or a
    log-sum-exp recovery (it is dropped: the caller redoes it).

    ``fast`` runs without autograd: on the CPU the whole stretch runs in numpy (its BLAS
    matrix-vector product is 2x faster here than ``torch.mv``, and its small vector
    operations cost a fraction of torch's dispatch); the scalings go back as tensors that
    share the arrays' memory.
    """
    st = run.state
    if _host_matrix(st.K, needs_grad=not fast):
        K = st.K.detach().numpy()
        with np.errstate(all="ignore"):  # 1/0 and overflow are detected by _check_step
            u_np, v_np = _stretch(run, u.detach().numpy(), v.detach().numpy(), K.dot, K.T.dot, np)
        return torch.from_numpy(u_np), torch.from_numpy(v_np)
    mv, mv_t = (st.mv_fast, st.mv_t_fast) if fast else (st.mv, st.mv_t)
    return _stretch(run, u, v, mv, mv_t, torch)


def _stretch(run: _Run, u: Any, v: Any, mv: Any, mv_t: Any, xp: Any) -> tuple[Any, Any]:
    """The loop of :func:`_advance` on torch tensors (``xp = torch``) or numpy arrays
    (``xp = numpy``); ``mv``, ``mv_t`` are the products with ``K~`` and ``K~^T``.

    Each half-step is a product and a few vector operations (plus the residual once per
    sweep); the loop keeps everything in locals, since at ``n = 1024`` Python's own
    overhead per half-step is comparable to the vector operations."""
    st, p = run.state, run.state.p
    vectors: tuple[Any, ...] = (st.mu_eff, st.nu_eff, st.f, p.mu)
    if xp is np:
        vectors = tuple(x.detach().numpy() for x in vectors)
    mu_eff, nu_eff, f, mu = vectors
    floor = math.sqrt(torch.finfo(st.K.dtype).tiny)
    no_grad = torch.no_grad() if xp is torch else contextlib.nullcontext()
    rho_a, rho_b, lam_a, eps = p.rho_a, p.rho_b, p.lam_a, p.eps
    h, max_half, tol, lo, hi, errors = run.h, run.max_half, run.tol, run.lo, run.hi, run.errors
    steps = run.steps if run.record else None
    # the largest entry of a scaling, as a float (without a grad warning under autograd)
    peak: Callable[[Any], Any] = (
        (lambda x: float(x.detach().max())) if xp is torch else np.maximum.reduce
    )
    # numpy, hard rows, no tolerance: each sweep writes its row sums u * s into a row of a
    # small buffer, and the residuals |u * s - μ|_1 of up to 32 sweeps are formed together
    # (one call per sweep instead of four, and no kept vectors to defeat numpy's cache).
    batch = (
        np.empty((32, len(mu)), dtype=mu.dtype) if xp is np and tol == 0 and lam_a is None else None
    )
    pending = 0  # rows of batch in use

    def flush() -> None:
        nonlocal pending
        if batch is not None and pending:
            rows = batch[:pending]
            rows -= mu
            errors.extend(np.abs(rows, out=rows).sum(axis=1))
            pending = 0

    # A hard step's bound: u = μ / s <= min(hi, min μ / floor) also keeps s >= floor.
    hi_a = _hard_bound(mu_eff, hi, floor) if rho_a == 1.0 else hi
    hi_b = _hard_bound(nu_eff, hi, floor) if rho_b == 1.0 else hi

    def scaled(target: Any, prod: Any, rho: float, top: float) -> tuple[Any, str]:
        """The new scaling ``(target / prod)^ρ`` and what it needs. A hard step (``ρ = 1``)
        whose largest entry is within ``top`` (:func:`_hard_bound`, which also keeps every
        product ``>= floor``) is "ok" after this one reduction: a small scaling is harmless
        (floating point keeps its relative precision) and makes the next product small, so
        the next half-step's scaling leaves the bounds through the top. Otherwise
        :func:`_check_step` decides."""
        new = target / prod if rho == 1.0 else _scale(target, prod, rho)
        largest = peak(new)
        if rho == 1.0 and largest <= top:  # (False for NaN)
            return new, "ok"
        return new, _check_step(prod, new, float(largest), lo, top, floor)

    action = "ok"
    while True:
        if h % 2 == 0:
            s = mv(v)  # (n,) = (K~ v)_i
            if h > 0:  # residual of the sweep just finished: P 1 = u * (K~ v)
                if batch is not None:
                    np.multiply(u, s, out=batch[pending])
                    pending += 1
                    if pending == 32:
                        flush()
                else:
                    with no_grad:
                        target = mu
                        if lam_a is not None:  # μ exp(-f_true / λ1), f_true = f + ε log u
                            target = mu * xp.exp(-(f + eps * xp.log(u)) / lam_a)
                        errors.append(abs(u * s - target).sum())
                if h == max_half or (tol > 0 and float(errors[-1]) <= tol):
                    flush()
                    run.h, run.action, run.done = h, action, True
                    return u, v
            new, action = scaled(mu_eff, s, rho_a, hi_a)
            step = (True, v, s, new)
        else:
            r = mv_t(u)  # (m,) = (K~^T u)_j
            new, action = scaled(nu_eff, r, rho_b, hi_b)
            step = (False, u, r, new)
        h += 1
        if action == "recover":
            break
        if steps is not None:
            steps.append(step)
        u, v = (new, v) if step[0] else (u, new)
        if action != "ok" or run.single:
            break
    flush()
    run.h, run.action = h, action
    return u, v


class _HalfSteps(torch.autograd.Function):
    """A stretch of kernel-domain half-steps as one autograd node.

    Backward, from the last half-step to the first, with ``ū``, ``v̄`` the incoming
    gradients: a column step ``v = (ν / r)^ρ2``, ``r = K~^T u`` gives
    ``r̄ = -ρ2 v̄ v / r``, ``ν̄ += ρ2 v̄ v / ν``, ``ū += K~ r̄``; a row step
    ``u = (μ / s)^ρ1``, ``s = K~ v`` gives ``s̄ = -ρ1 ū u / s``, ``μ̄ += ρ1 ū u / μ``,
    ``v̄ += K~^T s̄``. The kernel's gradient ``K̄ = sum_rows s̄ v^T + sum_cols u r̄^T`` is one
    ``(n, k) x (k, m)`` product.
    """

    @staticmethod
    def forward(
        ctx: Any,
        K: torch.Tensor,
        mu_eff: torch.Tensor,
        nu_eff: torch.Tensor,
        u: torch.Tensor,
        v: torch.Tensor,
        run: _Run,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        u_out, v_out = _advance(run, u, v, fast=True)
        # Keep only what backward reads, never `run` (whose state holds this node's own
        # outputs: output -> grad_fn -> ctx -> run -> output is a cycle through autograd's
        # C++ graph that the garbage collector cannot see, and leaked every solve). Tensors
        # are kept detached for the same reason (the last step's scaling is an output).
        ctx.steps = [
            (is_row, *(a.detach() if isinstance(a, torch.Tensor) else a for a in arrays))
            for is_row, *arrays in run.steps
        ]
        ctx.rho = (run.state.p.rho_a, run.state.p.rho_b)
        ctx.save_for_backward(K, mu_eff, nu_eff)
        # An input returned unchanged must be a new tensor for autograd.
        return (u_out.clone() if u_out is u else u_out, v_out.clone() if v_out is v else v_out)

    @staticmethod
    def backward(ctx: Any, gu: torch.Tensor, gv: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        rho_a, rho_b = ctx.rho
        K, mu_eff, nu_eff = ctx.saved_tensors
        g_mu = torch.zeros_like(mu_eff)
        g_nu = torch.zeros_like(nu_eff)
        left: list[torch.Tensor] = []
        right: list[torch.Tensor] = []
        for is_row, *arrays in reversed(ctx.steps):
            x, prod, y = (torch.as_tensor(a) for a in arrays)  # numpy on the CPU: no copy
            if is_row:  # y = u = (μ / s)^ρ1 with s = K~ x, x = v
                t = gu * y
                g_mu += rho_a * t / mu_eff
                gs = -rho_a * t / prod
                gv = gv + torch.mv(K.T, gs)
                gu = torch.zeros_like(gu)
                left.append(gs)
                right.append(x)
            else:  # y = v = (ν / r)^ρ2 with r = K~^T x, x = u
                t = gv * y
                g_nu += rho_b * t / nu_eff
                gr = -rho_b * t / prod
                gu = gu + torch.mv(K, gr)
                gv = torch.zeros_like(gv)
                left.append(x)
                right.append(gr)
        g_K = torch.stack(left, 1) @ torch.stack(right, 0) if left else torch.zeros_like(K)
        need = ctx.needs_input_grad
        return (
            g_K if need[0] else None,
            g_mu if need[1] else None,
            g_nu if need[2] else None,
            gu if need[3] else None,
            gv if need[4] else None,
            None,
        )


def _scale(target: Any, prod: Any, rho: float) -> Any:
    """Kernel-domain scaling ``(target / prod)^ρ`` (torch tensors or numpy arrays)."""
    ratio = target / prod
    return ratio if rho == 1.0 else ratio**rho


def _hard_bound(target: Any, hi: float, floor: float) -> float:
    """Upper bound on a hard step's scaling ``u = μ / s``: ``hi``, lowered to
    ``min μ / floor`` where that is smaller (small marginals, float32), so that ``u <= bound``
    implies ``s >= floor`` (at least 1, so that a scaling of 1 after an absorption is in it)."""
    smallest = float(target.detach().min() if isinstance(target, torch.Tensor) else target.min())
    return max(1.0, min(hi, smallest / floor))


def _check_step(prod: Any, scaling: Any, hi_x: float, lo: float, hi: float, floor: float) -> str:
    """What a kernel-domain half-step needs next, given its scaling's largest entry
    ``hi_x``: ``"ok"``, ``"absorb"`` (a scaling left ``[lo, hi]``) or ``"recover"``: redo
    the step by log-sum-exp because a scaling is 0 or not finite, or a product fell below
    ``floor = sqrt(tiny)``, where ``1/prod`` and its derivative ``-1/prod^2`` overflow.
    Works on torch tensors and numpy arrays alike. (A hard step within its bound never
    gets here, see ``scaled`` in :func:`_stretch`.)"""
    if isinstance(scaling, torch.Tensor):
        prod, scaling = prod.detach(), scaling.detach()
    lo_x = float(scaling.min())
    if not (float(prod.min()) >= floor and 0 < lo_x and hi_x < math.inf):
        return "recover"  # (NaN fails every comparison and lands here too)
    return "ok" if lo <= lo_x and hi_x <= hi else "absorb"


class _AbsorbState:
    """Mutable state of the absorbing engine (potentials, kernel, scalings)."""

    def __init__(
        self,
        p: _Problem,
        f: torch.Tensor,
        g: torch.Tensor,
        row_max: torch.Tensor | float,
        f_is_zero: bool = False,
    ) -> None:
        """Start from potentials ``f``, ``g = 0`` (``f = 0`` too if ``f_is_zero``) and
        scalings ``u = v = 1``. ``row_max``: ``(n,)`` each row's ``max_j C_ij``, or a
        bound on all of them, for a lower bound on ``log K~``."""
        self.p = p
        self.f, self.g = f, g
        self.row_max = row_max
        self.u = torch.ones_like(f)
        self.v = torch.ones_like(g)
        self._rebuild(g_is_zero=True, f_is_zero=f_is_zero)

    def _rebuild(self, g_is_zero: bool = False, f_is_zero: bool = False) -> None:
        """``K~ = exp((f_i + g_j - C_ij)/ε)`` in a new ``(n, m)`` buffer: the exponents
        (torch: two passes, one when ``g = 0``; numpy on the CPU without autograd, see
        :func:`_host_matrix`: one more unless ``f = 0`` too) and an exp, plus a pass that
        zeroes the entries below
        the smallest normal number, only when a cheap lower bound says that some exponent may
        fall below its log (torch: a threshold before the exp; numpy: a mask after it).

        Without that pass the exp is taken in base 2, ``K~ = 2^((f_i + g_j - C_ij)/(ε ln 2))``:
        the scale folds into the first pass, and numpy's ``exp2`` costs half of its ``exp``
        in float32. (``exp2`` is slow on ``-inf`` and on underflow, which ``exp`` is not.)"""
        p = self.p
        # Entries below the smallest normal number become exact zeros: subnormal operands
        # slow BLAS down by an order of magnitude and carry no mass worth keeping. The bound
        # min_ij (f_i + g_j - C_ij) >= min_i (f_i - max_j C_ij) + min_j g_j is exact for g = 0.
        tiny = torch.finfo(p.C.dtype).tiny
        log_tiny = math.log(tiny)
        lowest = (self.f.detach() - self.row_max).amin()
        if not g_is_zero:
            lowest = lowest + self.g.detach().amin()
        small = not float(lowest) / p.eps >= log_tiny  # (also for NaN and -inf)
        base = math.e if small else 2.0
        g = None if g_is_zero else self.g
        f = None if f_is_zero else self.f
        scale = p.eps * math.log(base)
        if _host_matrix(p.C, p.needs_grad):  # every pass in numpy (see _host_matrix)
            K = _matrix_buffer((p.C.shape[0], p.C.shape[1]), p.C.dtype)
            K_np = K.numpy()
            f_np = None if f is None else f.detach().numpy()
            g_np = None if g is None else g.detach().numpy()
            with np.errstate(all="ignore"):  # inf and NaN are reported by _check_solution
                _log_plan_host(p.C.detach().numpy(), f_np, g_np, scale, K_np)
                (np.exp if small else np.exp2)(K_np, out=K_np)
                if small:  # entries below tiny become 0: two fast passes (a masked
                    # assignment is 10x slower when most entries are masked)
                    K_np *= K_np >= tiny
        else:
            log_K = _log_plan(p.C, f, g, scale)
            if small:
                torch.threshold_(log_K, log_tiny, -math.inf)  # x if x > t else -inf
            K = log_K.exp_() if small else log_K.exp2_()  # (n, m) stabilised kernel K~
        self.K = K
        # Products without autograd (the fused stretches on a GPU; on the CPU the stretch
        # runs in numpy, see _advance).
        K_d = K.detach()
        self.mv_fast: Callable[[torch.Tensor], torch.Tensor] = lambda x: torch.mv(K_d, x.detach())
        self.mv_t_fast: Callable[[torch.Tensor], torch.Tensor] = lambda x: torch.mv(
            K_d.T, x.detach()
        )
        # Products autograd follows (the history path under autograd).
        self.mv = lambda x: torch.mv(K, x)
        self.mv_t = lambda x: torch.mv(K.T, x)
        self.mu_eff = p.mu if p.lam_a is None else p.mu * torch.exp(-self.f / p.lam_a)
        self.nu_eff = p.nu if p.lam_b is None else p.nu * torch.exp(-self.g / p.lam_b)

    def absorb(self) -> None:
        """Move the scalings into the potentials: ``f += ε log u``, ``g += ε log v``."""
        eps = self.p.eps
        self.f = self.f + eps * torch.log(self.u)
        self.g = self.g + eps * torch.log(self.v)
        self.u, self.v = torch.ones_like(self.u), torch.ones_like(self.v)
        self._rebuild()

    def recover_rows(self) -> None:
        """The kernel-domain row step underflowed: redo it by log-sum-exp, then absorb."""
        g_true = self.g + self.p.eps * torch.log(self.v)
        self.f, self.g = self.p.row_step(self.p.lse_rows(g_true)), g_true
        self.u, self.v = torch.ones_like(self.u), torch.ones_like(self.v)
        self._rebuild()

    def recover_cols(self) -> None:
        """The kernel-domain column step underflowed: redo it by log-sum-exp, then absorb."""
        f_true = self.f + self.p.eps * torch.log(self.u)
        self.f, self.g = f_true, self.p.col_step(self.p.lse_cols(f_true))
        self.u, self.v = torch.ones_like(self.u), torch.ones_like(self.v)
        self._rebuild()

    def plan(self) -> torch.Tensor:
        """Current plan ``u_i K~_ij v_j`` (one broadcast per op)."""
        return (self.K * self.v[None, :]).mul_(self.u[:, None])


def row_projection(
    cost: Array,
    a: Array | None = None,
    g: Array | None = None,
    *,
    epsilon: float,
    relax_a: float | None = None,
) -> tuple[Array, Array]:
    r"""One row half-step: the KL projection of ``exp((g_j - C_ij)/ε)`` onto ``P 1 = μ``.

    .. math::
        f_i = \rho_1\big(\varepsilon\log\mu_i - \varepsilon\,\mathrm{LSE}_j
            \tfrac{g_j - C_{ij}}{\varepsilon}\big), \qquad
        \log P_{ij} = (f_i + g_j - C_{ij}) / \varepsilon

    where ``ρ1 = λ1 / (λ1 + ε)`` (1 for a hard row marginal, ``relax_a=None``). With
    ``g = 0`` this is ``P^(1)_ij = μ_i softmax_j(-C_ij / ε)``, the InfoNCE plan; with the
    column potential ``g^(t-1)`` of sweep ``t - 1`` it is the half-step ``P^(2t-1)`` of
    :func:`sinkhorn`.

    Args:
        cost: ``(n, m)`` cost ``C`` (``+inf`` for excluded pairs).
        a: ``(n,)`` row marginal ``μ`` (default ``1/n``).
        g: ``(m,)`` column potential (default 0).
        epsilon: ``ε > 0``.
        relax_a: ``λ1 > 0`` for a relaxed row marginal, ``None`` for a hard one.

    Returns:
        ``(log_plan, f)``: the ``(n, m)`` log-plan and the ``(n,)`` row potential, of the
        type of ``cost``; differentiable.

    Raises:
        ValueError: as :func:`sinkhorn`, for the parameters it shares.
    """
    as_numpy = not isinstance(cost, torch.Tensor)
    C = _cost_matrix(cost)
    n, m = C.shape
    eps = _check_epsilon(epsilon, C.dtype)
    mu = _check_marginal(a, "a", n, C)
    lam_a = _check_relax(relax_a, "relax_a")
    g_t = torch.zeros(m, dtype=C.dtype, device=C.device) if g is None else _to_tensor(g, "g", C)
    if g_t.shape != (m,):
        raise ValueError(f"g must be a vector of shape ({m},), got shape {tuple(g_t.shape)}")
    if not bool(torch.isfinite(g_t).all()):
        raise ValueError("g must be finite, got NaN or inf entries")
    _check_cost_values(C)
    p = _Problem(C, mu, mu, eps, _rho(lam_a, eps), 1.0, lam_a, None)
    with torch_threads(1 if C.device.type == "cpu" else None):
        scores = p.scores_rows(g_t)  # (g_j - C_ij) / ε
        f = p.row_step(torch.logsumexp(scores, dim=1))
        log_plan = scores + (f / eps)[:, None]
    _check_solution(eps, C.dtype, [f, g_t], [])
    return _like_input(log_plan, as_numpy), _like_input(f, as_numpy)


# ---------------------------------------------------------------------------- exact OT


def exact_ot(cost: Array, a: Array | None = None, b: Array | None = None) -> Array:
    r"""Unregularised optimal transport plan, the ``ε -> 0`` limit of :func:`sinkhorn`.

    .. math::
        P^\star = \arg\min_{P \ge 0,\ P\mathbf 1 = \mu,\ P^\top \mathbf 1 = \nu} \langle P, C\rangle

    For a square problem with uniform marginals the optimum is a permutation scaled by
    ``1/n`` (Birkhoff), found with the Hungarian algorithm; otherwise a linear program is
    solved with HiGHS (fine up to a few hundred points a side).

    Args:
        cost: ``(n, m)`` cost; ``+inf`` marks forbidden pairs.
        a: ``(n,)`` row marginal (default uniform ``1/n``); b: ``(m,)`` likewise.

    Returns:
        ``(n, m)`` plan of the input's type, device and dtype (no gradient).

    Masses that agree to a relative ``1e-5`` (marginals normalised separately in float32)
    count as equal: ``b`` is rescaled to the total of ``a`` before solving.

    Raises:
        ValueError: for invalid costs or marginals (as :func:`sinkhorn`), unequal masses, or
            when the forbidden pairs leave no feasible plan.
    """
    from scipy.optimize import linear_sum_assignment, linprog

    as_numpy = not isinstance(cost, torch.Tensor)
    C = _cost_matrix(cost)
    n, m = C.shape
    mu = _check_marginal(a, "a", n, C)
    nu = _check_marginal(b, "b", m, C)
    _check_cost_values(C)
    sa, sb = float(mu.detach().sum()), float(nu.detach().sum())
    if not math.isclose(sa, sb, rel_tol=1e-5):
        raise ValueError(f"a and b must have equal mass: {sa:.8g} != {sb:.8g}")
    c_np = C.detach().cpu().double().numpy()
    a_np, b_np = mu.detach().cpu().double().numpy(), nu.detach().cpu().double().numpy()
    if b_np.sum() != a_np.sum():  # equal within 1e-5 (float32 rounding): the LP needs exact
        b_np = b_np * (a_np.sum() / b_np.sum())
    finite = np.isfinite(c_np)
    uniform = n == m and bool(np.all(a_np == a_np[0]) and np.all(b_np == a_np[0]))
    plan = np.zeros((n, m))
    if uniform:
        lo_c, hi_c = c_np[finite].min(), c_np[finite].max()
        big = hi_c + n * (hi_c - lo_c) + 1.0  # any forbidden pair costs more than a swap
        rows, cols = linear_sum_assignment(np.where(finite, c_np, big))
        if not finite[rows, cols].all():
            raise ValueError("cost: the +inf entries leave no feasible transport plan")
        plan[rows, cols] = a_np[0]
    else:
        plan = _exact_lp(c_np, a_np, b_np, finite, linprog)
    out = torch.from_numpy(plan).to(dtype=C.dtype, device=C.device)
    return _like_input(out, as_numpy)


def _exact_lp(
    c: np.ndarray, a: np.ndarray, b: np.ndarray, finite: np.ndarray, linprog: Callable[..., Any]
) -> np.ndarray:
    """Solve the transport LP over the finite entries of ``c`` (sparse constraints)."""
    from scipy.sparse import coo_matrix

    n, m = c.shape
    rows, cols = np.nonzero(finite)  # variables: one per allowed pair
    k = len(rows)
    var = np.arange(k)
    eq = coo_matrix(
        (np.ones(2 * k), (np.concatenate([rows, n + cols]), np.concatenate([var, var]))),
        shape=(n + m, k),
    ).tocsr()
    mass = a.sum()  # solve for unit mass: the solver's tolerances are absolute
    res = linprog(
        c[rows, cols], A_eq=eq, b_eq=np.concatenate([a, b]) / mass, bounds=(0, None), method="highs"
    )
    if res.status != 0:
        raise ValueError(f"cost: no feasible transport plan ({res.message})")
    plan = np.zeros((n, m))
    plan[rows, cols] = np.maximum(res.x, 0.0) * mass  # HiGHS may return -1e-8 for 0
    return plan
