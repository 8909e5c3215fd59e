"""The plan-lab and sweep mathematics (gca_viz.lab): theorems, limits, bookkeeping."""

from __future__ import annotations

import json
import math
import sqlite3
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gca_viz import lab, losses, models, ot
from gca_viz.runs import RunStore

TARGET_PRIORS = [("pairs", {}), ("class", {"gamma": 0.3}), ("domain", {"alpha": 0.4, "beta": 0.1})]


@pytest.fixture(scope="module")
def batch() -> lab.Batch:
    return lab.synthetic_batch(24, dim=6, noise=0.3, seed=1)


@pytest.fixture(scope="module")
def domain_batch() -> lab.Batch:
    return lab.data_batch("multidomain_digits", 20, seed=2, augment="standard")


# ------------------------------------------------------------------------- batches


def test_synthetic_batch_is_paired_points_on_the_sphere() -> None:
    b = lab.synthetic_batch(16, dim=5, noise=0.2, seed=3)
    assert b.z1 is not None and b.z2 is not None
    assert b.z1.shape == b.z2.shape == (16, 5)
    assert torch.allclose(b.z1.norm(dim=1), torch.ones(16, dtype=b.z1.dtype))
    assert torch.allclose(b.z2.norm(dim=1), torch.ones(16, dtype=b.z2.dtype))
    assert b.labels is not None and b.labels.shape == (16,)
    same = lab.synthetic_batch(16, dim=5, noise=0.0, seed=3)
    assert same.z1 is not None and torch.allclose(same.z1, same.z2)  # type: ignore[arg-type]
    again = lab.synthetic_batch(16, dim=5, noise=0.2, seed=3)
    assert again.z2 is not None and torch.equal(again.z2, b.z2)


def test_data_batch_keeps_images_labels_and_domains(domain_batch: lab.Batch) -> None:
    b = domain_batch
    assert b.z1 is not None and b.z1.shape == (20, 32)
    assert b.images is not None and b.images.shape == (2, 20, 1, 8, 8)
    assert b.labels is not None and b.domains is not None and b.domains.shape == (20,)
    assert b.cost_matrix("joint").shape == (40, 40)
    again = lab.data_batch("multidomain_digits", 20, seed=2, augment="standard")
    assert again.z1 is not None and torch.equal(again.z1, b.z1)


def test_data_batch_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="n must be at most"):
        lab.data_batch("digits", 5000)
    with pytest.raises(ValueError, match="encoder"):
        lab.data_batch("digits", 8, encoder="resnet")
    with pytest.raises(ValueError, match="n must be"):
        lab.synthetic_batch(1)


def test_batch_target_needs_its_side_information(batch: lab.Batch) -> None:
    with pytest.raises(ValueError, match="domain"):
        batch.target("domain")
    assert batch.target("class", gamma=0.5).shape == (24, 24)


# ---------------------------------------------------------------------- half-steps


@pytest.mark.parametrize("layout", ["cross", "joint"])
@pytest.mark.parametrize(("prior", "params"), TARGET_PRIORS)
def test_kl_to_the_target_never_increases(
    domain_batch: lab.Batch, layout: str, prior: str, params: dict[str, float]
) -> None:
    C = domain_batch.cost_matrix(layout)
    P_tgt = domain_batch.target(prior, layout, **params)
    steps = lab.half_steps(C, P_tgt, epsilon=0.1, n_iter=8)
    assert steps.plans.shape == (17, *C.shape)
    assert np.isfinite(steps.kl).all()
    rises = np.diff(steps.kl)
    assert (rises <= 1e-10 * np.abs(steps.kl[:-1])).all(), rises.max()
    assert steps.kl[-1] < steps.kl[0]


