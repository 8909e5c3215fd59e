r"""The α - β sweep (``docs/math.md`` section 5).

The domain prior, with ``α`` and ``β`` shares of each row's mass
(:func:`gca_viz.targets.domain_target`),

.. math::
    P_{\mathrm{tgt}} = (1 - \alpha - \beta)\, I
        + \alpha\,\frac{\mathbb 1[D_i = D_j,\ i \ne j]}{n_{=}(i)}
        + \beta\,\frac{\mathbb 1[D_i \ne D_j,\ i \ne j]}{n_{\ne}(i)}

is swept along ``δ = α - β`` at a fixed total ``s = α + β`` (:func:`alpha_beta`), one short
background run of GCA-INCE on ``multidomain_digits`` per ``δ``. ``s`` is the share of
every row the prior holds and ``1 - s`` what the positive keeps, whatever the batch size.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from gca_viz import demo, metrics
from gca_viz._validate import finite
from gca_viz.train import TrainConfig

if TYPE_CHECKING:
    from gca_viz.runs import RunStore

# ------------------------------------------------------------------------ the α - β sweep

SWEEP_PREFIX = "α-β sweep"
"""Name prefix of the sweep's runs: ``"α-β sweep <k>: α - β = +0.25 (...)"``."""
SWEEP_DELTAS: tuple[float, ...] = (-0.5, -0.25, 0.0, 0.25, 0.5)
"""The default values of ``δ = α - β`` (the paper's range)."""
SWEEP_TOTAL = 0.5
"""The default ``s = α + β``, the share of each row the prior holds: the smallest total for
which ``δ = ±0.5`` keeps ``α, β >= 0``; the positive keeps the other half of its row, and
``δ = +0.5`` (``-0.5``) gives that half to same-domain (other-domain) samples only."""
ALPHA_BETA_LATEX = (
    r"\alpha = \tfrac{s + \delta}{2},\quad \beta = \tfrac{s - \delta}{2},\quad"
    r" \delta = \alpha - \beta \in [-s, s],\quad {s = \alpha + \beta \le 1}"
    r" \;\;(\text{shares of a row; the positive keeps } 1 - s)"
)
"""The sweep's parameterisation of the domain prior (``s = α + β ≤ 1`` in braces: KaTeX
breaks a long formula after a relation, and ``≤`` then ``1`` on the next line read badly)."""

PAPER_LABEL = "paper (PACS, ResNet)"
"""Label of the paper's reference numbers wherever they are drawn."""
PAPER_DOMAIN_ACC: tuple[tuple[float, float], ...] = ((-0.5, 0.72), (0.5, 0.95))
"""``(α - β, domain accuracy)`` the paper reports at the ends of its sweep (section 5)."""
PAPER_CLASS_ACC: tuple[float, float] = (0.89, 0.905)
"""The range of class accuracy the paper reports throughout the sweep."""

_SWEEP_BASE: dict[str, Any] = {
    "dataset": "multidomain_digits",
    "method": "gca_ince",
    "target": "domain",
    "layout": "cross",
    "steps": 300,
    "batch_size": 256,
    "eval_subset": 450,  # the whole test split: the last embedding snapshot holds all of it
    "device": "auto",
    "seed": 0,
}
_SWEEP_NAME = re.compile(rf"^{re.escape(SWEEP_PREFIX)} (\d+): ")


def alpha_beta(delta: float, total: float = SWEEP_TOTAL) -> tuple[float, float]:
    r"""The domain prior's shares for ``δ = α - β`` at ``s = α + β``.

    .. math::
        \alpha = \frac{s + \delta}{2},\qquad \beta = \frac{s - \delta}{2}

    ``α`` and ``β`` are shares of each row's mass (:func:`gca_viz.targets.domain_target`):
    the prior holds ``s`` of every row and the positive keeps ``1 - s``, at any batch size.

    Args:
        delta: ``δ`` with ``|δ| <= s``.
        total: ``0 < s <= 1``.

    Returns:
        ``(α, β)``, both ``>= 0``, with ``α + β = s``.

    Raises:
        ValueError: naming ``total`` or ``delta``, for a non-finite value, ``s`` outside
            ``(0, 1]`` or ``|δ| > s``.
    """
    s, d = finite(total, "total"), finite(delta, "delta")
    if not 0 < s <= 1:
        raise ValueError(
            f"total must be in (0, 1] (the share of a row the prior holds), got {total!r}"
        )
    if abs(d) > s + 1e-12:
        raise ValueError(f"delta must lie in [-total, total] = [{-s:g}, {s:g}], got {delta!r}")
    return max((s + d) / 2.0, 0.0), max((s - d) / 2.0, 0.0)


