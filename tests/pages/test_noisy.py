"""The "Noisy views" page (views/noisy.py): corrupted views and their strengths, the
correlation of strength and plan mass, where the mass and the gradient go, the launch of a
corrupted pair and the shipped sweep (Streamlit's AppTest, no browser).

Each test has a fresh store of its own (``app_store``: the demo runs are imported there);
the launch button starts real background runs, which the fixture kills afterwards.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import ui
from gca_viz import experiments as ex
from gca_viz.runs import RunStore
from tests.helpers import assert_clean, charts, metrics, open_page, table, texts
from tests.plotly_json import array

EPS_STOPS = [f"{v:g}" for v in ui.log_stops(0.01, 2.0)]  # the shared ε slider's options
LAM_STOPS = [f"{v:g}" for v in ui.log_stops(0.001, 100.0)]  # and λ's


def test_noisy_page_renders_every_section_with_the_demo_runs(app_store: Path) -> None:
    """The clean-vs-corrupted comparison is whole the moment the page opens: the shipped
    noisy demo runs' final encoders are evaluated on corrupted digits (their bars were
    missing until a fresh pair had trained for a minute)."""
    at = open_page("noisy")
    figs = charts(at)
    assert {"noisy_chart_views", "noisy_chart_bars", "noisy_chart_mass"} <= set(figs)
    tab = table(at, "test data")
    assert list(tab["method"]) == ["INCE", "INCE", "GCA-UOT", "GCA-UOT"]
    assert list(tab["test data"]) == ["clean", "corrupted (s = 0.5)"] * 2
    assert [s == "final encoder, evaluated now" for s in tab["status"]] == [
        False, True, False, True
    ]  # fmt: skip
    names = ["demo-ince-noisy"] * 2 + ["demo-gca-uot-noisy"] * 2  # (the run cell is short)
    assert [r.split(" ", 1)[1] for r in tab["run"]] == names
    bars = figs["noisy_chart_bars"]["data"]
    assert [b["name"] for b in bars] == ["clean", "corrupted (s = 0.5)"]
    clean, corrupted = array(bars[0]["y"]), array(bars[1]["y"])
    assert np.all((clean > 0.5) & (clean <= 1.0))
    assert np.all(corrupted < clean - 0.2)  # (corrupted digits: accuracy falls, about 0.9 -> 0.4)
    # the bars open on the embedding's k-NN, where the sweep measures GCA-UOT's gain, and
    # the shipped pair (half of each batch's pairs mismatched) shows it on clean digits
    assert at.selectbox(key="noisy_metric").value == "knn_acc_embedding"
    assert clean[1] > clean[0] + 0.01, clean
    store = RunStore(app_store)
    for run_id, value in zip(ex.demo_runs(store), corrupted, strict=True):
        assert value == ex.encoder_accuracies(store, run_id, 0.5)["knn_acc_embedding"]
    caption = next(c.value for c in at.caption if c.value.startswith("Measured"))
    assert "INCE changes by -0." in caption and "GCA-UOT changes by -0." in caption
    ince, uot = (f"{v:.3f}" for v in corrupted)  # a tie reads as one, not as "+0.000"
    tie = f"corrupted (s = 0.5): a tie, {uot} each" in caption
    assert tie == (ince == uot) and "+0.000" not in caption
    # one seed, set beside what the sweep's seeds give at the pair's setting
    swept = next(
        r
        for r in ex.noisy_sweep_results()
        if (r.share, r.epsilon, r.method) == (0.5, 0.5, "gca_uot")
    )
    assert (
        "One seed each (the sweep's 6 seeds at this setting, clean digits: GCA-UOT − INCE = "
        f"{swept.diff_cell('clean_z')})" in caption
    )


def test_the_corruption_slider_moves_the_corrupted_bars(app_store: Path) -> None:
    at = open_page("noisy")
    strong = array(charts(at)["noisy_chart_bars"]["data"][1]["y"])
    at.slider(key="noisy_corr").set_value(0.1).run()
    assert_clean(at)
    bars = charts(at)["noisy_chart_bars"]["data"]
    assert [b["name"] for b in bars] == ["clean", "corrupted (s = 0.1)"]
    mild = array(bars[1]["y"])
    assert np.all(mild > strong + 0.1)  # milder corruption, higher accuracy
    assert not at.warning


def test_severity_slider_changes_the_strengths(app_store: Path) -> None:
    at = open_page("noisy")
    full = float(metrics(at)["Mean strength, extreme × 1"])
    table_full = table(at, "digit")
    at.slider(key="noisy_sev").set_value(0.3).run()
    assert_clean(at)
    low = float(metrics(at)["Mean strength, extreme × 0.3"])
    assert 0 < low < full
    table_low = table(at, "digit")
    assert not np.allclose(table_low["extreme × 0.3"], table_full["extreme × 1"])
    titles = [a["text"] for a in charts(at)["noisy_chart_views"]["layout"]["annotations"]]
    assert any(t.startswith("extreme × 0.3<br>") for t in titles), titles  # the column's name
    at.slider(key="noisy_sev").set_value(0.0).run()
    assert float(metrics(at)["Mean strength, extreme × 0"]) == 0.0


def test_correlation_section_reports_numbers(app_store: Path) -> None:
    at = open_page("noisy")
    shown = metrics(at)
    for label in (
        "Rank corr.: strength vs Pᵢᵢ",
        "Linear corr.: strength vs Pᵢᵢ",
        "Rank corr.: strength vs row mass",
    ):
        assert -1.0 <= float(shown[label]) <= 1.0
    scatter = charts(at)["noisy_chart_mass"]["data"]
    n = at.slider(key="noisy_n").value
    assert len(scatter) == 3 and all(len(array(t["x"])) == n for t in scatter)
    # (the shipped GCA-UOT demo run's encoder: trained, it tells corrupted pairs apart)
    assert "the trained encoder of run #" in texts(at.caption)
    assert "(demo-gca-uot-noisy, step 300)" in texts(at.caption)
    assert float(shown["Rank corr.: strength vs Pᵢᵢ"]) < -0.5
    at.selectbox(key="noisy_enc").set_value(0).run()
    assert "random MLP encoder" in texts(at.caption)
    before = metrics(at)["Rank corr.: strength vs Pᵢᵢ"]
    assert at.select_slider(key="noisy_eps_slider").options == EPS_STOPS
    assert at.select_slider(key="noisy_lam_slider").options == LAM_STOPS
    at.number_input(key="noisy_eps").set_value(0.1).run()
    assert at.select_slider(key="noisy_eps_slider").value == 0.1
    at.selectbox(key="noisy_src").set_value("augment").run()
    assert_clean(at)
    assert metrics(at)["Rank corr.: strength vs Pᵢᵢ"] != before
    assert not [w for w in at.warning if "barely tells the pairs apart" in w.value]


def test_a_correlation_on_negligible_differences_is_not_shown_as_an_effect(
    app_store: Path,
) -> None:
    """At ε = 10^9 the diagonal masses differ by ~1e-9 and the page still wrote 'less mass on
    corrupted pairs' beside '1.000 x ... 1.000 x': it now says the differences are too small."""
    at = open_page("noisy")
    at.number_input(key="noisy_eps").set_value(1e9).run()
    assert_clean(at)
    warning = [w.value for w in at.warning if "barely tells the pairs apart" in w.value]
    assert warning and "Lower ε" in warning[0]
    caption = texts(at.caption)
    assert "no measurable difference on corrupted pairs" in caption
    assert "less mass on corrupted pairs" not in caption


