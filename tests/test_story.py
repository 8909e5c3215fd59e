"""The story's mathematics (gca_viz.story): each fact the Story page states, checked on
batches, with independent computations compared."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from gca_viz import demo, lab, losses, ot, story
from gca_viz.runs import RunStore


@pytest.fixture(scope="module")
def batch() -> lab.Batch:
    return story.story_batch("synthetic", n=24, seed=3)


def pairs(batch: lab.Batch, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    assert batch.z1 is not None and batch.z2 is not None
    return batch.z1.to(dtype), batch.z2.to(dtype)


# ---------------------------------------------------------------- step 1: INCE = KL(I||P1)


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 1e-6), (torch.float64, 1e-10)])
@pytest.mark.parametrize("epsilon", [0.05, 0.2, 1.0])
def test_infonce_equals_kl_to_the_first_half_step(
    batch: lab.Batch, dtype: torch.dtype, tol: float, epsilon: float
) -> None:
    z1, z2 = pairs(batch, dtype)
    check = story.ince_as_kl(z1, z2, epsilon)
    assert abs(check.difference) < tol * max(1.0, check.kl)
    assert check.cross_entropy == pytest.approx(check.kl, rel=tol, abs=tol)
    assert check.sinkhorn_gap < tol
    # P^(1) is row-stochastic and the KL is its mean -log diagonal
    assert np.allclose(check.plan.sum(1), 1.0, atol=10 * tol)
    assert check.kl == pytest.approx(float(np.mean(-np.log(np.diag(check.plan)))), rel=1e-5)


def test_infonce_by_a_naive_loop(batch: lab.Batch) -> None:
    """The formula written out with Python loops agrees with both sides."""
    z1, z2 = pairs(batch, torch.float64)
    eps = 0.3
    a = (z1 / z1.norm(dim=1, keepdim=True)).numpy()
    b = (z2 / z2.norm(dim=1, keepdim=True)).numpy()
    n = len(a)
    total = 0.0
    for i in range(n):
        logits = [float(a[i] @ b[j]) / eps for j in range(n)]
        total += -logits[i] + math.log(sum(math.exp(v) for v in logits))
    check = story.ince_as_kl(z1, z2, eps)
    assert check.kl == pytest.approx(total / n, rel=1e-12)
    assert check.infonce == pytest.approx(total / n, rel=1e-12)


# ------------------------------------------------------------------- step 2: monotone KL


@pytest.mark.parametrize("epsilon", [0.03, 0.1, 0.5, 2.0])
def test_half_step_kl_never_increases(batch: lab.Batch, epsilon: float) -> None:
    z1, z2 = pairs(batch, torch.float64)
    mono = story.monotone_alignment(ot.cosine_cost(z1, z2), epsilon, n_iter=15)
    assert mono.kl.shape == (31,)
    assert np.all(np.diff(mono.kl) <= 1e-12)
    assert mono.max_increase <= 1e-12
    assert mono.gca <= mono.ince
    assert np.all(mono.step_kl >= -1e-12)
    assert mono.max_residual < 1e-9 * max(1.0, mono.kl[0])
    k, drop = mono.largest_drop
    assert drop == pytest.approx(mono.kl[k] - mono.kl[k + 1]) and drop == mono.drops.max()


def test_monotone_curve_ends_are_the_two_losses(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    mono = story.monotone_alignment(ot.cosine_cost(z1, z2), 0.2, n_iter=7)
    ince = float(losses.get("ince", epsilon=0.2)(z1, z2))
    gca = float(losses.get("gca_ince", epsilon=0.2, n_iter=7)(z1, z2))
    assert mono.ince == pytest.approx(ince, rel=1e-10)
    assert mono.gca == pytest.approx(gca, rel=1e-10)
    # and the same curve as the plan lab's half-steps
    steps = lab.half_steps(ot.cosine_cost(z1, z2), None, 0.2, 7)
    assert np.allclose(mono.kl, steps.kl, rtol=1e-10)


def test_monotone_with_a_class_prior(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    target = batch.target("class", gamma=0.3)
    mono = story.monotone_alignment(ot.cosine_cost(z1, z2), 0.1, n_iter=10, target=target)
    assert np.all(np.diff(mono.kl) <= 1e-12)
    assert mono.max_residual < 1e-9


# ------------------------------------------------------------ step 3: the split and hubs


@pytest.mark.parametrize("epsilon", [0.05, 0.2, 1.0])
def test_alignment_plus_repulsion_is_the_loss(batch: lab.Batch, epsilon: float) -> None:
    z1, z2 = pairs(batch, torch.float64)
    au = story.alignment_repulsion(z1, z2, epsilon, n_iter=10)
    for part in (au.ince, au.gca):
        assert part.row_residual < 1e-10
        assert part.loss_residual < 1e-10
    # one cost, so one alignment term; only the repulsion term differs
    assert np.array_equal(au.ince.alignment, au.gca.alignment)
    assert np.mean(au.gca.repulsion) <= np.mean(au.ince.repulsion) + 1e-12
    # INCE's repulsion is the log-partition function log sum_j exp(-C_ij/eps)
    C = ot.cosine_cost(z1, z2)
    assert np.allclose(au.ince.repulsion, torch.logsumexp(-C / epsilon, dim=1).numpy())
    assert au.ince.alignment == pytest.approx(np.diag(C.numpy()) / epsilon)


def test_split_in_the_joint_layout(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    out = losses.get("ince", epsilon=0.2, layout="joint").inspect(z1, z2)
    part = story.split_loss(out, layout="joint")
    assert part.alignment.shape == (2 * batch.n,)
    assert part.row_residual < 1e-10 and part.loss_residual < 1e-10


def test_hubs_vanish_after_sinkhorn(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    au = story.alignment_repulsion(z1, z2, 0.1, n_iter=30)
    hubs = au.hubs
    assert hubs.gini_before > 0.01
    assert hubs.gini_after < 1e-8
    assert hubs.ratio_before > 1.2
    assert hubs.ratio_after == pytest.approx(1.0, abs=1e-8)
    assert hubs.before.sum() == pytest.approx(batch.n)
    assert hubs.before[hubs.top_hub] == hubs.before.max()


def test_gini() -> None:
    assert story.gini([1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert story.gini([0.0, 0.0, 0.0, 4.0]) == pytest.approx(0.75)
    rng = np.random.default_rng(0)
    x = rng.random(9)
    naive = np.abs(x[:, None] - x[None, :]).sum() / (2 * len(x) * x.sum())
    assert story.gini(x) == pytest.approx(naive)
    for bad in ([], [-1.0, 2.0], [0.0, 0.0], [np.nan, 1.0]):
        with pytest.raises(ValueError, match="values"):
            story.gini(bad)


# -------------------------------------------------------- step 4: ε and relaxed marginals


def test_entropy_falls_with_epsilon(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    C = ot.cosine_cost(z1, z2)
    plans = [story.entropy_plan(C, eps, n_iter=200) for eps in (0.02, 0.1, 0.5, 5.0)]
    entropies = [p.entropy for p in plans]
    assert entropies == sorted(entropies)
    for p in plans:
        assert p.low - 1e-9 <= p.entropy <= p.high + 1e-9
        assert 1.0 - 1e-9 <= p.partners <= batch.n + 1e-9
    assert plans[-1].partners > 0.9 * batch.n  # nearly uniform at large ε
    assert plans[1].marginal_error < 1e-6  # converged at ε = 0.1 (not yet at ε = 0.02)


def test_relaxed_mass_changes_with_lambda(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    C = ot.cosine_cost(z1, z2)
    masses = [story.relaxed_marginals(C, 0.2, lam).mass for lam in (0.01, 0.1, 1.0, 10.0)]
    assert len(set(np.round(masses, 6))) == 4
    hard = story.relaxed_marginals(C, 0.2, None)
    assert hard.mass == pytest.approx(batch.n, rel=1e-9)
    assert hard.predicted == 1.0
    assert np.allclose(hard.col_sums, 1.0) and np.allclose(hard.row_sums, 1.0, atol=1e-6)
    # λ -> 0 leaves the kernel: its mass is sum K
    tiny = story.relaxed_marginals(C, 0.2, 1e-6)
    assert tiny.mass == pytest.approx(float(torch.exp(-C / 0.2).sum()), rel=1e-3)


def test_relaxed_shares_compare_where_the_drifting_mass_does_not(batch: lab.Batch) -> None:
    """The unbalanced plan's mass drifts toward ΣK, so the row sums rose above 1 together
    and a row keeping less did not show below the dashed line. Its shares do: they average
    1 whatever the total and are all 1 for the balanced plan; a row's sum is
    ``μ_i^ρ ((K v)_i)^(1-ρ)``, so the rows that keep least are those with the least kernel
    mass (they match nothing well), whatever their positive's cost."""
    from scipy.stats import spearmanr

    z1, z2 = pairs(batch, torch.float64)
    C = ot.cosine_cost(z1, z2)
    rel = story.relaxed_marginals(C, 0.2, 0.05)
    assert rel.row_shares.mean() == pytest.approx(1.0, rel=1e-12)
    assert rel.col_shares.mean() == pytest.approx(1.0, rel=1e-12)
    assert rel.rows_below(1.0) == int((rel.row_shares < 1).sum()) > 0
    kernel_mass = torch.exp(-C / 0.2).sum(1).numpy()
    assert spearmanr(rel.row_shares, kernel_mass).statistic > 0.9
    hard = story.relaxed_marginals(C, 0.2, None)
    assert np.allclose(hard.row_shares, 1.0, atol=1e-6) and hard.rows_below(0.999) == 0


