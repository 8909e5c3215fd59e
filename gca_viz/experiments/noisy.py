r"""Noisy views (``docs/math.md`` sections 4 and 7): views corrupted by different amounts per
sample, the mass GCA-UOT's unbalanced plan keeps on each positive pair, and INCE vs GCA-UOT
trained on noisy pairs, on clean and corrupted test data (the sweep behind that setting:
:mod:`gca_viz.experiments.noisy_sweep`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from gca_viz import augment as augment_mod
from gca_viz import demo, losses
from gca_viz._validate import finite
from gca_viz.experiments.stats import pearson, spearman
from gca_viz.train import TrainConfig

if TYPE_CHECKING:
    from gca_viz.runs import RunStore

# ------------------------------------------------------------------------- noisy views

AUGMENT_LATEX = (
    r"\theta(s) = \theta_{\mathrm{none}} + s\,(\theta_{\mathrm{extreme}}"
    r" - \theta_{\mathrm{none}}),\qquad \mathrm{strength}_i = \tfrac1D \sum_j |x'_{ij} - x_{ij}|"
)
"""The severity-scaled extreme preset and the per-sample strength of a view."""
_IDENTITY_IMAGE = {
    "crop_scale": 1.0,
    "shift": 0.0,
    "brightness": 0.0,
    "contrast": 0.0,
    "noise": 0.0,
    "blur_p": 0.0,
    "erase_p": 0.0,
    "erase_area": 0.0,
}
_IDENTITY_VECTOR = {"noise": 0.0, "dropout_p": 0.0, "scale": 1.0}


def augment_at(severity: float, kind: str = "image") -> augment_mod.Augment:
    r"""The ``"extreme"`` preset scaled by a severity ``s`` in ``[0, 1]``.

    .. math::
        \theta(s) = \theta_{\mathrm{none}} + s\,(\theta_{\mathrm{extreme}} - \theta_{\mathrm{none}})

    for every strength parameter ``θ`` (crop area ``1 -> 0.16``, erasing probability
    ``0 -> 0.9`` and area ``0 -> 0.5``, brightness and contrast ``0 -> 0.5``, noise, blur
    probability, shift; vectors: noise, dropout, scale); ``s = 0`` is the identity and
    ``s = 1`` the extreme preset exactly.

    Raises:
        ValueError: naming ``severity`` outside ``[0, 1]``, or an unknown ``kind``.
    """
    s = finite(severity, "severity")
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"severity must lie in [0, 1], got {severity!r}")
    if kind not in augment_mod.KINDS:
        raise ValueError(f"kind must be one of {augment_mod.KINDS}, got {kind!r}")
    extreme = augment_mod.AUGMENTATIONS[f"{kind}/extreme"].defaults()
    identity = _IDENTITY_IMAGE if kind == "image" else _IDENTITY_VECTOR
    scaled = {}
    for k, v0 in identity.items():
        top = extreme[k]  # the preset's value: a number for every strength parameter
        assert isinstance(top, int | float)
        scaled[k] = v0 + s * (float(top) - v0)
    return augment_mod.make_augment("extreme", kind, **scaled)


@dataclass(frozen=True, eq=False)
class GradedViews:
    """Views of a batch corrupted by different amounts per sample.

    Attributes:
        views: the corrupted batch (the input's shape).
        severity: ``(B,)`` the severity each sample was corrupted with (``NaN`` for the
            augmentation presets, whose draws are random per sample).
        strength: ``(B,)`` mean absolute change ``(1/D) Σ_j |x'_ij - x_ij|``.
    """

    views: torch.Tensor
    severity: np.ndarray
    strength: np.ndarray


def graded_corruption(
    x: torch.Tensor, kind: str, max_severity: float, generator: torch.Generator
) -> GradedViews:
    r"""One corrupted view per sample, the severity growing evenly across the batch.

    .. math::
        s_{\pi(i)} = s_{\max}\,\frac{i}{B - 1},\qquad x'_i = \mathrm{corrupt}(x_i, s_i)

    where ``π`` is a random permutation (from ``generator``), so the severity is unrelated
    to the samples' order, and ``corrupt`` is :func:`gca_viz.augment.corrupt` (blur,
    noise and an erased rectangle growing with ``s``).

    Args:
        x: ``(B, C, H, W)`` images or ``(B, d)`` vectors, ``B >= 2``. kind: their kind.
        max_severity: ``s_max`` in ``[0, 1]``. generator: on ``x``'s device.

    Returns:
        The :class:`GradedViews`.
    """
    s_max = finite(max_severity, "max_severity")
    if not 0.0 <= s_max <= 1.0:
        raise ValueError(f"max_severity must lie in [0, 1], got {max_severity!r}")
    b = int(x.shape[0])
    if b < 2:
        raise ValueError(f"x must hold at least 2 samples, got {b}")
    perm = torch.randperm(b, generator=generator, device=generator.device).cpu().numpy()
    severity = np.empty(b)
    severity[perm] = s_max * np.arange(b) / (b - 1)  # (B,) evenly spaced, shuffled
    views = torch.cat(
        [augment_mod.corrupt(x[i : i + 1], kind, float(severity[i]), generator) for i in range(b)]
    )  # (B, ...)
    strength = (views - x).abs().flatten(1).mean(1)  # (B,)
    return GradedViews(views, severity, strength.detach().cpu().numpy())


def augmented_views(
    x: torch.Tensor, kind: str, severity: float, generator: torch.Generator
) -> GradedViews:
    """One view per sample from :func:`augment_at` ``(severity)``, with the per-sample
    strength of :meth:`gca_viz.augment.Augment.apply_with_strength`."""
    views, strength = augment_at(severity, kind).apply_with_strength(x, generator)
    nan = np.full(int(x.shape[0]), math.nan)
    return GradedViews(views, nan, strength.detach().cpu().numpy())


def random_encoder(input_shape: Sequence[int], seed: int = 0, out_dim: int = 32) -> torch.nn.Module:
    """An untrained MLP :class:`gca_viz.models.ContrastiveModel` at its seeded
    initialisation (the global torch generator is left untouched)."""
    from gca_viz.models import ContrastiveModel

    with torch.random.fork_rng():
        torch.manual_seed(int(seed))
        return ContrastiveModel("mlp", tuple(int(s) for s in input_shape), out_dim=out_dim)


@torch.no_grad()
def embed_views(
    model: torch.nn.Module, x1: torch.Tensor, x2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``ẑ = f(x) / ||f(x)||`` of two batches with the model in eval mode (as the trainer
    evaluates: batch-norm uses its running statistics, so the two batches do not mix)."""
    was_training = model.training
    model.eval()
    try:
        z1 = torch.nn.functional.normalize(model(x1), dim=1)  # (B, d)
        z2 = torch.nn.functional.normalize(model(x2), dim=1)
    finally:
        model.train(was_training)
    return z1, z2


