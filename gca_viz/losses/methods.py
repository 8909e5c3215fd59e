r"""The named methods of the GCA loss family (``docs/math.md`` section 3, the methods table).

The methods in :data:`LOSSES` (``ince``, ``gca_ince``, ``rince``, ``gca_rince``,
``gca_uot``, ``iot``, ``iot_uni``, ``byol``) are presets of the four stages of
:class:`~gca_viz.losses.module.GCALoss`; :func:`get` builds one, :func:`compose` builds any
other combination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gca_viz.losses.module import STAGE_KINDS, STAGE_REGISTRIES, GCALoss
from gca_viz.registry import UnknownNameError


@dataclass(frozen=True)
class Method:
    """A named method: its four stages, parameter overrides and its row in the methods table
    (``d_M``, ``d_Γ``, ``B`` of ``docs/math.md`` section 3)."""

    name: str
    title: str
    stages: Mapping[str, str]
    params: Mapping[str, Any]
    d_m: str
    d_gamma: str
    constraint: str
    description: str
    reference: str
    note: str = ""
    """Where the preset's values come from, if it has more than the stages' defaults, or
    which other preset it equals (IOT is GCA-INCE in the joint layout)."""
    layout: str = "cross"
    needs_predictor: bool = False

    @property
    def provenance(self) -> str:
        """The reference, then the preset's note if it has one."""
        return f"{self.reference}; {self.note}" if self.note else self.reference

    def build(self, **params: Any) -> GCALoss:
        layout = params.pop("layout", self.layout)
        target_matrix = params.pop("target_matrix", None)
        target = params.pop("target", self.stages["target"])
        merged = {**self.params, **params}
        stage_names = {**self.stages, "target": target}
        return GCALoss(
            **{k: stage_names[k] for k in STAGE_KINDS},
            layout=layout,
            target_matrix=target_matrix,
            name=self.name,
            **merged,
        )


def _method(
    name: str, title: str, cost: str, projection: str, divergence: str, **kw: Any
) -> Method:
    params = kw.pop("params", {})
    stages = {"cost": cost, "target": "pairs", "projection": projection, "divergence": divergence}
    return Method(name, title, stages, params, **kw)