def domain_sweep_configs(
    deltas: Iterable[float] = SWEEP_DELTAS, *, total: float = SWEEP_TOTAL, **overrides: Any
) -> list[dict[str, Any]]:
    """One validated :class:`~gca_viz.train.TrainConfig` (as a dict) per ``δ = α - β``.

    The runs train GCA-INCE (``ε = 0.5``, ``T = 10``) with the domain prior on
    ``multidomain_digits`` in the cross layout, ``steps = 300`` and ``batch_size = 256``;
    they evaluate, snapshot and checkpoint once, at the end. ``overrides`` replace any
    field (``steps``, ``batch_size``, ``seed``...); ``loss_params`` are merged, and ``α``,
    ``β`` always come from :func:`alpha_beta`: shares of a row's mass, so the split of a
    row (``1 - s`` on the positive, ``α`` on same-domain, ``β`` on other-domain samples)
    does not depend on ``batch_size``.

    Raises:
        ValueError: for an empty ``deltas``, ``s`` outside ``(0, 1]``, a ``δ`` outside
            ``[-s, s]`` or an invalid field.
    """
    values = [float(d) for d in deltas]
    if not values:
        raise ValueError("deltas must hold at least one value of α - β")
    base = {**_SWEEP_BASE, **overrides}
    steps = int(base["steps"])
    for key in ("eval_every", "snapshot_every", "checkpoint_every"):
        base.setdefault(key, steps)  # once, at the last step
    configs = []
    for d in values:
        a, b = alpha_beta(d, total)
        cfg = {**base, "loss_params": {**base.get("loss_params", {}), "alpha": a, "beta": b}}
        configs.append(asdict(TrainConfig.from_dict(cfg)))  # validated
    return configs


def sweep_run_name(sweep: int, delta: float, alpha: float, beta: float) -> str:
    """The name of sweep ``sweep``'s run at ``δ``, e.g.
    ``"α-β sweep 2: α - β = +0.25 (shares α = 0.375, β = 0.125)"``."""
    return f"{SWEEP_PREFIX} {sweep}: α - β = {delta:+.2f} (shares α = {alpha:.3g}, β = {beta:.3g})"


def domain_sweeps(store: RunStore) -> dict[int, list[int]]:
    """``{sweep number: run ids}`` of every α - β sweep in the store, newest sweep first;
    the ids of a sweep are ordered by ``α - β``."""
    found: dict[int, list[tuple[float, int]]] = {}
    for run in store.list_runs():
        match = _SWEEP_NAME.match(run.name)
        if match:
            params = run.config.get("loss_params", {})
            delta = float(params.get("alpha", 0.0)) - float(params.get("beta", 0.0))
            found.setdefault(int(match.group(1)), []).append((delta, run.id))
    return {k: [i for _, i in sorted(found[k])] for k in sorted(found, reverse=True)}


def find_domain_sweep(store: RunStore, sweep: int | None = None) -> list[int]:
    """The run ids of sweep ``sweep`` (default: the newest), by ``α - β``; ``[]`` if none."""
    sweeps = domain_sweeps(store)
    if sweep is None:
        return next(iter(sweeps.values()), [])
    return sweeps.get(int(sweep), [])


def launch_domain_sweep(
    store: RunStore,
    deltas: Iterable[float] = SWEEP_DELTAS,
    *,
    total: float = SWEEP_TOTAL,
    **overrides: Any,
) -> list[int]:
    """Queue one background run per ``δ`` (:func:`domain_sweep_configs`) as a new sweep.

    The store runs at most ``max_concurrent`` of them at once; the rest wait in its queue.
    Every config is validated before the first run is queued, so a bad override starts
    nothing. Returns the run ids, in the order of ``deltas``.
    """
    configs = domain_sweep_configs(deltas, total=total, **overrides)
    sweep = max(domain_sweeps(store), default=0) + 1
    ids = []
    for cfg in configs:
        a, b = cfg["loss_params"]["alpha"], cfg["loss_params"]["beta"]
        ids.append(store.launch(cfg, name=sweep_run_name(sweep, a - b, a, b)))
    return ids


SHIPPED_SWEEP = demo.ASSETS.parent / "domain_sweep"
"""The sweep shipped with the app: one ``--out`` run directory per ``δ`` of
:data:`SWEEP_DELTAS`, trained from :func:`domain_sweep_configs` by
``python -m gca_viz.demo domain-sweep`` (:func:`generate_sweep`), so the page shows a
measured sweep before its user has trained one."""