def test_half_step_zero_is_the_kernel_and_marginals_alternate(batch: lab.Batch) -> None:
    C = batch.cost_matrix()
    steps = lab.half_steps(C, None, epsilon=0.2, n_iter=5)
    np.testing.assert_allclose(steps.plans[0], torch.exp(-C / 0.2).numpy(), rtol=1e-12)
    np.testing.assert_allclose(steps.row_error[1::2], 0.0, atol=1e-10)  # after row steps
    np.testing.assert_allclose(steps.col_error[2::2], 0.0, atol=1e-10)  # after column steps
    np.testing.assert_allclose(steps.mu, np.ones(24))


def test_half_steps_are_infonce_then_gca_ince(batch: lab.Batch) -> None:
    assert batch.z1 is not None and batch.z2 is not None
    steps = lab.half_steps(batch.cost_matrix(), None, epsilon=0.15, n_iter=7)
    ince = float(losses.get("ince", epsilon=0.15)(batch.z1, batch.z2))
    gca = float(losses.get("gca_ince", epsilon=0.15, n_iter=7)(batch.z1, batch.z2))
    assert steps.kl[1] == pytest.approx(ince, rel=1e-10)
    assert steps.kl[-1] == pytest.approx(gca, rel=1e-10)


def test_generalized_kl_matches_the_formula() -> None:
    rng = np.random.default_rng(0)
    A = rng.random((5, 4)) * (rng.random((5, 4)) > 0.5)
    B = rng.random((5, 4)) + 0.01
    naive = 0.0
    for a, b in zip(A.ravel(), B.ravel(), strict=True):
        naive += (a * math.log(a / b) if a > 0 else 0.0) - a + b
    assert float(lab.generalized_kl(A, B)) == pytest.approx(naive / 5, rel=1e-12)
    stacked = lab.generalized_kl(A, np.stack([B, 2 * B]))
    assert stacked.shape == (2,)
    B0 = B.copy()
    B0[A > 0] = 0.0  # an underflowed plan on the target's support
    assert math.isinf(float(lab.generalized_kl(A, B0)))


def test_half_steps_match_sinkhorns_history_and_survive_underflow(batch: lab.Batch) -> None:
    C = batch.cost_matrix()
    steps = lab.half_steps(C, None, epsilon=0.05, n_iter=4)
    ones = torch.ones(24, dtype=torch.float64)
    res = ot.sinkhorn(C, ones, ones, epsilon=0.05, n_iter=4, history=True)
    for k, plan in enumerate(res.history, start=1):
        np.testing.assert_allclose(steps.plans[k], np.asarray(plan), rtol=1e-9, atol=1e-300)
    # float32 at a tiny ε: plans underflow to 0 off the diagonal, the KL stays exact
    small = lab.half_steps(C.float(), None, epsilon=0.004, n_iter=3, dtype=torch.float32)
    assert small.plans.dtype == np.float32 and (small.plans[1] == 0).any()
    assert np.isfinite(small.kl).all()
    exact = lab.half_steps(C, None, epsilon=0.004, n_iter=3)
    np.testing.assert_allclose(small.kl, exact.kl, rtol=1e-4)


# --------------------------------------------------------------------- method losses


def test_every_method_has_a_loss_and_gca_ince_is_at_most_ince(batch: lab.Batch) -> None:
    assert batch.z1 is not None and batch.z2 is not None
    found = lab.method_losses(batch.z1, batch.z2, epsilon=0.2, n_iter=10)
    assert [m.name for m in found] == list(losses.LOSSES)
    value = {m.name: m.value for m in found}
    assert all(math.isfinite(v) for v in value.values())
    assert value["gca_ince"] <= value["ince"]
    direct = float(losses.get("gca_uot", epsilon=0.2, n_iter=10)(batch.z1, batch.z2))
    assert value["gca_uot"] == pytest.approx(direct, rel=1e-12)


def test_losses_from_a_cost_agree_with_losses_from_embeddings(batch: lab.Batch) -> None:
    assert batch.z1 is not None and batch.z2 is not None
    settings = {"epsilon": 0.3, "n_iter": 6, "relax_a": 0.5, "relax_b": None}
    from_z = lab.method_losses(batch.z1, batch.z2, **settings)  # type: ignore[arg-type]
    from_c = lab.method_losses_from_cost(batch.cost_matrix(), **settings)  # type: ignore[arg-type]
    for a, b in zip(from_z, from_c, strict=True):
        assert a.name == b.name
        assert a.value == pytest.approx(b.value, rel=1e-10, abs=1e-12)


