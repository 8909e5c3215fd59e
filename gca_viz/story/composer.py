r"""The loss composer's helpers: any four stages of :mod:`gca_viz.losses` as one loss, its
formula, its value on a batch, and the config of a run that trains with it.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from gca_viz import lab, losses
from gca_viz.lab._checks import count
from gca_viz.losses.module import STAGE_KINDS, STAGE_REGISTRIES
from gca_viz.registry import Param

COMPOSED_LATEX = (
    r"\mathcal L = \frac1n\sum_i d_M\Big(P_{\mathrm{tgt}}\,\Big\|\,"
    r"\mathrm{proj}_B\big(e^{-C(z', z'')/\varepsilon}\big)\Big)_i"
)
"""The four-stage loss pipeline (:func:`composed_latex`)."""


DOMAIN_DATASET = "multidomain_digits"
"""The dataset with domain labels: a composed loss with a domain prior trains and is shown
on it (:func:`composed_run_config`, the Loss composer page)."""


def stage_params(stages: Mapping[str, str]) -> list[tuple[str, Param]]:
    """``(stage kind, Param)`` of every parameter of the chosen stages, each name once
    (``ε`` belongs to the projection), in stage order.

    Raises:
        ValueError: for an unknown stage name.
    """
    seen: set[str] = set()
    out = []
    for kind in STAGE_KINDS:
        for p in STAGE_REGISTRIES[kind][stages[kind]].params:
            if p.name not in seen:
                seen.add(p.name)
                out.append((kind, p))
    return out


def _name(text: str) -> str:
    return r"\text{" + text.replace("_", r"\_") + "}"


def composed_latex(stages: Mapping[str, str]) -> str:
    r"""The loss of four stages as one formula (:data:`COMPOSED_LATEX` with the names):

    .. math::
        \mathcal L = \frac1n\sum_i d_M^{\text{div}}\Big(P_{\mathrm{tgt}}^{\text{target}}
            \,\Big\|\,\mathrm{proj}^{\text{projection}}\big(e^{-C^{\text{cost}}/\varepsilon}
            \big)\Big)_i

    Each stage's own formula is its registry entry's ``latex``.
    """
    for kind in STAGE_KINDS:
        STAGE_REGISTRIES[kind][stages[kind]]  # raises for an unknown name
    return (
        r"\mathcal L = \frac1n\sum_i d_M^{" + _name(stages["divergence"]) + r"}\Big("
        r"P_{\mathrm{tgt}}^{" + _name(stages["target"]) + r"}\,\Big\|\,"
        r"\mathrm{proj}^{" + _name(stages["projection"]) + r"}\big("
        r"e^{-C^{" + _name(stages["cost"]) + r"}/\varepsilon}\big)\Big)_i"
    )


def matching_method(stages: Mapping[str, str], params: Mapping[str, Any]) -> str | None:
    """The named method (a :data:`gca_viz.losses.LOSSES` key) with the same cost,
    projection and divergence and the same fixed choices (such as where Sinkhorn stops),
    or ``None``: then the composition is a new loss. Numbers may differ from the method's
    preset (RINCE with q = 0.6 is still RINCE: :func:`preset_differences` says how)."""
    for name, m in losses.LOSSES.items():
        schema = _schema(m)
        choices = {k: v for k, v in m.params.items() if schema[k].kind == "choice"}
        if _same_stages(m, stages) and all(params.get(k, v) == v for k, v in choices.items()):
            return name
    return None


def preset_differences(name: str, params: Mapping[str, Any]) -> list[str]:
    """The numbers of method ``name``'s preset that ``params`` sets otherwise, as
    ``"q = 1 (here 0.6)"`` with each parameter's symbol."""
    m = losses.LOSSES[name]
    schema = _schema(m)
    return [
        f"{schema[k].symbol or k} = {v:g} (here {params[k]:g})"
        for k, v in m.params.items()
        if schema[k].kind != "choice" and k in params and params[k] != v
    ]


def _schema(method: Any) -> dict[str, Param]:
    """A named method's parameters by name (:func:`stage_params` of its stages)."""
    return {p.name: p for _, p in stage_params(method.stages)}


def _same_stages(method: Any, stages: Mapping[str, str]) -> bool:
    """Whether ``stages`` has the named method's cost, projection and divergence (its
    target may differ: a method's ``get`` swaps it)."""
    return all(method.stages[k] == stages[k] for k in ("cost", "projection", "divergence"))


