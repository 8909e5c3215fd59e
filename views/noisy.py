"""Noisy views: extreme augmentations, INCE vs GCA-UOT on clean and corrupted test data, and
how the unbalanced plan moves mass away from corrupted positive pairs."""

from __future__ import annotations

import numpy as np
import streamlit as st
import torch

import ui
from gca_viz import demo, lab
from gca_viz import experiments as ex
from gca_viz import losses as gca_losses  # ("losses" names a run's final losses below)
from gca_viz.augment import corrupt, make_augment
from gca_viz.data import load_dataset
from gca_viz.experiments import uot_mechanism as um
from gca_viz.figures import experiments as xfig
from gca_viz.figures import mechanism as mfig
from gca_viz.figures._palette import run_colors
from gca_viz.runs import ACTIVE, RunStore

SOURCES = {  # short: a third of the page wide (the first cut at 1280 px)
    "graded": "Corruption, growing severity",
    "augment": "Extreme augmentation at s",
}
TITLES = {"ince": "INCE", "gca_uot": "GCA-UOT"}
MECH_SWEEP = tuple(float(v) for v in np.geomspace(1e-3, 1e2, 11))
MECH_T = 10  # Sinkhorn sweeps of the mass and gradient section


# ------------------------------------------------------------------------ cached math


@st.cache_data(max_entries=8, show_spinner=False)
def example_views(rows: int, seed: int, severity: float, pool: int = 256) -> dict[str, np.ndarray]:
    """``rows`` digits with a standard, an extreme (at ``severity``) and a test-corrupted
    view each, and the strengths of all three kinds over ``pool`` random digits."""
    ds = load_dataset("digits")
    gen = torch.Generator().manual_seed(seed)
    x = ds.x[torch.randperm(ds.n, generator=gen)[:pool]]  # (pool, 1, 8, 8)
    std, s_std = make_augment("standard").apply_with_strength(x, gen)
    ext, s_ext = ex.augment_at(severity).apply_with_strength(x, gen)
    cor = corrupt(x, "image", severity, gen)
    s_cor = (cor - x).abs().flatten(1).mean(1)  # (pool,)
    images = torch.stack([x, std, ext, cor], dim=1)[:rows, :, 0].numpy()  # (rows, 4, 8, 8)
    strengths = torch.stack([torch.full_like(s_std, float("nan")), s_std, s_ext, s_cor], 1)
    return {"images": images, "strengths": strengths.numpy()}  # strengths: (pool, 4)


@st.cache_data(max_entries=8, show_spinner="Solving the unbalanced plan...")
def mass_experiment(
    source: str,
    n: int,
    seed: int,
    severity: float,
    encoder_id: int,
    stamp: float,
    eps: float,
    lam: float,
    _store: RunStore,
) -> tuple[ex.CorruptionMass, str]:
    """Clean vs corrupted views of ``n`` digits through an encoder, and the plan mass each
    pair keeps (``encoder_id`` 0: a random encoder; ``stamp``: its checkpoint's time)."""
    model: torch.nn.Module
    if encoder_id:
        trained = lab.trained_encoder(_store, encoder_id)
        ds = load_dataset(trained.dataset, **trained.dataset_params)
        model, who = trained.model, f"the trained encoder of {trained.description}"
    else:
        ds = load_dataset("digits")
        model, who = ex.random_encoder(ds.input_shape, seed), f"a random MLP encoder (seed {seed})"
    gen = torch.Generator().manual_seed(seed)
    x = ds.x[torch.randperm(ds.n, generator=gen)[:n]]  # (n, 1, 8, 8) clean view
    if source == "graded":
        views = ex.graded_corruption(x, ds.kind, severity, gen)
    else:
        views = ex.augmented_views(x, ds.kind, severity, gen)
    z1, z2 = ex.embed_views(model, x, views.views)
    res = ex.corruption_mass_correlation(
        z1, z2, views.strength, epsilon=eps, relax_a=lam, relax_b=lam
    )
    return res, who


@st.cache_data(max_entries=8, show_spinner="Solving the plans and the gradients...")
def mechanism(
    source: int,
    n: int,
    share: float,
    seed: int,
    eps: float,
    lam: float,
    stamp: float,
    _store: RunStore,
) -> tuple[um.MassShares, um.GradientShares, um.RelaxationSweep, str]:
    """Mass shares, gradient shares and the λ sweep on a batch with a share of its second
    views replaced by random points (``source``: -1 synthetic, 0 digits through a random
    encoder, else a run's trained encoder; ``stamp``: its checkpoint's time)."""
    if source < 0:
        batch = lab.synthetic_batch(n, dim=32, noise=0.3, seed=seed)
    elif source == 0:
        batch = lab.data_batch("digits", n, seed, augment="standard")
    else:
        batch = lab.data_batch(n=n, seed=seed, encoder=lab.trained_encoder(_store, source))
    pairs = um.replace_views(batch.z1, batch.z2, share, seed=seed)
    # one T for the mass, the gradient bars and the λ sweep (the gradients' caption names
    # the mass's settings)
    shares = um.mass_shares(pairs, epsilon=eps, n_iter=MECH_T, relax=lam)
    grads = um.gradient_shares(pairs, epsilon=eps, n_iter=MECH_T, relax=lam)
    sweep = um.relaxation_sweep(pairs, MECH_SWEEP, epsilon=eps, n_iter=MECH_T)
    return shares, grads, sweep, batch.source


