"""One control for ε and one for the marginal weights λ₁, λ₂ (issue 14): a log-scale slider
over the schema's range and a typed value kept in sync and in the URL; a typed value that is
not > 0 is a message naming the symbol, never a traceback (AppTest, no browser; the pages'
own tests check that they use these controls, tests/browser/test_controls.py the browser)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import ui
from gca_viz import losses
from gca_viz.losses.stages import EPSILON, N_ITER, RELAX_A, RELAX_B
from gca_viz.registry import Param

EPS_STOPS = [
    "0.01", "0.015", "0.02", "0.03", "0.04", "0.05", "0.07",
    "0.1", "0.15", "0.2", "0.3", "0.4", "0.5", "0.7", "1", "1.5", "2",
]  # fmt: skip


@pytest.fixture(autouse=True)
def _no_state_left() -> Iterator[None]:
    yield
    st.cache_data.clear()


def _controls() -> None:
    import streamlit as st

    import ui

    eps = ui.epsilon("t_eps", 0.5)
    lam = ui.relaxation("t_lam", None, hard=True)
    both = ui.relaxation("t_both", 0.2, both=True)
    st.write(f"eps={eps!r} lam={lam!r} both={both!r}")


def _open(**query: str) -> AppTest:
    at = AppTest.from_function(_controls, default_timeout=30)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def _shown(at: AppTest) -> str:
    return str(at.markdown[-1].value)


def _warnings(at: AppTest) -> str:
    return " ".join(str(w.value) for w in at.warning)


def test_the_stops_are_one_log_grid_with_the_papers_values() -> None:
    assert [f"{v:g}" for v in ui.log_stops(*EPSILON.ui)] == EPS_STOPS  # type: ignore[misc]
    lam = ui.log_stops(0.001, 100.0)
    assert lam[0] == 0.001 and lam[-1] == 100.0 and {0.01, 0.2, 0.3, 1.0} <= set(lam)
    assert RELAX_A.ui == RELAX_B.ui == (0.001, 100.0)  # λ₁ and λ₂: one range
    assert ui.log_stops(0.03, 0.25) == (0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.25)
    with pytest.raises(ValueError, match="log scale"):
        ui.log_stops(0.0, 1.0)


def test_the_controls_start_at_their_defaults_with_the_shared_range() -> None:
    at = _open()
    assert _shown(at) == "eps=0.5 lam=None both=0.2"
    eps = at.select_slider(key="t_eps_slider")
    assert eps.options == EPS_STOPS and eps.value == 0.5
    assert eps.label == "ε: temperature = regulariser"
    assert str(eps.help).startswith("Temperature of InfoNCE = entropic regulariser of OT.")
    assert at.number_input(key="t_eps").value == 0.5
    assert at.select_slider(key="t_both_slider").label.startswith("λ₁ = λ₂: ")
    assert at.checkbox(key="t_lam_hard").value is True  # default None: a hard marginal
    assert "λ₁ = ∞: hard" in at.checkbox(key="t_lam_hard").label
    assert at.query_params["t_eps"] == "0.5"


def test_typing_a_value_moves_the_slider_and_the_url() -> None:
    at = _open()
    at.number_input(key="t_eps").set_value(0.3).run()
    assert at.select_slider(key="t_eps_slider").value == 0.3
    assert at.query_params["t_eps"] == "0.3" and _shown(at).startswith("eps=0.3 ")
    # a value between the stops is a stop of its own, so the slider shows it exactly
    at.number_input(key="t_eps").set_value(0.123).run()
    slider = at.select_slider(key="t_eps_slider")
    assert slider.value == 0.123 and "0.123" in slider.options
    assert at.query_params["t_eps"] == "0.123"
    # ... and so is one beyond the slider's range (Plan lab looks at ε = 1e-4)
    at.number_input(key="t_eps").set_value(1e-4).run()
    assert at.select_slider(key="t_eps_slider").options[:2] == ["0.0001", "0.01"]
    # the +/- buttons add float noise; the value in use is the decimal
    at.number_input(key="t_eps").set_value(0.21000000000000002).run()
    assert at.query_params["t_eps"] == "0.21" and at.number_input(key="t_eps").value == 0.21


def test_moving_the_slider_sets_the_typed_value_and_the_url() -> None:
    at = _open()
    at.select_slider(key="t_both_slider").set_value(0.05).run()
    assert at.number_input(key="t_both").value == 0.05
    assert at.query_params["t_both"] == "0.05" and _shown(at).endswith("both=0.05")
    at.checkbox(key="t_lam_hard").uncheck().run()
    assert "lam=0.2" in _shown(at)  # the schema's default λ₁
    at.select_slider(key="t_lam_slider").set_value(3.0).run()
    assert "lam=3.0" in _shown(at) and at.query_params["t_lam_hard"] == "False"


@pytest.mark.parametrize("typed", [0.0, -1.0])
def test_a_typed_value_that_is_not_positive_is_a_message_naming_epsilon(typed: float) -> None:
    at = _open()
    at.number_input(key="t_eps").set_value(0.2).run()
    at.number_input(key="t_eps").set_value(typed).run()
    assert not at.exception
    assert f"$ε$ = {typed:g} is not used: $ε$ must be a number > 0, so it stays 0.2" in _warnings(
        at
    )
    assert at.number_input(key="t_eps").value == 0.2 and _shown(at).startswith("eps=0.2 ")
    assert at.query_params["t_eps"] == "0.2"
    at.select_slider(key="t_eps_slider").set_value(0.1).run()
    assert not at.warning  # the next change clears it
    at.number_input(key="t_both").set_value(-3.0).run()
    assert "$λ_1 = λ_2$ = -3 is not used" in _warnings(at)


def test_the_link_sets_the_controls_and_a_bad_link_value_is_named() -> None:
    at = _open(t_eps="0.07", t_both="20", t_lam_hard="False", t_lam="0.004")
    assert _shown(at) == "eps=0.07 lam=0.004 both=20.0"
    assert at.select_slider(key="t_lam_slider").value == 0.004
    bad = _open(t_eps="-0.5", t_both="abc")
    assert _shown(bad) == "eps=0.5 lam=None both=0.2"
    text = _warnings(bad)
    assert "The link's $ε$ = -0.5 is not used" in text and "$λ_1 = λ_2$ = abc" in text


def _schema_controls() -> None:
    import ui
    from gca_viz.losses.divergences import Q
    from gca_viz.losses.stages import EPSILON, RELAX_B

    ui.param_slider(EPSILON, "s_eps")
    ui.param_slider(RELAX_B, "s_relax_b", default=5.0)
    ui.param_slider(Q, "s_q")


def test_param_slider_gives_epsilon_and_lambda_the_shared_control() -> None:
    at = AppTest.from_function(_schema_controls, default_timeout=30).run()
    assert not at.exception
    assert at.select_slider(key="s_eps_slider").options == EPS_STOPS
    relax = at.select_slider(key="s_relax_b_slider")
    assert relax.value == 5.0 and relax.label.startswith("λ₂: KL weight of the column")
    assert at.checkbox(key="s_relax_b_hard").value is False  # optional: may be made hard
    q = at.slider(key="s_q")
    assert q.label.startswith("q: RINCE exponent") and "`q`" in str(q.help)
    assert [s.key for s in at.slider] == ["s_q"]


def test_labels_come_from_the_schema_never_the_field_name() -> None:
    p = Param("relax_z", 1.0, "Some weight.", "λ_z")
    # LaTeX only where Unicode cannot write the symbol (no subscript z): a label is also
    # what a screen reader reads, "$λ_1$" with its dollars and underscore
    assert ui.param_label(p) == "$λ_z$: Some weight"
    assert ui.param_label(RELAX_A).startswith("λ₁: KL weight")
    assert [ui.plain_symbol(s) for s in ("λ_2", "λ_{p}", "r_1 = \\infty", "λ_R", "x^2")] == [
        "λ₂",
        "λₚ",
        "r₁ = ∞",
        None,
        None,
    ]
    assert ui.param_label(Param("depth", 2, "Number of blocks.", kind="int")) == "Number of blocks"
    assert "relax_z" not in ui.param_label(p) and "`relax_z`" in ui.param_help(p)
    # a closing remark goes; a formula's own parentheses stay (the composer's "end" choice
    # read "... or the row step P^" once)
    remark = Param("w", 1.0, "Some weight (None: a hard constraint).", "w")
    assert ui.param_label(remark) == "w: Some weight"
    end = losses.PROJECTIONS["sinkhorn"].params[-1]
    assert ui.param_label(end).endswith("the row step P⁽²ᵀ⁻¹⁾")
    assert ui.param_label(N_ITER) == "T: Sinkhorn sweeps"
    assert ui.SHARED_PARAMS == (EPSILON, RELAX_A, RELAX_B)
    # a number input of a log-scale parameter (the Train page's live changes) steps by the
    # bottom of its slider's range
    assert ui.param_step(EPSILON) == 0.01 and ui.param_step(RELAX_A) == 0.001


def _soft_start() -> None:
    import streamlit as st

    import ui

    st.write(f"lam={ui.relaxation('t_lam', 0.3, both=True, hard=True)!r}")  # as the Story's


def test_a_link_with_an_infinite_lambda_opens_the_hard_constraint() -> None:
    """λ = ∞ is the hard marginal: a link saying so checks "hard" (no warning, no fallback
    to the default weight); a link that also names the checkbox keeps the checkbox's word."""

    def open_soft(**query: str) -> AppTest:
        at = AppTest.from_function(_soft_start, default_timeout=30)
        for key, value in query.items():
            at.query_params[key] = value
        return at.run()

    at = open_soft(t_lam="inf")
    assert _shown(at) == "lam=None" and at.checkbox(key="t_lam_hard").value
    assert "t_lam" not in at.query_params and at.query_params["t_lam_hard"] == "True"
    assert not at.warning
    at.checkbox(key="t_lam_hard").uncheck().run()  # back to a weight: the default, quietly
    assert _shown(at) == "lam=0.3" and not at.warning
    soft = open_soft(t_lam="inf", t_lam_hard="False")
    assert _shown(soft) == "lam=0.3" and "= inf is not used" in _warnings(soft)
    assert _shown(open_soft()) == "lam=0.3"


