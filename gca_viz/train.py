"""The training engine: a seeded config, a UI-free loop with callbacks, evaluation, checkpoints.

One engine serves the app's background runs and researchers' command lines
(``python -m gca_viz train``, also under ``torchrun``). Nothing here knows about Streamlit
or SQLite: a :class:`Callback` receives metrics, snapshots and checkpoints and decides where
they go.

A step: sample a batch, draw two augmented views, encode them (``z' = f(x')``,
``z'' = f(x'')``), gather the embeddings across ranks, evaluate the configured GCA loss on
the global batch (``docs/math.md`` sections 3 and 4), back-propagate, step the optimiser.
BYOL instead compares the online predictor's output with a moving-average target network.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import math
import os
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from gca_viz import augment as augment_mod
from gca_viz import data as data_mod
from gca_viz import distributed, losses, metrics, models, targets
from gca_viz.device import check_device_name, resolve_device
from gca_viz.registry import Param, Stage

LIVE_PARAMS = ("epsilon", "n_iter", "relax_a", "relax_b", "gamma", "alpha", "beta", "target")
"""Loss settings a running run may change between steps (see :meth:`Trainer.apply_changes`)."""

PARTNER_SEED = 13
"""Offset of the seed of the augmented views in embedding snapshots (``z_partner``) from
the run's seed (training's views use ``seed + 1``, evaluation's alignment ``seed + 11``)."""

OPTIMIZERS: dict[str, Callable[[list[torch.nn.Parameter], float, float], torch.optim.Optimizer]] = {
    "adamw": lambda params, lr, wd: torch.optim.AdamW(params, lr=lr, weight_decay=wd),
    "sgd": lambda params, lr, wd: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd),
}
"""Optimisers by name: AdamW (default) and SGD with momentum 0.9."""


CONFIG_TARGETS = tuple(t for t in targets.TARGETS if t != "custom")
"""The target priors a config (and so the app and the command line) can name: a ``custom``
plan needs its matrix, which a config does not hold (pass ``target_matrix`` to
:func:`gca_viz.losses.get` in your own loop)."""