def test_mass_and_gradient_section_shows_the_librarys_numbers(app_store: Path) -> None:
    """The section replaces a share of second views by random points and shows, with the
    library's own numbers, where the mass and the gradient go."""
    from gca_viz import lab
    from gca_viz.experiments import uot_mechanism as um

    at = open_page("noisy")
    assert at.number_input(key="mech_eps").value == 0.1
    assert at.select_slider(key="mech_eps_slider").options == EPS_STOPS
    assert at.number_input(key="mech_lam").value == 0.01
    batch = lab.synthetic_batch(128, dim=32, noise=0.3, seed=0)
    pairs = um.replace_views(batch.z1, batch.z2, 0.25, seed=0)
    shares = um.mass_shares(pairs, epsilon=0.1, relax=0.01)
    grads = um.gradient_shares(pairs, epsilon=0.1, relax=0.01)
    shown = metrics(at)
    assert (
        shown["Corrupted rows' share of the mass"]
        == f"{shares.corrupted_share('unbalanced_row'):.3f}"
    )
    assert shown["Total mass ΣP"] == f"{shares.unbalanced_mass:.4g}"
    figs = charts(at)
    assert {"mech_chart_shares", "mech_chart_grads", "mech_chart_tradeoff"} <= set(figs)
    bars = figs["mech_chart_grads"]["data"][0]
    np.testing.assert_allclose(array(bars["x"]), list(grads.shares.values()), rtol=1e-6)
    text = texts(at.caption)
    assert f"RINCE alone (q = 1, unweighted) gives {grads.shares['rince']:.3f}" in text
    # the bars' settings are named (the caption named the preset's ε = 0.5, λ = 0.2), and
    # the RINCE term's part is what the bars show (it was credited with "the work")
    assert "at this section's ε = 0.1, T = 10 and λ₁ = λ₂ = 0.01" in text
    part = grads.shares["gca_uot_kl"] - grads.shares["gca_uot"]
    assert f"takes {part:.3f} off the share" in text or f"adds {-part:.3f} to" in text
    assert "weighted r₂ = 0.2" in text  # the term's weight (λ_R weighs inside RINCE)
    assert "does the work" not in text
    assert "32 of 128 second views replaced" in text
    before = shown["Corrupted rows' share of the mass"]
    at.slider(key="mech_share").set_value(0.5).run()
    assert_clean(at)
    assert "64 of 128 second views replaced" in texts(at.caption)
    assert metrics(at)["Corrupted rows' share of the mass"] != before
    at.select_slider(key="mech_eps_slider").set_value(0.5).run()
    assert at.number_input(key="mech_eps").value == 0.5 and at.query_params["mech_eps"] == "0.5"
    at.selectbox(key="mech_src").set_value(0).run()  # digits through a random encoder
    assert_clean(at)
    assert "digit" in texts(at.caption)
    # nearly hard marginals: the plans agree to the shown digits ("-0.000 vs balanced" before)
    at.number_input(key="mech_lam").set_value(1000.0).run()
    assert_clean(at)
    deltas = {m.label: m.delta for m in at.metric}
    assert deltas["Corrupted rows' share of the mass"].startswith("equal to balanced ("), deltas