UOT_MASS_LATEX = (
    r"P = \arg\min_P \langle P, C\rangle - \varepsilon H(P) + \lambda_1\mathrm{KL}(P\mathbf 1\|"
    r"\mathbf 1) + \lambda_2\mathrm{KL}(P^\top\mathbf 1\|\mathbf 1),\qquad"
    r" \mathrm{kept}_i = \frac{P_{ii}}{\frac1N\sum_k P_{kk}}"
)
"""The unbalanced plan between clean and corrupted views and the kept mass of a pair."""


@dataclass(frozen=True, eq=False)
class CorruptionMass:
    r"""Plan mass on each positive pair against its corruption strength.

    Attributes:
        strength: ``(N,)`` corruption strength of each pair.
        kept: ``(N,)`` ``P_ii / mean_k P_kk`` of the unbalanced plan (1 = an average pair).
        row_mass: ``(N,)`` ``(P 1)_i / mean_k (P 1)_k``: how much mass the row keeps at all.
        balanced_kept: ``(N,)`` ``P_ii / mean_k P_kk`` of the balanced plan (same ``ε``,
            ``T``, hard marginals), for comparison: its rows cannot drop mass.
        spearman, pearson: correlations of ``strength`` with ``kept``.
        spearman_row, pearson_row: with ``row_mass``.
        spearman_balanced, pearson_balanced: with ``balanced_kept``.
        row_sums: ``(N,)`` ``(P 1)_i`` of the unbalanced plan (``μ_i = 1`` for a balanced one).
        total_mass: ``Σ P`` of the unbalanced plan (``N`` for a balanced one).
        balanced_row_error: ``max_i |(P_bal 1)_i - 1|`` of the balanced plan.
        epsilon, n_iter, relax_a, relax_b: the solver's settings.
    """

    strength: np.ndarray
    kept: np.ndarray
    row_mass: np.ndarray
    balanced_kept: np.ndarray
    spearman: float
    pearson: float
    spearman_row: float
    pearson_row: float
    spearman_balanced: float
    pearson_balanced: float
    row_sums: np.ndarray
    total_mass: float
    balanced_row_error: float
    epsilon: float
    n_iter: int
    relax_a: float | None
    relax_b: float | None

    def mean_kept(self, mask: Any) -> float:
        """Mean of ``kept`` over the pairs selected by a boolean ``mask``."""
        m = np.asarray(mask, dtype=bool)
        return float(self.kept[m].mean()) if m.any() else math.nan

    @property
    def kept_spread(self) -> float:
        """``max_i kept_i - min_i kept_i``: how far apart the diagonal masses are, as a share
        of their mean. Below :data:`NEGLIGIBLE_SPREAD` the correlations rank differences
        too small to matter (a large ``ε`` makes the plan nearly uniform)."""
        return float(self.kept.max() - self.kept.min()) if len(self.kept) else 0.0

    @property
    def negligible(self) -> bool:
        """Whether :attr:`kept_spread` is below :data:`NEGLIGIBLE_SPREAD`."""
        return self.kept_spread < NEGLIGIBLE_SPREAD