def test_solve_bundles_everything(domain_batch: lab.Batch) -> None:
    sol = lab.solve(
        domain_batch,
        epsilon=0.2,
        n_iter=4,
        target="domain",
        layout="joint",
        target_params={"alpha": 0.3, "beta": 0.0},
        relax_a=0.1,
        relax_b=1.0,
    )
    assert sol.cost.shape == sol.kernel.shape == sol.target.shape == (40, 40)
    assert np.isinf(np.diag(sol.cost)).all() and (np.diag(sol.kernel) == 0).all()
    assert set(sol.matrices) == {"cost", "kernel", "P1", "P2T", "unbalanced", "target"}
    eps = 0.2
    assert sol.rho == pytest.approx((0.1 / (0.1 + eps), 1.0 / (1.0 + eps)))
    # relaxed marginals: the unbalanced plan does not match μ exactly, the balanced one does
    assert not np.allclose(sol.unbalanced.sum(1), sol.steps.mu, rtol=1e-3)
    np.testing.assert_allclose(sol.steps.plans[-1].sum(0), sol.steps.nu, rtol=1e-10)
    with pytest.raises(ValueError, match="epsilon"):
        lab.solve(domain_batch, epsilon=0.0)
    with pytest.raises(ValueError, match="n_iter"):
        lab.solve(domain_batch, n_iter=0)
    with pytest.raises(ValueError, match="relax_a"):
        lab.solve(domain_batch, relax_a=-1.0)


# ------------------------------------------------------------------------- cells


def test_cell_info_reads_the_matrices_and_maps_views(batch: lab.Batch) -> None:
    sol = lab.solve(batch, epsilon=0.3, n_iter=3)
    info = lab.cell_info(3, 5, sol.matrices)
    for name, matrix in sol.matrices.items():
        assert info.values[name] == matrix[3, 5]
    assert (info.row_sample, info.row_view, info.col_sample, info.col_view) == (3, 1, 5, 2)
    assert not info.positive and lab.cell_info(4, 4, sol.matrices).positive
    joint = {"m": np.arange(64.0).reshape(8, 8)}
    cell = lab.cell_info(1, 6, joint, layout="joint")
    assert (cell.row_sample, cell.row_view, cell.col_sample, cell.col_view) == (1, 1, 2, 2)
    assert cell.values["m"] == 14.0
    assert lab.cell_info(1, 5, joint, layout="joint").positive  # partner(1) = 1 + N
    diagonal = lab.cell_info(6, 6, joint, layout="joint")  # view 2 of sample 2 vs itself
    assert diagonal.self_pair and not diagonal.positive
    assert not cell.self_pair and not lab.cell_info(4, 4, sol.matrices).self_pair  # (cross)
    with pytest.raises(ValueError, match="i must be in"):
        lab.cell_info(24, 0, sol.matrices)
    with pytest.raises(ValueError, match="j must be an integer"):
        lab.cell_info(0, 1.5, sol.matrices)  # type: ignore[arg-type]


def test_downsample_block_averages_and_keeps_the_mass() -> None:
    rng = np.random.default_rng(1)
    M = rng.random((300, 260))
    M[5, 5] = np.inf  # an excluded pair counts as missing
    small = lab.downsample(M, max_size=128)
    f = lab.display_factor(M.shape, 128)
    assert f == 3 and small.shape == (100, 87)
    counts = np.zeros_like(small)
    finite = np.isfinite(M)
    for bi in range(small.shape[0]):
        for bj in range(small.shape[1]):
            counts[bi, bj] = finite[bi * f : (bi + 1) * f, bj * f : (bj + 1) * f].sum()
    assert np.nansum(small * counts) == pytest.approx(M[finite].sum(), rel=1e-12)
    assert small[0, 0] == pytest.approx(M[:3, :3].mean())
    same = lab.downsample(M[:100, :100], max_size=128)
    assert same.shape == (100, 100) and np.array_equal(same, M[:100, :100])
    with pytest.raises(ValueError, match="max_size"):
        lab.downsample(M, max_size=0)
    with pytest.raises(ValueError, match="matrix"):
        lab.downsample(np.ones(5))


