"""The Story page (views/story.py, the app's start page) renders every step, responds to
its controls and shows live numbers that agree with the library (Streamlit's AppTest, no
browser; tests/browser/test_lecture.py and test_controls.py drive it in Chromium)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from gca_viz.figures.plans import COLORS
from gca_viz.runs import RunStore
from tests.helpers import assert_clean, figure, heat, metric, metrics, open_app, rerun, texts

pytestmark = pytest.mark.usefixtures("app_store")


def step1_numbers(at: AppTest) -> tuple[float, float, float]:
    return (
        float(metric(at, "InfoNCE loss")),
        float(metric(at, "KL(I ‖ P⁽¹⁾)")),
        float(metric(at, "Difference")),
    )


def test_app_starts_on_the_story() -> None:
    at = open_app()
    assert [t.value for t in at.title] == ["GCA Explorer"]
    assert at.radio(key="story_step").value == 1
    assert "demo-ince" in " ".join(c.value for c in at.caption)  # the trained encoder's batch
    assert len(at.latex) >= 2 and not at.error
    infonce, kl, diff = step1_numbers(at)
    assert metric(at, "InfoNCE loss") == metric(at, "KL(I ‖ P⁽¹⁾)")  # same to 6 decimals
    assert infonce == pytest.approx(kl, abs=1e-6) and abs(diff) < 1e-6
    p1 = heat(figure(at, "P⁽¹⁾"))
    assert p1.shape == (64, 64)
    np.testing.assert_allclose(p1.sum(1), 1.0, rtol=1e-5)  # every row sums to 1


def test_falls_back_without_the_demo_run(app_store: Path) -> None:
    at = open_app()
    store = RunStore(app_store)
    store.delete(next(r.id for r in store.list_runs() if r.name == "demo-ince"))
    st.cache_data.clear()
    rerun(at)
    assert "demo-ince is not in the run store" in at.info[0].value
    infonce, kl, diff = step1_numbers(at)
    assert infonce == pytest.approx(kl, abs=1e-6) and abs(diff) < 1e-6


@pytest.mark.parametrize(("eps", "hint"), [("0.01", False), ("0.2", True)])  # 0.01: the least
def test_step_two_caption_says_what_the_curve_shows(eps: str, hint: bool) -> None:
    """The caption under the KL curve names the half-step from which the KL has settled, or
    says it is still falling at k = 2T; it suggests a smaller ε only when there is one."""
    at = open_app(story_step="2", story_eps=eps, story_T="3")
    caption = " ".join(c.value for c in at.caption if "largest drop" in c.value)
    assert caption, [c.value for c in at.caption]
    settled = re.search(r"from k = (\d+) on the KL is within", caption)
    assert settled or "the KL is still falling at k = 6" in caption, caption
    if settled:
        assert int(settled.group(1)) < 6
    assert ("A smaller ε spreads the descent" in caption) is hint


def test_step_two_says_how_much_of_its_row_a_trained_positive_holds() -> None:
    """A student's review: beside an InfoNCE of 2.59 the caption said the demo encoder's
    positives "already hold most of their rows' mass" (e^(-2.59) is 7.5 %). It now gives
    the share, e^(-INCE), and its ratio to 1/N."""
    at = open_app(story_step="2")
    caption = " ".join(c.value for c in at.caption if "largest drop" in c.value)
    assert "most of their rows' mass" not in caption
    share = re.search(r"A positive holds about ([\d.]+)% of its row's mass", caption)
    assert share, caption
    ince = float(metric(at, "INCE (k = 1)"))
    assert float(share.group(1)) == pytest.approx(100 * np.exp(-ince), abs=0.1)
    times = re.search(r"([\d.]+) times the 1/N", caption)
    assert times and float(times.group(1)) == pytest.approx(64 * np.exp(-ince), abs=0.1)


@pytest.mark.parametrize(("method", "row"), [("gca_ince", 1), ("rince", 2), ("gca_uot", 4)])
def test_step_five_shades_the_chosen_method_s_row(method: str, row: int) -> None:
    """A student's review: the selector said GCA-INCE and no row of the methods table was
    ticked (two pickers that disagreed). The selector comes above the table and the chosen
    method's row is shaded; a negative RINCE loss is explained."""
    at = open_app(story_step="5", story_method=method)
    (table,) = at.dataframe
    styles = table.proto.arrow_data.styler.styles
    shaded = set(re.findall(r"_row(\d+)_col0", styles))
    assert shaded == {str(row)}, styles
    assert at.selectbox(key="story_method").value == method
    (loss,) = [float(v) for k, v in metrics(at).items() if k.endswith(" loss")]
    negative = [c.value for c in at.caption if c.value.startswith("A negative")]
    assert bool(negative) == (loss < 0), (loss, negative)
    if method == "rince":
        assert loss < 0 and "has no floor at 0" in negative[0]
    # which ε and T the loss used: the page's, and the preset's other parameters (the
    # table's notes say "preset ε 0.5" for GCA-UOT beside this page's ε = 0.2)
    (used,) = [c.value for c in at.caption if c.value.startswith("Computed with")]
    page = "$ε$ = 0.2" + (" and $T$ = 10" if method != "rince" else "")
    assert used.startswith(f"Computed with this page's {page}"), used
    if method == "gca_uot":
        assert "the preset's $λ_1$ = 0.2, $λ_2$ = 0.2" in used, used