@st.cache_resource(max_entries=4, show_spinner="Loading the trained encoders...")
def corruption_probe(run_id: int, stamp: float, _store: RunStore) -> ex.CorruptionProbe | str:
    """A run's final encoder and its classifiers fitted on the clean training digits
    (:class:`gca_viz.experiments.CorruptionProbe`; ``stamp``: its checkpoint's time), kept
    so that each new "Test corruption" only embeds and scores the corrupted test digits,
    or why it could not be loaded."""
    try:
        return ex.CorruptionProbe(_store, run_id)
    except ValueError as exc:
        return str(exc)


@st.cache_data(max_entries=64, show_spinner=False)
def encoder_accuracies(
    run_id: int, corruption: float, stamp: float, _store: RunStore
) -> dict[str, float] | str:
    """A run's final encoder on test data corrupted with ``corruption``
    (:meth:`gca_viz.experiments.CorruptionProbe.accuracies`), or why it could not be
    evaluated."""
    probe = corruption_probe(run_id, stamp, _store=_store)
    if isinstance(probe, str):
        return probe
    try:
        return probe.accuracies(corruption)
    except ValueError as exc:
        return str(exc)


def _accuracies(store: RunStore, run_id: int, corruption: float) -> dict[str, float]:
    """:func:`encoder_accuracies` for :func:`gca_viz.experiments.noisy_comparison`: a run
    whose checkpoint cannot be evaluated gets a warning that says why and no values."""
    path = store.run_dir(run_id) / "checkpoint.pt"
    stamp = path.stat().st_mtime if path.exists() else 0.0
    found = encoder_accuracies(run_id, corruption, stamp, _store=store)
    if isinstance(found, str):
        st.warning(f"Run #{run_id}'s encoder was not evaluated on corrupted digits: {found}")
        return {k: float("nan") for k in ex.NOISY_METRICS}
    return found


# ---------------------------------------------------------------------------- header

ui.title("Noisy views")
ui.intro(
    "With extreme augmentations some positive pairs share almost no content, and forcing the "
    "plan to match every pair fully (INCE, GCA-INCE) pulls unrelated views together. GCA-UOT "
    "only penalises its marginals, so it can put less mass on a pair that is expensive to "
    "match. Below: the views, the two methods trained on noisy pairs (a share of each "
    "batch's second views swapped for another sample's), and where the unbalanced plan puts "
    "its mass."
)
st.latex(ex.UOT_MASS_LATEX)
store = ui.run_store()
try:  # (a missing sweep file leaves its section and the summary's second point out)
    sweep_rows, sweep_problem = ex.noisy_sweep_results(), ""
except ValueError as exc:
    sweep_rows, sweep_problem = [], str(exc)
sweep_by = {(r.share, r.epsilon, r.method): r for r in sweep_rows}  # (p, ε, method) -> row
demo_cfg = ex.noisy_pair_configs()[1]  # the shipped pair's setting (GCA-UOT's config)
demo_p = float(demo_cfg["noisy_pairs"])
demo_eps = float(gca_losses.get(demo_cfg["method"], **demo_cfg["loss_params"]).params["epsilon"])
paper_gain = {m: v["CIFAR-10 noisy"] for m, v in ex.PAPER_NOISY.items()}


def points(row: ex.NoisySweepRow | None, test: str = "clean_z") -> str:
    """A row's paired gain over INCE in points ("+4.4 ± 1.7 points"; "not run" if none)."""
    return row.points(test) if row is not None else "not run"


def ablation(arms: dict[tuple[float, float, str], ex.NoisySweepRow]) -> str:
    """What GCA-UOT's two changes to GCA-INCE do alone, at each setting where the sweep
    ran both (``arms``: :data:`sweep_by`): the relaxation without the RINCE term (r₂ = 0),
    the RINCE term with the marginals held (λ = 100)."""
    pairs = [
        (arms[s, e, "gca_uot_kl"], arms[s, e, "gca_uot_l100"])
        for s, e, m in arms
        if m == "gca_uot_kl" and (s, e, "gca_uot_l100") in arms
    ]
    if not pairs:
        return ""
    relax = any(kl.beats("clean_z") for kl, _ in pairs)
    rince = any(held.beats("clean_z") for _, held in pairs)
    alone = {
        (False, True): "its RINCE term carries the gain, not the relaxation",
        (True, False): "the relaxation carries the gain, not the RINCE term",
        (True, True): "each carries part of it",
        (False, False): "neither alone gains measurably",
    }[relax, rince]
    where = "; ".join(
        f"at p = {kl.share:g}, ε = {kl.epsilon:g}: {held.points('clean_z')} with its RINCE "
        f"term alone (λ = 100, marginals held), {kl.points('clean_z')} with its relaxed "
        "marginals alone (r₂ = 0)"
        for kl, held in pairs
    )
    return f"\n- **Why.** GCA-UOT changes two things in GCA-INCE, and {alone}: {where}."


if not sweep_rows:
    finding = "\n- **Accuracy.** The sweep that would say whether it shows is missing."
else:
    verdict = ex.sweep_verdict(sweep_rows, "clean_z", demo_p, demo_eps)
    uot = verdict.at.get("gca_uot")
    setting = (
        f"\n- **Accuracy, at the demo pair's setting** (p = {demo_p:g} of each batch's pairs "
        f"mismatched and ε = {demo_eps:g}): GCA-UOT classifies clean test digits by k-NN on "
        "ẑ "
    )
    if uot is not None and uot.beats("clean_z"):
        finding = (
            f"{setting}**{uot.points('clean_z')}** better than INCE ({uot.seeds} seeds, "
            "paired, ± one standard error); GCA-INCE, the balanced solve, "
            f"{points(verdict.at.get('gca_ince'))}; GCA-UOT without mismatched pairs (p = 0) "
            f"{points(verdict.clean_pairs.get('gca_uot'))}. On h, GCA-UOT "
            f"{'trails' if uot.trails('clean') else 'matches'} INCE ({uot.points('clean')})."
            + ablation(sweep_by)
        )
    else:
        finding = (
            f"{setting}{points(uot)} better than INCE: no measurable gain there; the sweep "
            "below shows where GCA-UOT gains and loses."
        )