# ------------------------------------------------------------------------ sweeps


@pytest.fixture(scope="module")
def eps_sweep(batch: lab.Batch) -> lab.EpsilonSweep:
    return lab.sweep_epsilon(
        batch.cost_matrix(),
        lab.log_epsilons(0.03, 2.0, 8),
        n_iter=5,
        tol=1e-6,
        max_iter=3000,
        relax_a=0.3,
        relax_b=0.2,
    )


def test_entropy_rises_and_the_plan_spreads_with_epsilon(eps_sweep: lab.EpsilonSweep) -> None:
    assert (np.diff(eps_sweep.entropy) > 0).all()
    assert (np.diff(eps_sweep.top_mass) < 0).all()
    n = eps_sweep.n_rows
    assert math.log(n) - 1e-9 <= eps_sweep.entropy.min()
    assert eps_sweep.entropy.max() <= math.log(n * eps_sweep.n_cols) + 1e-9
    assert eps_sweep.exact_entropy == pytest.approx(math.log(n))  # a permutation


def test_distance_to_exact_shrinks_as_epsilon_shrinks(eps_sweep: lab.EpsilonSweep) -> None:
    assert (np.diff(eps_sweep.distance) > 0).all()
    assert eps_sweep.distance[0] < 0.5 * eps_sweep.distance[-1]


def test_contraction_and_iterations(eps_sweep: lab.EpsilonSweep) -> None:
    np.testing.assert_allclose(eps_sweep.contraction_unbalanced, eps_sweep.rho, rtol=0.05)
    rho = (0.3 / (0.3 + eps_sweep.epsilons)) * (0.2 / (0.2 + eps_sweep.epsilons))
    np.testing.assert_allclose(eps_sweep.rho, rho, rtol=1e-12)
    assert np.isfinite(eps_sweep.iterations).all()
    assert (np.diff(eps_sweep.iterations) <= 0).all()  # larger ε: fewer sweeps
    measured = eps_sweep.contraction[np.isfinite(eps_sweep.contraction)]
    assert measured.size >= 4 and (np.diff(measured) <= 1e-6).all()
    assert (np.diff(eps_sweep.predicted) <= 0).all() and (eps_sweep.predicted <= 1).all()
    assert (eps_sweep.gca_ince <= eps_sweep.ince + 1e-12).all()
    for errors in eps_sweep.errors:
        assert errors[-1] <= errors[0]


def test_sweep_losses_are_the_loss_modules(batch: lab.Batch, eps_sweep: lab.EpsilonSweep) -> None:
    assert batch.z1 is not None and batch.z2 is not None
    eps = float(eps_sweep.epsilons[3])
    ince = float(losses.get("ince", epsilon=eps)(batch.z1, batch.z2))
    gca = float(losses.get("gca_ince", epsilon=eps, n_iter=5)(batch.z1, batch.z2))
    assert eps_sweep.ince[3] == pytest.approx(ince, rel=1e-10)
    assert eps_sweep.gca_ince[3] == pytest.approx(gca, rel=1e-10)


def test_sweep_table_and_csv(eps_sweep: lab.EpsilonSweep) -> None:
    cols = eps_sweep.columns()
    assert all(len(v) == 8 for v in cols.values())
    text = lab.to_csv(cols)
    lines = text.strip().split("\n")
    assert lines[0].split(",") == list(cols) and len(lines) == 9
    assert float(lines[1].split(",")[0]) == pytest.approx(0.03)