def test_noisy_launch_queues_a_corrupted_pair(app_store: Path) -> None:
    at = open_page("noisy")
    at.slider(key="noisy_corr").set_value(0.7).run()
    at.button(key="noisy_launch").click().run()
    assert_clean(at)
    store = RunStore(app_store)
    (ids,) = ex.noisy_pairs(store).values()
    configs = [store.get(i).config for i in ids]
    assert [c["method"] for c in configs] == ["ince", "gca_uot"]
    assert all(c["eval_corruption"] == 0.7 and c["noisy_pairs"] == 0.5 for c in configs)
    tab = table(at, "test data")
    corrupted = [r for r, c in zip(tab["run"], tab["test data"], strict=True) if c.endswith("0.7)")]
    assert len(corrupted) == 4  # each demo run's encoder evaluated now, and the fresh pair
    assert sum(r.startswith(f"#{i} ") for r in corrupted for i in ids) == 2


def test_noisy_page_reports_the_sweep_plainly(app_store: Path) -> None:
    """The sweep behind the demo pair's setting is on the page: its table, a chart of each
    method's gain over INCE against the share of mismatched pairs (error bars of twice the
    standard error) and the settings where GCA-UOT measurably wins, for the accuracy
    chosen, all from the shipped result."""
    at = open_page("noisy")
    rows = ex.noisy_sweep_results()
    assert at.selectbox(key="noisy_sweep_test").value == "clean_z"
    settings = sorted({(r.share, r.epsilon) for r in rows}, key=lambda k: (k[0], -k[1]))
    assert len(table(at, "Δ GCA-UOT")) == len(settings) == 8  # a row per point of the chart
    chart = charts(at)["noisy_chart_sweep"]
    shares, epsilons, gains, errors = ex.sweep_gains(rows, "clean_z")
    uot = [t for t in chart["data"] if t["name"] == "GCA-UOT"]
    assert len(uot) == len(epsilons) == 2  # a panel per ε, the legend once
    for k, trace in enumerate(uot):
        assert list(array(trace["customdata"])) == shares  # (x: set a little apart)
        np.testing.assert_allclose(array(trace["y"]), gains["gca_uot"][k])
        np.testing.assert_allclose(array(trace["error_y"]["array"]), 2 * errors["gca_uot"][k])
    # the caption lists every measurable difference, ahead and behind, of any method
    demo = ex.noisy_pair_configs()[1]
    for test in ("clean_z", "clean"):
        if test == "clean":  # the backbone's accuracy, chosen: its own lists
            at.selectbox(key="noisy_sweep_test").set_value("clean").run()
            assert_clean(at)
        verdict = ex.sweep_verdict(rows, test, demo["noisy_pairs"], 0.5)
        label = ex.SWEEP_TESTS[test]
        head = f"{label[0].upper()}{label[1:]}, measurably ahead of INCE (Δ > 2 SE): "
        caption = next(c.value for c in at.caption if c.value.startswith(head))
        for r in verdict.ahead + verdict.behind:
            assert f"at p = {r.share:g}, ε = {r.epsilon:g}: {r.diff_cell(test)}" in caption
        assert caption.count(" at p = ") == len(verdict.ahead) + len(verdict.behind)
        by = {(r.share, r.epsilon, r.method): r for r in rows}
        tab = table(at, "Δ GCA-UOT")
        assert list(tab["Δ GCA-UOT"]) == [by[(*k, "gca_uot")].diff_cell(test) for k in settings]
        assert list(tab[f"INCE, {label}"]) == [by[(*k, "ince")].cell(test) for k in settings]
        assert list(tab["Δ r₂ = 0"]).count("") == len(settings) - 2  # (ran at 2 settings)
    assert verdict.behind, "the backbone's losses are listed, not only its wins"


