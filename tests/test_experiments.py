"""Tests of gca_viz.experiments: the α - β sweep (configs, naming, results table, trend) and
the noisy-views measures (graded corruption, the severity-scaled preset, the plan mass an
unbalanced plan keeps on corrupted pairs), plus the figures the two pages draw.

Stores are filled without training: finished runs are imported with the public
``RunStore.import_directory`` from tiny run directories written here (config, metrics,
an embedding snapshot), and launches are checked with scheduling switched off so no process
starts. One slow test trains a reduced sweep for real.
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz import augment, demo
from gca_viz import experiments as ex
from gca_viz.figures import experiments as xfig
from gca_viz.lab import Batch
from gca_viz.runs import ACTIVE, RunStore
from gca_viz.targets import build_target
from gca_viz.train import TrainConfig
from tests.helpers import run_python, wait_for_run

# ------------------------------------------------------------------------------ helpers


def write_run_dir(
    path: Path,
    config: dict[str, Any],
    metrics: dict[str, float],
    *,
    step: int = 300,
    embeddings: dict[str, np.ndarray] | None = None,
    finished: bool = True,
) -> Path:
    """A run directory as ``python -m gca_viz train --out`` writes it (final metrics only)."""
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    lines = ["step,name,value", f"{step},loss,1.5"] + [
        f"{step},{k},{v!r}" for k, v in metrics.items()
    ]
    (path / "metrics.csv").write_text("\n".join(lines) + "\n")
    event = "finished" if finished else "stopped"
    (path / "events.jsonl").write_text(json.dumps({"event": event, "step": step}) + "\n")
    (path / "snapshots").mkdir()
    if embeddings is not None:
        np.savez(path / "snapshots" / f"{step:07d}_embeddings.npz", **embeddings)
    return path


def separable_embeddings(n: int = 120, d: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Embeddings whose domain is one coordinate: a probe reads it perfectly."""
    rng = np.random.default_rng(seed)
    domain = np.arange(n) % 4
    z = 0.05 * rng.standard_normal((n, d))
    z[np.arange(n), domain] += 1.0
    return {"z": z.astype(np.float32), "y": domain.copy(), "domain": domain}


def import_sweep(store: RunStore, tmp: Path, sweep: int, accs: dict[float, float]) -> list[int]:
    """Finished sweep runs with domain accuracy ``accs[δ]``, imported as sweep ``sweep``."""
    ids = []
    for k, (delta, acc) in enumerate(accs.items()):
        cfg = ex.domain_sweep_configs([delta], steps=300)[0]
        a, b = cfg["loss_params"]["alpha"], cfg["loss_params"]["beta"]
        run = write_run_dir(
            tmp / f"sweep{sweep}-{k}",
            cfg,
            {"domain_acc": acc, "probe_acc": 0.9, "knn_acc": 0.85},
            embeddings=separable_embeddings(seed=k),
        )
        ids.append(store.import_directory(run, name=ex.sweep_run_name(sweep, delta, a, b)))
    return ids


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "store", max_concurrent=1)


# --------------------------------------------------------------------- the α - β sweep


@pytest.mark.parametrize("delta", [-0.5, -0.25, 0.0, 0.25, 0.5])
def test_alpha_beta_keeps_weights_non_negative_at_fixed_total(delta: float) -> None:
    a, b = ex.alpha_beta(delta)
    assert a >= 0 and b >= 0
    assert math.isclose(a - b, delta, abs_tol=1e-12)
    assert math.isclose(a + b, ex.SWEEP_TOTAL, abs_tol=1e-12)