@dataclass
class TrainConfig:
    """Everything that defines a run; JSON-serialisable, and a run is a function of it.

    Data: ``dataset`` is an embedded dataset name (:data:`gca_viz.data.DATASETS`) or a path
    to user data (``.npz``, an image folder, CIFAR-10 binaries), both loaded by
    :func:`gca_viz.data.load_dataset`; ``dataset_params`` go to an embedded dataset (a path
    takes none). Loss: ``method`` is a name in :data:`gca_viz.losses.LOSSES` or
    ``"composed"`` with ``stages`` naming its cost, projection and divergence (its target
    prior is ``target``, below); ``loss_params`` go to the loss
    (``epsilon``, ``n_iter``, ``relax_a``, ...).
    ``layout`` is the batch's layout for every method, ``"joint"`` (the default: the
    ``2N x 2N`` matrix of both views, SimCLR's NT-Xent) or ``"cross"`` (``N x N``, view 1
    against view 2, the layout the methods table and ``losses.get`` default to); it
    overrides the method's own. ``target`` overrides the target prior (``pairs``,
    ``class``, ``domain``; the domain prior needs data with domain labels).
    Noisy views: ``noisy_pairs`` is the share of each batch's pairs whose second view is
    blended, with weight ``noisy_strength`` (1 = swapped), with another sample's view
    (:func:`gca_viz.augment.mismatch_views`); ``eval_corruption`` corrupts the test data.

    The other fields, with their defaults:

    - ``test_fraction`` (0.25): share of the samples held out for evaluation, in ``(0, 1)``.
    - ``augment`` (``"standard"``): the view augmentation, one of
      :data:`gca_viz.augment.PRESETS`.
    - ``encoder`` (``"mlp"``) and ``encoder_params``: the backbone,
      :data:`gca_viz.models.ENCODERS`; ``out_dim`` (64), ``head_hidden`` (256): the
      projection head's output and hidden widths.
    - ``momentum`` (0.99): BYOL's target-network EMA rate at the start (cosine schedule to 1).
    - ``batch_size`` (256, ``N >= 2`` pairs), ``steps`` (300), ``optimizer`` (``"adamw"``
      or ``"sgd"``, :data:`OPTIMIZERS`), ``lr`` (``2e-3``, > 0), ``weight_decay``
      (``1e-5``), ``seed`` (0: data split, initialisation, views).
    - ``device`` (``"auto"``: CUDA, else MPS, else CPU; or ``cpu``, ``cuda``,
      ``cuda:<index>``, ``mps``); ``threads`` for the CPU: a count sets torch's (for
      the whole process, when the Trainer is built); 0 leaves it as it is (torch's
      default: one per physical core).
    - ``eval_every`` (100), ``snapshot_every`` (50), ``checkpoint_every`` (100): steps
      between evaluations, plan and embedding snapshots, and checkpoints (0: never).
    - ``eval_subset`` (300): held-out samples used for alignment, uniformity and the
      embedding snapshots; ``knn_k`` (20): neighbours of the k-NN accuracy.
    """

    dataset: str = "digits"
    dataset_params: dict[str, Any] = field(default_factory=dict)
    test_fraction: float = 0.25
    augment: str = "standard"
    encoder: str = "mlp"
    encoder_params: dict[str, Any] = field(default_factory=dict)
    out_dim: int = 64
    head_hidden: int = 256
    method: str = "ince"
    stages: dict[str, str] = field(default_factory=dict)
    loss_params: dict[str, Any] = field(default_factory=dict)
    layout: str = "joint"
    target: str = "pairs"
    momentum: float = 0.99
    batch_size: int = 256
    steps: int = 300
    optimizer: str = "adamw"
    lr: float = 2e-3
    weight_decay: float = 1e-5
    seed: int = 0
    device: str = "auto"
    threads: int = 0
    eval_every: int = 100
    snapshot_every: int = 50
    checkpoint_every: int = 100
    eval_subset: int = 300
    knn_k: int = 20
    eval_corruption: float = 0.0
    noisy_pairs: float = 0.0
    noisy_strength: float = 1.0

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Build and validate a config; unknown fields raise ``ValueError`` naming them."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ValueError(f"unknown config field {unknown[0]!r}; fields are {sorted(names)}")
        cfg = cls(**dict(values))
        cfg.validate()
        return cfg

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"config is not valid JSON: {exc}") from None
        if not isinstance(values, dict):
            raise ValueError("config JSON must be an object of fields")
        return cls.from_dict(values)

    def validate(self) -> None:
        """Check every field (and that the loss builds) without touching data or devices.

        A numeric field given as a numeric string or, for an integer field, as an integral
        float (``"3"``, ``32.0``, as a JSON file may hold them) is converted in place to its
        kind; anything else that is not a number in range is a problem naming the field.
        Every independent check runs, so one call names all the problems at once.

        Raises:
            ConfigError: a ``ValueError`` whose ``problems`` list one message per bad field
                (a field whose check depends on a bad one, such as ``encoder_params`` on a
                bad ``encoder``, is not checked).
        """
        problems: list[str] = []

        def check(step: Callable[[], object]) -> bool:
            try:
                step()
            except ValueError as exc:
                problems.append(str(exc))
                return False
            return True

        schemas = [Param(name, None, "", kind=kind, low=low) for name, low, kind in _NUMERIC_FIELDS]
        schemas += [
            # at most 10^7 steps (10^12 launched and showed 0% for ever); lr = 0 never learns
            Param("steps", None, "", kind="int", low=1, high=10_000_000),
            Param("lr", None, "", low=0, low_open=True),
            Param("test_fraction", None, "", low=0, high=1, low_open=True, high_open=True),
            Param("momentum", None, "", low=0, high=1),
            EVAL_CORRUPTION,
            Param("noisy_pairs", None, "", low=0, high=1),
            Param("noisy_strength", None, "", low=0, high=1),
        ]
        ok = {p.name: check(functools.partial(self._convert, p)) for p in schemas}
        if ok["out_dim"] and ok["head_hidden"]:
            check(self._check_head)
        ok |= {name: check(functools.partial(self._check_dict, name)) for name in DICT_FIELDS}
        if check(self._check_encoder) and ok["encoder_params"]:
            check(self._check_encoder_params)
        check(self._check_augment_and_optimizer)
        check(lambda: check_device_name(self.device))
        if ok["dataset_params"]:
            check(self._check_dataset)
        if all(ok[name] for name in DICT_FIELDS) and check(self._check_method):
            check(self._check_loss)
        if problems:
            raise ConfigError(problems)

    def _convert(self, schema: Param) -> None:
        setattr(self, schema.name, schema.validate(getattr(self, schema.name)))

    def _check_head(self) -> None:
        if self.head_hidden * self.out_dim > models.MAX_PARAMETERS:
            raise ValueError(
                f"head_hidden and out_dim: {self.head_hidden} x {self.out_dim} weights in the "
                f"projection head, more than the {models.MAX_PARAMETERS:,} allowed"
            )

    def _check_dict(self, name: str) -> None:
        if not isinstance(getattr(self, name), dict):
            raise ValueError(f"{name} must be a JSON object (dict)")

    def _check_encoder(self) -> None:
        if self.encoder not in models.ENCODERS:
            raise ValueError(
                f"encoder must be one of {sorted(models.ENCODERS)}, got {self.encoder!r}"
            )

    def _check_encoder_params(self) -> None:
        self.encoder_params = _checked(
            "encoder_params", models.ENCODERS[self.encoder], self.encoder_params
        )

    def _check_augment_and_optimizer(self) -> None:
        if self.augment not in augment_mod.PRESETS:
            raise ValueError(f"augment must be one of {augment_mod.PRESETS}, got {self.augment!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(
                f"optimizer must be one of {sorted(OPTIMIZERS)}, got {self.optimizer!r}"
            )

    def _check_dataset(self) -> None:
        source = data_mod.dataset_source(self.dataset, param="dataset")  # name or existing path
        if isinstance(source, str):
            stage = data_mod.DATASETS[source]
            self.dataset_params = _checked("dataset_params", stage, self.dataset_params)
        elif self.dataset_params:
            raise ValueError(
                f"dataset_params: user data ({source}) takes no parameters, got "
                f"{sorted(self.dataset_params)}; they belong to the embedded datasets "
                f"{sorted(data_mod.DATASETS)}"
            )

    def _check_method(self) -> None:
        if self.method != "composed" and self.method not in losses.LOSSES:
            raise ValueError(
                f"method must be one of {sorted(losses.LOSSES)} or 'composed', got {self.method!r}"
            )
        if self.method != "composed" and self.stages:  # (they were ignored without a word)
            fixed = losses.LOSSES[self.method].stages
            raise ValueError(
                f"stages: only a composed loss (method 'composed') takes stages; "
                f"{self.method} has its own ({', '.join(f'{k}={v}' for k, v in fixed.items())}). "
                "Drop stages, or set method to 'composed'"
            )
        if self.method == "composed":  # (a "target" key was dropped without a word)
            extra = sorted(set(self.stages) - set(_COMPOSED_STAGES))
            if "target" in extra:
                raise ValueError(
                    "stages: the target prior is the config's target field, not a stage "
                    f"here: move {self.stages['target']!r} to target (--target "
                    f"{self.stages['target']}); stages names the cost, projection and divergence"
                )
            if extra:
                raise ValueError(
                    f"stages: unknown {'key' if len(extra) == 1 else 'keys'} {extra}; a composed "
                    f"loss's stages are {list(_COMPOSED_STAGES)} (the target is the config's "
                    "target field)"
                )

    def _check_loss(self) -> None:
        """The loss builds (a bad stage or loss parameter is named there), and
        ``loss_params`` keep the values it converted them to (``"0.4"`` from a JSON file is
        ``0.4``, as every other numeric field)."""
        if self.target not in CONFIG_TARGETS:
            custom = " (a custom plan needs its matrix: pass target_matrix to losses.get)"
            raise ValueError(
                f"target must be one of {list(CONFIG_TARGETS)}, got {self.target!r}"
                + (custom if self.target == "custom" else "")
            )
        built = build_loss(self)
        self.loss_params = {k: built.params.get(k, v) for k, v in self.loss_params.items()}

    def check_data(self, dataset: data_mod.Dataset) -> tuple[data_mod.Dataset, data_mod.Dataset]:
        """The run's ``(train, test)`` split of ``dataset``, checked against the config: a
        batch needs 2 training samples (one negative per pair), evaluation and embedding
        snapshots (``eval_every``, ``snapshot_every`` > 0) need 2 test samples, and the
        domain prior domain labels.

        Raises:
            ValueError: naming ``dataset`` or ``target``, with what to change (a
                run on 3 samples failed at its first evaluation with a message about
                ``z``'s rows; the domain prior on digits at its first step).
        """
        if dataset.n < 2:
            raise ValueError(f"dataset: training needs at least 2 samples, it has {dataset.n}")
        train, test = dataset.split(self.test_fraction, seed=self.seed)
        if self.target == "domain" and dataset.domain is None:
            raise ValueError(
                "target: the domain prior needs a dataset with domain labels (for example "
                "multidomain_digits, or user data with a 'domain' array)"
            )
        evaluates = self.eval_every > 0 or self.snapshot_every > 0
        split = (
            f"dataset: its {dataset.n} samples split into {train.n} for training and "
            f"{test.n} for evaluation (test_fraction {self.test_fraction:g})"
        )
        if train.n < 2:  # (the split keeps at least one test sample whatever is evaluated)
            raise ValueError(
                f"{split}; training needs at least 2 (each pair needs a negative): use more "
                "data" + (" or a smaller test_fraction" if dataset.n > 2 else "")
            )
        if evaluates and test.n < 2:
            raise ValueError(
                f"{split}; evaluation and snapshots need at least 2: use more data, a larger "
                "test_fraction, or set eval_every and snapshot_every to 0"
            )
        return train, test