def test_final_losses_of_a_pair_say_whether_the_runs_trained_alike(
    app_store: Path, tmp_path: Path
) -> None:
    """A fresh corrupted-test run of each method (here: a demo run's files with its test
    data corrupted) pairs with the demo's clean run: equal final losses are marked '=';
    a differing one names the shipped run as trained by an earlier version."""
    import json
    import shutil

    from gca_viz.demo import ASSETS

    store = RunStore(app_store)
    for k, (method, demo) in enumerate(ex.NOISY_DEMOS.items()):
        src = tmp_path / demo
        shutil.copytree(ASSETS / demo, src)
        cfg = json.loads((src / "config.json").read_text())
        (src / "config.json").write_text(json.dumps({**cfg, "eval_corruption": 0.5}))
        if method == "gca_uot":  # trained differently: its final loss moves
            rows = (src / "metrics.csv").read_text().splitlines()
            last = [i for i, r in enumerate(rows) if r.split(",")[1:2] == ["loss"]][-1]
            s, _, v = rows[last].split(",")
            rows[last] = f"{s},loss,{float(v) + 0.02!r}"
            (src / "metrics.csv").write_text("\n".join(rows) + "\n")
        store.import_directory(src, name=f"{ex.NOISY_PREFIX} 1: {k}")
    at = open_page("noisy")
    assert_clean(at)
    caption = next(c.value for c in at.caption if "Final training losses" in c.value)
    assert "INCE" in caption and " = " in caption and " ≠ " in caption
    demo_uot = ex.demo_runs(store)[1]
    assert f"#{demo_uot} shipped with the app, trained by an earlier version" in caption


def test_a_deleted_demo_run_is_named_and_can_be_restored(app_store: Path) -> None:
    """With demo-ince-noisy deleted, the comparison showed GCA-UOT alone ("changes by
    -0.499") under a title that promised INCE vs GCA-UOT, without a word; nothing could
    bring the run back."""
    open_page("noisy")  # (installs the demo runs)
    store = RunStore(app_store)
    gone = next(r.id for r in store.list_runs() if r.name == "demo-ince-noisy")
    store.delete(gone)
    at = open_page("noisy")
    said = texts(at.info)
    assert "No INCE run to compare: the shipped demo run (demo-ince-noisy) is not in" in said
    assert list(table(at, "test data")["method"]) == ["GCA-UOT", "GCA-UOT"]
    at.button(key="noisy_restore").click().run()
    assert_clean(at)
    assert "No INCE run to compare" not in texts(at.info)
    assert list(table(at, "test data")["method"]) == ["INCE", "INCE", "GCA-UOT", "GCA-UOT"]
    (back,) = [r for r in store.list_runs() if r.name == "demo-ince-noisy"]
    assert back.id != gone and (store.run_dir(back.id) / "checkpoint.pt").exists()


