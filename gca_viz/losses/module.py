r"""The GCA loss module (``docs/math.md`` section 3).

:class:`GCALoss` composes one entry of each stage registry into a ``torch.nn.Module``:

.. math::
    L = \frac{1}{n}\sum_i d_M\big(P_{\mathrm{tgt}} \,\|\, \mathrm{proj}_B(K)\big)_i,
    \qquad K = e^{-C(z', z'')/\varepsilon}

and :class:`LossOutput` is what :meth:`GCALoss.inspect` returns. The named methods are
presets of it (:mod:`gca_viz.losses.methods`).
"""

from __future__ import annotations

import difflib
import math
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

import torch

from gca_viz import metrics, ot, targets
from gca_viz._validate import dtype_name, number
from gca_viz.losses._inputs import (
    check_embeddings,
    check_side_information,
    check_target_matrix,
    name_bad_embedding,
    target_on_host,
)
from gca_viz.losses.divergences import (
    DIVERGENCES,
    Positives,
    _single_positives,
    known_positives,
)
from gca_viz.losses.stages import COSTS, PROJECTIONS, Projection
from gca_viz.ot import _checks as ot_checks
from gca_viz.ot._xp import host_side
from gca_viz.registry import Param, Stage

STAGE_KINDS = ("cost", "target", "projection", "divergence")

STAGE_REGISTRIES = {
    "cost": COSTS,
    "target": targets.TARGETS,
    "projection": PROJECTIONS,
    "divergence": DIVERGENCES,
}
"""The registry each stage kind's names come from (:data:`STAGE_KINDS` order)."""

_ALL_PARAMS = frozenset(
    p.name for registry in STAGE_REGISTRIES.values() for s in registry.values() for p in s.params
)
"""Every stage parameter's name, of any stage."""


@dataclass(frozen=True, eq=False)  # (compared by identity: == on tensor fields is ambiguous)
class LossOutput:
    """What a loss saw on one batch: the stages' outputs and plan diagnostics.

    ``loss`` is the scalar (differentiable); ``per_row`` its ``(n,)`` row terms; ``cost``,
    ``target`` and ``log_plan`` are ``(n, n)``. The plan's marginals are ``μ = P_tgt 1``
    and ``ν = P_tgt^T 1``: for the pairs target its mass is ``n``, where
    :func:`gca_viz.ot.sinkhorn`'s default marginals ``1/n`` give mass 1 (the plan here is
    ``n`` times that one). ``diagnostics`` holds floats: ``marginal_error`` (absolute,
    against ``μ``, ``ν``), ``entropy`` (the Shannon entropy ``-Σ p log p`` of the plan
    normalised to mass 1, :func:`gca_viz.metrics.plan_entropy`; not
    :attr:`gca_viz.ot.SinkhornResult.entropy`, which is ``-Σ P (log P - 1)`` of the plan
    itself), ``positive_mass``, ``mass``, and for iterative projections ``n_iter`` (the
    sweeps ``T`` the plan is from) and ``solver_error`` (the solver's last error).
    """

    loss: torch.Tensor
    per_row: torch.Tensor
    cost: torch.Tensor
    target: torch.Tensor
    projection: Projection
    epsilon: float
    diagnostics: dict[str, float] = field(default_factory=dict)

    def __repr__(self) -> str:
        """One line: the loss, the plan's shape, ``ε``, the diagnostics and the tensors'
        kind (the tensors themselves are fields)."""
        n, m = self.cost.shape
        diag = ", ".join(f"{k}={v:.4g}" for k, v in self.diagnostics.items() if k != "loss")
        kind = f"torch {self.cost.device} {dtype_name(self.cost.dtype)}"
        return (
            f"LossOutput(loss={float(self.loss.detach()):.6g}, {n}x{m}, "
            f"epsilon={self.epsilon:g}{', ' + diag if diag else ''}, {kind})"
        )

    @property
    def kernel(self) -> torch.Tensor:
        """``K = exp(-C/ε)`` (0 on excluded self-pairs)."""
        return torch.exp(-self.cost / self.epsilon)

    @property
    def plan(self) -> torch.Tensor:
        return self.projection.plan

    @property
    def log_plan(self) -> torch.Tensor:
        return self.projection.log_plan

    @property
    def f(self) -> torch.Tensor:
        return self.projection.f

    @property
    def g(self) -> torch.Tensor:
        return self.projection.g