def test_every_step_renders() -> None:
    at = open_app()
    expected = {
        1: ("InfoNCE loss", "P⁽¹⁾"),
        2: ("Pythagorean residual", "Half-steps P⁽⁰⁾"),
        3: ("GCA-INCE: residual", "Mass each sample receives"),
        4: ("Measured rate per sweep", "Who sends and receives less than their share"),
        5: ("GCA-INCE loss", "GCA-INCE: its plan"),
    }
    for step, (label, title) in expected.items():
        at.radio(key="story_step").set_value(step)
        rerun(at)
        assert not at.error, [e.value for e in at.error]
        assert at.header[0].value.startswith(str(step))
        assert label in metrics(at)
        figure(at, title)
        assert any(e.label == "Show the code" for e in at.expander)
        assert at.query_params["story_step"] == str(step)
    # the theorem and the split, as shown on the page
    at.radio(key="story_step").set_value(2)
    rerun(at)
    shown = metric(at, "Least drop per half-step")
    assert shown == "0 (rounding)" or float(shown) >= 0
    assert float(metric(at, "GCA-INCE (k = 20)")) <= float(metric(at, "INCE (k = 1)"))
    # the float64 setting is off, and step 2 says it computes in float64 all the same
    assert any("computes in float64 whatever" in c.value for c in at.caption)
    # the KL curve, once: in the player, beside the plans (it was drawn alone above it too)
    curve = np.asarray(figure(at, "Half-steps P⁽⁰⁾")["data"][1]["y"], dtype=float)
    assert len(curve) == 20 and np.all(np.diff(curve) <= 1e-12)
    at.radio(key="story_step").set_value(3)
    rerun(at)
    for method in ("INCE", "GCA-INCE"):
        total = float(metric(at, f"{method}: mean alignment")) + float(
            metric(at, f"{method}: mean repulsion")
        )
        assert total == pytest.approx(float(metric(at, f"{method}: loss")), abs=2e-4)
        assert float(metric(at, f"{method}: residual")) < 1e-6
    assert float(metric(at, "Gini after")) < 1e-6 < float(metric(at, "Gini of P⁽¹⁾"))


def test_story_plans_show_their_scale_and_the_diagonal_infonce_reads() -> None:
    at = open_app(story_eps="0.5")
    fig = figure(at, "P⁽¹⁾")
    z = heat(fig)
    assert fig["data"][0]["zmax"] == pytest.approx(z.max(), rel=1e-6)  # its own range
    assert "own range" in fig["layout"]["title"]["text"]
    marks = [t for t in fig["data"] if t.get("name") == "positive pair (i, pos(i))"]
    assert len(marks) == 1 and np.array_equal(np.asarray(marks[0]["x"]), np.arange(64))
    assert np.array_equal(np.asarray(marks[0]["y"]), np.arange(64))