NEGLIGIBLE_SPREAD = 1e-3
"""Diagonal masses within 0.1% of their mean are "the same" for the Noisy page: at ε = 10^9
they differed by 10^-9 and the page still reported ρ = -0.878 as an effect."""


def corruption_mass_correlation(
    z_clean: torch.Tensor,
    z_corrupted: torch.Tensor,
    strength: Any,
    *,
    epsilon: float = 0.5,
    n_iter: int = 10,
    relax_a: float | None = 0.2,
    relax_b: float | None = 0.2,
) -> CorruptionMass:
    r"""How much mass GCA-UOT's unbalanced plan keeps on each positive pair, against how
    strongly that pair's second view was corrupted.

    .. math::
        P = \arg\min_{P \ge 0} \langle P, C\rangle - \varepsilon H(P)
            + \lambda_1 \mathrm{KL}(P\mathbf 1 \| \mathbf 1)
            + \lambda_2 \mathrm{KL}(P^\top \mathbf 1 \| \mathbf 1),\qquad
        \mathrm{kept}_i = \frac{P_{ii}}{\frac1N \sum_k P_{kk}}

    where ``C_ij = 1 - <z_clean_i, z_corrupted_j>`` (cross layout, target ``I``), the plan
    is the one GCA-UOT's loss sees (``losses.get("gca_uot").inspect``, ``T`` unbalanced
    Sinkhorn sweeps with ``ρ = λ / (λ + ε)``), and the correlations (Spearman, Pearson) are
    taken between ``strength_i`` and ``kept_i`` (and the row mass ``(P 1)_i`` relative to
    its mean). A negative correlation means the plan moves mass away from corrupted pairs.

    Args:
        z_clean, z_corrupted: ``(N, d)`` embeddings of the two views (row ``i`` paired).
        strength: ``(N,)`` corruption strength of each pair (any monotone measure).
        epsilon: ``ε > 0``. n_iter: sweeps ``T >= 1``.
        relax_a, relax_b: ``λ1, λ2 > 0`` (``None``: a hard marginal).

    Returns:
        A :class:`CorruptionMass`.

    Raises:
        ValueError: naming the parameter, for mismatched shapes or invalid settings.
    """
    s = np.asarray(strength, dtype=np.float64).reshape(-1)
    if not isinstance(z_clean, torch.Tensor) or z_clean.ndim != 2:
        raise ValueError("z_clean must be an (N, d) tensor")
    if s.shape != (z_clean.shape[0],) or not np.isfinite(s).all():
        raise ValueError(f"strength must be {z_clean.shape[0]} finite numbers, got {s.shape}")
    settings = {"epsilon": epsilon, "n_iter": n_iter}
    z1, z2 = z_clean.double(), z_corrupted.double()
    with torch.no_grad():
        uot = losses.get("gca_uot", layout="cross", relax_a=relax_a, relax_b=relax_b, **settings)
        P = uot.inspect(z1, z2).plan.numpy()  # (N, N)
        bal = losses.get("gca_ince", layout="cross", **settings).inspect(z1, z2).plan.numpy()
    kept = _relative(np.diag(P))
    rows = _relative(P.sum(1))
    kept_bal = _relative(np.diag(bal))
    params = uot.params
    return CorruptionMass(
        strength=s,
        kept=kept,
        row_mass=rows,
        balanced_kept=kept_bal,
        spearman=spearman(s, kept),
        pearson=pearson(s, kept),
        spearman_row=spearman(s, rows),
        pearson_row=pearson(s, rows),
        spearman_balanced=spearman(s, kept_bal),
        pearson_balanced=pearson(s, kept_bal),
        row_sums=P.sum(1),
        total_mass=float(P.sum()),
        balanced_row_error=float(np.abs(bal.sum(1) - 1.0).max()),
        epsilon=float(params["epsilon"]),
        n_iter=int(params["n_iter"]),
        relax_a=params["relax_a"],
        relax_b=params["relax_b"],
    )


