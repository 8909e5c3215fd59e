r"""Batches for the plan lab: paired embeddings (synthetic, data through an encoder) or a
run's stored cost matrix (``docs/math.md`` section 1).

Each view ``z'_i``, ``z''_i`` is L2-normalised; the cost of a layout is the cosine cost
``C_ij = 1 - <z'_i, z''_j>`` (cross: ``N x N``; joint: ``2N x 2N`` with ``C_ii = +inf``).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gca_viz import data as data_mod
from gca_viz import losses, models, targets
from gca_viz.augment import make_augment
from gca_viz.lab._checks import cost_tensor, count
from gca_viz.userdata import data_label

if TYPE_CHECKING:
    from gca_viz.runs import RunStore


@dataclass(frozen=True, eq=False)
class Batch:
    """A batch the pages explore: paired embeddings, or a stored cost matrix.

    Attributes:
        z1, z2: ``(N, d)`` unit-norm embeddings of the two views (row ``i`` of each is
            sample ``i``), or ``None`` for a cost-only batch.
        labels: ``(N,)`` class labels, or ``None``. domains: ``(N,)`` domain labels or ``None``.
        images: ``(2, N, C, H, W)`` images in ``[0, 1]`` (``images[v, i]`` is view ``v + 1``
            of sample ``i``) for image data, else ``None``.
        source: a one-line description for captions.
        cost: the ``(n, n)`` stored cost of a cost-only batch (a run's snapshot), else ``None``.
        layout: the layout of the stored cost (``"cross"``/``"joint"``); ``None`` when the
            batch has embeddings and any layout can be formed.
        class_names, domain_names: names of the label values (may be empty).
        meta: numbers about the source (for a snapshot: ``step``, the run's ``epsilon``).
    """

    z1: torch.Tensor | None
    z2: torch.Tensor | None
    labels: np.ndarray | None
    domains: np.ndarray | None
    images: np.ndarray | None
    source: str
    cost: torch.Tensor | None = None
    layout: str | None = None
    class_names: tuple[str, ...] = ()
    domain_names: tuple[str, ...] = ()
    meta: Mapping[str, float] = field(default_factory=dict)

    @property
    def n(self) -> int:
        """Number of samples ``N`` (pairs of views)."""
        if self.z1 is not None:
            return int(self.z1.shape[0])
        assert self.cost is not None
        return int(self.cost.shape[0]) // (2 if self.layout == "joint" else 1)

    def cost_matrix(
        self, layout: str = "cross", dtype: torch.dtype = torch.float64
    ) -> torch.Tensor:
        r"""The cosine cost ``C_ij = 1 - <z'_i, z''_j>`` in ``layout`` (``docs/math.md`` sec. 1).

        Cross: ``(N, N)``. Joint: ``(2N, 2N)`` over ``[z'; z'']`` with ``C_ii = +inf``.
        A stored cost is returned as it is (its layout cannot change).
        """
        targets.check_layout(layout)
        if self.z1 is None or self.z2 is None:
            assert self.cost is not None
            if layout != self.layout:
                raise ValueError(
                    f"layout: this batch is a stored {self.layout} cost; it cannot be shown "
                    f"in the {layout} layout"
                )
            return self.cost.to(dtype)
        fn = losses.COSTS["cosine"].fn
        C: torch.Tensor = fn(self.z1.to(dtype), self.z2.to(dtype), layout)
        return C

    def target(self, name: str = "pairs", layout: str = "cross", **params: float) -> torch.Tensor:
        """The target plan ``name`` of :data:`gca_viz.targets.TARGETS` for this batch (float64).

        Raises:
            ValueError: for an unknown target or parameter, or a class/domain prior on a
                batch without labels/domains.
        """
        if name == "class" and self.labels is None:
            raise ValueError("target: the class prior needs class labels; this batch has none")
        if name == "domain" and self.domains is None:
            raise ValueError("target: the domain prior needs domain labels; this batch has none")
        return targets.build_target(
            name, self.n, layout, labels=self.labels, domains=self.domains, **params
        )


def sort_by_label(batch: Batch) -> Batch:
    """The batch with its samples reordered by class label (both views alike, stable), so
    that same-class blocks line up along the diagonal of every matrix (the batch itself
    when it has no labels or embeddings)."""
    if batch.labels is None or batch.z1 is None or batch.z2 is None:
        return batch
    order = np.argsort(batch.labels, kind="stable")
    idx = torch.from_numpy(order)
    return dataclasses.replace(
        batch,
        z1=batch.z1[idx],
        z2=batch.z2[idx],
        labels=batch.labels[order],
        domains=batch.domains[order] if batch.domains is not None else None,
        images=batch.images[:, order] if batch.images is not None else None,
    )


def synthetic_batch(
    n: int = 64, dim: int = 8, noise: float = 0.1, seed: int = 0, n_clusters: int = 4
) -> Batch:
    r"""Paired points on the sphere ``S^{d-1}`` with cluster labels.

    .. math::
        z'_i = x_i,\qquad z''_i = \frac{x_i + \sigma\xi_i}{\|x_i + \sigma\xi_i\|}

    where ``x_i`` are the points of :func:`gca_viz.data.sphere_mixture` (``n_clusters``
    clusters of spread 0.3 on the unit sphere), ``ξ_i ~ N(0, I_d)`` and ``σ = noise``.

    Args:
        n: number of pairs ``N >= 2``. dim: dimension ``d >= 2``.
        noise: ``σ >= 0``, how far the second view is from the first.
        seed: seed of the points and the noise. n_clusters: clusters ``k >= 2`` (labels).

    Returns:
        A :class:`Batch` with ``(N, d)`` float64 ``z1``, ``z2`` and labels.
    """
    n = count(n, "n", 2)
    if not (isinstance(noise, (int, float)) and 0 <= noise < math.inf):
        raise ValueError(f"noise must be finite and >= 0, got {noise!r}")
    ds = data_mod.load_dataset(
        "sphere_mixture", n_points=n, n_classes=n_clusters, dim=dim, seed=seed
    )
    rng = np.random.default_rng(seed + 1)
    z1 = ds.x.double()  # (N, d) on the sphere
    z2 = z1 + noise * torch.from_numpy(rng.standard_normal(tuple(z1.shape)))  # (N, d)
    z2 = z2 / z2.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return Batch(
        z1,
        z2,
        ds.y.numpy(),
        None,
        None,
        f"{n} synthetic pairs on S^{dim - 1} ({n_clusters} clusters, noise σ = {noise:g})",
        class_names=ds.class_names,
    )


@dataclass(frozen=True, eq=False)
class TrainedEncoder:
    """A run's trained model with the data settings it was trained on."""

    model: models.ContrastiveModel
    dataset: str
    dataset_params: Mapping[str, Any]
    augment: str
    description: str


def load_weights(store: RunStore, run_id: int, model: torch.nn.Module) -> None:
    """Load the weights of run ``run_id``'s checkpoint (``weights_only=True``, its
    ``"model"`` entry) into ``model``.

    Raises:
        ValueError: naming ``run_id``, for an unknown run, a run without a checkpoint yet,
            or a checkpoint that cannot be read or does not fit ``model``.
    """
    info = store.get(run_id)
    path = store.run_dir(info.id) / "checkpoint.pt"
    if not path.exists():
        raise ValueError(f"run_id: run {info.id} ({info.name}) has no checkpoint yet")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state["model"])
    except Exception as exc:  # a corrupt file raises many kinds (pickle, zip, shapes)
        raise ValueError(f"run_id: the checkpoint of run {info.id} is unreadable ({exc})") from None


def trained_encoder(store: RunStore, run_id: int) -> TrainedEncoder:
    """Load the model of a run from its checkpoint (:func:`load_weights`).

    Raises:
        ValueError: for an unknown run, a run without a checkpoint yet, or an unreadable one.
    """
    from gca_viz.train import TrainConfig  # the config schema of a run's settings

    info = store.get(run_id)
    cfg = TrainConfig.from_dict(info.config)
    shape = data_mod.load_dataset(cfg.dataset, **cfg.dataset_params).input_shape
    model = models.ContrastiveModel(
        cfg.encoder,
        shape,
        out_dim=cfg.out_dim,
        head_hidden=cfg.head_hidden,
        **cfg.encoder_params,
    )
    load_weights(store, run_id, model)
    description = f"run #{run_id} ({info.name}, step {info.step})"
    return TrainedEncoder(model, cfg.dataset, cfg.dataset_params, cfg.augment, description)


def data_batch(
    dataset: str = "digits",
    n: int = 64,
    seed: int = 0,
    *,
    encoder: str | TrainedEncoder = "random",
    out_dim: int = 32,
    augment: str = "standard",
) -> Batch:
    r"""``N`` samples of a dataset, two augmented views each, embedded by an encoder.

    .. math::
        z'_i = \frac{f_\theta(a'(x_i))}{\|f_\theta(a'(x_i))\|},\qquad
        z''_i = \frac{f_\theta(a''(x_i))}{\|f_\theta(a''(x_i))\|}

    where ``a', a''`` are two draws of the augmentation preset and ``f_θ`` is a
    :class:`gca_viz.models.ContrastiveModel`: an MLP at its seeded initialisation
    (``encoder="random"``) or a run's trained model (a :class:`TrainedEncoder`, whose
    dataset and augmentation then replace ``dataset`` and ``augment``). Batch-norm layers
    use the statistics of the batch, as the loss sees them during training.

    Args:
        dataset: an embedded dataset name (:data:`gca_viz.data.DATASETS`) or a path to user
            data, as :func:`gca_viz.data.load_dataset` takes it. n: samples ``N >= 2``.
        seed: seed of the sample choice, the augmentations and the random encoder.
        encoder: ``"random"`` or a :class:`TrainedEncoder`.
        out_dim: embedding dimension of the random encoder.
        augment: ``"none"``, ``"standard"`` or ``"extreme"``.

    Returns:
        A :class:`Batch` with float32 embeddings, labels, domains (if the data has them) and,
        for image data, the images of both views.
    """
    n = count(n, "n", 2)
    trained = encoder if isinstance(encoder, TrainedEncoder) else None
    if trained is None and encoder != "random":
        raise ValueError(f"encoder must be 'random' or a TrainedEncoder, got {encoder!r}")
    if trained is not None:
        ds = data_mod.load_dataset(trained.dataset, **trained.dataset_params)
    else:
        ds = data_mod.load_dataset(dataset)
    if n > ds.n:
        raise ValueError(f"n must be at most the dataset size {ds.n}, got {n}")
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randperm(ds.n, generator=gen)[:n]  # (N,)
    aug = make_augment(trained.augment if trained else augment, ds.kind)
    x = ds.x[idx]
    v1, v2 = aug(x, gen), aug(x, gen)  # two views, each (N, *input_shape)
    if trained is not None:
        model = copy.deepcopy(trained.model)
    else:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = models.ContrastiveModel("mlp", ds.input_shape, out_dim=out_dim)
    model.train()  # batch statistics (a throwaway copy: running stats may change)
    with torch.no_grad():
        z1 = torch.nn.functional.normalize(model(v1), dim=1)  # (N, out_dim)
        z2 = torch.nn.functional.normalize(model(v2), dim=1)
    images = torch.stack([v1, v2]).numpy() if ds.kind == "image" else None  # (2, N, C, H, W)
    who = trained.description if trained else f"a random MLP encoder (seed {seed})"
    # (a run's upload by the name it was sent under, as every page names it, not its
    # stored name with the content hash)
    named = data_label(str(trained.dataset)) if trained else ds.name
    return Batch(
        z1,
        z2,
        ds.y[idx].numpy(),
        ds.domain[idx].numpy() if ds.domain is not None else None,
        images,
        f"{n} {named} samples, two '{aug.preset}' views, through {who}",
        class_names=ds.class_names,
        domain_names=ds.domain_names,
    )


def snapshot_batch(store: RunStore, run_id: int) -> Batch | None:
    """The latest ``plan`` snapshot of a run as a cost-only :class:`Batch`.

    The snapshot holds the ``cost`` the run's loss saw on its last batch (its top-left
    block: at most 128 rows), the labels ``y``, and the run's layout is read from its
    config. Returns ``None`` if the run has written no plan snapshot yet.

    Raises:
        ValueError: naming ``run_id`` for an unknown run, or a snapshot file that is
            missing, unreadable or without a valid cost matrix.
    """
    try:
        info = store.get(run_id)
    except ValueError:
        raise ValueError(f"run_id: no run with id {run_id}") from None
    snaps = store.snapshots(run_id, "plan")
    if not snaps:
        return None
    step, path = snaps[-1]
    arrays = store.load_snapshot(Path(path))
    if arrays is None:
        raise ValueError(
            f"run_id: the plan snapshot of run {run_id} at step {step} is missing or "
            f"unreadable ({path})"
        )
    layout = str(info.config.get("layout", "cross"))
    cost = arrays.get("cost")
    labels = arrays.get("y")
    if cost is None or cost.ndim != 2 or cost.shape[0] != cost.shape[1] or cost.shape[0] < 2:
        raise ValueError(f"run_id: the snapshot of run {run_id} has no square cost matrix")
    n = cost.shape[0] // (2 if layout == "joint" else 1)
    if labels is not None and labels.shape != (n,):
        labels = None
    C = torch.from_numpy(np.asarray(cost, dtype=np.float64))
    cost_tensor(C)  # rejects NaN and -inf
    method = str(info.config.get("method", "?"))
    eps = info.config.get("loss_params", {}).get("epsilon")
    if eps is None and method in losses.LOSSES:  # the method's default ε
        eps = losses.LOSSES[method].build().params.get("epsilon")
    meta = {"step": float(step), **({"epsilon": float(eps)} if eps is not None else {})}
    return Batch(
        None,
        None,
        labels,
        None,
        None,
        f"run #{run_id} ({method}, {layout} layout): the batch its loss saw at step {step}",
        cost=C,
        layout=layout,
        meta=meta,
    )


def snapshot_runs(store: RunStore) -> dict[int, str]:
    """``{run id: label}`` of the runs that have written a plan snapshot, newest first."""
    return {
        r.id: r.label(status=True, step=True)
        for r in store.list_runs()
        if store.snapshots(r.id, "plan")
    }


def checkpoint_runs(store: RunStore) -> dict[int, str]:
    """``{run id: label}`` of the runs that have a checkpoint to embed with, newest first."""
    return {
        r.id: r.label(status=True, step=True)
        for r in store.list_runs()
        if (store.run_dir(r.id) / "checkpoint.pt").exists()
    }
