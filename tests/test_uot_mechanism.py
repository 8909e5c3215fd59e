"""Where GCA-UOT's mass and gradient go: the corrupted batch, row shares of balanced and
unbalanced plans, gradient shares through corrupted pairs, the λ sweep, and their figures."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from gca_viz import lab, losses
from gca_viz.experiments import uot_mechanism as um
from gca_viz.figures import mechanism as mfig
from tests.helpers import relative_luminance


@pytest.fixture(scope="module")
def pairs() -> um.CorruptedPairs:
    batch = lab.synthetic_batch(96, dim=32, noise=0.3, seed=0)
    return um.replace_views(batch.z1, batch.z2, 0.25, seed=0)


def test_replace_views_corrupts_exactly_the_share(pairs: um.CorruptedPairs) -> None:
    batch = lab.synthetic_batch(96, dim=32, noise=0.3, seed=0)
    assert pairs.corrupted.sum() == 24 and pairs.share == pytest.approx(0.25)
    np.testing.assert_allclose(pairs.z1.norm(dim=1).numpy(), 1.0, atol=1e-12)
    np.testing.assert_allclose(pairs.z2.norm(dim=1).numpy(), 1.0, atol=1e-12)
    clean = torch.as_tensor(~pairs.corrupted)
    unit = torch.nn.functional.normalize(batch.z2.double(), dim=1)
    assert torch.allclose(pairs.z2[clean], unit[clean])
    assert not torch.allclose(pairs.z2[~clean], unit[~clean])
    again = um.replace_views(batch.z1, batch.z2, 0.25, seed=0)
    assert np.array_equal(again.corrupted, pairs.corrupted) and torch.equal(again.z2, pairs.z2)
    other = um.replace_views(batch.z1, batch.z2, 0.25, seed=1)
    assert not np.array_equal(other.corrupted, pairs.corrupted)
    assert um.replace_views(batch.z1, batch.z2, 0.0).corrupted.sum() == 0


@pytest.mark.parametrize(
    ("args", "name"),
    [
        ((np.ones((1, 3)), np.ones((1, 3)), 0.2), "z1"),
        ((np.ones((4, 3)), np.ones((4, 2)), 0.2), "z2"),
        ((np.ones((4, 3)), np.ones((4, 3)), 1.5), "share"),
        ((np.ones((4, 3)), np.ones((4, 3)), math.nan), "share"),
        ((np.ones((4, 3)), np.ones((4, 3)), "0.2"), "share"),
    ],
)
def test_replace_views_refuses_bad_input(args: tuple, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        um.replace_views(*args)


def test_balanced_rows_hold_one_nth_and_the_mechanism_moves_mass_at_small_eps(
    pairs: um.CorruptedPairs,
) -> None:
    m = um.mass_shares(pairs, epsilon=0.05, n_iter=50, relax=0.01)
    n = len(pairs.corrupted)
    np.testing.assert_allclose(m.balanced_row, 1 / n, rtol=1e-3)
    for name in ("balanced_row", "unbalanced_row", "balanced_positive", "unbalanced_positive"):
        assert float(getattr(m, name).sum()) == pytest.approx(1.0)
    assert m.balanced_mass == pytest.approx(n, rel=1e-3)
    # u_i = (μ_i / (K v)_i)^ρ: a row whose view matches nothing keeps less mass
    assert m.corrupted_share("unbalanced_row") < 0.8 * m.corrupted_share("balanced_row")
    assert m.corrupted_share("unbalanced_positive") < m.corrupted_share("balanced_positive")
    # the balanced plan already moves mass off a corrupted positive within its row
    assert m.corrupted_share("balanced_positive") < m.corrupted_share("balanced_row")
    assert m.rho == pytest.approx(0.01 / 0.06)
    with pytest.raises(ValueError, match="which"):
        m.corrupted_share("mass")
    order = m.order
    assert sorted(order) == list(range(n)) and not m.corrupted[order[: n - 24]].any()


def test_positive_kernel_part_is_what_a_clean_row_loses(pairs: um.CorruptedPairs) -> None:
    for eps in (0.5, 0.05):
        m = um.mass_shares(pairs, epsilon=eps, relax=0.01)
        C = 1 - pairs.z1 @ pairs.z2.T
        K = torch.exp(-C / eps).numpy()
        clean = ~pairs.corrupted
        expected = float((np.diag(K) / K.sum(1))[clean].mean())
        assert m.positive_kernel_part == pytest.approx(expected, rel=1e-9)
        assert m.kernel_mass == pytest.approx(float(K.sum()), rel=1e-9)
    small = um.mass_shares(pairs, epsilon=0.05, relax=0.01).positive_kernel_part
    large = um.mass_shares(pairs, epsilon=0.5, relax=0.01).positive_kernel_part
    assert small > 5 * large  # why the effect is visible only at small ε


def test_unbalanced_plan_tends_to_balanced_and_its_mass_to_the_kernels(
    pairs: um.CorruptedPairs,
) -> None:
    tight = um.mass_shares(pairs, epsilon=0.5, n_iter=50, relax=1e5)
    np.testing.assert_allclose(tight.unbalanced_row, tight.balanced_row, rtol=1e-3)
    assert tight.unbalanced_mass == pytest.approx(tight.balanced_mass, rel=1e-3)
    masses = [um.mass_shares(pairs, epsilon=0.5, relax=lam).unbalanced_mass for lam in (1, 0.1)]
    loose = um.mass_shares(pairs, epsilon=0.5, relax=1e-3)
    assert masses[0] < masses[1] < loose.unbalanced_mass < loose.kernel_mass  # N -> ΣK
    with pytest.raises(ValueError, match="relax"):
        um.mass_shares(pairs, relax=0.0)


def test_gradient_share_agrees_with_a_direct_autograd(pairs: um.CorruptedPairs) -> None:
    g = um.gradient_shares(pairs, epsilon=0.2, relax=0.01)
    a = pairs.z1.clone().requires_grad_(True)
    b = pairs.z2.clone().requires_grad_(True)
    loss = losses.get("ince", epsilon=0.2, layout="cross")(a, b)
    loss.backward()
    assert a.grad is not None and b.grad is not None
    norms = (a.grad.norm(dim=1) + b.grad.norm(dim=1)).numpy()
    assert g.shares["ince"] == pytest.approx(norms[pairs.corrupted].sum() / norms.sum())
    np.testing.assert_allclose(g.row_norms["ince"], norms, rtol=1e-12)
    assert set(g.shares) == set(um.GRADIENT_LOSSES) and g.corrupted_share == 0.25


def test_what_moves_the_gradient_off_corrupted_pairs(pairs: um.CorruptedPairs) -> None:
    """The paper's GCA-UOT reads the plan through a row softmax, where the row scaling
    cancels: its gradient share stays near INCE's. RINCE's term, and the unbalanced plan
    read directly, move gradient off the corrupted pairs."""
    g = um.gradient_shares(pairs, epsilon=0.5, relax=0.01).shares
    assert abs(g["gca_uot_kl"] - g["gca_ince"]) < 0.01
    assert abs(g["gca_uot"] - g["ince"]) < 0.03
    assert g["uot_plan_kl"] < g["ince"] - 0.02
    assert g["rince"] < 0.6 * g["ince"]
    # λ -> ∞: the plan read directly is GCA-INCE's generalised KL, the same gradient
    tight = um.gradient_shares(pairs, epsilon=0.5, relax=1e6, names=("uot_plan_kl",))
    assert tight.shares["uot_plan_kl"] == pytest.approx(g["gca_ince"], abs=2e-3)
    with pytest.raises(ValueError, match="name"):
        um.gradient_loss("simclr", epsilon=0.5, n_iter=10, relax=0.1)


def test_relaxation_sweep_and_its_figures(pairs: um.CorruptedPairs) -> None:
    lams = [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    sweep = um.relaxation_sweep(pairs, lams, epsilon=0.5)
    assert sweep.shares["uot_plan_kl"].shape == (6,) and sweep.entropy.shape == (6,)
    assert sweep.max_entropy == pytest.approx(2 * math.log(96))
    assert np.all(sweep.entropy <= sweep.max_entropy + 1e-9)
    assert sweep.shares["uot_plan_kl"][0] < sweep.shares["uot_plan_kl"][-1]
    assert sweep.shares["uot_plan_kl"][-1] == pytest.approx(
        sweep.balanced_share["gca_ince"], abs=5e-3
    )
    with pytest.raises(ValueError, match="relax"):
        um.relaxation_sweep(pairs, [])
    fig = mfig.tradeoff_chart(sweep)
    assert list(fig.layout.xaxis.ticktext) == ["0.001", "0.01", "0.1", "1", "10", "100"]
    assert fig.layout.xaxis.type == "log"

    m = um.mass_shares(pairs, epsilon=0.05, relax=0.01)
    chart = mfig.share_chart(m)
    bars = [t for t in chart.data if t.type == "bar"]
    np.testing.assert_allclose(np.asarray(bars[0].y), 96 * m.unbalanced_row[m.order])
    # the corrupted rows' bars are told from the clean ones by lightness, not hue alone
    colors = np.asarray(bars[0].marker.color)[np.argsort(m.order)]
    (clean,), (corrupted,) = set(colors[~m.corrupted]), set(colors[m.corrupted])
    assert relative_luminance(clean) > 2 * relative_luminance(corrupted)
    means = [a.text for a in chart.layout.annotations if "mean" in (a.text or "")]
    clean_mean = 96 * m.unbalanced_row[~m.corrupted].mean()
    bad_mean = 96 * m.unbalanced_row[m.corrupted].mean()
    assert means == [
        f"clean rows, unbalanced: mean {clean_mean:.2f}",
        f"corrupted rows, unbalanced: mean {bad_mean:.2f}",
    ]
    # each mean's label sits in the headroom over every bar, an arrow down to its line: on
    # the line it covered the corrupted rows' bars it named (a student's review)
    labels = [a for a in chart.layout.annotations if "mean" in (a.text or "")]
    tallest = max(np.asarray(bars[0].y).max(), 1)
    for label, mean in zip(labels, (clean_mean, bad_mean), strict=True):
        assert label.showarrow and label.y == pytest.approx(mean) and label.ay > tallest
    # headroom above the tallest bar for the corrupted band's title (at ε = 5 every share
    # was near 1 and the means' labels sat on it)
    for axis, values in ((chart.layout.yaxis, bars[0].y), (chart.layout.yaxis2, bars[1].y)):
        assert axis.range[0] == 0 and axis.range[1] >= 1.25 * max(np.asarray(values).max(), 1)
    g = um.gradient_shares(pairs, epsilon=0.5, relax=0.01)
    bars_fig = mfig.gradient_chart(g)
    np.testing.assert_allclose(np.asarray(bars_fig.data[0].x), list(g.shares.values()))
    assert bars_fig.layout.shapes[0].x0 == 0.25