def _relative(v: np.ndarray) -> np.ndarray:
    mean = float(v.mean())
    return np.asarray(v / mean) if mean > 0 else np.full_like(v, math.nan)


# ----------------------------------------------------- INCE vs GCA-UOT, clean and corrupted

NOISY_PREFIX = "noisy views"
"""Name prefix of the fresh INCE / GCA-UOT pairs: ``"noisy views <k>: INCE, ..."``."""
NOISY_DEMOS: dict[str, str] = {"ince": "demo-ince-noisy", "gca_uot": "demo-gca-uot-noisy"}
"""The shipped demo runs trained on noisy pairs (``noisy_pairs = 0.5``), by method."""
NOISY_METRICS: dict[str, str] = {
    "knn_acc": "k-NN accuracy (backbone h)",
    "probe_acc": "linear-probe accuracy (backbone h)",
    "knn_acc_embedding": "k-NN accuracy (embedding ẑ)",
}
"""The accuracies compared on the noisy-views page."""
PAPER_NOISY: dict[str, dict[str, float]] = {
    "ince": {"CIFAR-10 noisy": 82.03, "CIFAR-100 noisy": 54.70, "CIFAR-10C": 70.07},
    "gca_uot": {"CIFAR-10 noisy": 83.18, "CIFAR-100 noisy": 56.30, "CIFAR-10C": 71.45},
}
"""The paper's linear-readout accuracies (%) in the noisy settings (``docs/math.md`` sec. 7)."""
_NOISY_NAME = re.compile(rf"^{re.escape(NOISY_PREFIX)} (\d+): ")


def noisy_pair_configs(corruption: float = 0.5, **overrides: Any) -> list[dict[str, Any]]:
    """INCE and GCA-UOT configs identical to the demo runs ``demo-ince-noisy`` and
    ``demo-gca-uot-noisy`` (same data, noisy pairs, steps and seed) except that the test
    data is corrupted with ``corruption`` (:func:`gca_viz.augment.corrupt`) when they
    evaluate (both keep a final checkpoint). ``overrides`` replace any field.

    Raises:
        ValueError: for ``corruption`` outside ``[0, 1]`` or an invalid field.
    """
    configs = []
    for name in NOISY_DEMOS.values():
        base = demo.demo_config(name)
        cfg = {**base, "eval_corruption": corruption, "checkpoint_every": base["steps"]}
        configs.append(asdict(TrainConfig.from_dict({**cfg, **overrides})))
    return configs