class GCALoss(torch.nn.Module):
    r"""A contrastive loss assembled from the four stage registries.

    .. math::
        L(z', z'') = \frac{1}{n}\sum_{i=1}^{n}
            d_M\Big(P_{\mathrm{tgt}} \,\Big\|\,
            \mathrm{proj}_B\big(e^{-C(z', z'')/\varepsilon}\big)\Big)_i

    where ``C`` is the cost stage, ``P_tgt`` the target stage (marginals
    ``μ = P_tgt 1``, ``ν = P_tgt^T 1``), ``proj_B`` the projection stage and ``d_M`` the
    divergence stage; ``n`` is the number of rows (``N`` cross-view, ``2N`` joint).

    Args:
        cost, target, projection, divergence: entry names in :data:`COSTS`,
            :data:`gca_viz.targets.TARGETS`, :data:`PROJECTIONS`, :data:`DIVERGENCES`.
        layout: ``"cross"`` (``N x N``, target ``I``) or ``"joint"`` (``2N x 2N``,
            self-pairs excluded, SimCLR's NT-Xent layout).
        target_matrix: the matrix of a ``"custom"`` target.
        name: a display name (the method's, for presets).
        **params: stage parameters (see each entry's schema), validated here.

    Raises:
        ValueError: naming the parameter, for an unknown stage or parameter, or a value
            outside its schema's range.

    Example:
        >>> loss = GCALoss("cosine", "pairs", "sinkhorn", "kl", epsilon=0.5, n_iter=10)
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> value = loss(z1, z2)  # scalar, differentiable
    """

    def __init__(
        self,
        cost: str = "cosine",
        target: str = "pairs",
        projection: str = "row",
        divergence: str = "kl",
        *,
        layout: str = "cross",
        target_matrix: Any = None,
        name: str | None = None,
        **params: Any,
    ) -> None:
        super().__init__()
        self.layout = targets.check_layout(layout)
        names = {"cost": cost, "target": target, "projection": projection, "divergence": divergence}
        self.stages: dict[str, Stage] = {k: STAGE_REGISTRIES[k][names[k]] for k in STAGE_KINDS}
        self.target_matrix = check_target_matrix(target, target_matrix, self.layout)
        self._targets: dict[Any, Any] = {}  # see _target
        self.name = name or f"{cost}/{target}/{projection}/{divergence}"
        self.params: dict[str, Any] = {}
        for stage in self.stages.values():
            self.params.update(stage.defaults())
        self.set_params(**params)

    def set_params(self, **changes: Any) -> None:
        """Change stage parameters (for example ``epsilon`` while a run trains), validated
        against the schemas; an invalid value raises ``ValueError`` and changes nothing."""
        schema = self.schema
        validated = {}
        for key, value in changes.items():
            if key not in schema:
                raise ValueError(
                    f"{self.name} has no parameter {key!r}; its parameters are "
                    f"{sorted(schema) or 'none'}" + _elsewhere(key) + _meant(key, schema)
                )
            if isinstance(value, str | bytes) and schema[key].kind != "choice":
                # a number as text is refused, in the solvers' words (most likely a mistake;
                # a config file's text is converted where it is read, build_loss)
                number(value, key)  # (raises ValueError naming key)
            validated[key] = schema[key].validate(value)
        merged = {**self.params, **validated}
        for stage in self.stages.values():  # constraints linking parameters (α + β <= 1)
            if stage.check is not None:
                stage.check({p.name: merged[p.name] for p in stage.params})
        self.params.update(validated)

    def __getattr__(self, name: str) -> Any:
        """A stage parameter reads as an attribute (``loss.epsilon``)."""
        params = self.__dict__.get("params")
        if params is not None and name in params:
            return params[name]
        return super().__getattr__(name)

    def __setattr__(self, name: str, value: Any) -> None:
        """A stage parameter set as an attribute (``loss.epsilon = 0.05``) goes through
        :meth:`set_params`, validated; before, it made a new attribute the loss never read.
        So does a new attribute named like a parameter this loss does not take: one of
        another stage (``gca_ince.relax_a``), a misspelling (``n_iters``) or another name
        for ε (``temperature``); :meth:`set_params` refuses it, naming what was meant,
        where the assignment did nothing, silently."""
        params = self.__dict__.get("params")
        if params is not None and (name in params or self._looks_like_a_parameter(name)):
            self.set_params(**{name: value})
            return
        super().__setattr__(name, value)

    def _looks_like_a_parameter(self, name: str) -> bool:
        if name.startswith("_") or name in self.__dict__ or hasattr(type(self), name):
            return False  # an attribute of its own (nn.Module's included)
        return name in _ALL_PARAMS or bool(_meant(name, self.params))

    @property
    def schema(self) -> dict[str, Param]:
        """The schema of each stage parameter (symbol, range, description), by name."""
        return {p.name: p for s in self.stages.values() for p in s.params}

    @property
    def has_plan(self) -> bool:
        """Whether the loss builds a transport plan: not with the projection ``none`` (BYOL
        reads the positives' costs ``C_ii`` alone; what :meth:`inspect` calls its plan is
        then the kernel, not a coupling)."""
        return self.stages["projection"].name != "none"

    def _stage_kwargs(self, kind: str) -> dict[str, Any]:
        return {p.name: self.params[p.name] for p in self.stages[kind].params}

    def extra_repr(self) -> str:
        stages = ", ".join(f"{k}={s.name}" for k, s in self.stages.items())
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{stages}, layout={self.layout}, {params}"

    @property
    def latex(self) -> dict[str, str]:
        """The formula of each stage, for display."""
        return {k: s.latex for k, s in self.stages.items()}

    def build_target(
        self,
        n: int,
        *,
        labels: Any = None,
        domains: Any = None,
        device: Any = None,
        dtype: torch.dtype = torch.float32,
    ) -> torch.Tensor:
        """The target plan of this loss for a batch of ``n`` samples."""
        return self._target_where_built(n, labels, domains, dtype).to(device=device)

    def _target_where_built(
        self, n: int, labels: Any, domains: Any, dtype: torch.dtype
    ) -> torch.Tensor:
        """The target in ``dtype`` on the CPU, where it is built (labels and domains are
        brought to the host for it) and where checking it reads nothing from an
        accelerator."""
        T = targets.build_target(
            self.stages["target"].name,
            n,
            self.layout,
            labels=labels,
            domains=domains,
            matrix=self.target_matrix,
            **self._stage_kwargs("target"),
        )
        T = T.to(dtype=dtype)
        if self.target_matrix is not None:  # valid in float64, but maybe not in ``dtype``
            tiny = torch.finfo(dtype).tiny  # (the marginals, sums of T, must be normal numbers)
            fits = torch.isfinite(T).all() & (T.sum(1) >= tiny).all() & (T.sum(0) >= tiny).all()
            if not bool(fits):
                raise ValueError(
                    f"target_matrix under- or overflows {dtype_name(dtype)} (a row or column sum "
                    f"is 0, below {tiny:.3g}, the smallest normal {dtype_name(dtype)} number, or "
                    "inf there); "
                    "rescale it"
                )
        return T

    def _target(
        self, n: int, labels: Any, domains: Any, device: torch.device, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Positives | None, tuple[float, float]]:
        """``(T, μ, ν, positives, masses)`` on ``device``: the target, its marginals, its
        single positives (:func:`~gca_viz.losses.divergences._single_positives`) and the
        marginals' sums (host floats), found where the target is built and then moved, so
        that a batch on a GPU reads nothing for them.
        A target without side information is kept per batch size, device and dtype (not
        one made under ``torch.inference_mode``)."""
        key = None
        if labels is None and domains is None:
            key = (n, device, dtype, tuple(sorted(self._stage_kwargs("target").items())))
            if key in self._targets:
                cached: tuple[Any, ...] = self._targets[key]
                return cached
        with host_side() if target_on_host(labels, domains) else nullcontext():
            T = self._target_where_built(n, labels, domains, dtype)
            mu, nu = targets.target_marginals(T)
            found = _single_positives(T)
            masses = (float(mu.sum()), float(nu.sum()))
        moved = tuple(x.to(device=device) for x in (T, mu, nu, *(found or ())))
        T, mu, nu = moved[:3]
        positives = (moved[3], moved[4]) if found is not None else None
        if key is not None and not torch.is_inference_mode_enabled():  # (inference tensors
            # could not be saved for a later backward)
            if len(self._targets) >= 4:
                self._targets.pop(next(iter(self._targets)))
            self._targets[key] = (T, mu, nu, positives, masses)
        return T, mu, nu, positives, masses

    def _known_problem(self, masses: tuple[float, float]) -> ot_checks._Checked | None:
        """What validating this loss's OT problem would find, known without reading it: a
        cosine cost (of embeddings the cost checked) lies in ``[0, 2]``, with ``+inf`` on
        the joint layout's diagonal; the marginals' masses were summed on the host.
        ``None`` for another cost (its range is read)."""
        if self.stages["cost"].name != "cosine":
            return None
        top = math.inf if self.layout == "joint" else 2.0
        return ot_checks._Checked(0.0, top, 2.0, None, masses)

    def forward(
        self, z1: torch.Tensor, z2: torch.Tensor, *, labels: Any = None, domains: Any = None
    ) -> torch.Tensor:
        """Mean loss over rows for the paired embeddings ``z1``, ``z2`` (``(N, d)`` each).

        ``labels``, ``domains``: ``(N,)`` integers of the batch's pairs, the side
        information a ``class`` or ``domain`` target builds its plan from (a ``class``
        target needs ``labels``, a ``domain`` target ``domains``); a ``pairs`` or custom
        target does not build from them, but given ones are still checked (``N`` entries
        of integers or strings), so a batch's misaligned labels are caught on any loss.

        Raises ``ValueError`` for invalid embeddings or side information, and when the
        loss is not finite (``ε`` or another parameter out of range for the batch)."""
        return self._run(z1, z2, labels, domains, diagnostics=False).loss

    def inspect(
        self, z1: torch.Tensor, z2: torch.Tensor, *, labels: Any = None, domains: Any = None
    ) -> LossOutput:
        """Everything the loss saw on this batch (cost, target, plan, potentials) plus
        diagnostics; ``inspect(...).loss`` equals ``forward(...)``. Arguments as
        :meth:`forward`."""
        return self._run(z1, z2, labels, domains, diagnostics=True)

    def _run(
        self, z1: torch.Tensor, z2: torch.Tensor, labels: Any, domains: Any, diagnostics: bool
    ) -> LossOutput:
        check_embeddings(z1, z2)
        check_side_information(z1.shape[0], labels=labels, domains=domains)
        try:  # the cost checks the embeddings' values (NaN, inf, zero rows) in its one read
            C = self.stages["cost"].fn(z1, z2, self.layout)  # (n, n), n = N or 2N
        except ValueError as exc:  # the cost names its own arguments (x, y): name ours
            name_bad_embedding(z1, z2, self.stages["cost"].name, exc)
            raise ValueError(f"z1, z2: {exc}") from exc
        T, mu, nu, positives, masses = self._target(z1.shape[0], labels, domains, C.device, C.dtype)
        if "epsilon" in self.params:  # within C's dtype and above C's rounding error
            if self.stages["cost"].name == "cosine":  # 1 - cos lies in [0, 2]: no pass needed
                scale = 2.0
            else:
                scale = float(C.detach().nan_to_num(posinf=0.0).abs().amax())
            ot._check_epsilon(self.params["epsilon"], C.dtype, max(1.0, scale))
        known = self._known_problem(masses)
        with ot_checks.trusted(known, C) if known is not None else nullcontext():
            proj = self.stages["projection"].fn(C, mu, nu, **self._stage_kwargs("projection"))
        with known_positives(T, positives):
            per_row = self.stages["divergence"].fn(T, proj, **self._stage_kwargs("divergence"))
        loss = per_row.mean()
        if not bool(torch.isfinite(loss.detach())):  # (finite iff every row term is)
            raise ValueError(
                f"{self.name}: the loss overflows {dtype_name(C.dtype)} on this batch; z1, z2 or a "
                f"parameter (epsilon = {proj.epsilon:g}, ...) is out of range: {self.params}"
            )
        out = LossOutput(loss, per_row, C, T, proj, proj.epsilon)
        if diagnostics:
            out.diagnostics.update(_diagnostics(out, mu, nu))
        return out