def test_iteration_sweep_approaches_the_entropic_plan(batch: lab.Batch) -> None:
    sw = lab.sweep_iterations(batch.cost_matrix(), 0.1, range(1, 16))
    assert (np.diff(sw.distance_converged) < 0).all()
    assert (np.diff(sw.gca_ince) <= 1e-12).all()
    assert sw.gca_ince[0] <= sw.ince and sw.converged_loss <= sw.gca_ince[-1] + 1e-12
    assert sw.marginal_error[-1] < sw.marginal_error[0]
    assert next(iter(sw.columns())) == "T"


def test_every_sweep_column_has_a_reader_label(batch: lab.Batch) -> None:
    """The Entropy page's tables showed the CSV's keys ("contraction_unbalanced_measured"),
    cut at 1280 px; each column now has a label, the CSV keeps its keys."""
    C = batch.cost_matrix()
    tables = [lab.sweep_epsilon(C, [0.2, 0.5], n_iter=3).columns(),
              lab.sweep_iterations(C, 0.5, [1, 2]).columns()]  # fmt: skip
    for columns in tables:
        labels = [lab.sweeps.column_label(k) for k in columns]
        assert all(label != key for label, key in zip(labels, columns, strict=True)), labels
        assert len(set(labels)) == len(labels)
    assert lab.sweeps.column_label("gca_ince_T3") == "GCA-INCE (T = 3)"


def test_the_iteration_sweep_says_what_it_measured(batch: lab.Batch) -> None:
    """A fixed caption ("shrinks geometrically", "most of the gain comes in the first few
    sweeps") was false at ε = 0.005, where 100 sweeps leave the plan far from P_ε. The
    captions now follow the numbers: converged at ε = 0.5, far from it at ε = 0.005."""
    C = batch.cost_matrix()
    warm = lab.sweep_iterations(C, 0.5, range(1, 41))
    distances, loss = warm.describe()
    assert warm.distance_converged[-1] <= lab.iterations.CONVERGED_L1
    assert "the plan has converged" in distances and "entropic bias" in distances
    assert loss.endswith("by T = 40 the loss has settled (within 0.1% of its gain).")
    share = (warm.ince - warm.gca_ince[2]) / (warm.ince - warm.converged_loss)
    assert f"{share:.0%} of the gain comes in the first 3 sweeps" in loss
    cold = lab.sweep_iterations(C, 0.005, [1, 2, 3, 5, 10, 20])
    distances, loss = cold.describe()
    assert cold.distance_converged[-1] > lab.iterations.CONVERGED_L1
    assert "converges slowly" in distances and "the plan is still moving" in distances
    assert "still far" not in distances  # (it said so of a distance of 0.0019 to P_ε)
    # the distance to P*₀ still falls here: only P_ε's own distance to it is ε's bias (the
    # caption called all of it bias, "which no number of sweeps removes", at ε = 0.01)
    assert f"falls to {cold.distance_exact[-1]:.2g} by T = 20" in distances
    assert f": {cold.bias:.2g} of it is ε's entropic bias (the distance of P_ε" in distances
    rest = cold.distance_exact[-1] > 1.5 * cold.bias
    assert ("more sweeps remove the rest" in distances) == rest
    assert not cold.reference_converged and cold.reference_error > 0
    assert "even that has not converged" in distances
    assert "nats still to go" in loss and "by T = 20 it has made" in loss
    # The loss settles before the plan: side by side, the captions said "not yet converged"
    # of the plan and "it has converged" of the loss (a contradiction to a student's eye).
    middle = lab.sweep_iterations(C, 0.1, range(1, 31))
    distances, loss = middle.describe()
    assert middle.distance_converged[-1] > lab.iterations.CONVERGED_L1
    assert "the plan is still moving" in distances
    # all of the distance is bias: "stays near 0.89, of which 0.89 is ε's entropic bias"
    # read as a template fault to a student
    assert f"{middle.bias:.2g}" == f"{middle.distance_exact[-1]:.2g}"  # (1.2 and 1.2)
    assert "stays near 1.2: almost all of it is ε's entropic bias" in distances, distances
    assert f"stays near {middle.distance_exact[-1]:.2g}" in distances  # all of it bias here
    assert middle.reference_converged and "not converged" not in distances
    assert loss.endswith("the loss has settled (within 0.1% of its gain), while the plan "
                         "still moves: the loss settles first.")  # fmt: skip