def _unlinked() -> None:
    import streamlit as st

    import ui

    eps = ui.epsilon("u_eps", 0.4, link=False)
    lam = ui.relaxation("u_lam", None, hard=True, link=False)
    st.write(f"eps={eps!r} lam={lam!r}")


def test_an_unlinked_control_starts_where_the_page_says_and_stays_out_of_the_url() -> None:
    """A running run's live controls: the run's value, not a link's, and no URL key."""
    at = AppTest.from_function(_unlinked, default_timeout=30)
    at.query_params["u_eps"] = "0.07"
    at.query_params["u_lam_hard"] = "False"
    at.run()
    assert _shown(at) == "eps=0.4 lam=None"
    at.number_input(key="u_eps").set_value(0.25).run()
    at.checkbox(key="u_lam_hard").uncheck().run()
    assert _shown(at) == "eps=0.25 lam=0.2"  # (λ₁'s schema default once soft)
    assert at.query_params["u_eps"] == "0.07" and at.query_params["u_lam_hard"] == "False"
    assert set(at.query_params) == {"u_eps", "u_lam_hard"}  # nothing written


def _plain_controls() -> None:
    import streamlit as st

    import ui

    n = ui.slider("Samples N", "p_n", 16, 128, 48, step=8)
    seed = ui.number("Seed", "p_seed", 0, min_value=0, step=1)
    kind = ui.select("Target", "p_kind", ["pairs", "class", "domain"], "domain")
    st.write(f"n={n!r} seed={seed!r} kind={kind!r}")