def _diagnostics(out: LossOutput, mu: torch.Tensor, nu: torch.Tensor) -> dict[str, float]:
    plan = out.plan.detach()
    # Entropy and positive mass do not depend on the plan's scale: take them from the plan
    # normalised in the log domain, exact even where exp(log_plan) underflows (P = K, tiny ε).
    log_plan = out.log_plan.detach()
    if not bool(torch.isfinite(log_plan).any()):
        raise ValueError(f"epsilon = {out.epsilon:g}: the plan is 0 everywhere for this cost")
    normed = torch.softmax(log_plan.reshape(-1), dim=0).reshape(log_plan.shape)
    diag = {
        "loss": float(out.loss.detach()),
        "marginal_error": metrics.marginal_error(plan, mu, nu),
        "entropy": metrics.plan_entropy(normed),
        "positive_mass": metrics.positive_mass(normed, out.target),
        "mass": float(plan.sum()),
    }
    res = out.projection.solver
    if res is not None:
        # the T the plan is from: GCA-RINCE's P^(2T-1) ends with the row step of sweep T
        # after T - 1 solver sweeps (it read 9.0 for n_iter = 10)
        diag["n_iter"] = float(res.n_iter + (out.projection.log_rows is not None))
        diag["solver_error"] = float(res.errors[-1])
    return diag