def test_the_page_says_in_short_what_it_shows(app_store: Path) -> None:
    """A student left the page unable to say whether unbalanced OT helps with noisy views:
    one box at the top says where the mechanism shows (small ε) and, at the demo pair's own
    setting, what GCA-UOT gains on the embedding in points, beside the balanced solve, clean
    pairs, each of its two changes alone and the backbone, from the shipped sweep."""
    at = open_page("noisy")
    box = next(i.value for i in at.info if i.value.startswith("**In short.**"))
    rows = ex.noisy_sweep_results()
    demo = ex.noisy_pair_configs()[1]
    v = ex.sweep_verdict(rows, "clean_z", demo["noisy_pairs"], 0.5)
    uot, bal = v.at["gca_uot"], v.at["gca_ince"]
    assert "clearly at small ε" in box and "barely at the paper's ε = 0.5" in box
    assert f"p = {demo['noisy_pairs']:g} of each batch's pairs mismatched and ε = 0.5" in box
    assert f"**{uot.points('clean_z')}** better than INCE ({uot.seeds} seeds" in box
    assert f"GCA-INCE, the balanced solve, {bal.points('clean_z')}" in box
    assert f"(p = 0) {v.clean_pairs['gca_uot'].points('clean_z')}" in box
    # GCA-UOT's two changes, each alone, wherever the sweep ran both
    arms = {(r.share, r.epsilon, r.method): r for r in rows}
    settings = [(s, e) for s, e, m in arms if m == "gca_uot_kl" and (s, e, "gca_uot_l100") in arms]
    assert len(settings) == 2
    for s, e in settings:
        kl, held = arms[s, e, "gca_uot_kl"], arms[s, e, "gca_uot_l100"]
        assert (
            f"at p = {s:g}, ε = {e:g}: {held.points('clean_z')} with its RINCE term alone "
            f"(λ = 100, marginals held), {kl.points('clean_z')} with its relaxed marginals "
            "alone (r₂ = 0)"
        ) in box
    rince = any(arms[s, e, "gca_uot_l100"].beats("clean_z") for s, e in settings)
    relax = any(arms[s, e, "gca_uot_kl"].beats("clean_z") for s, e in settings)
    assert rince and not relax  # the shipped sweep: the RINCE term carries the gain
    assert "and its RINCE term carries the gain, not the relaxation:" in box
    assert f"INCE ({uot.points('clean')})" in box
    assert "82.03 % → 83.18 % (+1.15 points)" in box
    # the claims the box makes hold in the shipped numbers
    assert uot.beats("clean_z") and not bal.beats("clean_z")
    assert not v.clean_pairs["gca_uot"].beats("clean_z")
    assert ("trails INCE" in box) == uot.trails("clean")


def test_the_graded_section_opens_on_the_noisy_trained_gca_uot_encoder(app_store: Path) -> None:
    """Once a user had trained a GCA-UOT run on clean pairs, the graded-corruption section
    opened on it (the newest GCA-UOT checkpoint), an encoder that never saw a noisy pair:
    the noisy-trained one stays first."""
    from tests.helpers import add_run

    open_page("noisy")  # (it installs the demo runs)
    store = RunStore(app_store)
    noisy = next(r.id for r in store.list_runs() if r.name == "demo-gca-uot-noisy")
    clean = add_run(store, config={"method": "gca_uot", "noisy_pairs": 0.0, "steps": 5},
                    name="student-uot", status="finished", step=5)  # fmt: skip
    store.run_dir(clean).mkdir(parents=True, exist_ok=True)
    (store.run_dir(clean) / "checkpoint.pt").write_bytes(b"")  # listed, never loaded
    at = open_page("noisy")
    assert_clean(at)
    assert at.selectbox(key="noisy_enc").value == noisy
    assert any("student-uot" in o for o in at.selectbox(key="noisy_enc").options)