class ConfigError(ValueError):
    """The problems :meth:`TrainConfig.validate` found, one message per bad field, each
    starting with the field's name (``"lr must be > 0, got -1"``); its text is the messages
    joined by ``"; "``."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("; ".join(self.problems))

    @staticmethod
    def problems_of(exc: ValueError) -> list[str]:
        """The messages of any ``ValueError``: a ConfigError's problems, else its text."""
        return exc.problems if isinstance(exc, ConfigError) else [str(exc)]


DICT_FIELDS = ("dataset_params", "encoder_params", "stages", "loss_params")
"""The config fields that hold a JSON object (a dict)."""

EVAL_CORRUPTION = Param("eval_corruption", None, "", low=0, high=1)
"""The schema of ``eval_corruption``, the test data's corruption severity in ``[0, 1]``."""

_NUMERIC_FIELDS: tuple[tuple[str, float, Literal["int", "float"]], ...] = (
    ("out_dim", 1, "int"),
    ("head_hidden", 1, "int"),
    ("batch_size", 2, "int"),
    ("weight_decay", 0.0, "float"),
    ("seed", 0, "int"),
    ("threads", 0, "int"),
    ("eval_every", 0, "int"),
    ("snapshot_every", 0, "int"),
    ("checkpoint_every", 0, "int"),
    ("eval_subset", 2, "int"),
    ("knn_k", 1, "int"),
)