st.info(
    "**In short.**\n"
    "- **Mechanism.** Real, but it needs a sharp kernel: with relaxed marginals a row whose "
    "view matches nothing keeps less of the plan's mass, clearly at small ε (ε = 0.1, "
    "λ = 0.01 in *Where GCA-UOT's mass and gradient go* below), barely at the paper's "
    "ε = 0.5."
    "\n- **What is measured.** An MLP on 8 × 8 digits, 300 steps: k-NN accuracy on ẑ, the "
    "normalised 3-D output the loss shapes, and on h, the backbone's 256 features beneath "
    "it (what a linear probe reads)."
    + finding
    + f"\n- **The paper's gain**, {paper_gain['ince']:.2f} % → {paper_gain['gca_uot']:.2f} % "
    f"(+{paper_gain['gca_uot'] - paper_gain['ince']:.2f} points) linear readout on CIFAR-10 "
    "with extreme augmentations, comes from a ResNet-18 trained 500 epochs.",
    icon=":material/lightbulb:",
)

# ------------------------------------------------------------------------- the views

st.header("Extreme augmentations")
with ui.controls("Views"):
    severity = float(
        ui.slider(
            "Severity s of the views",
            "noisy_sev",
            0.0,
            1.0,
            1.0,
            step=0.05,
            help="How strong the extreme augmentation and the test corruption drawn above "
            "are; the accuracies below have a severity of their own.",
        )
    )
    rows = int(ui.slider("Digits shown", "noisy_rows", 2, 8, 4))
    seed = int(ui.number("Seed", "noisy_seed", 0, min_value=0, step=1))
st.latex(ex.AUGMENT_LATEX)
views = example_views(rows, seed, severity)
columns = ("original", "standard", f"extreme × {severity:g}", f"test corruption {severity:g}")
ui.chart(
    xfig.view_grid(views["images"], views["strengths"][:rows], columns), key="noisy_chart_views"
)
means = views["strengths"][:, 1:].mean(axis=0)  # standard, extreme, test corruption
m1, m2, m3 = ui.wrapping("noisy_wrap_strengths", 180).columns(3)  # (labels cut at 911 px)
m1.metric("Mean strength, standard", f"{means[0]:.4f}")
m2.metric(f"Mean strength, extreme × {severity:g}", f"{means[1]:.4f}")
m3.metric(f"Mean strength, test corruption {severity:g}", f"{means[2]:.4f}")
st.caption(
    f"Strength = mean |x' − x| over the 64 pixels of a view; the means are over "
    f"{len(views['strengths'])} random digits. s = 1 is the extreme preset exactly (erasing "
    "with probability 0.9 of up to half the image, crops down to 16 % of the area, brightness "
    "and contrast ± 50 %), s = 0 the unchanged digit; the test corruption blurs, adds noise "
    "and erases a rectangle of 40 % × s of the image."
)
ui.table(
    {
        "digit": [f"#{i}" for i in range(rows)],
        "standard": views["strengths"][:rows, 1],
        f"extreme × {severity:g}": views["strengths"][:rows, 2],
        f"test corruption {severity:g}": views["strengths"][:rows, 3],
    },
    key="noisy_strengths",
)

# ------------------------------------------------------------- INCE vs GCA-UOT

st.header("INCE vs GCA-UOT: clean and corrupted test data")
demo_ids = ex.demo_runs(store)
c1, c2 = st.columns([1, 2])
with c1:
    corruption = float(
        ui.slider(
            "Severity of the corrupted test digits",
            "noisy_corr",
            0.1,
            1.0,
            0.5,
            step=0.1,
            help="The corruption's severity s of the test digits both encoders are scored "
            "on (the bars' \"corrupted (s = ...)\"); the sidebar's severity draws the "
            "views above only.",
        )
    )
    if st.button(
        "Train a fresh pair",  # (a longer label was cut at 1024 px in lecture mode)
        key="noisy_launch",
        help="Queues two runs, INCE and GCA-UOT, and tests them on corrupted data.",
    ):
        with ui.guard("Launch"):
            ids = ex.launch_noisy_pair(store, corruption)
        st.toast(f"Queued runs {', '.join(f'#{i}' for i in ids)}.")
with c2:
    cfg = ex.noisy_pair_configs(corruption)[0]
    st.markdown(
        f"The fresh pair trains with the shipped demo runs' settings ({cfg['dataset']}, "
        f"augmentation '{cfg['augment']}', {cfg['noisy_pairs']:.0%} of each batch's pairs "
        f"mismatched, {cfg['steps']} steps, batch {cfg['batch_size']}, "
        f"{cfg['out_dim']}-D embeddings, seed {cfg['seed']}) and evaluates on test digits "
        f"corrupted with severity s = {corruption:g} (blur, noise, an erased rectangle) as it "
        "trains. Until then the corrupted bars are the demo runs' final encoders evaluated "
        "now on the corrupted digits (move s to see accuracy fall); a fresh pair that trains "
        "as they did gets the same numbers."
    )