def test_a_link_value_a_control_cannot_take_is_named_not_replaced_silently() -> None:
    """A link with N = 7, seed = -3 and target = bogus opened the page on 16, 0 and the
    default without a word (only ε said so): each control now says what it used instead."""
    at = AppTest.from_function(_plain_controls, default_timeout=30)
    for key, value in {"p_n": "7", "p_seed": "-3", "p_kind": "bogus"}.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert str(at.markdown[-1].value) == "n=16 seed=0 kind='domain'"
    text = _warnings(at)
    assert "The link's Samples N = 7 is not used: it must be between 16 and 128; 16 instead" in text
    assert "The link's Seed = -3 is not used: it must be at least 0; 0 instead" in text
    assert "The link's Target = bogus is not used: not one of the choices; domain instead" in text
    good = AppTest.from_function(_plain_controls, default_timeout=30)
    for key, value in {"p_n": "64", "p_seed": "5", "p_kind": "class"}.items():
        good.query_params[key] = value
    good.run()
    assert str(good.markdown[-1].value) == "n=64 seed=5 kind='class'" and not good.warning
    at.slider(key="p_n").set_value(32).run()  # said once: gone once the user acts
    assert not at.warning


def test_wrapping_has_one_stylesheet_rule_per_width_and_refuses_other_widths() -> None:
    """Each wrapping width is one rule of the page's stylesheet (drawn once per run), not a
    <style> per container; a width without a rule would not wrap, so it is refused."""
    for width in ui.WRAP_WIDTHS:
        assert f'[class*="st-key-wrap{width}_"]' in ui.PAGE_CSS
        assert f"min-width: min({width}px, 100%)" in ui.PAGE_CSS
    assert "flex-wrap: wrap" in ui.PAGE_CSS
    with pytest.raises(ValueError, match="min_width must be one of"):
        ui.wrapping("t_wrap", 250)