def test_the_unbalanced_rate_is_compared_with_rho1_rho2_only_where_measurable(
    batch: lab.Batch,
) -> None:
    """Near the solution relaxed marginals contract by ρ₁ρ₂ per sweep; where that is tiny
    the error reaches rounding in a few sweeps and the measured ratio reads the rounding
    (1.25e-4 against ρ₁ρ₂ = 2.5e-7 at λ = 0.001, ε = 2: a page said "within 50070%")."""
    C = batch.cost_matrix()
    slow = lab.sweep_epsilon(C, [0.05, 0.1], relax_a=1.0, relax_b=1.0)
    gap = slow.unbalanced_gap()
    assert gap is not None and gap < 0.05
    fast = lab.sweep_epsilon(C, [0.5, 2.0], relax_a=0.001, relax_b=0.001)
    assert (fast.rho < lab.sweeps.MEASURABLE_RATE).all() and fast.unbalanced_gap() is None


def test_sweeps_reject_bad_input(batch: lab.Batch) -> None:
    C = batch.cost_matrix()
    with pytest.raises(ValueError, match="eps_min"):
        lab.log_epsilons(0.0, 1.0, 5)
    with pytest.raises(ValueError, match="eps_max"):
        lab.log_epsilons(1.0, 0.5, 5)
    with pytest.raises(ValueError, match="epsilons"):
        lab.sweep_epsilon(C, [0.1, -1.0])
    with pytest.raises(ValueError, match="tol"):
        lab.sweep_epsilon(C, [0.1], tol=0.0)
    with pytest.raises(ValueError, match="iterations"):
        lab.sweep_iterations(C, 0.1, [0, 1])
    with pytest.raises(ValueError, match="cost"):
        lab.sweep_iterations(np.full((3, 3), np.nan), 0.1, [1])
    with pytest.raises(ValueError, match="target"):
        lab.half_steps(C, np.zeros((24, 24)))


def test_rough_contraction_and_sparsity_measures() -> None:
    C = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert lab.rough_contraction(C, 0.5) == pytest.approx(math.tanh(1.0) ** 2)
    assert lab.top_mass(np.eye(4)) == 1.0 and lab.top_mass(np.ones((4, 4))) == 0.25
    assert lab.support_fraction(np.eye(4)) == 0.25
    assert lab.l1_distance(np.eye(2), 3 * np.eye(2)) == 0.0
    assert lab.l1_distance(np.eye(2), np.ones((2, 2))) == pytest.approx(1.0)


# ------------------------------------------------------------------- run sources


def _add_run(store: RunStore, config: dict[str, object]) -> int:
    """A finished run row written straight into the store (no process is started)."""
    with sqlite3.connect(store.db_path) as db:
        cur = db.execute(
            "INSERT INTO runs (name, config, status, created, step) VALUES (?, ?, ?, ?, ?)",
            ("test run", json.dumps(config), "finished", time.time(), 40),
        )
        run_id = int(cur.lastrowid or 0)
    store.run_dir(run_id).mkdir(parents=True, exist_ok=True)
    return run_id


def _add_snapshot(store: RunStore, run_id: int, step: int, arrays: dict[str, np.ndarray]) -> Path:
    rel = Path(f"run-{run_id}") / "snapshots" / f"{step:07d}_plan.npz"
    (store.dir / rel).parent.mkdir(parents=True, exist_ok=True)
    np.savez(store.dir / rel, **arrays)  # type: ignore[arg-type]
    with sqlite3.connect(store.db_path) as db:
        db.execute(
            "INSERT INTO snapshots (run_id, step, kind, file) VALUES (?, ?, 'plan', ?)",
            (run_id, step, str(rel)),
        )
    return store.dir / rel


