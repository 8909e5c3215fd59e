r"""Batches for the story and the composer: by default the digits that the demo run
``demo-ince`` trained on, through its encoder (``docs/math.md`` section 1).

Each view ``z'_i``, ``z''_i`` is L2-normalised; samples are sorted by class so that
same-class blocks line up along the diagonal of every matrix.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gca_viz import lab
from gca_viz.lab._checks import cost_tensor, count
from gca_viz.lab.batches import sort_by_label

if TYPE_CHECKING:
    from gca_viz.runs import RunStore

STORY_RUN = "demo-ince"
"""The demo run whose batch and encoder the story uses by default."""
SOURCES = ("demo", "digits", "multidomain_digits", "synthetic")
"""Batch sources of :func:`story_batch`."""


def embeddings_from_cost(cost: Any) -> tuple[torch.Tensor, torch.Tensor, float]:
    r"""Unit vectors whose cosine cost is a stored joint-layout cost (exact up to rotation).

    .. math::
        S = 1 - C \ (S_{ii} = 1),\qquad S = V\Lambda V^\top,\qquad
        Z = V_{+}\Lambda_{+}^{1/2},\qquad z'_i = \hat Z_i,\ z''_i = \hat Z_{N+i}

    where ``C`` is the ``(2N, 2N)`` cosine cost over ``[z'; z'']`` (``+inf`` on the
    diagonal), ``S`` the Gram matrix of the unit embeddings, ``Λ_+`` its eigenvalues above
    ``1e-6`` times the largest and ``Ẑ`` the rows of ``Z`` normalised. Any cosine cost
    depends on the embeddings only through ``S``, which fixes them up to a rotation.

    Args:
        cost: ``(2N, 2N)`` joint-layout cosine cost.

    Returns:
        ``(z1, z2, error)``: ``(N, r)`` float64 views (``r`` the rank of ``S``) and
        ``max |C_rebuilt - C|`` over the off-diagonal entries.
    """
    C = cost_tensor(cost, torch.float64)
    n2 = C.shape[0]
    if C.shape[1] != n2 or n2 % 2 or n2 < 4:
        raise ValueError(f"cost must be a (2N, 2N) joint-layout matrix, got {tuple(C.shape)}")
    off = ~torch.eye(n2, dtype=torch.bool)
    S = torch.where(off, 1.0 - C, torch.ones_like(C))  # (2N, 2N) Gram matrix
    S = (S + S.T) / 2
    w, V = torch.linalg.eigh(S)  # ascending eigenvalues
    keep = w > 1e-6 * w[-1]
    Z = V[:, keep] * w[keep].sqrt()  # (2N, r)
    Z = Z / Z.norm(dim=1, keepdim=True)
    rebuilt = 1.0 - Z @ Z.T
    error = float((rebuilt - C)[off].abs().max())
    return Z[: n2 // 2], Z[n2 // 2 :], error


def demo_batch(
    store: RunStore, n: int = 64, seed: int = 0, run_name: str = STORY_RUN
) -> lab.Batch | None:
    """A batch of the digits that the demo run ``run_name`` trained on, through its encoder.

    With a checkpoint, ``n`` fresh samples go through the trained encoder
    (:func:`gca_viz.lab.trained_encoder`, :func:`gca_viz.lab.data_batch`). The shipped demo
    runs other than :data:`gca_viz.demo.WITH_ENCODER` (:data:`STORY_RUN` among them) keep
    no checkpoint, only the cost of the last batch their loss saw (its first 64
    pairs, joint layout): then the embeddings are rebuilt from that cost
    (:func:`embeddings_from_cost`) and ``n`` of those pairs (at most all) are drawn with
    ``seed``. Samples are sorted by digit class.

    Returns:
        The batch (float32), or ``None`` when the store has no such run or it has written
        neither a checkpoint nor a joint-layout plan snapshot.
    """
    n = count(n, "n", 2)
    runs = [r for r in store.list_runs() if r.name == run_name]
    if not runs:
        return None
    run = runs[0]
    if (store.run_dir(run.id) / "checkpoint.pt").exists():
        encoder = lab.trained_encoder(store, run.id)
        return sort_by_label(lab.data_batch(n=n, seed=seed, encoder=encoder))
    snap = lab.snapshot_batch(store, run.id)
    if snap is None or snap.layout != "joint" or snap.cost is None:
        return None
    z1, z2, error = embeddings_from_cost(snap.cost)
    available = z1.shape[0]
    take = min(n, available)
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(available, take, replace=False))  # (take,) pairs kept
    pick = torch.from_numpy(idx)
    step = int(snap.meta.get("step", 0))
    batch = lab.Batch(
        z1[pick].float(),
        z2[pick].float(),
        None if snap.labels is None else snap.labels[idx],
        None,
        None,
        f"{take} digit pairs that {run_name}'s loss saw at step {step}, embedded by its "
        f"trained encoder (rebuilt from the stored cost, error {error:.1e})",
        meta={**snap.meta, "available": float(available), "rebuild_error": error},
    )
    return sort_by_label(batch)


def story_batch(
    source: str = "demo", n: int = 64, seed: int = 0, store: RunStore | None = None
) -> lab.Batch:
    """The batch of a source: ``"demo"`` (:func:`demo_batch`), ``"digits"`` or
    ``"multidomain_digits"`` through a random encoder, or ``"synthetic"`` points.

    ``"demo"`` falls back to the digits through a random encoder when the store (or the
    demo run) is missing; the batch's ``meta["fallback"]`` is then 1. Labelled samples are
    sorted by class.

    Raises:
        ValueError: for an unknown source or an invalid ``n`` / ``seed``.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {SOURCES}, got {source!r}")
    n = count(n, "n", 2)
    if source == "demo":
        found = demo_batch(store, n, seed) if store is not None else None
        if found is not None:
            return found
        batch = story_batch("digits", n, seed)
        note = f"{STORY_RUN} is not in the run store, so: "
        return dataclasses.replace(batch, source=note + batch.source, meta={"fallback": 1.0})
    if source == "synthetic":
        return sort_by_label(lab.synthetic_batch(n, noise=0.3, seed=seed))
    return sort_by_label(lab.data_batch(source, n, seed))