pairs = ex.noisy_pairs(store)
fresh = next(iter(pairs.values()), [])
metric = ui.select(
    "Accuracy",
    "noisy_metric",
    list(ex.NOISY_METRICS),
    "knn_acc_embedding",  # (where the sweep measures the gain: the embedding the loss shapes)
    format_func=ex.NOISY_METRICS.get,
)


# The comparison table's headers for experiments.NOISY_METRICS (the full name on hover).
SHORT_METRICS = {"knn_acc": "k-NN (h)", "probe_acc": "probe (h)", "knn_acc_embedding": "k-NN (ẑ)"}


def vs_balanced(unbalanced: float, balanced: float) -> str:
    """A metric's delta against the balanced plan, "equal" when it rounds to 0 (not −0.000)."""
    if f"{unbalanced:.3f}" == f"{balanced:.3f}":
        return f"equal to balanced ({balanced:.3f})"
    return f"{unbalanced - balanced:+.3f} vs balanced ({balanced:.3f})"


def comparison_view(
    store: RunStore,
    run_ids: list[int],
    metric: str,
    corruption: float,
    polling: bool,
    demo_ids: list[int],
    seeds_note: str,
) -> None:
    """Table and grouped bars of the clean and corrupted accuracies (``demo_ids``: the runs
    that shipped with the app; their encoders are evaluated at ``corruption``;
    ``seeds_note``: what the sweep's seeds give at the pair's setting, or "")."""
    rows = ex.noisy_comparison(store, run_ids, corruption, accuracies=_accuracies)
    active = [r for r in rows if r.status in ACTIVE]
    if active:
        st.progress(
            sum(min(r.step / max(r.steps, 1), 1.0) for r in active) / len(active),
            text=", ".join(f"#{r.run_id} {r.status} {r.step}/{r.steps}" for r in active),
        )
    elif polling:
        st.rerun()  # the pair finished: redraw the page once without polling
    missing = [m for m in ex.NOISY_DEMOS if not any(r.method == m for r in rows)]
    if missing:
        gone = [ex.NOISY_DEMOS[m] for m in missing]
        st.info(
            f"No {' or '.join(TITLES[m] for m in missing)} run to compare: the shipped demo "
            f"run{'s' if len(gone) > 1 else ''} ({', '.join(gone)}) "
            f"{'are' if len(gone) > 1 else 'is'} not in this store (deleted on the Train "
            "page?) and no fresh pair has trained yet. Restore "
            f"{'them' if len(gone) > 1 else 'it'}, or train a fresh pair above.",
            icon=":material/info:",
        )
        if st.button(f"Restore {', '.join(gone)}", key="noisy_restore"):
            with ui.guard("Restore"):
                restored = demo.restore(store, gone)
            st.toast(f"Restored run{'s' if len(restored) > 1 else ''} "
                     f"{', '.join(f'#{i}' for i in restored)}.")  # fmt: skip
            st.rerun(scope="app")
    if not rows:
        return
    ui.table(
        {
            "run": [f"#{r.run_id} {r.name}" for r in rows],
            "method": [TITLES.get(r.method, r.method) for r in rows],
            "test data": [r.condition for r in rows],
            "status": [
                "final encoder, evaluated now"
                if r.evaluated
                else f"{r.status} ({r.step}/{r.steps})"
                for r in rows
            ],
            **{label: [r.values[k] for r in rows] for k, label in ex.NOISY_METRICS.items()},
            "final training loss": [r.final_loss for r in rows],
        },
        key="noisy_table",
        column_config={  # short headers (the full name on hover): the table fits at 1366 px
            label: st.column_config.NumberColumn(SHORT_METRICS[k], help=label, format="%.4f")
            for k, label in ex.NOISY_METRICS.items()
        }
        | {"final training loss": st.column_config.NumberColumn("final loss", format="%.4f")},
    )
    methods = [m for m in ex.NOISY_DEMOS if any(r.method == m for r in rows)]
    conditions = list(dict.fromkeys(r.condition for r in rows))
    values = np.full((len(conditions), len(methods)), np.nan)
    for r in rows:
        if r.method in methods and r.status == "finished":
            values[conditions.index(r.condition), methods.index(r.method)] = r.values[metric]
    fig = xfig.comparison_bars(
        [TITLES[m] for m in methods], conditions, values, metric=ex.NOISY_METRICS[metric]
    )
    ui.chart(fig, key="noisy_chart_bars")
    notes = []
    for k, cond in enumerate(conditions):
        if len(methods) == 2 and np.isfinite(values[k]).all():
            ince, uot = values[k]
            notes.append(
                f"{cond}: GCA-UOT − INCE = {uot - ince:+.3f}"
                if f"{ince:.3f}" != f"{uot:.3f}"
                else f"{cond}: a tie, {uot:.3f} each (the same number of test digits right)"
            )
    for m in methods:
        col = values[:, methods.index(m)]
        if len(conditions) > 1 and np.isfinite(col).all():
            notes.append(f"{TITLES[m]} changes by {col[-1] - col[0]:+.3f} from clean to corrupted")
    pairs_done = [
        (a, b)
        for a in rows
        for b in rows
        if a.method == b.method
        and a.corruption == 0 < b.corruption
        and not b.evaluated  # (a run's own encoder, evaluated later: the same training)
        and a.status == b.status == "finished"
    ]
    same = [abs(a.final_loss - b.final_loss) <= 1e-6 for a, b in pairs_done]
    losses = "; ".join(
        f"{TITLES[a.method]} {a.final_loss:.4f} (#{a.run_id}) {'=' if eq else '≠'} "
        f"{b.final_loss:.4f} (#{b.run_id})"
        for (a, b), eq in zip(pairs_done, same, strict=True)
    )
    shipped = [r.run_id for (a, b), eq in zip(pairs_done, same, strict=True) if not eq
               for r in (a, b) if r.run_id in demo_ids]  # fmt: skip
    why = (
        "the clean and the corrupted run of a method train alike and differ only in their test data"
        if all(same)
        else f"#{', #'.join(map(str, shipped))} shipped with the app, trained by an earlier "
        "version of gca_viz: float-level changes in the loss since then add up over 300 steps"
        if shipped
        else "the runs of a pair were trained with different settings or library versions"
    )
    paper = ", ".join(f"{TITLES[m]} {v['CIFAR-10 noisy']:.2f} %" for m, v in ex.PAPER_NOISY.items())
    st.caption(
        f"Measured ({ex.NOISY_METRICS[metric]}): "
        + ("; ".join(notes) if notes else "waiting for finished runs")
        + ". "
        + (f"Final training losses: {losses} ({why}). " if losses else "")
        + f"One seed each{seeds_note}, 300 steps of an MLP on 8 × 8 digits; for context, the "
        "paper reports "
        f"linear readout on CIFAR-10 with extreme augmentations of {paper} (ResNet-18, 500 "
        "epochs)."
    )