def _checked(field_name: str, stage: Stage, params: Mapping[str, Any]) -> dict[str, Any]:
    """``params`` validated against ``stage``'s schema, only the given names kept (a config
    stays as written); a bad one raises ``ValueError`` naming ``field_name`` and it."""
    try:
        valid = stage.validate(params)
    except ValueError as exc:
        raise ValueError(f"{field_name}: {exc}") from None
    return {name: valid[name] for name in params}


def _text_number(value: Any) -> Any:
    """``"0.4"`` as ``0.4``; anything else (a choice's name, a number) as it is."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def build_loss(cfg: TrainConfig) -> losses.GCALoss:
    """The loss module a config describes: ``losses.get(method, layout, target,
    **loss_params)`` for a named method; for ``"composed"``, ``losses.compose`` of the cost,
    projection and divergence named in ``stages`` with the config's target.

    Raises:
        ValueError: for a composed loss whose ``stages`` lack any of the three (naming all
            that are missing, with an example and the registered names), and for what
            :func:`gca_viz.losses.get` or :func:`gca_viz.losses.compose` refuse.
    """
    # a config file's "0.4" is a number (the config is the boundary that converts text; the
    # loss itself refuses a string, as the solvers do)
    params = {k: _text_number(v) for k, v in cfg.loss_params.items()}
    if cfg.method == "composed":
        missing = [k for k in _COMPOSED_STAGES if k not in cfg.stages]
        if missing:
            raise ValueError(_missing_stages(missing, cfg.stages))
        return losses.compose(
            cfg.stages["cost"],
            cfg.target,
            cfg.stages["projection"],
            cfg.stages["divergence"],
            layout=cfg.layout,
            **params,
        )
    return losses.get(cfg.method, layout=cfg.layout, target=cfg.target, **params)


_COMPOSED_STAGES = {
    "cost": ("cosine", losses.COSTS),
    "projection": ("sinkhorn", losses.PROJECTIONS),
    "divergence": ("kl", losses.DIVERGENCES),
}


def _missing_stages(missing: list[str], given: Mapping[str, Any]) -> str:
    """The message for a composed loss whose ``stages`` lack ``missing``: all of them at
    once, an example that completes ``given``, and the names each stage may take."""
    example = {
        kind: given[kind] if given.get(kind) in registry else default
        for kind, (default, registry) in _COMPOSED_STAGES.items()
    }
    names = "; ".join(f"{kind}: {', '.join(reg)}" for kind, (_, reg) in _COMPOSED_STAGES.items())
    listed = missing[0] if len(missing) == 1 else f"{', '.join(missing[:-1])} and {missing[-1]}"
    return (
        f"stages must name the {listed} of a composed loss: --stages '{json.dumps(example)}' "
        f"(a config's stages field); the names are {names}"
    )


def set_threads(threads: int = 0) -> int:
    """Set torch's intra-op thread count to ``threads`` (``torch.set_num_threads``: for the
    whole process); 0 leaves it as it is (torch's default, one per physical core, or what
    the program set). Returns the count now in force.

    (It set the count once per process: a second Trainer's ``threads`` was ignored, and the
    first one's default of 0 overrode a script's own ``torch.set_num_threads(1)``.)"""
    if threads:
        torch.set_num_threads(int(threads))
    return torch.get_num_threads()


class TrainingDiverged(FloatingPointError):
    """The run's loss or its encoder's weights stopped being finite (NaN or inf): the step
    it happened at and what to lower are in the message, the one line the command line and
    the Train page show (the loss's own "z1 contains NaN or inf" said neither)."""


class Callback:
    """Hooks the loop calls; override what you need. ``should_stop`` is polled every step."""

    def on_start(self, trainer: Trainer) -> None: ...
    def on_step(self, trainer: Trainer, logs: dict[str, float]) -> None: ...
    def on_eval(self, trainer: Trainer, logs: dict[str, float]) -> None: ...
    def on_snapshot(self, trainer: Trainer, kind: str, arrays: dict[str, np.ndarray]) -> None: ...
    def on_checkpoint(self, trainer: Trainer, state: dict[str, Any]) -> None: ...
    def on_end(self, trainer: Trainer, reason: str) -> None: ...
    def should_stop(self, trainer: Trainer) -> bool:
        return False


@dataclass(frozen=True)
class Probes:
    """An encoder's downstream classifiers, fitted once on its training split's features
    (:meth:`Trainer.fit_probes`): cosine k-NN on the backbone features ``h`` and on the
    normalised embeddings ``ẑ``, and the linear probe on ``h`` (:mod:`gca_viz.metrics`)."""

    knn_h: metrics.FittedClassifier
    knn_z: metrics.FittedClassifier
    probe_h: metrics.FittedClassifier

    def accuracies(
        self, h_te: torch.Tensor, z_te: torch.Tensor, y_te: torch.Tensor
    ) -> dict[str, float]:
        """``knn_acc``, ``knn_acc_embedding`` and ``probe_acc`` on a test split: its features
        ``h_te`` ``(N_test, h)``, embeddings ``z_te`` ``(N_test, d)`` and labels ``y_te``."""
        return {
            "knn_acc": self.knn_h.accuracy(h_te, y_te),
            "knn_acc_embedding": self.knn_z.accuracy(z_te, y_te),
            "probe_acc": self.probe_h.accuracy(h_te, y_te),
        }


class Trainer:
    """Trains one encoder with one loss; see the module docstring for a step.

    Args:
        config: the run's :class:`TrainConfig` (validated here).
        callbacks: receivers of metrics, snapshots and checkpoints.
    """

    def __init__(self, config: TrainConfig, callbacks: Iterable[Callback] = ()) -> None:
        config.validate()
        self.config = config
        self.callbacks = list(callbacks)
        set_threads(config.threads)
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and self.device.index is not None:
            torch.cuda.set_device(self.device)  # (a captured graph runs on the current one)
        self.dist = distributed.init_from_env(self.device)
        if self.dist.enabled and self.device.type == "cuda":
            self.device = torch.device("cuda", self.dist.local_rank)
        if config.batch_size % self.dist.world_size:
            raise ValueError(
                f"batch_size {config.batch_size} must be divisible by the number of ranks "
                f"({self.dist.world_size})"
            )
        torch.manual_seed(config.seed)
        full = data_mod.load_dataset(config.dataset, **config.dataset_params)
        self.train_set, self.test_set = config.check_data(full)
        self.notes: list[str] = []
        """Warnings about the run's settings on its data (``python -m gca_viz train`` prints
        them): the augmentation's noise drowning vector features."""
        if full.kind == "vector" and config.augment in augment_mod.PRESETS:
            drowned = augment_mod.noise_warning(self.train_set.x, config.augment)
            self.notes += [f"augment: {drowned}"] if drowned else []
        # each held-out sample's row in the dataset, for the embedding snapshots and exports
        self.test_index = full.split_index(config.test_fraction, config.seed)[1]
        self.x_train = self.train_set.x.to(self.device)
        self.augment = augment_mod.make_augment(config.augment, full.kind)
        self.model = models.ContrastiveModel(
            config.encoder,
            tuple(full.input_shape),
            out_dim=config.out_dim,
            head_hidden=config.head_hidden,
            **config.encoder_params,
        ).to(self.device)
        if self.dist.enabled:  # batch statistics over the global batch, as in one process
            distributed.convert_batchnorm(self.model)
        self.loss_fn = build_loss(config)
        self.byol = losses.LOSSES.get(config.method) is not None and bool(
            losses.LOSSES[config.method].needs_predictor
        )
        params = list(self.model.parameters())
        if self.byol:
            self.predictor = models.Predictor(config.out_dim).to(self.device)
            if self.dist.enabled:
                distributed.convert_batchnorm(self.predictor)
            self.target_net = models.make_target(self.model)
            params += list(self.predictor.parameters())
        self._trained = params  # for the optimizer, built on first use (below)
        self.batch_gen = torch.Generator().manual_seed(config.seed)
        self.aug_gen = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.step = 0
        self.changes: list[dict[str, Any]] = []
        self._last_batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._stop_reason = ""

    # ------------------------------------------------------------------ one step

    def _batch_indices(self) -> torch.Tensor:
        """``B`` distinct training indices; identical on every rank (shared generator)."""
        n = len(self.train_set.y)
        b = min(self.config.batch_size, n - n % self.dist.world_size)
        return torch.randperm(n, generator=self.batch_gen)[:b]

    def train_step(self) -> dict[str, float]:
        """One optimisation step on a fresh batch; returns ``loss`` and timing."""
        start = time.perf_counter()
        self.model.train()
        idx = self._batch_indices()
        x = self.x_train[idx.to(self.device)]
        # Both views of the global batch are drawn on every rank, then sliced, so the run is
        # the same whatever the number of ranks.
        v1, v2 = self.augment(x, self.aug_gen), self.augment(x, self.aug_gen)
        if self.config.noisy_pairs > 0:
            v2, _ = augment_mod.mismatch_views(
                v2, self.config.noisy_pairs, self.config.noisy_strength, self.aug_gen
            )
        rows = _rank_slice(len(idx), self.dist)
        try:
            loss = self._loss(v1[rows], v2[rows], idx)
        except ValueError as exc:  # the loss refuses non-finite embeddings (data is finite)
            z = self._last_batch[:2] if self._last_batch is not None else ()
            if all(bool(torch.isfinite(t).all()) for t in z):
                raise
            raise self._diverged("its embeddings are no longer finite", self.step + 1) from exc
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        distributed.all_reduce_gradients(self._params(), self.dist)
        self.optimizer.step()
        if self.byol:
            total = self.config.steps
            models.ema_update(
                self.target_net,
                self.model,
                models.cosine_momentum(self.step, total, self.config.momentum),
            )
        self.step += 1
        value = float(loss.detach())
        if not math.isfinite(value):
            raise self._diverged(f"the loss became {value}", self.step)
        return {"loss": value, "step_time": time.perf_counter() - start}

    def _diverged(self, what: str, step: int) -> TrainingDiverged:
        lr = self.optimizer.param_groups[0]["lr"]
        return TrainingDiverged(
            f"training diverged at step {step}: {what} (NaN or inf); lower the "
            f"learning rate (lr = {lr:g}) and start again"
        )

    def _params(self) -> list[torch.nn.Parameter]:
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    def _loss(self, v1: torch.Tensor, v2: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        if self.byol:
            return self._byol_loss(v1, v2)
        z1 = distributed.gather_with_grad(self.model(v1), self.dist)  # (B, d)
        z2 = distributed.gather_with_grad(self.model(v2), self.dist)  # (B, d)
        self._last_batch = (z1.detach(), z2.detach(), idx)
        loss: torch.Tensor = self.loss_fn(z1, z2, **self._side_info(idx))
        return loss

    def _byol_loss(self, v1: torch.Tensor, v2: torch.Tensor) -> torch.Tensor:
        """``L = 2 - 2 cos(q(z'), sg(z''_target))``, symmetrised (``docs/math.md`` section 4)."""
        p1 = distributed.gather_with_grad(self.predictor(self.model(v1)), self.dist)
        p2 = distributed.gather_with_grad(self.predictor(self.model(v2)), self.dist)
        with torch.no_grad():
            t1 = distributed.gather_with_grad(self.target_net(v1), self.dist)
            t2 = distributed.gather_with_grad(self.target_net(v2), self.dist)
        self._last_batch = (p1.detach(), t2, torch.arange(len(p1)))
        loss: torch.Tensor = self.loss_fn(p1, t2) + self.loss_fn(p2, t1)
        return loss

    def _side_info(self, idx: torch.Tensor) -> dict[str, Any]:
        kind = self.loss_fn.stages["target"].name
        if kind == "class":
            return {"labels": self.train_set.y[idx]}
        if kind == "domain":
            if self.train_set.domain is None:
                raise ValueError("the domain target needs a dataset with domain labels")
            return {"domains": self.train_set.domain[idx]}
        return {}

    # ------------------------------------------------------------- live controls

    def apply_changes(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Change loss settings between steps (``epsilon``, ``n_iter``, relaxations, target
        prior); validated first, recorded with the step they take effect at."""
        bad = sorted(set(changes) - set(LIVE_PARAMS))
        if bad:
            raise ValueError(f"{bad[0]!r} cannot be changed during a run; allowed: {LIVE_PARAMS}")
        params = {k: v for k, v in changes.items() if k != "target"}
        target = changes.get("target", self.loss_fn.stages["target"].name)
        new_loss = _rebuild_loss(self.loss_fn, target, params)
        self.loss_fn = new_loss
        self.config.target = target
        self.config.loss_params.update({k: v for k, v in params.items() if k in new_loss.params})
        record = {"step": self.step, **dict(changes)}
        self.changes.append(record)
        return record

    # ---------------------------------------------------------------- evaluation

    @torch.no_grad()
    def embed(self, x: torch.Tensor, batch: int = 1024) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone features ``h`` and normalised projections ``ẑ`` of ``x`` (eval mode)."""
        self.model.eval()
        hs, zs = [], []
        for start in range(0, len(x), batch):
            chunk = x[start : start + batch].to(self.device)
            h = self.model.features(chunk)
            hs.append(h.cpu())
            zs.append(torch.nn.functional.normalize(self.model.head(h), dim=1).cpu())
        return torch.cat(hs), torch.cat(zs)

    def test_inputs(self, corruption: float | None = None) -> torch.Tensor:
        """The held-out split's inputs, corrupted at severity ``corruption`` in ``[0, 1]``
        (:func:`gca_viz.augment.corrupt`; default: the config's ``eval_corruption``; ``0``:
        the clean inputs) with the evaluation's own seed (``seed + 7``), so every call and
        every evaluation of a run corrupts the same digits alike.

        Raises:
            ValueError: naming ``eval_corruption``, for a severity outside ``[0, 1]``.
        """
        s = self.config.eval_corruption if corruption is None else corruption
        s = float(EVAL_CORRUPTION.validate(s))  # type: ignore[arg-type]  # (a float Param)
        x = self.test_set.x
        if s > 0:
            gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 7)
            x = augment_mod.corrupt(x.to(self.device), self.test_set.kind, s, gen)
        return x

    def fit_probes(self, h_tr: torch.Tensor, z_tr: torch.Tensor) -> Probes:
        """The downstream classifiers of :meth:`evaluate`, fitted on the training split's
        backbone features ``h_tr`` ``(N_train, h)`` and embeddings ``z_tr`` ``(N_train, d)``
        (:meth:`embed` of ``train_set.x``) with the config's ``knn_k`` and ``seed``."""
        y, k, seed = self.train_set.y, self.config.knn_k, self.config.seed
        return Probes(
            knn_h=metrics.fit_knn(h_tr, y, k=k),
            knn_z=metrics.fit_knn(z_tr, y, k=k),
            probe_h=metrics.fit_linear_probe(h_tr, y, seed=seed),
        )

    def evaluate(self) -> dict[str, float]:
        """Evaluation on the held-out split: k-NN and linear-probe accuracy on the frozen
        backbone features ``h`` (``knn_acc``, ``probe_acc``), k-NN on the normalised
        embeddings ``ẑ`` the loss shapes (``knn_acc_embedding``), alignment and uniformity
        of ``ẑ``, collapse measures and, with domains, the domain probe accuracy."""
        h_tr, z_tr = self.embed(self.train_set.x)
        h_te, z_te = self.embed(self.test_inputs())
        logs = {
            **self.fit_probes(h_tr, z_tr).accuracies(h_te, z_te, self.test_set.y),
            "uniformity": metrics.uniformity(z_te[: self.config.eval_subset]),
            "embedding_std": metrics.embedding_std(z_te),
            "effective_rank": metrics.effective_rank(z_te),
        }
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + 11)
        x = self.test_set.x[: self.config.eval_subset].to(self.device)
        _, z1 = self.embed(self.augment(x, gen))
        _, z2 = self.embed(self.augment(x, gen))
        logs["alignment"] = metrics.alignment(z1, z2)
        if self.train_set.domain is not None and self.test_set.domain is not None:
            logs["domain_acc"] = metrics.domain_accuracy(
                h_tr, self.train_set.domain, h_te, self.test_set.domain, seed=self.config.seed
            )
        return logs

    @torch.no_grad()
    def snapshot_embeddings(self) -> dict[str, np.ndarray]:
        """Normalised projections ``z`` of a fixed evaluation subset (the clean inputs), with
        labels ``y`` (and ``domain``), ``index`` (each sample's row in the dataset),
        ``class_names`` (the names of the labels), and ``z_partner``: each sample's positive
        partner, the normalised projection of an augmented view of it drawn with the run's own
        augmentation, as a training step draws its views. The views come from a generator
        seeded with the run's seed alone, so every snapshot of a run embeds the same views
        (frames differ by the encoder, not by the draw), and training's own random streams
        are not touched."""
        n = min(self.config.eval_subset, len(self.test_set.y))
        x = self.test_set.x[:n].to(self.device)
        _, z = self.embed(x)
        gen = torch.Generator(device=self.device).manual_seed(self.config.seed + PARTNER_SEED)
        _, z_partner = self.embed(self.augment(x, gen))
        out = {
            "z": z.numpy(),
            "z_partner": z_partner.numpy(),
            "y": self.test_set.y[:n].numpy(),
            "index": self.test_index[:n],
            "class_names": np.array(self.test_set.class_names, dtype=str),
            "step": np.array(self.step),
        }
        if self.test_set.domain is not None:
            out["domain"] = self.test_set.domain[:n].numpy()
        return out

    def snapshot_plan(self, max_rows: int = 128) -> dict[str, np.ndarray]:
        """The last batch's cost, kernel, target and plan as the loss saw them (top-left
        ``max_rows`` block of each view so the file stays small); none for a loss without
        a plan (BYOL)."""
        if self._last_batch is None or not self.loss_fn.has_plan:
            return {}
        z1, z2, idx = self._last_batch
        y = self.train_set.y[idx].numpy()
        return plan_arrays(self.loss_fn, z1, z2, y, self.step, max_rows, **self._side_info(idx))

    # ------------------------------------------------------------ checkpointing

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue exactly: weights, optimiser, step, RNG states."""
        state: dict[str, Any] = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "batch_gen": self.batch_gen.get_state(),
            "aug_gen": self.aug_gen.get_state(),
            "config": self.config.to_json(),
            "changes": json.dumps(self.changes),
        }
        if self.byol:
            state["predictor"] = self.predictor.state_dict()
            state["target_net"] = self.target_net.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict`'s state to go on training.

        Raises:
            ValueError: for a checkpoint of the weights alone (a shipped demo run's final
                encoder, :data:`gca_viz.demo.WITH_ENCODER`): it can be evaluated, not
                resumed.
        """
        if "optimizer" not in state or "batch_gen" not in state:
            raise ValueError(
                "checkpoint: it holds the model's weights only (a shipped demo run's final "
                "encoder), without the optimiser's state: it can be evaluated, not resumed"
            )
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.batch_gen.set_state(state["batch_gen"])
        self.aug_gen.set_state(state["aug_gen"])
        for change in json.loads(state.get("changes", "[]")):
            self.apply_changes({k: v for k, v in change.items() if k != "step"})
        self.changes = json.loads(state.get("changes", "[]"))
        if self.byol:
            self.predictor.load_state_dict(state["predictor"])
            self.target_net.load_state_dict(state["target_net"])

    def save_checkpoint(self, path: str | Path) -> None:
        """Write the state atomically (a reader never sees a partial file): to
        ``<path>.tmp``, then renamed over ``path``. A failed write (a full disk, a file-size
        limit, ``path`` being a directory) leaves the previous checkpoint as it was and no
        temporary file behind, and raises the error."""
        path = Path(path)
        tmp = path.with_suffix(path.suffix + ".tmp")
        try:
            torch.save(self.state_dict(), tmp)
            os.replace(tmp, path)
        except BaseException:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:  # the original error says more than this one
                pass
            raise

    def load_checkpoint(self, path: str | Path) -> None:
        """Load a checkpoint written by :meth:`save_checkpoint` (``weights_only=True``)."""
        state = torch.load(path, map_location=self.device, weights_only=True)
        self.load_state_dict(state)

    # -------------------------------------------------------------------- loop

    @functools.cached_property
    def optimizer(self) -> torch.optim.Optimizer:
        """The run's optimiser (:data:`OPTIMIZERS`), built on first use: torch's first
        optimiser imports its compiler stack (about a second), which a Trainer that only
        evaluates an encoder (the Noisy views page's) never needs."""
        cfg = self.config
        return OPTIMIZERS[cfg.optimizer](self._trained, cfg.lr, cfg.weight_decay)

    def request_stop(self, reason: str = "stopped") -> None:
        """Ask :meth:`fit` to end after the step in progress: the callbacks get a last
        checkpoint (``on_checkpoint``) and ``fit`` returns ``reason``; safe to call from
        another thread or a signal handler."""
        self._stop_reason = reason

    def fit(self) -> str:
        """Train until ``config.steps``; returns why it ended (``finished`` or a stop reason)."""
        cfg = self.config
        main = self.dist.is_main
        if main:
            for cb in self.callbacks:
                cb.on_start(self)
        reason = "finished"
        while self.step < cfg.steps:
            if self._stop_reason or any(cb.should_stop(self) for cb in self.callbacks):
                reason = self._stop_reason or "stopped"
                break
            logs = self.train_step()
            if not main:
                continue
            for cb in self.callbacks:
                cb.on_step(self, logs)
            last = self.step == cfg.steps
            if _due(self.step, cfg.snapshot_every, last):
                for kind, arrays in (
                    ("plan", self.snapshot_plan()),
                    ("embeddings", self.snapshot_embeddings()),
                ):
                    if arrays:
                        for cb in self.callbacks:
                            cb.on_snapshot(self, kind, arrays)
            if _due(self.step, cfg.eval_every, last):
                ev = self.evaluate()
                for cb in self.callbacks:
                    cb.on_eval(self, ev)
            if _due(self.step, cfg.checkpoint_every, last):
                state = self.state_dict()
                for cb in self.callbacks:
                    cb.on_checkpoint(self, state)
        if main:
            if reason != "finished":
                state = self.state_dict()
                for cb in self.callbacks:
                    cb.on_checkpoint(self, state)
            for cb in self.callbacks:
                cb.on_end(self, reason)
        return reason


def plan_arrays(
    loss_fn: losses.GCALoss,
    z1: torch.Tensor,
    z2: torch.Tensor,
    y: np.ndarray,
    step: int,
    max_rows: int = 128,
    **side: Any,
) -> dict[str, np.ndarray]:
    """A plan snapshot: the cost, kernel, target and plan ``loss_fn`` sees on the first
    pairs of a batch (at most ``max_rows`` rows of the matrices: ``max_rows / 2`` pairs in
    the joint layout), with their labels ``y``, the ``step``, the batch's size in pairs
    (``batch``) and the plan's diagnostics (``diag_*``). ``side`` is the loss's side
    information for the whole batch (``labels``, ``domains``)."""
    keep = min(len(z1), max_rows // 2 if loss_fn.layout == "joint" else max_rows)
    with torch.no_grad():
        seen = loss_fn.inspect(
            z1[:keep].detach(), z2[:keep].detach(), **{k: v[:keep] for k, v in side.items()}
        )
    out = {
        name: t.detach().cpu().float().numpy()
        for name, t in (
            ("cost", seen.cost),
            ("kernel", seen.kernel),
            ("target", seen.target),
            ("plan", seen.plan),
        )
    }
    out["y"] = np.asarray(y[:keep])
    out["step"] = np.array(step)
    out["batch"] = np.array(len(z1))  # the pairs of the whole batch (the matrices: keep)
    out.update({f"diag_{k}": np.array(v) for k, v in seen.diagnostics.items()})
    return out


def _due(step: int, every: int, last: bool) -> bool:
    return every > 0 and (step % every == 0 or last)


def _rank_slice(batch: int, info: distributed.DistInfo) -> slice:
    per = batch // info.world_size
    return slice(info.rank * per, (info.rank + 1) * per)


def _rebuild_loss(old: losses.GCALoss, target: str, params: Mapping[str, Any]) -> losses.GCALoss:
    """The same loss with another target prior and/or changed parameters; ``old``'s other
    parameters carry over. Raises ``ValueError`` before anything is replaced."""
    stages = {k: s.name for k, s in old.stages.items()}
    stages["target"] = target
    new = losses.GCALoss(
        stages["cost"],
        stages["target"],
        stages["projection"],
        stages["divergence"],
        layout=old.layout,
        name=old.name,
    )
    new.set_params(**{k: v for k, v in old.params.items() if k in new.params})
    new.set_params(**params)  # a parameter the new stages lack raises ValueError
    return new


def copy_config(cfg: TrainConfig, **changes: Any) -> TrainConfig:
    """A validated copy of ``cfg`` with some fields changed (deep-copies dict fields)."""
    values = copy.deepcopy(dataclasses.asdict(cfg))
    values.update(changes)
    return TrainConfig.from_dict(values)
