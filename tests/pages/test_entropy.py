"""The Entropy and iterations page (views/entropy.py) renders, responds to its controls,
honours the query string and turns a bad range into a warning (Streamlit's AppTest,
no browser; tests/browser/test_entropy.py opens it in Chromium)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.helpers import figure, open_app

ENTROPY = "views/entropy.py"

pytestmark = pytest.mark.usefixtures("app_store")


def test_entropy_page_renders_and_responds() -> None:
    at = open_app(ENTROPY)
    assert at.title[0].value == "Entropy and iterations"
    entropy = figure(at, "Plan entropy")
    xs = np.asarray(entropy["data"][0]["x"], dtype=float)
    ys = np.asarray(entropy["data"][0]["y"], dtype=float)
    assert len(xs) == 12 and (np.diff(ys) > 0).all()
    contraction = figure(at, "Contraction per sweep")
    names = [t["name"] for t in contraction["data"]]
    measured = np.asarray(contraction["data"][names.index("unbalanced, measured")]["y"], float)
    rate = np.asarray(contraction["data"][names.index("unbalanced, rate ρ₁ρ₂")]["y"], float)
    np.testing.assert_allclose(measured, rate, rtol=0.1)
    # the caption gives the measured gap (it said "exactly", beside 0.5425 against 0.5478)
    (said,) = [c.value for c in at.caption if c.value.startswith("Relaxed marginals")]
    gap = np.max(np.abs(measured / rate - 1))
    assert f"measured within {gap:.1%} of it here" in said and "exactly" not in said
    assert at.get("download_button")
    # two tables of at most eight columns (twelve in one ran off the page at 1440 px):
    # the plans' numbers, the two losses beside ε, and the solver's
    plans, numbers = at.dataframe
    assert list(plans.value.columns[:3]) == ["ε", "INCE", "GCA-INCE (T = 10)"]
    assert "top-n mass" in plans.value.columns  # labels, not CSV keys
    assert list(numbers.value.columns[:2]) == ["ε", "sweeps to tolerance"]
    assert "rate (measured)" in numbers.value.columns
    assert max(len(plans.value.columns), len(numbers.value.columns)) <= 8
    assert numbers.value["sweeps to tolerance"].isna().any()  # a sweep that did not converge
    assert numbers.proto.placeholder == "—"  # ... shows "—", not "None"

    at.number_input(key="ent_eps_min").set_value(0.1).run()
    xs2 = np.asarray(figure(at, "Plan entropy")["data"][0]["x"], dtype=float)
    assert xs2[0] == pytest.approx(0.1) and not at.exception

    before = np.asarray(figure(at, "GCA-INCE against T")["data"][0]["y"], dtype=float)
    at.number_input(key="ent_eps_T").set_value(0.3).run()
    after = np.asarray(figure(at, "GCA-INCE against T")["data"][0]["y"], dtype=float)
    assert not np.allclose(before, after)

    at.select_slider(key="ent_l1_slider").set_value(1.0).run()
    contraction = figure(at, "Contraction per sweep")
    rho = np.asarray(contraction["data"][3]["y"], dtype=float)
    eps = np.asarray(contraction["data"][3]["x"], dtype=float)
    np.testing.assert_allclose(rho, (1.0 / (1.0 + eps)) * (0.2 / (0.2 + eps)), rtol=1e-9)


def test_entropy_page_bad_range_is_a_warning_and_the_page_stays() -> None:
    """Swapped ends of the ε sweep are swapped back with a warning naming both controls as
    on screen, and every figure stays (the T sweep does not depend on them at all)."""
    at = open_app(ENTROPY)
    at.number_input(key="ent_eps_min").set_value(0.0).run()  # refused by the ε control
    assert not at.exception and any("$ε$ = 0 is not used" in w.value for w in at.warning)
    at.number_input(key="ent_eps_min").set_value(3.0).run()
    assert not at.exception and not at.error
    (warning,) = [w.value for w in at.warning if "the smallest of the sweep" in w.value]
    assert "the sweep runs from 2 to 3" in warning
    xs = np.asarray(figure(at, "Plan entropy")["data"][0]["x"], dtype=float)
    assert xs[0] == pytest.approx(2.0) and xs[-1] == pytest.approx(3.0)
    assert figure(at, "GCA-INCE against T")
    at.number_input(key="ent_eps_min").set_value(2.0).run()  # equal ends: a decade
    assert any("two different values" in w.value for w in at.warning)
    xs = np.asarray(figure(at, "Plan entropy")["data"][0]["x"], dtype=float)
    assert xs[-1] == pytest.approx(20.0)


def test_entropy_page_honours_the_query_string() -> None:
    at = open_app(ENTROPY, ent_num="6", ent_eps_max="1.0", ent_T="8", ent_n="24")
    xs = np.asarray(figure(at, "Plan entropy")["data"][0]["x"], dtype=float)
    assert len(xs) == 6 and xs[-1] == pytest.approx(1.0)
    ts = np.asarray(figure(at, "GCA-INCE against T")["data"][0]["x"], dtype=float)
    assert ts.tolist() == list(range(1, 9))
    assert "24 × 24" in " ".join(c.value for c in at.caption)


def test_the_sweeps_caption_tells_the_turn_only_where_the_chart_shows_it() -> None:
    """A student's review: the caption said the sweeps fall again "until ε is so small that
    ... the first sweep is already exact" beside a chart whose smallest ε hit the cap. Now
    the turn is told at the ε where the counts peak only when the smallest ε needs fewer."""
    at = open_app(ENTROPY)
    (said,) = [c.value for c in at.caption if c.value.startswith("Small ε needs")]
    (numbers,) = [d for d in at.dataframe if "sweeps to tolerance" in d.value.columns]
    counts = numbers.value["sweeps to tolerance"].to_numpy(dtype=float)
    assert np.isnan(counts[0])  # the smallest ε: not reached within the cap
    assert "below it fewer again" not in said and "Far below this range" in said
    # a range whose smallest ε converges faster than a larger one: the turn, at the peak
    at = open_app(ENTROPY, ent_eps_min="0.001", ent_eps_max="0.02", ent_num="6")
    (said,) = [c.value for c in at.caption if c.value.startswith("Small ε needs")]
    (numbers,) = [d for d in at.dataframe if "sweeps to tolerance" in d.value.columns]
    counts = numbers.value["sweeps to tolerance"].fillna(np.inf).to_numpy(dtype=float)
    if counts[0] < counts.max():
        peak = numbers.value["ε"].to_numpy(dtype=float)[int(np.argmax(counts))]
        told = re.search(r"up to ε = ([\d.e-]+); below it fewer again", said)
        assert told and float(told.group(1)) == pytest.approx(peak, rel=0.03), said
    else:
        assert "Far below this range" in said