_OTHER_NAMES = {"temperature": "epsilon", "tau": "epsilon", "eps": "epsilon", "reg": "epsilon"}
"""What other codes call a parameter (SimCLR's temperature τ, POT's ``reg``): here ε."""


def _meant(key: str, params: Any) -> str:
    """A hint for a name that is not a parameter: the parameter of ``params`` it most
    likely means (``"; did you mean 'epsilon'?"``), or nothing."""
    meant = _OTHER_NAMES.get(key.lower())
    if meant not in params:
        close = difflib.get_close_matches(key, list(params), n=1, cutoff=0.8)
        meant = close[0] if close else None
    if meant is None:
        return ""
    what = " (ε, InfoNCE's temperature)" if meant == "epsilon" else ""
    return f"; did you mean {meant!r}{what}?"


def _elsewhere(key: str) -> str:
    """Which stages take parameter ``key``, as a hint (``"; 'gamma' belongs to the target
    'class': pass target='class'"``; a target is the one stage a method's ``get`` swaps),
    or nothing."""
    owners = [
        (kind, name)
        for kind in STAGE_KINDS
        for name, stage in STAGE_REGISTRIES[kind].items()
        if any(p.name == key for p in stage.params)
    ]
    if not owners:
        return ""
    where = " and ".join(f"the {kind} {name!r}" for kind, name in owners)
    kind, name = owners[0]
    return f"; {key!r} belongs to {where}" + (f": pass target={name!r}" if kind == "target" else "")