polling = any(store.get(i).status in ACTIVE for i in fresh)
SWEEP_TEST = {"knn_acc": "clean", "knn_acc_embedding": "clean_z"}  # (the sweep has no probe)
swept = sweep_by.get((demo_p, demo_eps, "gca_uot"))
seeds_note = (
    f" (the sweep's {swept.seeds} seeds at this setting, clean digits: GCA-UOT − INCE = "
    f"{swept.diff_cell(SWEEP_TEST[metric])})"
    if swept is not None and metric in SWEEP_TEST
    else ""
)
st.fragment(run_every=2.0 if polling else None)(comparison_view)(
    store, demo_ids + fresh, metric, corruption, polling, demo_ids, seeds_note
)

st.subheader("Does GCA-UOT beat INCE on noisy views here? The sweep")
SWEEP_SHORT = {  # the table's column names (the method's full name on hover)
    "gca_ince": "GCA-INCE",
    "gca_uot": "GCA-UOT",
    "gca_uot_l0.01": "λ = 0.01",
    "gca_uot_kl": "r₂ = 0",
    "gca_uot_l100": "λ = 100",
    "rince": "RINCE",
}
if sweep_problem:
    st.error(f"Sweep: {sweep_problem}", icon=":material/error:")
elif sweep_rows:
    seeds = max(r.seeds for r in sweep_rows)
    methods = ", ".join(ex.SWEEP_METHODS[m] for m in dict.fromkeys(r.method for r in sweep_rows))
    st.markdown(
        f"`benchmarks/sweep_noisy.py` trained {methods} on digits with a share p of each "
        "batch's pairs mismatched (the second view swapped for another sample's), at each ε, "
        f"with {seeds} seeds, and measured k-NN accuracy on clean test digits and on digits "
        "corrupted with severity 0.5, of the backbone features h and of the 3-D embedding ẑ. "
        "Δ is the paired difference to INCE (same seeds, same batches and views); the chart's "
        "bars span ± twice its standard error (a bar clear of 0 is a measurable difference)."
    )
    test = ui.select(
        "Accuracy in the chart",
        "noisy_sweep_test",
        list(ex.SWEEP_TESTS),
        "clean_z",
        format_func=ex.SWEEP_TESTS.get,
    )
    shares, epsilons, gains, errors = ex.sweep_gains(sweep_rows, test)
    titles = {ex.SWEEP_METHODS[m]: m for m in gains}
    ui.chart(
        xfig.sweep_gain_chart(
            shares,
            epsilons,
            {t: gains[m] for t, m in titles.items()},
            {t: errors[m] for t, m in titles.items()},
            # (GCA-INCE and GCA-UOT in their colours on every page, the variants the next)
            dict(zip(titles, run_colors(list(titles.values())), strict=True)),
            metric=ex.SWEEP_TESTS[test],
        ),
        key="noisy_chart_sweep",
    )
    shown = ex.sweep_verdict(sweep_rows, test, demo_p, demo_eps)

    def listed(found: list[ex.NoisySweepRow]) -> str:
        return "; ".join(
            f"{ex.SWEEP_METHODS[r.method]} at p = {r.share:g}, ε = {r.epsilon:g}: "
            f"{r.diff_cell(test)}"
            for r in found
        )

    st.caption(
        f"{ex.SWEEP_TESTS[test][:1].upper()}{ex.SWEEP_TESTS[test][1:]}, measurably ahead of "
        f"INCE (Δ > 2 SE): {listed(shown.ahead) or 'none'}. Measurably behind (Δ < −2 SE): "
        f"{listed(shown.behind) or 'none'}. The blue line Δ = 0 is INCE itself. The backbone "
        "h (256 features) is what a linear probe or k-NN on features reads; the loss itself "
        "shapes ẑ, the normalised 3-D output the Geometry page draws, and mismatched pairs "
        f"pull unrelated digits together there first. The demo pair above: p = {demo_p:g}, "
        f"ε = {demo_eps:g}, each method's preset."
    )
    # one row per setting, as the chart's points: INCE's accuracy and each method's Δ
    settings = sorted({(r.share, r.epsilon) for r in sweep_rows}, key=lambda k: (k[0], -k[1]))
    others = [m for m in ex.SWEEP_METHODS if m != "ince" and any(k[2] == m for k in sweep_by)]

    def cell(share: float, eps: float, method: str, text: str) -> str:
        row = sweep_by.get((share, eps, method))
        return "" if row is None else row.cell(test) if text == "cell" else row.diff_cell(test)

    ui.table(
        {
            "p": [f"{p:g}" for p, _ in settings],
            "ε": [f"{e:g}" for _, e in settings],
            f"INCE, {ex.SWEEP_TESTS[test]}": [cell(p, e, "ince", "cell") for p, e in settings],
            **{f"Δ {SWEEP_SHORT[m]}": [cell(p, e, m, "diff") for p, e in settings] for m in others},
        },
        key="noisy_sweep_table",
        column_config={
            f"Δ {SWEEP_SHORT[m]}": st.column_config.TextColumn(
                f"Δ {SWEEP_SHORT[m]}",
                help=f"{ex.SWEEP_METHODS[m]} − INCE, ± one standard error",
            )
            for m in others
        }
        | {
            f"INCE, {ex.SWEEP_TESTS[test]}": st.column_config.TextColumn(
                "INCE", help=f"INCE's {ex.SWEEP_TESTS[test]}, mean ± standard deviation over seeds"
            ),
        },
    )
    st.caption(
        "Each accuracy is a mean ± standard deviation over seeds, each Δ ± one standard "
        f"error; {seeds} seeds, a measurable difference is |Δ| > 2 SE, not corrected for the "
        f"{len(others) * len(settings)} comparisons of a chart (with {seeds} seeds about one "
        "in ten clears it by chance, either way). Noisy views are simulated here by swapping "
        "a share p of the second views for other samples' (views that share nothing; the "
        "views at the top of the page illustrate the paper's extreme augmentations, which no "
        "run here uses). "
        "Every run's numbers: `assets/sweep_noisy.json` and benchmarks/README.md."
    )