def describe_composition(stages: Mapping[str, str], params: Mapping[str, Any]) -> str:
    """One sentence (Markdown) on what a composition is: a named method
    (:func:`matching_method`), with the target it was given if that is not the method's,
    what else the method needs (BYOL: a predictor and a moving-average target network;
    alone its loss collapses), a loss equal to a named one (row projection and cross-entropy
    on pairs: INCE), or a new loss (one whose divergence is L2 alone also collapses)."""
    named = matching_method(stages, params)
    if named is not None:
        m = losses.LOSSES[named]
        own = m.stages["target"]
        text = (
            f"These stages make a named method: **{m.title}**"
            if stages["target"] == own
            else f"These are **{m.title}**'s cost, projection and divergence, with the "
            f"'{stages['target']}' target instead of its '{own}' one"
        )
        differ = preset_differences(named, params)
        if differ:
            text += f", at other numbers than its preset's: {', '.join(differ)}"
        if m.needs_predictor:
            text += (
                ". The method also needs a predictor and a moving-average target network: "
                "trained with this loss alone, the encoder collapses (every embedding the same)"
            )
        return text + "."
    row_ce = {"projection": "row", "divergence": "ce", "target": "pairs"}
    if all(stages.get(k) == v for k, v in row_ce.items()):
        ince = losses.LOSSES["ince"]
        if stages.get("cost") == ince.stages["cost"]:
            return (
                f"No named method uses these stages, but their loss is **{ince.title}**'s: "
                "with each row normalised, the cross-entropy −log P_ii equals its KL."
            )
    for m in losses.LOSSES.values():  # the stages of a method, another choice made
        if _same_stages(m, stages):
            other = [k for k, v in m.params.items() if params.get(k, v) != v]  # (choices)
            theirs = ", ".join(f"{k} = {m.params[k]}" for k in other)
            here = ", ".join(f"{k} = {params[k]}" for k in other)
            return (
                f"These are **{m.title}**'s stages, but it takes {theirs} (here {here}): a "
                "variant of it, a loss of its own."
            )
    text = "No named method uses these stages: this is a new loss."
    if stages.get("divergence") == "l2":
        text += (
            " Its divergence, L2, reads only the costs of the pairs the target weights (the "
            "plan plays no part), so it only pulls: nothing pushes different samples apart, "
            "and an encoder trained with it alone collapses (every embedding the same), as "
            "BYOL's would without its predictor and moving-average target network."
        )
    return text


def read_matrix(data: bytes, filename: str) -> np.ndarray:
    """A matrix from an uploaded ``.npy`` (no pickle) or ``.csv`` (comma-separated) file.

    Raises:
        ValueError: naming ``matrix``, for another extension, an unreadable file or
            anything but a 2-D array of numbers.
    """
    lower = filename.lower()
    try:
        if lower.endswith(".npy"):
            arr = np.load(io.BytesIO(data), allow_pickle=False)
        elif lower.endswith(".csv"):
            arr = np.loadtxt(io.StringIO(data.decode("utf-8")), delimiter=",", ndmin=2)
        else:
            raise ValueError(f"matrix: expected a .npy or .csv file, got {filename!r}")
    except ValueError as exc:
        if str(exc).startswith("matrix:"):
            raise
        raise ValueError(f"matrix: cannot read {filename!r} ({exc})") from None
    except (OSError, UnicodeDecodeError, EOFError) as exc:
        raise ValueError(f"matrix: cannot read {filename!r} ({exc})") from None
    if arr.ndim != 2 or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"matrix: expected a 2-D array of numbers, got {arr.dtype} {arr.shape}")
    out: np.ndarray = arr.astype(np.float64)
    return out


def compose_on_batch(
    batch: lab.Batch,
    stages: Mapping[str, str],
    params: Mapping[str, Any],
    *,
    layout: str = "cross",
    matrix: Any = None,
) -> losses.LossOutput:
    r"""The composed loss on a batch (:data:`COMPOSED_LATEX`), in float64.

    ``losses.compose(cost, target, projection, divergence, **params)`` then
    :meth:`GCALoss.inspect` with the batch's labels and domains (the class and domain
    priors need them) and ``matrix`` for a custom target.

    Raises:
        ValueError: naming the parameter, for an invalid stage, parameter or combination
            (a class or domain prior on a batch without labels or domains, a custom target
            of the wrong shape...).
    """
    if batch.z1 is None or batch.z2 is None:
        raise ValueError("batch: the composer needs a batch with embeddings")
    loss = losses.compose(
        stages["cost"],
        stages["target"],
        stages["projection"],
        stages["divergence"],
        layout=layout,
        target_matrix=matrix,
        **params,
    )
    if stages["target"] == "class" and batch.labels is None:
        raise ValueError("target: the class prior needs class labels; this batch has none")
    if stages["target"] == "domain" and batch.domains is None:
        raise ValueError(
            "target: the domain prior needs domain labels; choose the multi-domain digits"
        )
    with torch.no_grad():
        return loss.inspect(
            batch.z1.double(), batch.z2.double(), labels=batch.labels, domains=batch.domains
        )


def composed_run_config(
    stages: Mapping[str, str],
    params: Mapping[str, Any],
    *,
    layout: str = "cross",
    steps: int = 300,
) -> dict[str, Any]:
    """The :class:`gca_viz.train.TrainConfig` fields of a run that trains with the composed
    loss: 3-D embeddings (the Geometry page's sphere) on the digits, or the multi-domain
    digits for a domain prior.

    Raises:
        ValueError: for a custom target (its matrix belongs to one batch) or an invalid
            config (validated by ``TrainConfig.from_dict``).
    """
    from gca_viz.train import TrainConfig

    if stages["target"] == "custom":
        raise ValueError("target: a custom target fits one batch only; it cannot be trained")
    cfg = {
        "method": "composed",
        "stages": {k: stages[k] for k in ("cost", "projection", "divergence")},
        "target": stages["target"],
        "loss_params": dict(params),
        "layout": layout,
        "steps": count(steps, "steps"),
        "out_dim": 3,
        "dataset": DOMAIN_DATASET if stages["target"] == "domain" else "digits",
    }
    TrainConfig.from_dict(cfg)  # raises ValueError naming the field
    return cfg