def test_step_three_plots_the_per_row_difference_of_the_two_losses() -> None:
    """The INCE and GCA-INCE stacks look alike; the third panel is their difference, and
    its mean is the loss drop shown in the metrics."""
    at = open_app(story_step="3", story_f64="true")
    fig = figure(at, "The loss of each row")
    parts = [t for t in fig["data"] if str(t.get("name")).startswith("change of the row's loss")]
    assert {t["name"].rsplit(" ", 1)[-1] for t in parts} <= {"fell", "rose"} and parts
    d = np.full(64, np.nan)
    for t in parts:  # one bar trace (and legend entry) per colour: fell, rose
        d[np.asarray(t["x"], dtype=int)] = np.asarray(t["y"], dtype=float)
        assert (np.asarray(t["y"]) <= 0).all() == t["name"].endswith("fell")
    assert not np.isnan(d).any() and np.abs(d).max() > 0
    drop = float(metric(at, "GCA-INCE: loss")) - float(metric(at, "INCE: loss"))
    assert d.mean() == pytest.approx(drop, abs=2e-4)
    assert d.mean() <= 0
    assert any("the third panel plots the" in c.value for c in at.caption)
    # the caption names the bars' colours as drawn (it said orange for the purple bars)
    colours = {t["name"].rsplit(" ", 1)[-1]: str(t["marker"]["color"]).lower() for t in parts}
    said = next(c.value for c in at.caption if "the row's loss fell" in c.value)
    assert "purple: it rose" in said and colours["rose"] == "#7c3aed"  # (rows rose here)
    assert "green: the row's loss fell" in said and colours["fell"] == COLORS["gca"].lower()


def test_step_two_says_how_large_the_drop_is_and_what_it_does_not_claim() -> None:
    """A student saw the two plans alike and a drop of 0.7 % on the trained batch, with
    nothing saying that was expected, nor that a lower loss on a batch is not a better
    encoder."""
    at = open_app(story_step="2")
    caption = next(c.value for c in at.caption if "largest drop" in c.value)
    ince, gca = (float(metric(at, label)) for label in ("INCE (k = 1)", "GCA-INCE (k = 20)"))
    assert f"GCA-INCE is {(ince - gca) / ince:.1%} below INCE on this batch" in caption
    assert "another question" in caption
    assert re.search(r"its worst column is \d+% off its target", caption), caption


def test_step_two_says_what_its_numbers_say_at_a_small_epsilon() -> None:
    """At ε = 0.01 the caption still said the demo encoder's positives held "0.0 %, 0.0
    times the 1/N of an untrained guess" and that "the columns are nearly balanced, so the
    full plan changes little", beside columns 194 % off and GCA-INCE 10 % below INCE. It
    now says what this batch's numbers say."""
    at = open_app(story_step="2", story_eps="0.01")
    caption = next(c.value for c in at.caption if "largest drop" in c.value)
    ince, gca = (float(metric(at, label)) for label in ("INCE (k = 1)", "GCA-INCE (k = 20)"))
    assert (ince - gca) / ince > 0.05
    off = re.search(r"its worst column is (\d+)% off its target", caption)
    assert off and int(off.group(1)) > 100, caption
    assert "change little" not in caption and "nearly balanced" not in caption
    assert "0.0 times" not in caption and "less than the 1/N" in caption


def test_step_five_defines_its_symbols() -> None:
    at = open_app(story_step="5")
    said = " ".join(c.value for c in at.caption)
    for symbol in ("C1(μ) = {P ≥ 0 : P1 = μ}", "C2(ν) = {P ≥ 0 : Pᵀ1 = ν}", "h(P) is", "d_Γ is"):
        assert symbol in said, symbol


@pytest.mark.parametrize("eps", ["0.5", "1.0", "2.0"])
def test_never_positive_metric_never_reads_positive(eps: str) -> None:
    """At large ε the KL settles in a few half-steps and the largest change is rounding
    (+4.4e-16 was shown for a quantity documented as never positive)."""
    at = open_app(story_step="2", story_eps=eps)
    shown = metric(at, "Least drop per half-step")
    assert shown == "0 (rounding)" or float(shown) >= 0, shown


def test_at_a_huge_epsilon_gca_ince_reads_equal_to_ince_not_a_red_rise() -> None:
    """At ε = 1e9 the two losses agree to rounding: the delta read "↑ +0.00e+00 vs INCE" in
    red, a rise to a student's eye. It now says they are equal, uncoloured."""
    at = open_app(story_step="2", story_eps="1000000000")
    gca = next(m for m in at.metric if m.label.startswith("GCA-INCE (k ="))
    assert gca.delta == "equal to INCE (to rounding)"
    assert "color: GRAY" in str(gca.proto), gca.proto  # delta_color="off": not red
    normal = open_app(story_step="2", story_eps="0.5")
    gca = next(m for m in normal.metric if m.label.startswith("GCA-INCE (k ="))
    assert gca.delta.endswith("vs INCE") and gca.delta.startswith("-")
    assert "color: GRAY" not in str(gca.proto)