@pytest.mark.parametrize(
    ("delta", "total", "name"),
    [
        (0.6, 0.5, "delta"),
        (-0.51, 0.5, "delta"),
        (0.0, 0.0, "total"),
        (math.nan, 1.0, "delta"),
        (0.0, 1.5, "total"),  # a share of a row: at most 1
    ],
)
def test_alpha_beta_rejects_out_of_range(delta: float, total: float, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ex.alpha_beta(delta, total)


def test_domain_sweep_configs_are_valid_with_the_requested_alpha_minus_beta() -> None:
    deltas = [-0.5, -0.25, 0.0, 0.25, 0.5]
    configs = ex.domain_sweep_configs(deltas)
    assert len(configs) == len(deltas)
    for delta, cfg in zip(deltas, configs, strict=True):
        TrainConfig.from_dict(cfg)  # a valid config of the training engine
        a, b = cfg["loss_params"]["alpha"], cfg["loss_params"]["beta"]
        assert a >= 0 and b >= 0 and math.isclose(a - b, delta, abs_tol=1e-12)
        assert math.isclose(a + b, ex.SWEEP_TOTAL)
        assert cfg["dataset"] == "multidomain_digits" and cfg["target"] == "domain"
        # shares: at the sweep's batch size every row keeps 1 - s on its positive
        P = build_target("domain", 256, domains=np.arange(256) % 4, alpha=a, beta=b)
        assert torch.allclose(P.diagonal(), torch.tensor(1 - ex.SWEEP_TOTAL, dtype=P.dtype))
        assert torch.allclose(P.sum(1), torch.ones(256, dtype=P.dtype))
        assert cfg["method"] == "gca_ince" and cfg["steps"] == 300 and cfg["batch_size"] == 256
        assert cfg["eval_every"] == cfg["snapshot_every"] == cfg["checkpoint_every"] == 300


def test_domain_sweep_configs_take_overrides_and_validate_them() -> None:
    cfg = ex.domain_sweep_configs(
        [0.2], total=1.0, steps=80, batch_size=64, loss_params={"epsilon": 0.3}
    )[0]
    assert cfg["steps"] == cfg["eval_every"] == 80 and cfg["batch_size"] == 64
    assert cfg["loss_params"] == {"epsilon": 0.3, "alpha": 0.6, "beta": 0.4}
    with pytest.raises(ValueError, match="delta"):
        ex.domain_sweep_configs([0.75])
    with pytest.raises(ValueError, match="unknown config field"):
        ex.domain_sweep_configs([0.0], stepz=10)
    with pytest.raises(ValueError, match="deltas"):
        ex.domain_sweep_configs([])


def test_launch_queues_one_named_run_per_delta_and_find_returns_them(
    store: RunStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(RunStore, "schedule", lambda self: [])  # queue only: no process
    first = ex.launch_domain_sweep(store, [0.5, -0.5, 0.0], steps=50)
    second = ex.launch_domain_sweep(store, [0.25, -0.25], steps=50)
    assert ex.domain_sweeps(store) == {2: [second[1], second[0]], 1: [first[1], first[2], first[0]]}
    assert ex.find_domain_sweep(store) == [second[1], second[0]]  # newest, by α - β
    assert ex.find_domain_sweep(store, 1) == [first[1], first[2], first[0]]
    assert ex.find_domain_sweep(store, 7) == []
    info = store.get(first[0])
    assert info.name.startswith(f"{ex.SWEEP_PREFIX} 1: α - β = +0.50")
    assert info.status == "queued" and info.config["loss_params"]["alpha"] == 0.5
    assert all(store.get(i).name.startswith(f"{ex.SWEEP_PREFIX} 2:") for i in second)


def test_launch_validates_everything_before_queueing(store: RunStore) -> None:
    with pytest.raises(ValueError, match="delta"):
        ex.launch_domain_sweep(store, [0.0, 0.9])
    assert store.list_runs() == []


def test_results_table_from_finished_runs(store: RunStore, tmp_path: Path) -> None:
    ids = import_sweep(store, tmp_path, 1, {0.5: 0.95, -0.5: 0.70, 0.0: 0.80})
    rows = ex.domain_sweep_results(store, ids)
    assert [r.delta for r in rows] == [-0.5, 0.0, 0.5]  # sorted by α - β
    assert [r.domain_acc for r in rows] == [0.70, 0.80, 0.95]
    assert all(r.status == "finished" and r.probe_acc == 0.9 and r.knn_acc == 0.85 for r in rows)
    assert all(r.domain_acc_embedding == 1.0 for r in rows)  # separable snapshot
    assert all(math.isclose(r.alpha - r.beta, r.delta) for r in rows)
    fit = ex.trend([r.delta for r in rows], [r.domain_acc for r in rows])
    assert fit.n == 3 and fit.spearman == pytest.approx(1.0) and fit.slope == pytest.approx(0.25)
    no_z = ex.domain_sweep_results(store, ids, embedding=False)
    assert all(math.isnan(r.domain_acc_embedding) for r in no_z)


def test_results_of_runs_that_have_not_evaluated_are_nan(store: RunStore, tmp_path: Path) -> None:
    cfg = ex.domain_sweep_configs([0.25])[0]
    run = write_run_dir(tmp_path / "half", cfg, {}, step=120, finished=False)
    run_id = store.import_directory(run, name=ex.sweep_run_name(1, 0.25, 0.375, 0.125))
    (row,) = ex.domain_sweep_results(store, [run_id])
    assert row.status == "stopped" and row.step == 120 and row.delta == 0.25
    assert math.isnan(row.domain_acc) and math.isnan(row.probe_acc)
    assert math.isnan(row.domain_acc_embedding)
    with pytest.raises(ValueError, match="no run"):
        ex.domain_sweep_results(store, [999])


def test_embedding_domain_accuracy() -> None:
    emb = separable_embeddings()
    assert ex.embedding_domain_accuracy(emb["z"], emb["domain"]) == 1.0
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((400, 8))
    acc = ex.embedding_domain_accuracy(noise, np.arange(400) % 4)
    assert 0.1 < acc < 0.45  # chance is 0.25
    assert math.isnan(ex.embedding_domain_accuracy(noise[:5], np.array([0, 0, 0, 0, 1])))
    with pytest.raises(ValueError, match="z must be"):
        ex.embedding_domain_accuracy(noise, np.arange(3))


def test_trend_and_correlations_against_scipy() -> None:
    from scipy import stats

    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, 40).astype(float)  # ties
    y = x + rng.standard_normal(40)
    assert ex.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert ex.pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    fit = ex.trend(x, y)
    assert fit.slope == pytest.approx(stats.linregress(x, y).slope)
    assert ex.trend([0.0, 1.0, np.nan], [1.0, np.nan, 2.0]).n == 1
    assert math.isnan(ex.trend([1.0, 1.0], [0.0, 1.0]).slope)
    assert math.isnan(ex.pearson([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match="1-D"):
        ex.trend([1.0, 2.0], [1.0])


# ------------------------------------------------------------------- the target designer


def _batch(domains: np.ndarray, labels: np.ndarray) -> Batch:
    n = len(domains)
    z = torch.nn.functional.normalize(torch.randn(n, 4), dim=1)
    images = np.arange(2 * n, dtype=np.float32).reshape(2, n, 1, 1, 1)
    return Batch(z, z + 1.0, labels, domains, images, "test")


def test_sort_by_domain_permutes_every_array_alike() -> None:
    b = _batch(np.array([2, 0, 1, 0, 2, 1]), np.array([5, 3, 1, 1, 0, 4]))
    s = ex.sort_by_domain(b)
    assert s.domains.tolist() == [0, 0, 1, 1, 2, 2]
    assert s.labels.tolist() == [1, 3, 1, 4, 0, 5]  # class order within a domain
    order = [3, 1, 2, 5, 4, 0]
    assert torch.equal(s.z1, b.z1[order]) and torch.equal(s.z2, b.z2[order])
    assert np.array_equal(s.images, b.images[:, order])


def test_block_mass_counts_same_group_off_diagonal_mass() -> None:
    M = np.array([[9.0, 1.0, 2.0], [1.0, 9.0, 0.0], [2.0, 0.0, 9.0]])
    assert ex.block_mass(M, [0, 0, 1]) == pytest.approx(2 / 6)
    assert math.isnan(ex.block_mass(np.eye(3), [0, 0, 1]))
    with pytest.raises(ValueError, match="matrix"):
        ex.block_mass(M, [0, 1])


def _domain_batch_plan(alpha: float, beta: float) -> tuple[Any, np.ndarray, np.ndarray]:
    from gca_viz import lab

    b = ex.sort_by_domain(lab.data_batch("multidomain_digits", 32, 0, augment="standard"))
    target = b.target("domain", "cross", alpha=alpha, beta=beta).numpy()
    plan = lab.half_steps(b.cost_matrix("cross"), target, 0.5, 10).plans[-1]
    return b, target, plan


def test_loss_pull_is_the_gradient_of_gca_ince_through_the_sweeps() -> None:
    """(P_tgt − P)/(εN) equals ∂L/∂C of L = KL(P_tgt‖P)/N with P from T balanced sweeps,
    differentiated by autograd through the unrolled solve, at Sinkhorn's fixed point
    (ε = 0.5, T = 10 reach it; before it the formula is off: the next test)."""
    from gca_viz import ot

    b, target, plan = _domain_batch_plan(0.3, 0.1)
    C = torch.as_tensor(b.cost_matrix("cross"), dtype=torch.float64).requires_grad_(True)
    T = torch.as_tensor(target, dtype=torch.float64)
    P = ot.sinkhorn(C, T.sum(1), T.sum(0), epsilon=0.5, n_iter=10)
    P = getattr(P, "plan", P)
    n = len(T)
    (T * torch.log(T.clamp_min(1e-300) / P) - T + P).sum().div(n).backward()
    assert C.grad is not None
    pull = ex.loss_pull(target, plan, 0.5)
    np.testing.assert_allclose(C.grad.numpy(), pull, atol=1e-12 * np.abs(pull).max())
    with pytest.raises(ValueError, match="epsilon"):
        ex.loss_pull(target, plan, 0.0)


def _unrolled_gradient(cost: np.ndarray, target: np.ndarray, eps: float, n_iter: int) -> Any:
    """∂L/∂C by autograd through T plain log-domain sweeps written out here (an oracle
    independent of the library's solver), L = KL(P_tgt‖P^(2T))/N."""
    C = torch.as_tensor(cost, dtype=torch.float64).requires_grad_(True)
    T = torch.as_tensor(target, dtype=torch.float64)
    mu, nu = T.sum(1), T.sum(0)
    g = torch.zeros(len(nu), dtype=torch.float64)
    for _ in range(n_iter):
        f = eps * torch.log(mu) - eps * torch.logsumexp((g[None, :] - C) / eps, 1)
        g = eps * torch.log(nu) - eps * torch.logsumexp((f[:, None] - C) / eps, 0)
    log_p = (f[:, None] + g[None, :] - C) / eps
    m = T > 0
    kl = (T[m] * (torch.log(T[m]) - log_p[m])).sum() - T.sum() + log_p.exp().sum()
    (grad,) = torch.autograd.grad(kl / len(T), C)
    return grad.numpy()


def test_sweep_pull_is_the_gradient_before_the_fixed_point_where_the_formula_is_not() -> None:
    """At ε = 0.01, T = 10 the plan's rows still miss μ: the fixed-point formula
    (P_tgt − P)/(εN) is off by half the largest entry and has the other sign on many pairs
    (the Domains page drew it as "exactly" the gradient); sweep_pull is the gradient (an
    unrolled autograd oracle), and equals the formula once Sinkhorn has converged."""
    from gca_viz import lab

    b = ex.sort_by_domain(lab.data_batch("multidomain_digits", 32, 0, augment="standard"))
    cost = b.cost_matrix("cross").numpy()
    target = b.target("domain", "cross", alpha=0.2, beta=0.0).numpy()
    for eps, n_iter in ((0.01, 10), (0.5, 10)):
        pull = ex.sweep_pull(cost, target, eps, n_iter)
        oracle = _unrolled_gradient(cost, target, eps, n_iter)
        np.testing.assert_allclose(pull, oracle, atol=1e-9 * np.abs(oracle).max())
        plan = lab.half_steps(cost, target, eps, n_iter).plans[-1]
        gap = np.abs(ex.loss_pull(target, plan, eps) - pull).max() / np.abs(pull).max()
        if eps == 0.5:
            assert gap < 1e-10  # the fixed point: the formula holds
        else:
            assert gap > 0.1
            assert np.mean(np.sign(ex.loss_pull(target, plan, eps)) != np.sign(pull)) > 0.01
    with pytest.raises(ValueError, match="epsilon"):
        ex.sweep_pull(cost, target, 0.0, 10)
    with pytest.raises(ValueError, match="cost and target"):
        ex.sweep_pull(cost, target[:3], 0.5, 10)
    with pytest.raises(ValueError, match="n_iter"):
        ex.sweep_pull(cost, target, 0.5, 0)
    empty_row = target.copy()
    empty_row[0] = 0.0
    with pytest.raises(ValueError, match="target: every row"):
        ex.sweep_pull(cost, empty_row, 0.5, 10)


def test_formula_gap_measures_the_formula_against_the_gradient() -> None:
    """The largest difference relative to the gradient's largest entry, and the share of
    pairs whose sign the formula gets wrong (a rounding-level gradient entry has no sign)."""
    G = np.array([[2.0, -1.0], [0.5, 1e-12]])
    F = np.array([[2.0, 1.0], [0.4, -1e-12]])
    gap = ex.formula_gap(G, F)
    assert gap.largest == pytest.approx(1.0) and gap.flipped == pytest.approx(0.25)
    assert ex.formula_gap(G, G) == (0.0, 0.0)
    assert ex.formula_gap(np.zeros((2, 2)), np.zeros((2, 2))) == (0.0, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        ex.formula_gap(G, F[:1])


def test_group_pull_follows_alpha_minus_beta_while_the_plan_does_not() -> None:
    """The Domains page's point: with μ, ν fixed every prior's plan is nearly the same, its
    same-domain share within 1 point over α − β from -0.5 to +0.5; the pull on a same-domain
    pair relative to an other-domain one rises with α − β, changing sign."""
    shares, gaps = [], []
    for alpha, beta in [(0.0, 0.5), (0.25, 0.25), (0.5, 0.0)]:
        b, target, plan = _domain_batch_plan(alpha, beta)
        shares.append(ex.block_mass(plan, b.domains))
        same, other = ex.group_pull(ex.loss_pull(target, plan, 0.5), b.domains).shares
        gaps.append(same - other)
    assert max(shares) - min(shares) < 0.01
    assert gaps[0] < 0 < gaps[2] and gaps[0] < gaps[1] < gaps[2], gaps
    assert all(math.isnan(v) for v in ex.group_pull(np.zeros((3, 3)), [0, 0, 1]).shares)


def test_group_pull_is_the_mean_pull_and_its_sentence_follows_the_signs() -> None:
    """The means are those of loss_pull's matrix; with no pull on the positives the shares
    are NaN and the sentence gives cost units (the Domains page read NaN as "the target
    equals the plan" while its pull map was red, at α = 1)."""
    target = np.array([[0.0, 0.6, 0.4], [0.6, 0.0, 0.4], [0.5, 0.5, 0.0]])
    plan = np.full((3, 3), 1 / 3)
    groups = [0, 0, 1]
    pull = ex.loss_pull(target, plan, 0.5)
    pulls = ex.group_pull(pull, groups)
    assert pulls.positive == pytest.approx(np.diag(pull).mean()) and pulls.positive < 0
    assert pulls.same == pytest.approx(pull[0, 1])  # (0, 1), (1, 0)
    assert pulls.other == pytest.approx(np.mean([pull[0, 2], pull[1, 2], pull[2, 0], pull[2, 1]]))
    assert all(math.isnan(v) for v in pulls.shares)
    text = pulls.describe("same-domain", "other-domain")
    assert text.startswith(f"Here a same-domain pair is pulled together ({pulls.same:+.2g})")
    assert "an other-domain pair pulled together" in text
    assert text.endswith(
        "training pulls same-domain pairs together harder than other-domain pairs."
    )
    assert pulls.describe_positives().startswith("The positives (the blank diagonal) are pushed")
    flipped = ex.GroupPull(positive=1.0, same=-0.1, other=0.2)
    assert flipped.shares == (-0.1, 0.2)
    assert "pushed apart (-10.0% of a positive's pull)" in flipped.describe("same", "other")
    assert flipped.describe("same", "other").endswith(
        "training draws other pairs together and same pairs apart."
    )
    assert flipped.describe_positives().endswith("pulled hardest of all.")
    # both pushed apart (α = β = 0.2 on the Domains page): not "draws ... closer"
    apart = ex.GroupPull(positive=1.0, same=-0.016, other=-0.038)
    assert apart.describe("same", "other").endswith(
        "training pushes other pairs apart more than same pairs."
    )
    still = ex.GroupPull(positive=1.0, same=0.0, other=-0.02).describe("same", "other")
    assert "a same pair is neither pulled nor pushed (+0.0% of a positive's pull)" in still


def test_read_matrix_parses_npy_and_csv() -> None:
    M = np.arange(9, dtype=float).reshape(3, 3)
    buf = io.BytesIO()
    np.save(buf, M)
    assert np.array_equal(ex.read_matrix(buf.getvalue(), "t.npy"), M)
    assert np.array_equal(ex.read_matrix(b"0,1,2\n3,4,5\n6,7,8\n", "t.CSV"), M)
    assert np.array_equal(ex.read_matrix(b"0 1 2\n3 4 5\n6 7 8\n", "t.csv"), M)


@pytest.mark.parametrize(
    ("data", "name", "match"),
    [
        (b"1,2\n3,4\n", "t.txt", "t.txt: upload a .npy or .csv"),
        (b"1,x\n3,4\n", "t.csv", "t.csv"),
        (b"\xff\xfe\x00", "t.csv", "t.csv"),
        (b"not an npy file", "t.npy", "t.npy"),
    ],
)
def test_read_matrix_names_the_file_and_the_problem(data: bytes, name: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ex.read_matrix(data, name)


def test_read_matrix_rejects_pickles_and_wrong_dimensions() -> None:
    buf = io.BytesIO()
    np.save(buf, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match=r"t\.npy"):
        ex.read_matrix(buf.getvalue(), "t.npy")
    buf = io.BytesIO()
    np.save(buf, np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="2-D"):
        ex.read_matrix(buf.getvalue(), "t.npy")


# --------------------------------------------------------------------------- noisy views


def test_augment_at_interpolates_from_identity_to_the_extreme_preset() -> None:
    x = torch.rand(64, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    none = ex.augment_at(0.0)
    assert torch.equal(none(x, torch.Generator().manual_seed(1)), x)
    full = ex.augment_at(1.0)
    extreme = augment.make_augment("extreme")
    assert dict(full.params) == pytest.approx(dict(extreme.params))
    means = [
        float(ex.augment_at(s).apply_with_strength(x, torch.Generator().manual_seed(2))[1].mean())
        for s in (0.0, 0.25, 1.0)
    ]
    assert means[0] == 0.0 and means[0] < means[1] < means[2]
    with pytest.raises(ValueError, match="severity"):
        ex.augment_at(1.5)
    with pytest.raises(ValueError, match="kind"):
        ex.augment_at(0.5, "audio")


def test_graded_corruption_spreads_severity_and_strength_follows() -> None:
    x = torch.rand(32, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    g = ex.graded_corruption(x, "image", 0.8, torch.Generator().manual_seed(3))
    assert g.views.shape == x.shape
    assert np.allclose(np.sort(g.severity), 0.8 * np.arange(32) / 31)
    assert not np.array_equal(g.severity, np.sort(g.severity))  # shuffled over the batch
    assert g.strength[np.argmin(g.severity)] == 0.0  # severity 0 leaves the sample unchanged
    assert ex.spearman(g.severity, g.strength) > 0.8
    with pytest.raises(ValueError, match="max_severity"):
        ex.graded_corruption(x, "image", 2.0, torch.Generator())
    v = ex.augmented_views(x, "image", 1.0, torch.Generator().manual_seed(0))
    assert v.strength.shape == (32,) and np.isnan(v.severity).all()


def _synthetic_pairs(n: int = 64, n_bad: int = 16, d: int = 16, seed: int = 0) -> tuple:
    """``z2 = z1`` for clean pairs and an unrelated random point for a known subset."""
    g = torch.Generator().manual_seed(seed)
    z1 = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    bad = torch.randperm(n, generator=g)[:n_bad]
    z2 = z1.clone()
    z2[bad] = torch.nn.functional.normalize(
        torch.randn(n_bad, d, generator=g, dtype=torch.float64), dim=1
    )
    corrupted = np.zeros(n, dtype=bool)
    corrupted[bad.numpy()] = True
    return z1, z2, corrupted


def test_unbalanced_plan_keeps_less_mass_on_known_corrupted_pairs() -> None:
    z1, z2, corrupted = _synthetic_pairs()
    strength = corrupted.astype(float)  # 1 for the corrupted pairs, 0 for the clean ones
    res = ex.corruption_mass_correlation(z1, z2, strength, epsilon=0.1)
    assert res.spearman < -0.5 and res.pearson < -0.5
    assert res.mean_kept(corrupted) < 0.5 * res.mean_kept(~corrupted)
    assert res.spearman_row < -0.5  # the unbalanced rows of corrupted pairs hold less mass
    # the balanced plan's rows stay near 1 (up to T = 10 sweeps' marginal error)
    assert res.balanced_row_error < 0.1 < float(np.ptp(res.row_sums))
    assert res.kept.mean() == pytest.approx(1.0) and res.row_mass.mean() == pytest.approx(1.0)
    assert res.epsilon == 0.1 and res.relax_a == 0.2 and res.n_iter == 10


def test_graded_strength_correlates_with_lost_mass() -> None:
    """A continuous strength: pair i's second view is pushed away by an angle that grows."""
    n, d = 48, 16
    g = torch.Generator().manual_seed(1)
    z1 = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), dim=1)
    other = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64), 1)
    strength = np.linspace(0.0, 1.0, n)
    t = torch.from_numpy(strength)[:, None]
    z2 = torch.nn.functional.normalize((1 - t) * z1 + t * other, dim=1)
    res = ex.corruption_mass_correlation(z1, z2, strength, epsilon=0.2)
    assert res.spearman < -0.9


def test_corruption_mass_correlation_validates() -> None:
    z1, z2, _ = _synthetic_pairs(n=8, n_bad=2)
    with pytest.raises(ValueError, match="strength"):
        ex.corruption_mass_correlation(z1, z2, np.zeros(7))
    with pytest.raises(ValueError, match="epsilon"):
        ex.corruption_mass_correlation(z1, z2, np.zeros(8), epsilon=0.0)
    with pytest.raises(ValueError, match="z_clean"):
        ex.corruption_mass_correlation(z1.numpy(), z2, np.zeros(8))  # type: ignore[arg-type]


def test_embed_views_normalises_and_restores_the_mode() -> None:
    model = ex.random_encoder((1, 8, 8), seed=0, out_dim=6)
    model.train()
    x = torch.rand(10, 1, 8, 8)
    z1, z2 = ex.embed_views(model, x, x)
    assert model.training and torch.allclose(z1.norm(dim=1), torch.ones(10))
    assert torch.equal(z1, z2)  # eval mode: a sample's embedding does not depend on the batch
    again = ex.random_encoder((1, 8, 8), seed=0, out_dim=6)
    pairs = zip(model.state_dict().values(), again.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)  # the same seed, the same weights


def test_noisy_pair_configs_match_the_demo_runs_except_evaluation() -> None:
    configs = ex.noisy_pair_configs(0.5)
    assert [c["method"] for c in configs] == ["ince", "gca_uot"]
    for cfg, name in zip(configs, ex.NOISY_DEMOS.values(), strict=True):
        base = TrainConfig.from_dict(demo.demo_config(name)).__dict__
        diff = {k for k in cfg if cfg[k] != base[k]}
        assert diff == {"eval_corruption"}  # (the demo runs keep a final checkpoint too)
        assert cfg["eval_corruption"] == 0.5 and cfg["checkpoint_every"] == cfg["steps"]
    with pytest.raises(ValueError, match="eval_corruption"):
        ex.noisy_pair_configs(1.5)


def test_noisy_comparison_of_demo_and_fresh_runs(
    store: RunStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demo.install(store)
    demo_ids = ex.demo_runs(store)
    assert [store.get(i).name for i in demo_ids] == list(ex.NOISY_DEMOS.values())
    monkeypatch.setattr(RunStore, "schedule", lambda self: [])
    fresh = ex.launch_noisy_pair(store, 0.5)
    assert ex.noisy_pairs(store) == {1: fresh}
    rows = ex.noisy_comparison(store, demo_ids + fresh)
    assert [(r.method, r.condition) for r in rows] == [
        ("ince", "clean"),
        ("ince", "corrupted (s = 0.5)"),
        ("gca_uot", "clean"),
        ("gca_uot", "corrupted (s = 0.5)"),
    ]
    clean = rows[0]
    assert clean.status == "finished" and 0.5 < clean.values["knn_acc"] <= 1.0
    assert math.isfinite(clean.final_loss)
    assert rows[1].status == "queued" and math.isnan(rows[1].values["knn_acc"])


def test_an_encoder_evaluated_on_corrupted_data_later_is_what_its_twin_logs(
    tmp_path: Path,
) -> None:
    """encoder_accuracies on a clean run's checkpoint gives exactly the accuracies a twin
    that trained alike with eval_corruption = 0.5 logged (the Noisy views page shows the
    shipped encoders' corrupted bars this way), and leaves torch's global generator alone.
    noisy_comparison adds that row only for finished clean runs with a checkpoint."""
    tiny = {"steps": 6, "batch_size": 64, "eval_every": 6, "checkpoint_every": 6,
            "snapshot_every": 0, "eval_subset": 50, "out_dim": 3, "noisy_pairs": 0.3,
            "encoder_params": {"hidden": 32}, "head_hidden": 32, "device": "cpu"}  # fmt: skip
    store = RunStore(tmp_path / "store", max_concurrent=1)
    ids = []
    for name, corruption in (("clean", 0.0), ("twin", 0.5)):
        cfg = tmp_path / f"{name}.json"
        cfg.write_text(json.dumps({**tiny, "eval_corruption": corruption}))
        out = tmp_path / name
        done = run_python("-m", "gca_viz", "train", "--config", str(cfg), "--out", str(out),
                          timeout=180)  # fmt: skip
        assert done.returncode == 0, done.stderr
        ids.append(store.import_directory(out, name=name))
    clean, twin = ids
    before = torch.get_rng_state()
    found = ex.encoder_accuracies(store, clean, 0.5)
    assert torch.equal(torch.get_rng_state(), before)
    logged = store.latest_metrics(twin)
    assert found == {k: logged[k][1] for k in ex.NOISY_METRICS}
    assert found != {k: store.latest_metrics(clean)[k][1] for k in ex.NOISY_METRICS}
    # One CorruptionProbe scores any severity, in any order, as the run's own evaluation
    # does: 0 gives what the clean run logged, 0.5 what the twin logged.
    probe = ex.CorruptionProbe(store, clean)
    assert torch.equal(torch.get_rng_state(), before)
    assert probe.accuracies(0.5) == found
    assert probe.accuracies(0.0) == {k: store.latest_metrics(clean)[k][1] for k in ex.NOISY_METRICS}
    assert probe.accuracies(0.5) == found
    with pytest.raises(ValueError, match="eval_corruption must be a number <= 1"):
        probe.accuracies(1.5)
    rows = ex.noisy_comparison(store, [clean, twin], 0.5)
    assert [(r.run_id, r.condition, r.evaluated) for r in rows] == [
        (clean, "clean", False),
        (clean, "corrupted (s = 0.5)", True),
        (twin, "corrupted (s = 0.5)", False),
    ]
    assert rows[1].values == rows[2].values
    assert [r.evaluated for r in ex.noisy_comparison(store, [clean, twin])] == [False, False]
    with pytest.raises(ValueError, match="eval_corruption"):
        ex.encoder_accuracies(store, clean, 1.5)
    (store.run_dir(clean) / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=f"run_id: the checkpoint of run {clean} is unreadable"):
        ex.encoder_accuracies(store, clean, 0.5)
    (store.run_dir(clean) / "checkpoint.pt").unlink()
    with pytest.raises(ValueError, match=f"run_id: run {clean} .clean. has no checkpoint"):
        ex.encoder_accuracies(store, clean, 0.5)
    assert [r.evaluated for r in ex.noisy_comparison(store, [clean], 0.5)] == [False]


def test_the_shipped_sweep_is_the_sweeps_configs_trained() -> None:
    """assets/domain_sweep holds one finished run per δ of SWEEP_DELTAS, each trained from
    domain_sweep_configs (a stale asset fails here), kept small: no checkpoint, no plan,
    the final embedding snapshot with its domains (for the accuracy on ẑ)."""
    dirs = sorted(ex.SHIPPED_SWEEP.glob("delta*"))
    configs = {round(c["loss_params"]["alpha"] - c["loss_params"]["beta"], 6): c
               for c in ex.domain_sweep_configs()}  # fmt: skip
    assert len(dirs) == len(ex.SWEEP_DELTAS)
    for path in dirs:
        shipped = json.loads((path / "config.json").read_text())
        params = shipped["loss_params"]
        assert shipped == configs[round(params["alpha"] - params["beta"], 6)], path.name
        assert not (path / "checkpoint.pt").exists()
        (snapshot,) = (path / "snapshots").iterdir()
        assert snapshot.name == f"{shipped['steps']:07d}_embeddings.npz"
        with np.load(snapshot) as arrays:
            assert set(arrays.files) == {"z", "y", "domain", "step"}
        assert json.loads((path / "events.jsonl").read_text().splitlines()[-1])["event"] == (
            "finished"
        )


def test_the_shipped_sweep_opens_in_a_store_of_its_own_once(tmp_path: Path) -> None:
    store, ids = ex.shipped_sweep(tmp_path / "shipped")
    again, same = ex.shipped_sweep(tmp_path / "shipped")
    assert same == ids and len(again.list_runs()) == len(ex.SWEEP_DELTAS)
    store.delete(ids[2])  # an import cut short: the next call completes it, once
    _, completed = ex.shipped_sweep(tmp_path / "shipped")
    assert len(completed) == len(ex.SWEEP_DELTAS) and completed[:2] == ids[:2]
    store, ids = ex.shipped_sweep(tmp_path / "shipped")
    rows = ex.domain_sweep_results(store, ids)
    assert [r.delta for r in rows] == list(ex.SWEEP_DELTAS)
    assert all(r.status == "finished" and r.step == r.steps == 300 for r in rows)
    for r in rows:
        for value in (r.domain_acc, r.probe_acc, r.knn_acc, r.domain_acc_embedding):
            assert 0.0 < value <= 1.0, r
    with pytest.raises(ValueError, match=r"source: .* holds no shipped"):
        ex.shipped_sweep(tmp_path / "other", source=tmp_path / "empty")


def test_generate_sweep_trains_what_the_page_would_launch(tmp_path: Path) -> None:
    """The generator trains domain_sweep_configs through the command line; what it writes
    opens as a sweep (one δ and a few steps here)."""
    tiny = {"deltas": [0.5], "steps": 4, "batch_size": 64, "eval_subset": 64,
            "encoder_params": {"hidden": 32}, "head_hidden": 32}  # fmt: skip
    (path,) = ex.generate_sweep(tmp_path / "sweep", **tiny)
    assert path.name == "delta+0.50"
    assert json.loads((path / "config.json").read_text()) == ex.domain_sweep_configs(**tiny)[0]
    store, (run_id,) = ex.shipped_sweep(tmp_path / "store", source=tmp_path / "sweep")
    (row,) = ex.domain_sweep_results(store, [run_id])
    assert (row.delta, row.status, row.step) == (0.5, "finished", 4)
    assert math.isfinite(row.domain_acc) and math.isfinite(row.domain_acc_embedding)


# ------------------------------------------------------------------------------ figures


def _traces(fig: Any) -> dict[str, Any]:
    return {t.name: t for t in fig.data if t.name}


def test_sweep_chart_labels_the_paper_series_apart_from_measurements() -> None:
    fig = xfig.domain_sweep_chart(
        np.array([-0.5, 0.0, 0.5]),
        np.array([0.9, 0.92, np.nan]),
        np.array([0.8, 0.81, np.nan]),
        domain_acc_embedding=np.array([0.5, 0.6, np.nan]),
        paper_domain=ex.PAPER_DOMAIN_ACC,
        paper_class=ex.PAPER_CLASS_ACC,
        paper_label=ex.PAPER_LABEL,
    )
    traces = _traces(fig)
    paper = traces[f"{ex.PAPER_LABEL}: domain"]
    assert list(paper.x) == [-0.5, 0.5] and list(paper.y) == [0.72, 0.95]
    assert any(name.startswith(f"{ex.PAPER_LABEL}: class") for name in traces)
    assert list(traces["measured: domain, backbone h"].y[:2]) == [0.9, 0.92]
    # one accuracy scale for both panels: alone, the class panel's 0.011 drop filled it
    # beside a text saying class accuracy stays flat
    assert fig.layout.yaxis2.matches == "y" and fig.layout.yaxis2.showticklabels


def test_comparison_bars_and_view_grid_shapes() -> None:
    fig = xfig.comparison_bars(
        ["INCE", "GCA-UOT"],
        ["clean", "corrupted"],
        np.array([[0.9, 0.92], [0.7, np.nan]]),
        metric="acc",
    )
    assert [t.name for t in fig.data] == ["clean", "corrupted"]
    assert fig.data[0].marker.pattern.shape != fig.data[1].marker.pattern.shape  # not colour alone
    with pytest.raises(ValueError, match="values"):
        xfig.comparison_bars(["a"], ["clean"], np.zeros((2, 1)), metric="acc")
    grid = xfig.view_grid(np.zeros((2, 3, 8, 8)), np.array([[np.nan, 0.1, 0.2]] * 2), "abc")
    titles = [a.text for a in grid.layout.annotations]
    # the columns named once, over the top row; each view's strength over it
    assert titles == ["a", "b<br>0.100", "c<br>0.200", "0.100", "0.200"] and len(grid.data) == 6


def test_block_heatmap_sorts_unsorted_groups_and_checks_their_length() -> None:
    """Interleaved domains [0, 1, 0, 1, 0, 1] drew six 1 x 1 blocks named A, B, A, B, ...
    (the docstring said it sorts); a labels array of the wrong length was accepted."""
    from gca_viz import targets

    d = np.array([0, 1, 0, 1, 0, 1])
    P = targets.domain_target(d, alpha=0.5, beta=0.1).numpy()
    fig = xfig.block_heatmap(P, d, title="t", value_label="P", group_names=["A", "B"])
    assert len([s for s in fig.layout.shapes if s.type == "rect"]) == 2
    order = np.argsort(d, kind="stable")
    assert np.allclose(np.asarray(fig.data[0].z, dtype=float), P[np.ix_(order, order)], atol=1e-6)
    with pytest.raises(ValueError, match=r"groups must hold one label per row and column"):
        xfig.block_heatmap(np.eye(6), np.array([0, 1]), title="t", value_label="x")


def test_block_heatmap_outlines_each_domain() -> None:
    P = np.eye(6)
    fig = xfig.block_heatmap(
        P,
        np.array([0, 0, 1, 1, 1, 3]),
        title="t",
        value_label="v",
        group_names=("a", "b", "c", "d"),
    )
    rects = [s for s in fig.layout.shapes if s.type == "rect"]
    assert [(r.x0, r.x1) for r in rects] == [(-0.5, 1.5), (1.5, 4.5), (4.5, 5.5)]
    assert [a.text for a in fig.layout.annotations][-3:] == ["a", "b", "d"]


# ---------------------------------------------------------------------- the real sweep


@pytest.mark.slow
def test_reduced_sweep_trains_for_real_and_reports_a_domain_accuracy_per_delta(
    runs_dir: Path,
) -> None:
    store = RunStore(runs_dir, max_concurrent=1)
    deltas = [-0.5, 0.0, 0.5]
    ids = ex.launch_domain_sweep(store, deltas, steps=80, batch_size=128, device="cpu")
    wait_for_run(
        store, lambda: all(store.get(i).status not in ACTIVE for i in ids), "the sweep", cap=1800
    )
    rows = ex.domain_sweep_results(store, ex.find_domain_sweep(store))
    assert [r.run_id for r in rows] == ids and [r.delta for r in rows] == deltas
    for r in rows:
        assert r.status == "finished", r.error
        assert r.step == 80
        for value in (r.domain_acc, r.probe_acc, r.knn_acc, r.domain_acc_embedding):
            assert math.isfinite(value) and 0.0 <= value <= 1.0
    fit = ex.trend([r.delta for r in rows], [r.domain_acc for r in rows])
    print("\nα - β sweep (80 steps, batch 128, cross layout, s = 0.5):")
    for r in rows:
        print(
            f"  α - β = {r.delta:+.2f}: domain acc (h) {r.domain_acc:.3f}, domain acc (ẑ) "
            f"{r.domain_acc_embedding:.3f}, class probe {r.probe_acc:.3f}, k-NN {r.knn_acc:.3f}"
        )
    print(f"  slope {fit.slope:+.3f} per unit, Spearman {fit.spearman:+.2f}")


def test_the_shipped_noisy_sweep_reads_back(tmp_path: Path) -> None:
    rows = ex.noisy_sweep_results()
    methods = {r.method for r in rows}
    assert {"ince", "gca_ince", "gca_uot"} <= methods and len(rows) >= 8
    for r in rows:
        assert set(r.mean) == set(ex.SWEEP_TESTS) and r.seeds >= 2
        assert all(0 < v <= 1 for v in r.mean.values())
        assert (r.method == "ince") == all(np.isnan(d) for d in r.diff.values())
    # the paired differences come from the runs of the same seeds, for every test
    data = json.loads(ex.NOISY_SWEEP_FILE.read_text())
    row = next(r for r in rows if r.method == "gca_uot" and r.share > 0)
    runs = [r for r in data["runs"] if (r["share"], r["epsilon"]) == (row.share, row.epsilon)]
    for test in ex.SWEEP_TESTS:
        acc = {(r["method"], r["seed"]): r[test] for r in runs}
        seeds = sorted(s for m, s in acc if m == "gca_uot")
        diffs = [acc[("gca_uot", s)] - acc[("ince", s)] for s in seeds]
        assert len(seeds) == row.seeds and row.diff[test] == pytest.approx(np.mean(diffs))
        assert row.beats(test) == (np.mean(diffs) > 2 * np.std(diffs, ddof=1) / len(diffs) ** 0.5)
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="path"):
        ex.noisy_sweep_results(bad)
    # a sweep from before the embedding's accuracies reads back with the backbone's alone
    old = tmp_path / "old.json"
    table = [{k: v for k, v in r.items() if "_z" not in k} for r in data["table"]]
    old.write_text(json.dumps({"runs": [], "table": table}))
    assert all(set(r.mean) == {"clean", "corrupted"} for r in ex.noisy_sweep_results(old))
    assert not any(r.beats("corrupted_z") for r in ex.noisy_sweep_results(old))


def _sweep_row(method: str, share: float, eps: float, diff: float, se: float) -> Any:
    nan = math.nan if method == "ince" else None
    return ex.NoisySweepRow(
        share=share, epsilon=eps, method=method, seeds=4,
        mean={"clean_z": 0.7}, sd={"clean_z": 0.01},
        diff={"clean_z": nan or diff}, diff_se={"clean_z": nan or se},
    )  # fmt: skip


def test_the_sweep_verdict_reads_a_setting_and_every_measurable_difference() -> None:
    """sweep_verdict gives each method's row at the setting and at p = 0, and every row
    measurably ahead of INCE (Δ > 2 SE: a larger gain with a wide error is not) or behind
    it (−Δ > 2 SE), whatever the method."""
    rows = [
        _sweep_row("ince", 0.0, 0.5, 0, 0),
        _sweep_row("gca_uot", 0.0, 0.5, 0.001, 0.004),
        _sweep_row("ince", 0.6, 0.5, 0, 0),
        _sweep_row("gca_ince", 0.6, 0.5, 0.01, 0.02),
        _sweep_row("gca_uot", 0.6, 0.5, 0.05, 0.01),  # ahead
        _sweep_row("gca_uot_l0.01", 0.6, 0.5, 0.09, 0.05),  # larger, but within 2 se
        _sweep_row("gca_uot_l0.01", 0.6, 0.2, -0.12, 0.01),  # behind
        _sweep_row("gca_ince", 0.6, 0.2, 0.04, 0.01),  # ahead: any method
    ]
    v = ex.sweep_verdict(rows, "clean_z", 0.6, 0.5)
    assert v.at == {
        "ince": rows[2],
        "gca_ince": rows[3],
        "gca_uot": rows[4],
        "gca_uot_l0.01": rows[5],
    }
    assert v.clean_pairs == {"ince": rows[0], "gca_uot": rows[1]}
    assert v.ahead == [rows[4], rows[7]] and v.behind == [rows[6]]
    assert rows[4].diff_cell("clean_z") == "+0.050 ± 0.010" and rows[0].diff_cell("clean_z") == ""
    assert rows[4].points("clean_z") == "+5.0 ± 1.0 points" and rows[0].points("clean_z") == ""
    assert rows[4].cell("clean_z") == "0.700 ± 0.010" and rows[4].cell("clean") == ""
    assert not rows[0].beats("clean_z") and not rows[0].trails("clean_z")  # INCE itself
    # a test the rows lack: nothing measured
    none = ex.sweep_verdict(rows, "clean", 0.6, 0.5)
    assert none.at == {} and none.ahead == none.behind == []
    with pytest.raises(ValueError, match="test must be one of"):
        ex.sweep_verdict(rows, "knn", 0.6, 0.5)
    shares, epsilons, gains, errors = ex.sweep_gains(rows, "clean_z")
    assert shares == [0.0, 0.6] and epsilons == [0.5, 0.2] and "ince" not in gains
    np.testing.assert_array_equal(gains["gca_uot"], [[0.001, 0.05], [np.nan, np.nan]])
    np.testing.assert_array_equal(errors["gca_uot_l0.01"], [[np.nan, 0.05], [np.nan, 0.01]])


def test_the_shipped_pixel_baseline_is_what_the_probes_give(tmp_path: Path) -> None:
    """The Domains page reads the raw-pixel probes' accuracies stored beside the shipped
    sweep (fitting them took seconds of the page's first visit): they must be what
    pixel_baseline computes on the sweep's split; a file missing, of another seed or
    unreadable gives None, so the page computes them."""
    seed = int(ex.domain_sweep_configs([0.0])[0]["seed"])
    shipped = ex.shipped_pixel_baseline(seed)
    assert shipped is not None
    assert shipped == pytest.approx(ex.pixel_baseline("multidomain_digits", seed), abs=1e-12)
    assert ex.shipped_pixel_baseline(seed + 1) is None
    assert ex.shipped_pixel_baseline(seed, source=tmp_path) is None
    (tmp_path / ex.domains.PIXEL_BASELINE_FILE).write_text("{not json")
    assert ex.shipped_pixel_baseline(seed, source=tmp_path) is None