def _shipped_name(delta: float) -> str:
    return f"delta{delta:+.2f}"


def generate_sweep(dest: Path = SHIPPED_SWEEP, **overrides: Any) -> list[Path]:
    """Train the sweep of :func:`domain_sweep_configs` (``overrides`` passed on) with the
    command line into ``dest/delta<δ>`` (:func:`gca_viz.demo.train_into`: no checkpoint,
    no plan; the final embedding snapshot stays, without each sample's partner, for the
    domain accuracy on ``ẑ``) and return the directories, in the order of ``δ``.

    Raises:
        subprocess.CalledProcessError: when a run fails.
    """
    out = []
    configs = domain_sweep_configs(**overrides)
    for cfg in configs:
        params = cfg["loss_params"]
        delta = params["alpha"] - params["beta"]
        path = demo.train_into(dest, _shipped_name(delta), cfg, plan=False)
        for snapshot in (path / "snapshots").glob("*_embeddings.npz"):
            with np.load(snapshot, allow_pickle=False) as arrays:
                kept = {k: arrays[k] for k in arrays.files if k != "z_partner"}  # (half the file)
            np.savez(snapshot, **kept)
        out.append(path)
    dataset, seed = str(configs[0]["dataset"]), int(configs[0]["seed"])
    baseline = {"dataset": dataset, "seed": seed} | pixel_baseline(dataset, seed)
    (Path(dest) / PIXEL_BASELINE_FILE).write_text(json.dumps(baseline, indent=2) + "\n")
    return out


PIXEL_BASELINE_FILE = "pixel_baseline.json"
"""The file beside the shipped sweep's runs that holds :func:`pixel_baseline` of its split
(fitting the probes took 3-7 s of a page's first visit)."""