@pytest.mark.parametrize("lam", [0.1, 1.0, 10.0])
def test_measured_contraction_matches_rho(batch: lab.Batch, lam: float) -> None:
    z1, z2 = pairs(batch, torch.float64)
    rel = story.relaxed_marginals(ot.cosine_cost(z1, z2), 0.2, lam)
    assert rel.rho[0] == pytest.approx(lam / (lam + 0.2))
    assert math.isfinite(rel.contraction)
    assert rel.contraction <= rel.predicted * (1 + 1e-3)
    assert rel.contraction == pytest.approx(rel.predicted, rel=0.05)


def test_step_functions_reject_bad_parameters(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    C = ot.cosine_cost(z1, z2)
    with pytest.raises(ValueError, match="epsilon"):
        story.ince_as_kl(z1, z2, 0.0)
    with pytest.raises(ValueError, match="n_iter"):
        story.monotone_alignment(C, 0.1, n_iter=0)
    with pytest.raises(ValueError, match="lam"):
        story.relaxed_marginals(C, 0.1, -1.0)
    with pytest.raises(ValueError, match="epsilon"):
        story.entropy_plan(C, -0.1)


# ---------------------------------------------------------------------- step 5: methods


def test_methods_table_and_outputs(batch: lab.Batch) -> None:
    z1, z2 = pairs(batch, torch.float64)
    rows = story.methods_table()
    assert [r["method"] for r in rows] == [m.title for m in losses.LOSSES.values()]
    assert {"d_M", "d_Γ", "B"} <= set(rows[0])
    assert [r["reference"] for r in rows] == [m.reference for m in losses.LOSSES.values()]
    notes = story.methods_notes()  # a preset's provenance, under the table
    assert notes == [
        f"GCA-UOT: {losses.LOSSES['gca_uot'].note}",
        f"IOT: {losses.LOSSES['iot'].note}",
    ]
    assert "r₂ 0.2" in notes[0] and "the same loss as GCA-INCE in the joint layout" in notes[1]
    assert losses.LOSSES["gca_uot"].provenance.startswith("Chen et al. 2024 (GCA); preset ε")
    values = {}
    for name in losses.LOSSES:
        out = story.method_output(name, z1, z2, 0.2, 5)
        assert out.plan.shape == (batch.n, batch.n)
        values[name] = float(out.loss)
    assert values["gca_ince"] <= values["ince"]
    assert values["ince"] == pytest.approx(story.ince_as_kl(z1, z2, 0.2).kl, rel=1e-10)
    # BYOL has no normalisation: its plan is the kernel
    byol = story.method_output("byol", z1, z2, 0.2, 5)
    assert torch.allclose(byol.plan, torch.exp(-ot.cosine_cost(z1, z2) / 0.2))


# ------------------------------------------------------------------------------ batches


def test_embeddings_from_a_joint_cost_are_exact() -> None:
    b = story.story_batch("synthetic", n=10, seed=0)
    z1, z2 = pairs(b, torch.float64)
    joint = ot.cosine_cost(torch.cat([z1, z2]), exclude_self=True)
    r1, r2, error = story.embeddings_from_cost(joint)
    assert error < 1e-10
    assert torch.allclose(ot.cosine_cost(r1, r2), ot.cosine_cost(z1, z2), atol=1e-10)
    with pytest.raises(ValueError, match="joint"):
        story.embeddings_from_cost(np.zeros((5, 5)))


def test_demo_batch_from_the_shipped_run(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "runs")
    assert story.story_batch("demo", 16, 0, store).meta.get("fallback") == 1.0
    demo.install(store)
    b = story.demo_batch(store, n=16, seed=0)
    assert b is not None and b.z1 is not None and b.z2 is not None and b.labels is not None
    assert b.n == 16 and b.z1.dtype == torch.float32
    assert np.all(np.diff(b.labels) >= 0)  # sorted by class
    assert b.meta["rebuild_error"] < 1e-5
    assert story.demo_batch(store, n=16, seed=1).labels is not None
    big = story.demo_batch(store, n=1000)
    assert big is not None and big.n == int(big.meta["available"])
    # the rebuilt embeddings reproduce the loss the run recorded on that batch (joint, ε = 0.5)
    assert big.z1 is not None and big.z2 is not None
    run = next(r for r in store.list_runs() if r.name == story.STORY_RUN)
    arrays = store.load_snapshot(store.dir / store.snapshots(run.id, "plan")[-1][1])
    assert arrays is not None
    again = losses.get("ince", layout="joint")(big.z1, big.z2)
    assert float(again) == pytest.approx(float(arrays["diag_loss"]), rel=1e-5)
    assert story.story_batch("demo", 8, 0, store).meta.get("fallback") is None


def test_demo_batch_through_a_checkpoint(tmp_path: Path) -> None:
    """With a checkpoint, fresh samples go through the run's encoder (any N up to the data)."""
    from gca_viz import models
    from gca_viz.train import TrainConfig

    store = RunStore(tmp_path / "runs")
    demo.install(store)
    run = next(r for r in store.list_runs() if r.name == story.STORY_RUN)
    cfg = TrainConfig.from_dict(run.config)
    model = models.ContrastiveModel(cfg.encoder, (64,), out_dim=cfg.out_dim)
    torch.save({"model": model.state_dict()}, store.run_dir(run.id) / "checkpoint.pt")
    b = story.demo_batch(store, n=100, seed=2)
    assert b is not None and b.n == 100 and b.z1 is not None and b.z1.shape == (100, 3)
    assert b.images is not None and b.labels is not None and np.all(np.diff(b.labels) >= 0)
    assert "demo-ince" in b.source


def test_story_batch_sources() -> None:
    for source in ("digits", "multidomain_digits", "synthetic"):
        b = story.story_batch(source, 8, 0)
        assert b.n == 8 and b.z1 is not None
    assert story.story_batch("multidomain_digits", 8, 0).domains is not None
    with pytest.raises(ValueError, match="source"):
        story.story_batch("cifar", 8)
    with pytest.raises(ValueError, match="n"):
        story.story_batch("synthetic", 1)


# ------------------------------------------------------------------------- the composer


def test_stage_params_and_latex() -> None:
    stages = {"cost": "cosine", "target": "class", "projection": "unbalanced", "divergence": "uot"}
    names = [p.name for _, p in story.stage_params(stages)]
    assert names[:1] == ["gamma"]
    assert {"epsilon", "n_iter", "relax_a", "relax_b", "r1", "r2", "q", "lam"} <= set(names)
    assert len(names) == len(set(names))
    tex = story.composed_latex(stages)
    assert r"\text{uot}" in tex and r"\text{unbalanced}" in tex and r"\text{class}" in tex
    other = story.composed_latex({**stages, "divergence": "ce_uniform"})
    assert r"\text{ce\_uniform}" in other and other != tex
    with pytest.raises(ValueError, match="divergence"):
        story.composed_latex({**stages, "divergence": "nope"})


def test_matching_method() -> None:
    base = {"cost": "cosine", "target": "pairs", "projection": "sinkhorn", "divergence": "kl"}
    assert story.matching_method(base, {}) == "gca_ince"
    assert story.matching_method({**base, "projection": "row"}, {}) == "ince"
    rince = {**base, "divergence": "rince"}
    assert story.matching_method(rince, {"end": "row"}) == "gca_rince"
    assert story.matching_method(rince, {"end": "column"}) is None
    # a preset's numbers may differ: RINCE with q = 0.6 (the composer's default) was "a new
    # loss" beside the methods table's RINCE; it is RINCE, at other numbers
    row_rince = {**rince, "projection": "row"}
    assert story.matching_method(row_rince, {"q": 0.6, "lam": 0.01}) == "rince"
    said = story.describe_composition(row_rince, {"q": 0.6, "lam": 0.01, "epsilon": 0.5})
    assert "**RINCE**" in said and "q = 1 (here 0.6)" in said and "new loss" not in said
    variant = story.describe_composition(rince, {"end": "column", "q": 1.0, "epsilon": 0.5})
    assert "**GCA-RINCE**'s stages, but it takes end = row (here end = column)" in variant
    assert story.matching_method({**base, "cost": "sqeuclidean"}, {}) is None


def test_describe_composition_names_the_target_byol_s_needs_and_equal_losses() -> None:
    """The composer called cosine/domain/none/l2 'BYOL' (with the domain prior, and without
    BYOL's predictor it collapses) and row + cross-entropy 'a new loss' (it is INCE)."""
    byol = {"cost": "cosine", "target": "pairs", "projection": "none", "divergence": "l2"}
    text = story.describe_composition(byol, {})
    assert text.startswith("These stages make a named method: **BYOL**")
    assert "predictor and a moving-average target network" in text and "collapses" in text
    other = story.describe_composition({**byol, "target": "domain"}, {})
    assert "with the 'domain' target instead of its 'pairs' one" in other
    row_ce = {"cost": "cosine", "target": "pairs", "projection": "row", "divergence": "ce"}
    assert "**INCE (InfoNCE)**'s" in story.describe_composition(row_ce, {})
    z1, z2 = torch.randn(16, 8, dtype=torch.float64), torch.randn(16, 8, dtype=torch.float64)
    for layout in ("cross", "joint"):  # the claim holds: the same value as INCE
        composed = losses.compose(*row_ce.values(), layout=layout)(z1, z2)
        assert float(composed) == pytest.approx(float(losses.get("ince", layout=layout)(z1, z2)))
    new = story.describe_composition({**row_ce, "cost": "sqeuclidean"}, {})
    assert new == "No named method uses these stages: this is a new loss."
    # a reviewer trained sqeuclidean/class/unbalanced/l2 and got one point: say so first
    aligned = {"cost": "sqeuclidean", "target": "class", "projection": "unbalanced"}
    warned = story.describe_composition({**aligned, "divergence": "l2"}, {})
    assert warned.startswith("No named method uses these stages: this is a new loss. Its ")
    assert "nothing pushes different samples apart" in warned and "collapses" in warned


def test_compose_on_batch(batch: lab.Batch) -> None:
    stages = {"cost": "cosine", "target": "pairs", "projection": "row", "divergence": "kl"}
    out = story.compose_on_batch(batch, stages, {"epsilon": 0.2})
    z1, z2 = pairs(batch, torch.float64)
    assert float(out.loss) == pytest.approx(story.ince_as_kl(z1, z2, 0.2).kl, rel=1e-10)
    joint = story.compose_on_batch(batch, stages, {"epsilon": 0.2}, layout="joint")
    assert joint.plan.shape == (2 * batch.n, 2 * batch.n)
    with pytest.raises(ValueError, match="q"):
        story.compose_on_batch(batch, {**stages, "divergence": "rince"}, {"q": 0.0})
    with pytest.raises(ValueError, match="domain"):
        story.compose_on_batch(batch, {**stages, "target": "domain"}, {})
    custom = {**stages, "target": "custom"}
    matrix = np.eye(batch.n) + 0.1
    out = story.compose_on_batch(batch, custom, {}, matrix=matrix)
    assert torch.allclose(out.target, torch.from_numpy(matrix))
    with pytest.raises(ValueError, match="target"):
        story.compose_on_batch(batch, custom, {}, matrix=np.eye(3))


def test_read_matrix() -> None:
    m = np.arange(6.0).reshape(2, 3)
    buf = io.BytesIO()
    np.save(buf, m)
    assert np.array_equal(story.read_matrix(buf.getvalue(), "t.npy"), m)
    csv = b"0,1,2\n3,4,5\n"
    assert np.array_equal(story.read_matrix(csv, "T.CSV"), m)
    obj = io.BytesIO()
    np.save(obj, np.array([{"a": 1}], dtype=object))
    for data, name in ((obj.getvalue(), "x.npy"), (b"a,b\n", "x.csv"), (b"1", "x.txt")):
        with pytest.raises(ValueError, match="matrix"):
            story.read_matrix(data, name)
    vec = io.BytesIO()
    np.save(vec, np.ones(3))
    with pytest.raises(ValueError, match="2-D"):
        story.read_matrix(vec.getvalue(), "v.npy")


def test_composed_run_config() -> None:
    stages = {"cost": "cosine", "target": "domain", "projection": "sinkhorn", "divergence": "kl"}
    cfg = story.composed_run_config(stages, {"epsilon": 0.3, "alpha": 0.5}, steps=50)
    assert cfg["method"] == "composed" and cfg["dataset"] == "multidomain_digits"
    assert cfg["stages"] == {"cost": "cosine", "projection": "sinkhorn", "divergence": "kl"}
    assert cfg["out_dim"] == 3 and cfg["steps"] == 50 and cfg["target"] == "domain"
    with pytest.raises(ValueError, match="custom"):
        story.composed_run_config({**stages, "target": "custom"}, {})
    with pytest.raises(ValueError, match="epsilon"):
        story.composed_run_config(stages, {"epsilon": -1.0})


def test_rounding_level_changes_read_as_zero() -> None:
    from gca_viz.story.steps import Monotone

    kl = np.array([9.0, 2.5, 2.5 + 4.4e-16, 2.4])
    mono = Monotone(kl, np.zeros(3), np.zeros(3), 0.5, 2)
    assert mono.max_increase > 0 and mono.max_increase_shown == 0.0
    assert mono.rounding == pytest.approx(64 * np.finfo(float).eps * 2.5)
    real = Monotone(np.array([9.0, 2.5, 2.5 + 1e-6, 2.4]), np.zeros(3), np.zeros(3), 0.5, 2)
    assert real.max_increase_shown == pytest.approx(1e-6)  # a real rise is never hidden