# ----------------------------------------------------- where mass and gradient go

st.header("Where GCA-UOT's mass and gradient go")
st.markdown(
    "A controlled experiment: replace a share of the second views by random points on the "
    "sphere (views that match nothing) and compare, row by row, the balanced plan (GCA-INCE) "
    "with the unbalanced one (GCA-UOT), then ask how much of each loss's gradient still "
    "flows through the corrupted pairs."
)
st.latex(um.REPLACE_LATEX)
st.latex(um.ROW_SCALING_LATEX)
ckpts = lab.checkpoint_runs(store)


@st.fragment
def mechanism_section(store: RunStore, ckpts: dict[int, str]) -> None:
    """The controlled experiment's controls, metrics and charts: a change of its controls
    reruns only this section (the page above it stays as it was drawn)."""
    mech_sources = {
        -1: "Synthetic clusters on the sphere",  # (d = 32: the caption below says so)
        0: "Digits, random MLP encoder",
        **ckpts,
    }
    with ui.wrapping("noisy_mech", 180):  # (the Batch names: whole at 1093 and at 800 px)
        k1, k2, k3 = st.columns([4, 3, 3])
    with k1:
        mech_source = ui.select(
            "Batch", "mech_src", list(mech_sources), -1, format_func=mech_sources.get
        )
        mech_n = int(ui.slider("Pairs N", "mech_n", 32, 256, 128, step=16))
    with k2:
        mech_share = float(
            ui.slider("Share of corrupted views", "mech_share", 0.05, 0.5, 0.25, step=0.05)
        )
        mech_seed = int(ui.number("Seed", "mech_seed", 0, min_value=0, step=1))
    with k3:
        mech_eps = ui.epsilon("mech_eps", 0.1)
        mech_lam = ui.relaxation("mech_lam", 0.01, both=True)
    mech_ckpt = store.run_dir(mech_source) / "checkpoint.pt" if mech_source > 0 else None
    mech_stamp = mech_ckpt.stat().st_mtime if mech_ckpt is not None and mech_ckpt.exists() else 0.0
    with ui.guard("Experiment"):
        shares, grads, sweep, mech_who = mechanism(
            int(mech_source),
            mech_n,
            mech_share,
            mech_seed,
            mech_eps,
            mech_lam,
            mech_stamp,
            _store=store,
        )
    bad_rows = int(shares.corrupted.sum())
    st.caption(
        f"Batch: {mech_who}; {bad_rows} of {mech_n} second views replaced. T = {shares.n_iter} "
        f"sweeps, ε = {shares.epsilon:g}, λ₁ = λ₂ = {shares.relax:g} (ρ = λ/(λ + ε) = "
        f"{shares.rho:.3f})."
    )
    row_bal = shares.corrupted_share("balanced_row")
    row_uot = shares.corrupted_share("unbalanced_row")
    pos_bal = shares.corrupted_share("balanced_positive")
    pos_uot = shares.corrupted_share("unbalanced_positive")
    g1, g2, g3, g4 = st.columns(4)
    g1.metric(
        "Corrupted rows' share of the mass",
        f"{row_uot:.3f}",
        vs_balanced(row_uot, row_bal),
        delta_color="off",
        help="Plan mass on the corrupted rows: Σ over corrupted rows of (P1)ᵢ / ΣP, unbalanced "
        "plan; the balanced plan gives every row 1/N",
    )
    g2.metric(
        "Corrupted pairs' share of the diagonal",  # (a share, not Pᵢᵢ itself)
        f"{pos_uot:.3f}",
        vs_balanced(pos_uot, pos_bal),
        delta_color="off",
        help="Positive mass on the corrupted pairs: Σ over corrupted pairs of Pᵢᵢ / Σₖ Pₖₖ",
    )
    g3.metric(
        "Total mass ΣP",
        f"{shares.unbalanced_mass:.4g}",
        help=f"of the unbalanced plan; balanced: {shares.balanced_mass:.4g} = N; the kernel's "
        f"own mass ΣK = {shares.kernel_mass:.4g}",
    )
    g4.metric(
        "Positive's kernel share",
        f"{shares.positive_kernel_part:.3f}",
        help="The positive's part of its row's kernel mass, mean over clean rows of "
        "Kᵢᵢ / (K1)ᵢ: how much a row loses when its view is "
        "replaced, and so how much the relaxation can tell the two apart",
    )
    st.latex(um.SHARE_LATEX)
    ui.chart(mfig.share_chart(shares), key="mech_chart_shares")
    visible = row_bal - row_uot
    change = f"{abs(visible):.3f} {'less' if visible >= 0 else 'more'}"
    st.caption(
        f"The balanced plan gives every row exactly 1/N of the mass; the corrupted rows hold "
        f"{row_bal:.3f} of it, their share of the batch. The unbalanced plan gives them "
        f"{row_uot:.3f} ({change}). Its total mass ΣP = {shares.unbalanced_mass:.4g} "
        + (
            f"is close to N = {mech_n} at this large λ, but"
            if abs(shares.unbalanced_mass - mech_n) <= 0.01 * mech_n
            else f"is not comparable with N = {mech_n}:"
        )
        + f" as λ falls the plan drifts from N toward the kernel's own mass "
        f"ΣK = {shares.kernel_mass:.4g}, so the charts show shares. The "
        f"relaxation can only tell a corrupted row by the kernel mass it lost, the positive's "
        f"part Kᵢᵢ / (K1)ᵢ = {shares.positive_kernel_part:.3f} on average here: large at small ε, "
        "small at the paper's ε = 0.5, where the unbalanced plan barely moves mass off corrupted "
        "rows. Within a row the balanced plan already moves mass off a corrupted positive "
        f"(positive share {pos_bal:.3f} against {row_bal:.3f})."
    )
    ui.chart(mfig.gradient_chart(grads), key="mech_chart_grads")
    gs = grads.shares
    # (the caption named the preset's ε = 0.5 and λ = 0.2 beside bars measured at this
    # section's ε and λ, and credited GCA-UOT's RINCE term with a drop of 0.003)
    rince_part = gs["gca_uot_kl"] - gs["gca_uot"]  # what the RINCE term takes off the share
    preset = gca_losses.get("gca_uot").params  # the paper's settings, as the preset holds them
    st.caption(
        f"Measured on this batch at this section's ε = {shares.epsilon:g}, T = {shares.n_iter} and "
        f"λ₁ = λ₂ = {shares.relax:g}: INCE {gs['ince']:.3f}, GCA-INCE {gs['gca_ince']:.3f}, "
        f"GCA-UOT as the paper computes it {gs['gca_uot']:.3f} (its KL term alone "
        f"{gs['gca_uot_kl']:.3f}). That loss reads the plan through a row softmax, Pᵢᵢ / (P1)ᵢ, "
        "in which the row scaling u cancels: the relaxation hardly changes its gradient. "
        + (
            f"Its RINCE term, weighted r₂ = {preset['r2']:g}, takes {rince_part:.3f} off the "
            "share; "
            if rince_part > 0
            else f"Its RINCE term, weighted r₂ = {preset['r2']:g}, adds {-rince_part:.3f} to the "
            "share; "
        )
        + f"RINCE alone (q = 1, unweighted) gives {gs['rince']:.3f}. Reading the unbalanced plan "
        f"itself, KL(P_tgt ‖ P), keeps the row scaling: {gs['uot_plan_kl']:.3f}. The RINCE "
        f"settings are the paper's: λ_R = {preset['lam']:g}, q = {preset['q']:g}, "
        f"r₁ = {preset['r1']:g}, r₂ = {preset['r2']:g} (Chen et al. 2024; its CIFAR-10 config "
        "uses r₂ = 0.02, q = 0.98); "
        f"the Train page's GCA-UOT preset also uses its ε = {preset['epsilon']:g}, "
        f"T = {preset['n_iter']}, λ₁ = λ₂ = {preset['relax_a']:g}."
    )
    ui.chart(mfig.tradeoff_chart(sweep), key="mech_chart_tradeoff")
    lo_share, hi_share = sweep.shares["uot_plan_kl"][0], sweep.shares["uot_plan_kl"][-1]
    lo_h, hi_h = sweep.entropy[0] / sweep.max_entropy, sweep.entropy[-1] / sweep.max_entropy
    st.caption(
        f"From λ₁ = λ₂ = {sweep.relax[-1]:g} (nearly balanced) to {sweep.relax[0]:g}: the gradient "
        f"share of the plan read directly goes {hi_share:.3f} → {lo_share:.3f}, the paper's "
        f"GCA-UOT {sweep.shares['gca_uot'][-1]:.3f} → {sweep.shares['gca_uot'][0]:.3f}, and the "
        f"plan's entropy {hi_h:.3f} → {lo_h:.3f} of log N²: as the marginals stop holding it the "
        "plan turns into the kernel K, with K's uneven rows and columns. Same batch, ε and T as "
        "above."
    )
    ui.show_code(um.replace_views, um.mass_shares, um.gradient_shares, um.relaxation_sweep)