def shipped_pixel_baseline(
    seed: int, dataset: str = "multidomain_digits", source: Path = SHIPPED_SWEEP
) -> dict[str, float] | None:
    """:func:`pixel_baseline` of ``dataset`` and ``seed`` as :func:`generate_sweep` stored
    it beside the shipped sweep, or ``None`` where it is missing, unreadable or of another
    dataset or seed (then compute it)."""
    try:
        stored = json.loads((Path(source) / PIXEL_BASELINE_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(stored, dict) or stored.get("dataset") != dataset:
        return None
    if stored.get("seed") != seed:
        return None
    values = {k: stored[k] for k in ("probe_acc", "domain_acc") if k in stored}
    if "probe_acc" not in values or not all(isinstance(v, float) for v in values.values()):
        return None
    return values


def shipped_sweep(directory: Path, source: Path = SHIPPED_SWEEP) -> tuple[RunStore, list[int]]:
    """A run store of its own at ``directory`` that holds the shipped sweep (imported from
    ``source`` on the first call, as finished runs named like a launched sweep's; a run
    missing after an import cut short is imported on the next call), and the ids of its
    runs by ``α - β``. One process at a time imports (a file lock).

    Raises:
        ValueError: when ``source`` holds no sweep runs or one of them cannot be read;
        OSError: when ``directory`` cannot be written.
    """
    from gca_viz.runs import RunStore

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    store = RunStore(directory)
    with demo.install_lock(directory):
        runs = sorted(Path(source).glob("delta*/config.json"))
        if not runs:
            raise ValueError(f"source: {source} holds no shipped α - β sweep")
        present = {run.name for run in store.list_runs()}
        for config in runs:  # (an import cut short, by a full disk say, is completed here)
            cfg = TrainConfig.from_json(config.read_text())
            a, b = cfg.loss_params["alpha"], cfg.loss_params["beta"]
            name = sweep_run_name(1, a - b, a, b)
            if name not in present:
                store.import_directory(config.parent, name=name)
    return store, find_domain_sweep(store)


@dataclass(frozen=True)
class SweepRow:
    """One run of an α - β sweep and what it measured (``NaN`` until it has evaluated).

    Attributes:
        run_id, name, status, step, steps: the run.
        delta, alpha, beta: ``α - β`` and the shares of its domain prior.
        domain_acc: linear-probe domain accuracy on the backbone features ``h`` (test split).
        probe_acc: linear-probe class accuracy on ``h``. knn_acc: k-NN class accuracy on ``h``.
        domain_acc_embedding: linear-probe domain accuracy on the normalised embeddings
            ``ẑ`` the loss shapes (:func:`embedding_domain_accuracy` on the last snapshot).
        error: the run's error text, if it failed.
    """

    run_id: int
    name: str
    status: str
    step: int
    steps: int
    delta: float
    alpha: float
    beta: float
    domain_acc: float
    probe_acc: float
    knn_acc: float
    domain_acc_embedding: float
    error: str | None = None


def domain_sweep_results(
    store: RunStore, run_ids: Iterable[int], *, embedding: bool = True
) -> list[SweepRow]:
    """The table of a sweep: one :class:`SweepRow` per run, sorted by ``α - β``.

    Accuracies are the run's last evaluation (``latest_metrics``); ``embedding=True`` also
    computes ``domain_acc_embedding`` from the run's last embedding snapshot.

    Raises:
        ValueError: for an unknown run id.
    """
    rows = []
    for run_id in run_ids:
        info = store.get(int(run_id))
        params = info.config.get("loss_params", {})
        a, b = float(params.get("alpha", math.nan)), float(params.get("beta", math.nan))
        last = store.latest_metrics(info.id)
        z_acc = run_embedding_domain_accuracy(store, info.id) if embedding else math.nan
        rows.append(
            SweepRow(
                run_id=info.id,
                name=info.name,
                status=info.status,
                step=info.step,
                steps=info.steps,
                delta=a - b,
                alpha=a,
                beta=b,
                domain_acc=last.get("domain_acc", (0, math.nan))[1],
                probe_acc=last.get("probe_acc", (0, math.nan))[1],
                knn_acc=last.get("knn_acc", (0, math.nan))[1],
                domain_acc_embedding=z_acc,
                error=info.error,
            )
        )
    return sorted(rows, key=lambda r: (r.delta, r.run_id))


def run_embedding_domain_accuracy(store: RunStore, run_id: int) -> float:
    """:func:`embedding_domain_accuracy` of a run's last embedding snapshot (the normalised
    embeddings ``ẑ`` of its test split with their domains); ``NaN`` if it has none."""
    snaps = store.snapshots(int(run_id), "embeddings")
    arrays = store.load_snapshot(snaps[-1][1]) if snaps else None
    if arrays is None or "z" not in arrays or "domain" not in arrays:
        return math.nan
    return embedding_domain_accuracy(arrays["z"], arrays["domain"])


def pixel_baseline(dataset: str = "multidomain_digits", seed: int = 0) -> dict[str, float]:
    """Linear-probe accuracies on raw pixels (no encoder): what a probe reads off the data
    itself, on the split a run with ``seed`` and the default ``test_fraction`` uses.

    Returns:
        ``{"probe_acc": class accuracy, "domain_acc": domain accuracy}`` (the latter only
        for data with domains).
    """
    from gca_viz.data import load_dataset

    cfg = TrainConfig(dataset=dataset, seed=seed)
    train, test = load_dataset(dataset).split(cfg.test_fraction, seed=seed)
    xtr, xte = train.x.flatten(1).numpy(), test.x.flatten(1).numpy()  # (n, D) pixels
    out = {"probe_acc": metrics.linear_probe_accuracy(xtr, train.y, xte, test.y, seed=seed)}
    if train.domain is not None and test.domain is not None:
        out["domain_acc"] = metrics.domain_accuracy(xtr, train.domain, xte, test.domain, seed=seed)
    return out


def embedding_domain_accuracy(z: Any, domains: Any, seed: int = 0) -> float:
    r"""Linear-probe domain accuracy on embeddings, from one labelled set split in half.

    .. math::
        \mathrm{acc} = \frac{1}{|B|}\sum_{x \in B} \mathbb 1[\hat D(x) = D(x)]

    where the probe ``D̂`` (:func:`gca_viz.metrics.domain_accuracy`) is fitted on half of
    the samples ``A`` and tested on the other half ``B`` (split per domain, seeded).

    Args:
        z: ``(n, d)`` embeddings. domains: ``(n,)`` domain labels (>= 2 domains, >= 2
            samples each). seed: the split's seed.

    Returns:
        The accuracy in ``[0, 1]``, or ``NaN`` when some domain has fewer than 2 samples.
    """
    Z, D = np.asarray(z, dtype=np.float64), np.asarray(domains).reshape(-1)
    if Z.ndim != 2 or Z.shape[0] != D.shape[0]:
        raise ValueError(f"z must be (n, d) with n = len(domains), got {Z.shape}, {D.shape}")
    values, sizes = np.unique(D, return_counts=True)
    if len(values) < 2 or sizes.min() < 2:
        return math.nan
    rng = np.random.default_rng(seed)
    test = np.zeros(len(D), dtype=bool)
    for v in values:
        members = rng.permutation(np.flatnonzero(D == v))
        test[members[: len(members) // 2]] = True
    return metrics.domain_accuracy(Z[~test], D[~test], Z[test], D[test], seed=seed)