LOSSES: dict[str, Method] = {
    m.name: m
    for m in (
        _method(
            "ince",
            "INCE (InfoNCE)",
            "cosine",
            "row",
            "kl",
            d_m="KL",
            d_gamma="KL",
            constraint="C1(μ)",
            description="InfoNCE: one row normalisation of K; NT-Xent in the joint layout.",
            reference="Oord et al. 2018; Chen et al. (SimCLR) 2020",
        ),
        _method(
            "gca_ince",
            "GCA-INCE",
            "cosine",
            "sinkhorn",
            "kl",
            d_m="KL",
            d_gamma="KL",
            constraint="C1(μ) ∩ C2(ν)",
            description="InfoNCE with T Sinkhorn sweeps: provably no larger than INCE.",
            reference="Chen et al. 2024 (GCA)",
        ),
        _method(
            "rince",
            "RINCE",
            "cosine",
            "row",
            "rince",
            params={"q": 1.0},  # docs/math.md's methods table: RINCE (q = 1)
            d_m="RINCE / W1",
            d_gamma="KL",
            constraint="C1(μ)",
            description="Robust InfoNCE: symmetric for q = 1, tolerant to noisy views.",
            reference="Chuang et al. 2022",
        ),
        _method(
            "gca_rince",
            "GCA-RINCE",
            "cosine",
            "sinkhorn",
            "rince",
            params={"end": "row", "q": 1.0},  # GCA-RINCE (q = 1)
            d_m="RINCE / W1",
            d_gamma="KL",
            constraint="C1(μ) ∩ C2(ν)",
            description="RINCE scored at the last row step of T Sinkhorn sweeps.",
            reference="Chen et al. 2024 (GCA)",
        ),
        _method(
            "gca_uot",
            "GCA-UOT",
            "cosine",
            "unbalanced",
            "uot",
            d_m="KL + RINCE",
            d_gamma="KL",
            constraint="soft: λ₁ KL(P1‖μ) + λ₂ KL(Pᵀ1‖ν)",
            description="Unbalanced OT: relaxed marginals let a row whose view matches nothing "
            "keep less mass (at small ε); the RINCE term lowers its gradient.",
            reference="Chen et al. 2024 (GCA)",
            note="preset ε 0.5, T 10, λ₁ = λ₂ 0.2, λ_R 0.01, q 0.6, r₁ 1, r₂ 0.2 from the "
            "paper's experiments (its CIFAR-10 config: r₂ 0.02, q 0.98)",
        ),
        _method(
            "iot",
            "IOT",
            "cosine",
            "sinkhorn",
            "ce",
            layout="joint",
            d_m="KL",
            d_gamma="KL",
            constraint="C1(μ) ∩ C2(ν)",
            description="Inverse OT baseline: cross-entropy of the balanced plan (joint layout).",
            reference="Shi et al. 2023",
            note="with the pairs target the same loss as GCA-INCE in the joint layout (the "
            "KL's mass term ΣP − n is 0 after the last column step)",
        ),
        _method(
            "iot_uni",
            "IOT-uni",
            "cosine",
            "sinkhorn",
            "ce_uniform",
            layout="joint",
            d_m="KL + λ_p KL(P‖Q)",
            d_gamma="KL",
            constraint="C1(μ) ∩ C2(ν)",
            description="IOT plus a KL that spreads off-diagonal mass uniformly.",
            reference="Shi et al. 2023",
        ),
        _method(
            "byol",
            "BYOL",
            "cosine",
            "none",
            "l2",
            d_m="L2 on the positives, ‖ẑ′ᵢ − ẑ″ᵢ‖² (the paper's table: KL)",
            d_gamma="L2",
            constraint="none",
            description="Alignment only, no plan: the loss reads 2Cᵢᵢ; a predictor and a "
            "moving-average target avoid collapse.",
            reference="Grill et al. 2020",
            needs_predictor=True,
        ),
    )
}
"""The named methods, in the order of the paper's table."""


def title(name: str) -> str:
    """How a method is written for people, short: ``"gca_uot"`` is ``"GCA-UOT"`` and
    ``"ince"`` ``"INCE"`` (its :attr:`Method.title` without a remark in brackets), a training
    run's ``"composed"`` is ``"composed loss"``, and anything else stays as it is (a run of a
    method this version does not know)."""
    if name in LOSSES:
        return LOSSES[name].title.split(" (")[0]
    return "composed loss" if name == "composed" else str(name)


def get(name: str, **params: Any) -> GCALoss:
    r"""Build the named method ``name`` of :data:`LOSSES`, a :class:`GCALoss` (a
    ``torch.nn.Module``), its preset parameters overridden by ``params``.

    For paired embeddings ``z1``, ``z2`` of shape ``(N, d)`` (row ``i`` of each: two views
    of sample ``i``) the loss is (``docs/math.md`` section 3)

        L(z', z'') = (1/n) sum_i d_M(P_tgt || proj_B(exp(-C(z', z'') / ε)))_i

    with the method's four stages: the cost ``C``, the target plan ``P_tgt``, the
    projection ``proj_B`` and the divergence ``d_M``. In the ``"cross"`` layout (the default
    of most methods) ``C`` is ``(N, N)`` between the views and ``n = N``; in the ``"joint"``
    layout (SimCLR's NT-Xent; IOT's default) it is ``(2N, 2N)`` over ``[z'; z'']`` with the
    self-pairs excluded and ``n = 2N``.

    Args:
        name: one of the methods listed below.
        **params: overrides: any parameter of the method below (checked against its
            stage's schema), and ``layout`` (``"cross"`` or ``"joint"``), ``target`` (a
            :data:`gca_viz.targets.TARGETS` name instead of ``"pairs"``: ``"class"`` with
            ``gamma``, ``"domain"`` with ``alpha``, ``beta``, ``"custom"``) and
            ``target_matrix`` (the ``(n, n)`` matrix of a ``"custom"`` target).

    Returns:
        The loss module: ``loss(z1, z2)`` (``labels=``, ``domains=``: ``(N,)`` integers, for
        a class or domain target) is the scalar ``L``, a 0-dim differentiable tensor
        (float64 for float64 embeddings, else float32); ``loss.inspect(z1, z2)`` is a
        :class:`LossOutput` (cost, target, plan, diagnostics); ``loss.params`` holds the
        parameters, which ``loss.set_params`` changes.

    Raises:
        ValueError: for an unknown method (:class:`~gca_viz.registry.UnknownNameError`,
            listing the known ones), an unknown parameter, or a value outside its range
            (naming the parameter).

    Example: ``get("gca_ince", epsilon=0.2, n_iter=20)``;
    ``get("ince", layout="joint")`` is NT-Xent.

    Methods (stages: cost / target / projection / divergence), listed from :data:`LOSSES`:

    @METHODS@
    """
    if not isinstance(name, str) or name not in LOSSES:
        raise UnknownNameError(f"unknown loss {name!r}; choose one of {sorted(LOSSES)}")
    return LOSSES[name].build(**params)