def test_the_typed_boxes_hidden_labels_are_plain_text() -> None:
    """Screen readers read a hidden label as it is: "$λ_1$, typed" was read with its
    dollars and underscore; each box is named by its slider's label, so that Entropy's
    three "ε, typed" boxes are told apart. The sliders' labels (their aria-labels) are plain
    text too."""
    at = _open()
    labels = [box.label for box in at.number_input]
    assert "ε: temperature = regulariser, typed" in labels
    assert any(label.startswith("λ₁ = λ₂: KL weight") for label in labels), labels
    assert not [label for label in labels if "$" in label or "_" in label], labels
    assert len(set(labels)) == len(labels), labels
    sliders = [s.label for s in at.select_slider]
    assert sliders and not [label for label in sliders if "$" in label or "_" in label]


def test_gca_ince_beside_ince_is_equal_within_rounding_and_a_drop_otherwise() -> None:
    """Story and Domains show GCA-INCE against INCE with one rule: a gap within rounding
    reads "equal" in grey (a red "+0" read as a rise), a real one as a drop, lower better."""
    assert ui.versus_ince(3e-17, 1e-15, "+.2e") == {
        "delta": "equal to INCE (to rounding)",
        "delta_color": "off",
    }
    assert ui.versus_ince(-0.0123, 1e-15, "+.3g") == {
        "delta": "-0.0123 vs INCE",
        "delta_color": "inverse",
    }


def _relaxed() -> None:
    import streamlit as st

    import ui

    lam = ui.relaxation("t_r", 0.5, hard=True)
    st.write(f"lam={lam!r}")


def test_a_links_lambda_is_not_overridden_by_a_remembered_hard_constraint() -> None:
    """A link with λ₁ = 0.3 (and no word of "hard") opened as λ = ∞ when the user had ticked
    "hard" on that page before a page switch: the link's value comes first."""
    at = AppTest.from_function(_relaxed, default_timeout=30)
    at.session_state[ui.CHOSEN] = {"t_r_hard": True}
    at.run()
    assert _shown(at) == "lam=None"  # remembered, with no link: hard
    linked = AppTest.from_function(_relaxed, default_timeout=30)
    linked.session_state[ui.CHOSEN] = {"t_r_hard": True}
    linked.query_params["t_r"] = "0.3"
    linked.run()
    assert _shown(linked) == "lam=0.3"


@pytest.mark.parametrize(
    ("values", "shown"),
    [
        ([0.1328, 0.27, 0.09592], ["0.1328", "0.2700", "0.0959"]),  # Noisy's digit table
        ([1.7893, 1.7799], ["1.789", "1.780"]),  # Domains' INCE beside GCA-INCE
        ([592.0, 3.0, float("nan")], ["592", "3", "nan"]),  # whole numbers stay whole
        ([2.5e-5, 1e-6], ["2.5e-05", "1e-06"]),  # tiny: significant digits
        ([float("nan")], ["nan"]),
    ],
)
def test_numbers_shown_together_share_their_decimals(values: list[float], shown: list[str]) -> None:
    """A lecturer read "1.789" beside "1.78" and "0.27" beside "0.1328" as different
    roundings: numbers shown together take the decimals of the largest's four digits."""
    fmt = ui.column_format(values)
    assert [fmt.format(v) for v in values] == shown