def test_snapshot_batch_reads_the_latest_plan_snapshot(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    cfg = {"method": "gca_ince", "layout": "joint", "loss_params": {"epsilon": 0.3}}
    run_id = _add_run(store, cfg)
    assert lab.snapshot_batch(store, run_id) is None  # nothing written yet
    assert lab.snapshot_runs(store) == {}
    z = torch.nn.functional.normalize(torch.randn(12, 4, dtype=torch.float64), dim=1)
    C = ot.cosine_cost(z, exclude_self=True).numpy().astype(np.float32)  # (12, 12), joint N=6
    _add_snapshot(store, run_id, 10, {"cost": C[::-1].copy(), "y": np.arange(6)})
    _add_snapshot(store, run_id, 20, {"cost": C, "y": np.arange(6), "plan": np.ones((12, 12))})
    b = lab.snapshot_batch(store, run_id)
    assert b is not None and b.layout == "joint" and b.n == 6 and b.z1 is None
    assert b.meta == {"step": 20.0, "epsilon": 0.3}
    np.testing.assert_array_equal(b.cost_matrix("joint").numpy(), C.astype(np.float64))
    with pytest.raises(ValueError, match="layout"):
        b.cost_matrix("cross")
    assert list(lab.snapshot_runs(store)) == [run_id]
    sol = lab.solve(b, epsilon=0.3, n_iter=3, layout="joint", target="class")
    assert np.diff(sol.steps.kl).max() <= 1e-10 and len(sol.losses) == len(losses.LOSSES)


def test_snapshot_batch_errors_name_the_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match="run_id: no run with id 7"):
        lab.snapshot_batch(store, 7)
    run_id = _add_run(store, {"layout": "cross"})
    path = _add_snapshot(store, run_id, 5, {"cost": np.zeros((4, 4))})
    path.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match=r"run_id: the plan snapshot .* unreadable"):
        lab.snapshot_batch(store, run_id)
    path.unlink()
    with pytest.raises(ValueError, match="missing or unreadable"):
        lab.snapshot_batch(store, run_id)
    _add_snapshot(store, run_id, 6, {"plan": np.zeros((4, 4))})  # no cost in it
    with pytest.raises(ValueError, match="no square cost"):
        lab.snapshot_batch(store, run_id)


def test_trained_encoder_embeds_with_the_runs_weights(tmp_path: Path) -> None:
    store = RunStore(tmp_path)
    cfg = {
        "dataset": "digits",
        "encoder": "mlp",
        "out_dim": 8,
        "head_hidden": 16,
        "encoder_params": {"hidden": 32, "depth": 1},
        "augment": "none",
    }
    run_id = _add_run(store, cfg)
    with pytest.raises(ValueError, match="no checkpoint"):
        lab.trained_encoder(store, run_id)
    torch.manual_seed(5)
    model = models.ContrastiveModel("mlp", (1, 8, 8), out_dim=8, head_hidden=16, hidden=32, depth=1)
    torch.save({"model": model.state_dict()}, store.run_dir(run_id) / "checkpoint.pt")
    assert list(lab.checkpoint_runs(store)) == [run_id]
    enc = lab.trained_encoder(store, run_id)
    b = lab.data_batch(n=10, seed=0, encoder=enc)
    assert b.z1 is not None and b.z2 is not None and b.z1.shape == (10, 8)
    assert torch.allclose(b.z1, b.z2)  # augment "none": the two views coincide
    assert f"run #{run_id}" in b.source
    (store.run_dir(run_id) / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="unreadable"):
        lab.trained_encoder(store, run_id)


