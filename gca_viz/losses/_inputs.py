"""The checks of a loss's inputs (:class:`gca_viz.losses.GCALoss`): the embeddings, the
side information (labels, domains) and a custom target, each naming its argument."""

from __future__ import annotations

from typing import Any

import torch

from gca_viz import targets
from gca_viz.ot._checks import refuse_vmap


def check_target_matrix(target: str, matrix: Any, layout: str) -> torch.Tensor | None:
    """Validate a custom target up front (its size fixes the batch size)."""
    if target != "custom":
        if matrix is not None:
            raise ValueError(f"target_matrix is only used by the custom target, not {target!r}")
        return None
    if matrix is None:
        raise ValueError("the custom target needs target_matrix")
    rows = targets._side_length(matrix, "target_matrix")
    if rows < 1:
        raise ValueError("target_matrix must be a non-empty square matrix, got 0 rows")
    if layout == "joint" and rows % 2:
        raise ValueError(f"target_matrix must be 2N x 2N in the joint layout, got {rows} rows")
    # A copy: the loss keeps targets built from it, which the caller's later edits of its
    # own tensor must not reach.
    built = targets.custom_target(matrix, rows if layout == "cross" else rows // 2, layout)
    return built.clone()


def check_embeddings(z1: Any, z2: Any) -> None:
    for name, z in (("z1", z1), ("z2", z2)):
        if not isinstance(z, torch.Tensor):
            raise ValueError(f"{name} must be a torch.Tensor, got {type(z).__name__}")
        refuse_vmap(z, name)
        if z.ndim != 2 or z.shape[0] < 2 or z.shape[1] < 1:
            raise ValueError(f"{name} must have shape (N >= 2, d), got {tuple(z.shape)}")
        if not z.is_floating_point():
            raise ValueError(f"{name} must be floating point, got {z.dtype}")
    if z1.shape != z2.shape:
        raise ValueError(
            f"z1 and z2 must have the same shape: {tuple(z1.shape)} != {tuple(z2.shape)}"
        )
    if z1.dtype != z2.dtype:  # (converting one would let the argument order pick the precision)
        raise ValueError(
            f"z1 and z2 must have the same dtype: {z1.dtype} != {z2.dtype}; cast one, e.g. "
            "z2.to(z1.dtype)"
        )
    if z1.device != z2.device:
        raise ValueError(f"z1 and z2 must be on the same device: {z1.device} != {z2.device}")


def check_side_information(n: int, **given: Any) -> None:
    """``labels`` / ``domains`` given have one entry per pair, also when this loss's target
    does not read them (a wrong length there is a mistake the loss would otherwise hide)."""
    for name, values in given.items():
        if values is None:
            continue
        try:
            count = len(values)
        except TypeError:  # a scalar, a 0-d array: the target builder names it
            continue
        if count != n:
            raise ValueError(f"{name} must have N = {n} entries, one per pair; got {count}")


def target_on_host(labels: Any, domains: Any) -> bool:
    """Whether a target built from ``labels`` / ``domains`` is built on the CPU (side
    information that is not a tensor on an accelerator)."""
    return all(not isinstance(x, torch.Tensor) or x.device.type == "cpu" for x in (labels, domains))


def name_bad_embedding(z1: torch.Tensor, z2: torch.Tensor, cost: str, exc: ValueError) -> None:
    """Raise, naming ``z1`` or ``z2``, if one holds NaN or inf or an all-zero row (what
    made the cost fail with ``exc``; read only on this error path)."""
    for name, z in (("z1", z1), ("z2", z2)):
        if not bool(torch.isfinite(z.detach()).all()):
            raise ValueError(f"{name} contains NaN or inf") from exc
    for name, z in (("z1", z1), ("z2", z2)):
        zero = torch.nonzero(z.detach().abs().amax(dim=1) == 0).flatten()
        if len(zero):
            raise ValueError(
                f"{name} row {int(zero[0])} is all zero, so its {cost} cost is undefined"
            ) from exc