def test_next_button_and_query_string() -> None:
    at = open_app(story_step="3", story_eps="0.5")
    assert at.radio(key="story_step").value == 3
    assert at.number_input(key="story_eps").value == 0.5
    at.button(key="story_next").click()
    rerun(at)
    assert at.radio(key="story_step").value == 4
    assert at.query_params["story_step"] == "4"


def test_controls_change_the_numbers() -> None:
    at = open_app()
    seen = [step1_numbers(at)[0]]
    for kind, key, value in (
        ("select_slider", "story_eps_slider", 0.5),
        ("select_slider", "story_n", 32),
        ("selectbox", "story_source", "synthetic"),
        ("selectbox", "story_source", "digits"),
    ):
        getattr(at, kind)(key=key).set_value(value)
        rerun(at)
        infonce, kl, diff = step1_numbers(at)
        assert infonce not in seen, (key, value)
        # both are shown to 6 decimals (±5e-7 each), so equal values can read 1e-6 apart;
        # their float32 difference itself is `diff`
        assert infonce == pytest.approx(kl, abs=1.5e-6) and abs(diff) < 1e-6
        seen.append(infonce)
    assert heat(figure(at, "P⁽¹⁾")).shape == (32, 32)
    at.toggle(key="story_f64").set_value(True)
    rerun(at)
    assert abs(step1_numbers(at)[2]) < 1e-12  # float64: the two agree to machine precision


def test_pairs_n_offers_only_what_the_batch_holds() -> None:
    """On the default batch (the demo run's stored 64 pairs) N = 128 and 256 changed nothing
    but a grey caption: the slider offers up to what the run stored, and every size for a
    batch drawn fresh; a larger N set before is brought within."""
    at = open_app()
    assert at.select_slider(key="story_n").options[-1] == "64"
    at.selectbox(key="story_source").set_value("digits")
    rerun(at)
    assert at.select_slider(key="story_n").options[-1] == "256"
    at.select_slider(key="story_n").set_value(128)
    rerun(at)
    assert heat(figure(at, "P⁽¹⁾")).shape == (128, 128)
    at.selectbox(key="story_source").set_value("demo")
    rerun(at)
    assert at.select_slider(key="story_n").value == 64
    assert_clean(at)


def test_relaxed_marginals_respond_to_lambda() -> None:
    at = open_app(story_step="4")
    mass = float(metric(at, "Total mass"))
    total = next(m for m in at.metric if m.label.startswith("Total mass"))
    assert "GRAY" in str(total.proto)  # a rise of mass is no success (it was green)
    rate = float(metric(at, "Rate ρ₁ρ₂"))
    plan = heat(figure(at, "GCA-INCE plan P⁽²ᵀ⁾ at ε = 0.2"))
    at.select_slider(key="story_eps_slider").set_value(0.05)
    rerun(at)
    assert not np.allclose(heat(figure(at, "GCA-INCE plan P⁽²ᵀ⁾ at ε = 0.05")), plan)
    at.select_slider(key="story_lam_slider").set_value(10.0)
    rerun(at)
    assert float(metric(at, "Total mass")) != mass and float(metric(at, "Rate ρ₁ρ₂")) != rate
    assert float(metric(at, "Measured rate")) <= float(metric(at, "Rate ρ₁ρ₂")) + 1e-4
    at.select_slider(key="story_eps_slider").set_value(0.2)
    rerun(at)
    assert float(metric(at, "Measured rate")) == pytest.approx(
        float(metric(at, "Rate ρ₁ρ₂")), abs=2e-4
    )
    # no claim of speed: "the solver needs fewer sweeps" was said at λ = 100 (rate 0.996,
    # balanced 0.748) and with λ = ∞ ticked (ρ₁ρ₂ = 1)
    said = " ".join(c.value for c in at.caption)
    assert "needs fewer sweeps" not in said and "slower than balanced Sinkhorn" in said
    at.checkbox(key="story_lam_hard").check()
    rerun(at)
    said = " ".join(c.value for c in at.caption)
    assert "Here λ = ∞, balanced Sinkhorn: ρ₁ρ₂ = 1 plays no part" in said
    assert f"({metric(at, 'Measured rate')} per sweep)" in said