def launch_noisy_pair(store: RunStore, corruption: float = 0.5, **overrides: Any) -> list[int]:
    """Queue the pair of :func:`noisy_pair_configs` as ``"noisy views <k>: ..."``; returns
    the ids ``[INCE, GCA-UOT]``."""
    configs = noisy_pair_configs(corruption, **overrides)
    k = max(noisy_pairs(store), default=0) + 1
    titles = {"ince": "INCE", "gca_uot": "GCA-UOT"}
    return [
        store.launch(
            cfg, name=f"{NOISY_PREFIX} {k}: {titles[cfg['method']]}, test corruption {corruption:g}"
        )
        for cfg in configs
    ]


def noisy_pairs(store: RunStore) -> dict[int, list[int]]:
    """``{pair number: run ids}`` of the fresh pairs in the store, newest first."""
    found: dict[int, list[int]] = {}
    for run in store.list_runs():
        match = _NOISY_NAME.match(run.name)
        if match:
            found.setdefault(int(match.group(1)), []).append(run.id)
    return {k: sorted(found[k]) for k in sorted(found, reverse=True)}


def demo_runs(store: RunStore) -> list[int]:
    """The ids of the demo runs :data:`NOISY_DEMOS` found in the store (by name)."""
    by_name = {r.name: r.id for r in reversed(store.list_runs())}
    return [by_name[n] for n in NOISY_DEMOS.values() if n in by_name]


class CorruptionProbe:
    r"""A run's final encoder (its ``checkpoint.pt``), ready to be scored on its test data
    corrupted at any severity: the accuracies :data:`NOISY_METRICS`, evaluated on the CPU,

    .. math::
        \mathrm{acc}_s = \frac{1}{|T|}\sum_{x \in T}
            \mathbb 1\big[\hat y\big(f_\theta(c_s(x))\big) = y(x)\big]

    where ``T`` is the run's test split, ``c_s`` the corruption at severity ``s``
    (:func:`gca_viz.augment.corrupt`), ``f_θ`` the trained backbone ``h`` (or the normalised
    embedding ``ẑ``), and ``ŷ`` a k-NN classifier or a linear probe fitted on the clean
    training split's features. The encoder is loaded and the classifiers are fitted once,
    here; each :meth:`accuracies` then embeds the corrupted test split and scores it (the
    Noisy views page's "Test corruption" slider: about 0.1 s a severity for a digits run,
    where a fresh evaluation took 0.4-2.5 s).

    The numbers are :meth:`gca_viz.train.Trainer.evaluate`'s for a run with
    ``eval_corruption = s`` (the same corrupted test digits, the same k-NN and linear
    probe), so a run trained alike with that setting logs the same values at the
    checkpoint's step: the shipped noisy demo runs (:data:`gca_viz.demo.WITH_ENCODER`) give
    the corrupted bars of the comparison without training a pair. Torch's global generator
    is left as it was.

    Args:
        store: the run store.
        run_id: a run with a checkpoint.

    Raises:
        ValueError: naming ``run_id``, for an unknown run or one without a readable
            checkpoint.
    """

    def __init__(self, store: RunStore, run_id: int) -> None:
        from gca_viz.lab import load_weights
        from gca_viz.train import Trainer

        info = store.get(int(run_id))
        cfg = TrainConfig.from_dict({**info.config, "device": "cpu"})
        with torch.random.fork_rng(devices=[]):  # (a Trainer seeds torch's global generator)
            self._trainer = Trainer(cfg)
            load_weights(store, info.id, self._trainer.model)
            self._probes = self._trainer.fit_probes(*self._trainer.embed(self._trainer.train_set.x))
        self.run_id = info.id

    def accuracies(self, corruption: float) -> dict[str, float]:
        """The accuracies :data:`NOISY_METRICS` on the test split corrupted with severity
        ``corruption`` in ``[0, 1]`` (``0``: the clean test split).

        Raises:
            ValueError: naming ``eval_corruption``, for a severity outside ``[0, 1]``.
        """
        trainer = self._trainer
        h_te, z_te = trainer.embed(trainer.test_inputs(corruption))
        found = self._probes.accuracies(h_te, z_te, trainer.test_set.y)
        return {k: found[k] for k in NOISY_METRICS}