def _methods_doc(indent: str = "    ") -> str:
    """One entry per method of :data:`LOSSES` for :func:`get`'s docstring: its name, title
    and description, stages and layout, and its parameters with their defaults (the
    stages' schemas, overridden by the preset)."""
    lines = []
    for m in LOSSES.values():
        schema = [p for k in STAGE_KINDS for p in STAGE_REGISTRIES[k][m.stages[k]].params]
        values = {p.name: p.default for p in schema} | dict(m.params)
        shown = ", ".join(
            f"{p.name}{f' ({p.symbol})' if p.symbol and p.symbol != p.name else ''} = "
            f"{values[p.name]!r}"
            for p in dict.fromkeys(schema)
        )
        stages = " / ".join(m.stages[kind] for kind in STAGE_KINDS)
        lines += [
            f"- ``{m.name}``: {m.title}. {m.description}",
            f"  stages {stages}; layout {m.layout!r}; parameters: {shown or 'none'}.",
        ]
    return ("\n" + indent).join(lines)


if get.__doc__:  # (None under python -OO)
    get.__doc__ = get.__doc__.replace("@METHODS@", _methods_doc())


def compose(cost: str, target: str, projection: str, divergence: str, **params: Any) -> GCALoss:
    r"""A new loss from any four stages (the loss composer), the same as
    ``GCALoss(cost, target, projection, divergence, **params)``:

    .. math:: \mathcal{L} = \frac{1}{n} \sum_i d_M\big(P_{\mathrm{tgt}} \,\|\,
       \operatorname{proj}_B(e^{-C/\varepsilon})\big)_i

    Args:
        cost: the cost ``C`` between the views, a name in :data:`COSTS` (``"cosine"``).
        target: the target plan ``P_tgt``, a name in ``gca_viz.targets.TARGETS``
            (``"pairs"``, ``"class"``, ``"domain"``, ``"custom"``).
        projection: ``proj_B``, a name in :data:`PROJECTIONS` (``"row"``: InfoNCE's one
            row step, ``"sinkhorn"``, ``"unbalanced"``, ...).
        divergence: ``d_M``, a name in :data:`DIVERGENCES` (``"kl"``, ``"rince"``, ...).
        **params: the stages' parameters (``epsilon``, ``n_iter``, ``relax_a``, ``gamma``,
            ``layout``, ...); an unknown one raises ``ValueError`` naming the valid ones.

    Returns:
        a :class:`GCALoss` (an ``nn.Module``): ``loss(z1, z2, labels=None, domains=None)``
        with ``z1, z2`` of shape ``(N, d)``, a scalar."""
    return GCALoss(cost, target, projection, divergence, **params)