def test_choosing_a_method_changes_the_plan() -> None:
    at = open_app(story_step="5")
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 8
    gca = heat(figure(at, "GCA-INCE: its plan"))
    gca_loss = float(metric(at, "GCA-INCE loss"))
    at.selectbox(key="story_method").set_value("ince")
    rerun(at)
    ince = heat(figure(at, "INCE (InfoNCE): its plan"))
    assert not np.allclose(ince, gca)
    assert float(metric(at, "INCE (InfoNCE) loss")) >= gca_loss  # the theorem again
    for name in ("gca_uot", "byol", "iot_uni"):
        at.selectbox(key="story_method").set_value(name)
        rerun(at)
        assert not at.error
    assert at.query_params["story_method"] == "iot_uni"


def test_byol_is_shown_as_the_math_says_it_is() -> None:
    """BYOL forms no plan (B: none) and its loss reads only 2C_ii: the table, the panel,
    the heatmap's title and the positive-mass metric agree (they said KL, l2, "its plan")."""
    at = open_app(story_step="5", story_method="byol")
    table = at.dataframe[0].value
    row = table[table["method"] == "BYOL"].iloc[0]
    assert row["d_M"].startswith("L2") and row["B"] == "none"
    assert metric(at, "Mass on positive pairs") == "—"
    figure(at, "BYOL forms no plan")
    assert any("2Cᵢᵢ" in c.value for c in at.caption)
    assert any("(`l2`)" in m.value for m in at.markdown)
    # its loss reads no ε (it said "Computed with this page's ε = 0.2")
    said = " ".join(c.value for c in at.caption)
    assert "kernel beside it uses this page's" in said and "the loss uses none" in said
    assert "Computed with" not in said


def test_step_5_says_how_to_pick_a_method_in_either_mode() -> None:
    """In lecture mode the methods table is a plain HTML table (no row to pick): the text
    said "Pick a row" above it; there it points to the method box, drawn above the table."""
    lecture = open_app("views/story.py", lecture="1", story_step="5")
    assert "Pick a method to see" in texts(lecture.markdown)
    assert "Pick a row" not in texts(lecture.markdown)
    plain = open_app("views/story.py", story_step="5")
    assert "Pick a row to see" in texts(plain.markdown)


def test_step_4_says_whether_the_plan_converged_without_blaming_a_moderate_epsilon() -> None:
    """At the default ε = 0.2, T = 10 the caption said "small ε needs more sweeps" (a
    reviewer: 0.2 is not small); it now gives the error as a share of the total mass and
    points at T, and at T = 50 says the marginals hold to 0.1%."""

    def caption(at: AppTest) -> str:
        return next(c.value for c in at.caption if "marginal error" in c.value)

    short = caption(open_app(story_step="4"))
    assert "not converged yet at this ε" in short and "raise T" in short
    assert "small ε needs" not in short and "of the total mass N" in short
    held = caption(open_app(story_step="4", story_T="50"))  # (not "converged": the Entropy
    assert ": the marginals hold to 0.1%" in held and "converged" not in held  # page's is 1e-6)


def test_step_five_s_composer_link_opens_the_method_on_the_same_batch() -> None:
    """Story step 5's "Compose a loss of your own" opened the composer on GCA-INCE at its
    own ε = 0.5: a lecturer read "Loss 3.03" there beside GCA-UOT's 2.57 here on "the same
    64 pairs". The link carries the method's stages, ε, T and the batch: the composer's
    loss is this page's."""
    from urllib.parse import parse_qsl

    at = open_app(story_step="5", story_method="gca_uot", story_eps="0.3", story_T="7")
    shown = float(metric(at, "GCA-UOT loss"))
    (link,) = [e.proto for e in at.get("page_link") if "Compose a loss" in e.proto.label]
    query = dict(parse_qsl(link.query_string))
    assert query["cmp_projection"] == "unbalanced" and query["cmp_divergence"] == "uot"
    assert (query["cmp_epsilon"], query["cmp_n_iter"]) == ("0.3", "7")
    composer = open_app("views/composer.py", **query)
    assert float(metric(composer, "Loss")) == pytest.approx(shown, abs=1e-5)