def encoder_accuracies(store: RunStore, run_id: int, corruption: float) -> dict[str, float]:
    """The accuracies :data:`NOISY_METRICS` of a run's final encoder on its test data
    corrupted with severity ``corruption``: ``CorruptionProbe(store, run_id)`` scored once
    (:class:`CorruptionProbe`; keep the probe to score several severities).

    Raises:
        ValueError: for ``corruption`` outside ``[0, 1]`` (naming ``eval_corruption``), or a
            run without a readable checkpoint (naming ``run_id``).
    """
    from gca_viz.train import EVAL_CORRUPTION

    EVAL_CORRUPTION.validate(corruption)
    return CorruptionProbe(store, run_id).accuracies(corruption)


@dataclass(frozen=True)
class ComparisonRow:
    """One run's final accuracies for the clean-vs-corrupted comparison.

    ``condition`` is ``"clean"`` or ``"corrupted (s = 0.5)"`` (the run's ``eval_corruption``),
    ``values`` maps each name of :data:`NOISY_METRICS` to its last value (``NaN`` until the
    run has evaluated), ``final_loss`` is the last training loss. ``evaluated``: the values
    are the run's final encoder evaluated on corrupted test data afterwards
    (:func:`encoder_accuracies`), not the run's own evaluation.
    """

    run_id: int
    name: str
    method: str
    condition: str
    corruption: float
    status: str
    step: int
    steps: int
    values: Mapping[str, float]
    final_loss: float
    evaluated: bool = False


def _condition(s: float) -> str:
    return "clean" if s == 0 else f"corrupted (s = {s:g})"


def noisy_comparison(
    store: RunStore,
    run_ids: Iterable[int],
    corruption: float | None = None,
    accuracies: Callable[[RunStore, int, float], Mapping[str, float]] = encoder_accuracies,
) -> list[ComparisonRow]:
    """The final accuracies of runs, labelled by method and test condition, in the order
    INCE before GCA-UOT, clean before corrupted (a shipped encoder evaluated now before a
    run that evaluated corrupted data itself).

    With ``corruption`` > 0, every finished run among them that evaluated clean test data
    and kept a checkpoint gains a second row: its final encoder on test data corrupted with
    that severity, from ``accuracies(store, run_id, corruption)`` (default
    :func:`encoder_accuracies`; a page passes a cached one), ``evaluated=True``.
    """
    rows = []
    for run_id in run_ids:
        info = store.get(int(run_id))
        last = store.latest_metrics(info.id)
        s = float(info.config.get("eval_corruption", 0.0))
        row = ComparisonRow(
            run_id=info.id,
            name=info.name,
            method=str(info.config.get("method", "?")),
            condition=_condition(s),
            corruption=s,
            status=info.status,
            step=info.step,
            steps=info.steps,
            values={k: last.get(k, (0, math.nan))[1] for k in NOISY_METRICS},
            final_loss=last.get("loss", (0, math.nan))[1],
        )
        rows.append(row)
        has_encoder = (store.run_dir(info.id) / "checkpoint.pt").exists()
        if corruption and s == 0 and info.status == "finished" and has_encoder:
            values = dict(accuracies(store, info.id, corruption))
            rows.append(
                replace(
                    row,
                    condition=_condition(corruption),
                    corruption=corruption,
                    values=values,
                    evaluated=True,
                )
            )
    order = {m: i for i, m in enumerate(NOISY_DEMOS)}
    return sorted(
        rows, key=lambda r: (order.get(r.method, 99), r.corruption, not r.evaluated, r.run_id)
    )