mechanism_section(store, ckpts)


# ------------------------------------------------------- where the plan puts mass

st.header("Graded corruption: does the unbalanced plan put less mass on corrupted pairs?")


@st.fragment
def graded_section(store: RunStore, ckpts: dict[int, str], severity: float, seed: int) -> None:
    """The graded-corruption experiment (``severity`` and ``seed``: the views' controls at
    the top of the page): a change of its own controls reruns only this section."""
    # The first encoder: GCA-UOT's trained on noisy pairs (newest first), as the section
    # is about; a GCA-UOT run trained on clean pairs took its place once a user trained one.
    configs = {i: store.get(i).config for i in ckpts}
    uot_ckpts = sorted(
        (i for i in ckpts if configs[i].get("method") == "gca_uot"),
        key=lambda i: not float(configs[i].get("noisy_pairs") or 0) > 0,
    )
    encoders = {0: "Random MLP encoder (untrained)", **ckpts}
    with ui.wrapping("noisy_graded", 180):
        e1, e2, e3 = st.columns([4, 3, 3])
    with e1:
        encoder_id = ui.select(
            "Encoder",
            "noisy_enc",
            list(encoders),
            uot_ckpts[0] if uot_ckpts else 0,
            format_func=encoders.get,
        )
        source = ui.select(
            "Second view",
            "noisy_src",
            list(SOURCES),
            "graded",
            format_func=SOURCES.get,
            help="Each pair's second view: its test image corrupted with a severity spread "
            "evenly from 0 to the largest severity over the batch (in a random order), or an "
            "extreme augmentation at the severity s of the views above.",
        )
    with e2:
        n = int(ui.slider("Pairs N", "noisy_n", 32, 256, 128, step=16))
        max_sev = float(ui.slider("Largest severity", "noisy_max", 0.1, 1.0, 1.0, step=0.05))
    with e3:
        eps = ui.epsilon("noisy_eps", 0.5)
        lam = ui.relaxation("noisy_lam", 0.2, both=True)
    ckpt = store.run_dir(encoder_id) / "checkpoint.pt" if encoder_id else None
    stamp = ckpt.stat().st_mtime if ckpt is not None and ckpt.exists() else 0.0
    view_severity = max_sev if source == "graded" else severity
    with ui.guard("Experiment"):
        res, who = mass_experiment(
            source, n, seed, view_severity, int(encoder_id), stamp, eps, lam, _store=store
        )
    st.caption(
        f"Embeddings from {who}. View 1 is the clean digit, view 2 "
        + (
            f"the digit corrupted with a severity spread evenly over [0, {max_sev:g}]"
            if source == "graded"
            else f"an extreme augmentation at severity {severity:g}"
        )
        + f". The plan: GCA-UOT's, ε = {res.epsilon:g}, T = {res.n_iter}, λ₁ = λ₂ = {lam:g}."
    )
    # (named in words: the mechanism section above has ρ = λ / (λ + ε), RINCE weights r)
    q1, q2, q3, q4 = st.columns(4)
    q1.metric(
        "Rank corr.: strength vs Pᵢᵢ",
        f"{res.spearman:+.3f}",
        help="Spearman rank correlation of each view's strength with Pᵢᵢ / mean Pᵢᵢ",
    )
    q2.metric(
        "Linear corr.: strength vs Pᵢᵢ",
        f"{res.pearson:+.3f}",
        help="Pearson correlation of each view's strength with Pᵢᵢ / mean Pᵢᵢ",
    )
    q3.metric(
        "Rank corr.: strength vs row mass",
        f"{res.spearman_row:+.3f}",
        help="Spearman rank correlation of each view's strength with its row's mass (P1)ᵢ",
    )
    q4.metric(
        "Rank corr., balanced plan's Pᵢᵢ",
        f"{res.spearman_balanced:+.3f}",
        help="The first correlation for the balanced plan (GCA-INCE's) of the same batch",
    )
    ui.chart(
        xfig.mass_scatter(
            res.strength,
            {
                "unbalanced plan: P_ii / mean": res.kept,
                "unbalanced plan: row mass (P1)_i / mean": res.row_mass,
                "balanced plan (GCA-INCE): P_ii / mean": res.balanced_kept,
            },
        ),
        key="noisy_chart_mass",
    )
    low_q, high_q = np.quantile(res.strength, [0.25, 0.75])
    low_kept = res.mean_kept(res.strength <= low_q)
    high_kept = res.mean_kept(res.strength >= high_q)
    direction = "less mass" if high_kept < low_kept else "not less mass"
    if res.negligible:
        direction = "no measurable difference"
        st.warning(
            f"At ε = {res.epsilon:g} the plan barely tells the pairs apart: every diagonal mass "
            f"is within {res.kept_spread:.1e} × their mean of the others, so the correlations "
            "above rank differences too small to matter. Lower ε to see the effect.",
            icon=":material/info:",
        )
    st.caption(
        f"Measured on these {n} pairs: the quarter with the weakest corruption keeps "
        f"{low_kept:.3f} × the mean diagonal mass, the most corrupted quarter {high_kept:.3f} × "
        f"({direction} on corrupted pairs; rank correlation (Spearman) {res.spearman:+.3f}, "
        f"linear (Pearson) {res.pearson:+.3f}). The unbalanced plan's marginals are only "
        f"penalised: its row sums range over {res.row_sums.min():#.3g} – "
        f"{res.row_sums.max():#.3g} against μᵢ = 1 (total {res.total_mass:.4g} against N = {n}), "
        f"and a row's total correlates with the strength at rank correlation "
        f"{res.spearman_row:+.3f}. The balanced plan (hard marginals, rows within "
        f"{res.balanced_row_error:.1e} of 1) gives {res.spearman_balanced:+.3f} for its "
        "diagonal: it can only move a corrupted pair's mass to other columns of the same row."
    )
    ui.show_code(ex.corruption_mass_correlation, ex.graded_corruption, ex.augment_at)


graded_section(store, ckpts, severity, seed)