def test_a_run_on_an_upload_names_its_data_as_the_user_sent_it(tmp_path: Path) -> None:
    """Plan lab's caption named a run's upload by its stored name with the content hash
    ("64 strlabel-b4753d70fb5d samples") where every other page says "strlabel.npz"."""
    import io

    from gca_viz import userdata

    store = RunStore(tmp_path)
    buffer = io.BytesIO()
    rng = np.random.default_rng(0)
    np.savez(buffer, x=rng.normal(size=(30, 5)).astype(np.float32), y=np.arange(30) % 3)
    upload = userdata.save_upload(
        buffer.getvalue(), "my data.npz", store.dir / userdata.UPLOADS, max_bytes=1 << 20
    )
    cfg = {"dataset": str(upload), "encoder": "mlp", "out_dim": 4, "head_hidden": 8,
           "encoder_params": {"hidden": 8, "depth": 1}, "augment": "none"}  # fmt: skip
    run_id = _add_run(store, cfg)
    model = models.ContrastiveModel("mlp", (5,), out_dim=4, head_hidden=8, hidden=8, depth=1)
    torch.save({"model": model.state_dict()}, store.run_dir(run_id) / "checkpoint.pt")
    b = lab.data_batch(n=10, seed=0, encoder=lab.trained_encoder(store, run_id))
    assert b.source.startswith("10 my_data.npz samples"), b.source


def test_largest_rise_reads_rounding_as_zero_and_keeps_real_rises() -> None:
    from gca_viz.lab import largest_rise

    change, rounding = largest_rise(np.array([9.0, 2.5, 2.5 + 4.4e-16, 2.4]))
    assert change == 0.0 and rounding == pytest.approx(64 * np.finfo(float).eps * 2.5)
    assert largest_rise(np.array([9.0, 2.5, 2.5 + 1e-6, 2.4]))[0] == pytest.approx(1e-6)
    assert largest_rise(np.array([9.0, 2.5, 2.4, 2.3]))[0] == pytest.approx(-0.1)
    with pytest.raises(ValueError, match="kl"):
        largest_rise(np.array([1.0, 0.5]))


def test_the_marginals_caption_follows_the_measured_error() -> None:
    """The caption of P^(2T) said "both marginals (nearly) hold" at any ε and T; at a small
    ε after few sweeps the error is large and the caption must say so."""
    batch = lab.synthetic_batch(n=48, noise=0.3, seed=2)
    slow = lab.solve(batch, epsilon=0.01, n_iter=1).steps
    assert slow.relative_error[-1] > lab.plans.MARGINALS_HOLD
    words = slow.marginals_words()
    assert "T = 1 sweep the marginals are still off" in words and "raise T" in words
    assert f"{slow.relative_error[-1]:.2g}" in words and "ε = 0.01" in words
    done = lab.solve(batch, epsilon=0.5, n_iter=50).steps
    assert done.relative_error[-1] <= lab.plans.MARGINALS_HOLD
    assert done.marginals_words().startswith("After T = 50 sweeps both marginals hold")


def test_a_target_on_excluded_pairs_is_refused_by_name() -> None:
    """A joint-layout cost excludes the self-pairs (C_ii = +inf); the default identity
    target put its mass there and every half-step's KL came back inf, silently (and the KL
    chart drew nothing). Now a ValueError names the target and the pair target to use."""
    from gca_viz import targets

    gen = torch.Generator().manual_seed(2)
    z = torch.nn.functional.normalize(torch.randn(8, 3, generator=gen, dtype=torch.float64), dim=1)
    C = ot.cosine_cost(z, z, exclude_self=True)
    with pytest.raises(ValueError, match=r"target: the default target .*pair_target\(N, 'joint'\)"):
        lab.half_steps(C, epsilon=0.3, n_iter=3)
    pairs = targets.pair_target(4, "joint")
    one_self = pairs.clone()
    one_self[5, 5] = 0.1
    with pytest.raises(ValueError, match=r"target: target puts mass on 1 pair.*at \(5, 5\)"):
        lab.half_steps(C, one_self, epsilon=0.3, n_iter=3)
    kl = lab.half_steps(C, pairs, epsilon=0.3, n_iter=3).kl
    assert np.isfinite(kl).all() and (np.diff(kl[1:]) <= 1e-12).all()
