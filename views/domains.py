"""Target plans and domains: design P_tgt (pairs, class prior γ, domain prior α, β as shares
of a row's mass, or an uploaded matrix), see the plan GCA-INCE produces for it and the pull
its loss puts on the cost, and train on multi-domain digits across α - β."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

import ui
from gca_viz import experiments as ex
from gca_viz import lab, losses, targets
from gca_viz.figures import experiments as xfig
from gca_viz.figures.player import half_step_player
from gca_viz.losses.stages import N_ITER
from gca_viz.runs import ACTIVE, RunStore
from gca_viz.targets import TARGETS

SHIPPED_DIR = ".shipped-sweep"  # in the user's run store: the shipped sweep's own store

KINDS = {
    "pairs": "Augmentation pairs (I)",
    "class": "Class prior γ (share)",
    "domain": "Domain prior α, β (shares)",
    "custom": "Upload a matrix (.npy, .csv)",
}


# ------------------------------------------------------------------------ cached math


@st.cache_data(max_entries=8, show_spinner="Embedding the batch...")
def load_batch(n: int, seed: int) -> lab.Batch:
    """``n`` multi-domain digits through a random encoder, sorted by domain then class."""
    return ex.sort_by_domain(lab.data_batch("multidomain_digits", n, seed, augment="standard"))


@st.cache_data(max_entries=16, show_spinner="Running Sinkhorn...")
def gca_steps(
    batch_key: tuple[int, int], _batch: lab.Batch, target: np.ndarray, eps: float, n_iter: int
) -> lab.HalfSteps:
    """Every half-step of GCA-INCE towards ``target`` on the batch ``batch_key``."""
    return lab.half_steps(_batch.cost_matrix("cross"), target, eps, n_iter)


@st.cache_data(max_entries=16, show_spinner=False)
def pull_map(
    batch_key: tuple[int, int], _batch: lab.Batch, target: np.ndarray, eps: float, n_iter: int
) -> np.ndarray:
    """GCA-INCE's gradient with respect to the cost through its sweeps, on ``batch_key``."""
    return ex.sweep_pull(_batch.cost_matrix("cross"), target, eps, n_iter)


@st.cache_data(max_entries=64, show_spinner=False)
def embedding_accuracy(_store: RunStore, where: str, run_id: int, stamp: tuple[str, int]) -> float:
    """Domain accuracy on a run's last embedding snapshot (``where``: the store's folder,
    ``stamp``: the run's status and step)."""
    return ex.run_embedding_domain_accuracy(_store, run_id)


@st.cache_resource(show_spinner="Opening the shipped sweep...")
def shipped_sweep(where: str) -> tuple[RunStore, list[int]]:
    """The sweep shipped with the app, in a store of its own beside the user's
    (:func:`gca_viz.experiments.domains.shipped_sweep`)."""
    return ex.shipped_sweep(Path(where) / SHIPPED_DIR)


@st.cache_data(show_spinner="Fitting linear probes on raw pixels...")
def pixel_baseline(seed: int) -> dict[str, float]:
    shipped = ex.shipped_pixel_baseline(seed)  # (fitting the probes: seconds of a first visit)
    return shipped or ex.pixel_baseline("multidomain_digits", seed)


def _sup(k: int) -> str:
    """``(k)`` as a superscript, for labels such as P⁽²⁰⁾."""
    return "⁽" + str(k).translate(str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")) + "⁾"


def _csv(matrix: np.ndarray) -> str:
    return "\n".join(",".join(f"{v:.6g}" for v in row) for row in matrix) + "\n"


# ---------------------------------------------------------------------------- header

ui.title("Target plans and domains")
ui.intro(
    "Contrastive learning matches each sample to its own other view: the target plan "
    "$P_{\\mathrm{tgt}} = I$. GCA lets the target say more, for example that samples of the "
    "same class, or of the same domain, are partial positives. Design a target on a batch of "
    "multi-domain digits (original, rotated, inverted, noisy), see which pairs GCA-INCE's "
    "loss pulls together, then train with the domain prior across $\\alpha - \\beta$ and "
    "measure how decodable the domain becomes."
)
st.latex(
    r"\mathcal L_{\mathrm{GCA\text{-}INCE}} = \tfrac1N\,\mathrm{KL}\big(P_{\mathrm{tgt}}"
    r"\,\|\,P^{(2T)}\big),\qquad \mu = P_{\mathrm{tgt}}\mathbf 1,\quad"
    r" \nu = P_{\mathrm{tgt}}^\top\mathbf 1"
)

store = ui.run_store()
with ui.controls("Batch", folded=True):  # (secondary in a lecture: the plots come up)
    n = int(ui.slider("Samples N", "dom_n", 16, 128, 48, step=8))
    seed = int(ui.number("Seed", "dom_seed", 0, min_value=0, step=1))
# (in a lecture a popover of its own: inside "Batch", a lecturer did not look for ε there)
with ui.controls("GCA-INCE plan", folded=True):
    eps = ui.epsilon("dom_eps", 0.5)
    n_iter = int(ui.slider(ui.param_label(N_ITER), "dom_T", 1, 30, 10))

batch = load_batch(n, seed)
assert batch.domains is not None and batch.labels is not None  # multidomain digits have both

# ------------------------------------------------------------------------- designer

st.header("Design a target plan")
c1, c2, c3 = st.columns(3)
with c1:
    kind = ui.select("Target", "dom_target", list(KINDS), "domain", format_func=KINDS.get)
params: dict[str, float] = {}
# The page starts at α = 0.5, not the schema's 0.2: spread over a row's ~11 same-domain
# samples, 0.2 gave each 0.018, below the near-uniform plan's 1/48, so the defaults pushed
# same-domain pairs apart (-0.8 % of a positive's pull) beside text calling them partial
# positives (a student's review); at 0.5 they are pulled together.
PAGE_DEFAULTS = {("domain", "alpha"): 0.5}
if kind in ("class", "domain"):  # sliders from the schema: labels, ranges and defaults follow it
    for col, p in zip((c2, c3), TARGETS[kind].params, strict=False):
        with col:
            params[p.name] = ui.param_slider(
                p, f"dom_{p.name}", default=PAGE_DEFAULTS.get((kind, p.name))
            )

if kind == "domain" and params["alpha"] + params["beta"] > 1:  # (the target's constraint)
    # β's upper half at the default α was a dead zone: every design chart gave way to an
    # error box. The charts stay, at the largest β the constraint allows.
    params["beta"] = max(1.0 - params["alpha"], 0.0)
    st.warning(
        f"α + β must be at most 1 (the target's rows hold a positive's share too): the "
        f"charts use β = 1 − α = {params['beta']:g}. Lower α to raise β.",
        icon=":material/warning:",
    )

target: np.ndarray | None = None
if kind == "custom":
    with c2:
        upload = st.file_uploader(
            f"An {n} × {n} non-negative matrix (rows and columns in the batch's order below)",
            type=["npy", "csv"],
            key="dom_upload",
        )
    if upload is None:
        st.info(
            f"Upload a {n} × {n} matrix as .npy or .csv. Rows and columns follow the batch as "
            "drawn below: sorted by domain, then class. Download a domain-prior target from "
            "the other choices as a starting point."
        )
    else:
        try:
            matrix = ex.read_matrix(upload.getvalue(), upload.name)
            target = targets.custom_target(matrix, n).numpy()
        except ValueError as exc:
            st.error(f"Uploaded target {upload.name!r} is not usable: {exc}")
else:
    try:
        target = batch.target(kind, "cross", **params).numpy()
    except ValueError as exc:  # e.g. α + β > 1: say so, keep the sweep below
        st.error(f"Target: {str(exc).replace('alpha', 'α').replace('beta', 'β')}")

if target is not None:
    shown_target = target  # the download's callback runs later: it keeps this matrix
    mu, nu = target.sum(1), target.sum(0)
    st.latex(TARGETS[kind].latex)
    if kind in ("class", "domain"):
        st.caption(
            "The priors' weights are shares of a row's mass: the class prior gives a share γ "
            "to the row's same-class samples, the domain prior α to its same-domain and β to "
            "its other-domain samples, split equally among them, and the positive keeps the "
            "rest (1 − γ or 1 − α − β), so every row sums to 1 and a slider means the same at "
            "any batch size N."
        )
    steps = gca_steps((n, seed), batch, target, eps, n_iter)
    plan = steps.plans[-1]
    m1, m2, m3, m4 = ui.wrapping("dom_wrap_metrics", 180).columns(4)
    m1.metric(
        "Row sums μ = P_tgt 1",
        f"{mu.min():.3g}"  # every row the same ("1 – 1" read as one minus one)
        if f"{mu.min():.3g}" == f"{mu.max():.3g}"
        else f"{mu.min():.3g} to {mu.max():.3g}",
        help=f"Column sums ν = P_tgtᵀ1: {nu.min():.3g} to {nu.max():.3g} (1 only when the "
        "groups are equally large; the losses use μ and ν, so the target stays feasible).",
    )
    m2.metric(
        "Prior share per row",
        f"{float(((mu - np.diag(target)) / mu).mean()):.3g}",
        help="Mean share of a row's mass off its positive pair (α + β or γ for the priors, "
        "less in a row with no same- or other-domain sample, whose share stays on the "
        f"positive); the positive keeps {float((np.diag(target) / mu).mean()):.3g} on "
        "average. The same at any N: try the N slider.",
    )
    plan_share = ex.block_mass(plan, batch.domains)
    # The gradient itself, through the T sweeps (what training follows), and how far the
    # fixed-point formula (P_tgt − P)/(εN) is from it: at a small ε or a short T far (the
    # page called the formula exact there, while it had the wrong sign on 14% of the pairs)
    pull = pull_map((n, seed), batch, target, eps, n_iter)
    gap = ex.formula_gap(pull, ex.loss_pull(target, plan, eps))
    exact = gap.largest < 1e-6
    pulls = ex.group_pull(pull, batch.domains)
    same, other = pulls.shares  # of a positive's pull (NaN when the positives are not pulled)
    relative = not np.isnan(same)
    m3.metric(
        f"Same-domain share of P{_sup(2 * n_iter)}",
        f"{plan_share:.1%}",
        help="Σ over i ≠ j in the same domain / Σ over i ≠ j of the GCA-INCE plan. It depends "
        "on the target only through μ and ν, so it barely moves with α and β "
        f"(the target's own share: {ex.block_mass(target, batch.domains):.1%}).",
    )
    m4.metric(
        # (the unit in the label where it is not a share: at α = 1 it changed silently)
        "Pull on a same-domain pair" + ("" if relative else ", ∂L/∂C"),
        f"{same:+.1%}" if relative else f"{pulls.same:+.2g}",
        # (short: "+1.8 pts vs other-domain (+10.5%)" was cut at 1280 px with the sidebar)
        f"{(same - other) * 100:+.1f} pts vs other {other:+.1%}"
        if relative
        else f"{pulls.same - pulls.other:+.2g} vs other {pulls.other:+.2g}",
        # (no good/bad colour: a green ↑ beside a negative pull read as a contradiction)
        delta_color="off",
        help="The loss's pull ∂L/∂C (its gradient through the sweeps), on average over "
        "same-domain pairs (+: pulled together, −: pushed apart), "
        + (
            f"as a share of its pull on a positive pair; on an other-domain pair: {other:+.1%}."
            if relative
            else f"in cost units (the positives are not pulled here: {pulls.positive:+.2g}); "
            f"on an other-domain pair: {pulls.other:+.2g}."
        )
        + " It follows α and β.",
    )

    def blocks(matrix: np.ndarray, key: str, title: str, label: str, **kwargs: Any) -> None:
        """``matrix`` with the batch's domain blocks outlined and named."""
        fig = xfig.block_heatmap(
            matrix,
            batch.domains,
            title=title,
            value_label=label,
            group_names=batch.domain_names,
            **kwargs,
        )
        ui.chart(fig, key=key)

    left, right = ui.wrapping("dom_wrap_maps", 360).columns(2, gap="large")
    with left:
        title = "P_tgt, sorted by domain, then class"
        # log colours: the prior's entries, α / n₌(i), are ~100x below the positive's share
        # (linear, the blocks were as dark as the zeros); a zero is left blank
        blocks(target, "dom_chart_target", title, "P_tgt", row_ref=mu, col_ref=nu, log=True)
        st.download_button(
            "Download this target (.csv)",
            lambda: _csv(shown_target),  # made on click: no stale file URL when the page reruns
            file_name=f"target_{kind}_{n}x{n}.csv",
            mime="text/csv",
            key="dom_download",
        )
    with right:
        title = f"GCA-INCE plan P{_sup(2 * n_iter)} (ε = {eps:g}, T = {n_iter})"
        blocks(plan, "dom_chart_plan", title, "P", row_ref=mu, col_ref=nu, log=True)
    shown_pull = pull.copy()
    np.fill_diagonal(shown_pull, np.nan)  # the positives' pull, far the strongest, left blank
    p_left, p_right = ui.wrapping("dom_wrap_pull", 360).columns(2, gap="large")
    with p_left:
        # its diagonal left blank (the text says)
        title = "Pull ∂L/∂C = (P_tgt − P)/(εN)" if exact else "Pull ∂L/∂C through the sweeps"
        blocks(shown_pull, "dom_chart_pull", title, "pull", diverging=True, height=460)
    with p_right:
        sums = (
            "every prior's rows sum to 1 (and its columns nearly so): move its weights and "
            f"P{_sup(2 * n_iter)} barely moves"
            if kind != "custom"
            else "change this target without changing its row and column sums and "
            f"P{_sup(2 * n_iter)} does not move"
        )
        st.markdown(
            f"**The plan barely changes; the loss does.** Sinkhorn's plan of a batch "
            f"depends on the target only through its row and column sums μ and ν: {sums} "
            f"(its same-domain share is {plan_share:.1%}). What the target changes is the "
            "gradient: the loss KL(P_tgt‖P)/N differentiated through the sweeps. "
            + (
                "Here it is (P_tgt − P)/(εN) with respect to the cost (to "
                f"{max(gap.largest, 1e-16):.0e}): the plan has reached the target's "
                "marginals, Sinkhorn's fixed point, where the terms through the scalings "
                "cancel. Gradient descent lowers the cost by it: **red** pairs, where the "
                "target holds more mass than the plan, are pulled together; **blue** pairs "
                "are pushed apart. "
                if exact
                else "At Sinkhorn's fixed point it is (P_tgt − P)/(εN); here the plan's rows "
                f"still miss μ by {100 * steps.row_error[-1] / mu.sum():.2g}% of the mass, so "
                f"the gradient drawn differs from that formula by up to "
                f"{100 * gap.largest:.2g}% of its largest entry"
                + (
                    f", with the other sign on {100 * gap.flipped:.2g}% of the pairs"
                    if gap.flipped > 0
                    else ""
                )
                + ": raise T (or ε) to reach it. Gradient descent lowers the cost by the "
                "gradient: **red** pairs are pulled together, **blue** pairs pushed apart. "
            )
            + pulls.describe_positives()
        )
        st.markdown(
            (
                "A larger α pulls same-domain pairs harder, a larger β other-domain pairs; "
                "α is shared by a row's same-domain samples and β by its other-domain ones, "
                "so which kind ends closer depends on the batch too. "
                if kind == "domain"
                else ""
            )
            + pulls.describe("same-domain", "other-domain")
            + " The sweep below trains with the domain prior."
        )
    # The KL curve once, in the player (it marks INCE, GCA-INCE and the drop); the page drew
    # it a second time, as a static chart above the player.
    rise, rounding = lab.largest_rise(steps.kl)
    shown = "0 (rounding)" if rise == 0 else f"{-rise:.2e}"
    k1, k2, k3 = ui.wrapping("dom_wrap_kl", 180).columns(3)
    pair = ui.column_format([steps.kl[1], steps.kl[-1]])  # one rounding: "1.789" beside "1.78"
    k1.metric("INCE = KL(P_tgt‖P⁽¹⁾)/N", pair.format(steps.kl[1]))
    k2.metric(
        f"GCA-INCE = KL(P_tgt‖P{_sup(2 * n_iter)})/N",
        pair.format(steps.kl[-1]),
        **ui.versus_ince(steps.kl[-1] - steps.kl[1], rounding, "+.3g"),
    )
    k3.metric(
        "Least drop per half-step",  # (as the Story calls it)
        shown,
        help=f"min over k ≥ 1 of KL(P_tgt‖P⁽ᵏ⁾) − KL(P_tgt‖P⁽ᵏ⁺¹⁾), never negative (a "
        f"negative value would be a rise); changes within float64 rounding of the KL "
        f"(±{rounding:.0e}) are shown as 0",
    )
    st.markdown(
        "**▶ Play the half-steps**: each one rescales the plan's rows or columns to the "
        "target's marginals. With μ = P_tgt 1 and ν = P_tgtᵀ1 the target is feasible, so "
        "every half-step is a KL projection onto a set containing it and the KL curve beside "
        "the plan cannot rise: "
        + (
            "here no half-step raises it (the last ones change it only at rounding level: "
            "Sinkhorn has converged)."
            if rise == 0
            else f"here every half-step lowers it by at least {shown}."
        )
        + " The pattern within the rows is the kernel's."
    )
    st.caption(f"Batch: {batch.source}.")
    ui.chart(half_step_player(steps.plans, steps.kl, log=True), key="dom_chart_player")
    ui.show_code(targets.domain_target, ex.block_mass, ex.sweep_pull, ex.loss_pull, lab.half_steps)

# -------------------------------------------------------------------------- α - β sweep

st.header("Train across α − β")
first = ex.domain_sweep_configs([0.0])[0]
st.markdown(
    f"One click queues {len(ex.SWEEP_DELTAS)} background runs of GCA-INCE with the domain "
    f"prior on multi-domain digits, one per α − β in "
    f"{', '.join(f'{d:+g}' for d in ex.SWEEP_DELTAS)}, at a fixed total "
    f"s = α + β = {ex.SWEEP_TOTAL:g} of each row's mass (the smallest s that keeps α, β ≥ 0 "
    f"over this range): the positive keeps {1 - ex.SWEEP_TOTAL:g} of its row at any batch "
    f"size, and α − β = {ex.SWEEP_DELTAS[-1]:+g} ({ex.SWEEP_DELTAS[0]:+g}) gives the rest "
    "to same-domain (other-domain) samples only. Each run: "
    f"{first['steps']} steps, batch {first['batch_size']}, {first['layout']} layout, "
    f"ε = {losses.get('gca_ince').params['epsilon']:g}, seed {first['seed']}, evaluated once "
    "at the end. The store trains at most "
    f"{store.max_concurrent} at once; the others wait in its queue."
)
st.latex(ex.ALPHA_BETA_LATEX)
b1, b2 = st.columns([1, 3])
with b1:
    if st.button("Run the α − β sweep", key="dom_sweep_launch", type="primary"):
        with ui.guard("Sweep"):
            ids = ex.launch_domain_sweep(store)
        st.session_state["dom_sweep"] = max(ex.domain_sweeps(store))
        st.toast(f"Queued runs {', '.join(f'#{i}' for i in ids)}.")


def sweep_view(
    store: RunStore, run_ids: list[int], polling: bool, *, shipped: bool = False
) -> None:
    """The sweep's table, chart and measured trend (refreshed while runs are active);
    ``shipped``: the sweep that came with the app (its runs are not the user's)."""
    rows = ex.domain_sweep_results(store, run_ids, embedding=False)
    rows = [
        replace(
            r,
            domain_acc_embedding=embedding_accuracy(
                store, str(store.dir), r.run_id, (r.status, r.step)
            ),
        )
        if r.status == "finished"
        else r
        for r in rows
    ]
    active = [r for r in rows if r.status in ACTIVE]
    done = [r for r in rows if r.status == "finished"]
    if active:
        st.progress(
            sum(min(r.step / max(r.steps, 1), 1.0) for r in rows) / len(rows),
            text=f"{len(done)} of {len(rows)} runs finished; "
            + ", ".join(f"#{r.run_id} {r.status} {r.step}/{r.steps}" for r in active),
        )
        if st.button("Stop this sweep", key="dom_sweep_stop"):
            for r in active:
                store.stop(r.run_id)
            st.rerun()
    elif polling:
        st.rerun()  # the last run finished: redraw the page once without polling
    for r in rows:
        if r.status == "failed":
            st.error(f"Run #{r.run_id} ({r.name}) failed: {r.error}")
    ui.table(
        {
            "run": ["shipped" if shipped else f"#{r.run_id}" for r in rows],
            "α − β": [r.delta for r in rows],
            "α (share)": [r.alpha for r in rows],
            "β (share)": [r.beta for r in rows],
            "status": [f"{r.status} ({r.step}/{r.steps})" for r in rows],
            "domain acc (h)": [r.domain_acc for r in rows],
            "domain acc (ẑ)": [r.domain_acc_embedding for r in rows],
            "class probe acc (h)": [r.probe_acc for r in rows],
            "class k-NN acc (h)": [r.knn_acc for r in rows],
        },
        placeholder="—",  # a metric not measured yet (a run still training), not "None"
        key="dom_sweep_table",
    )
    d = np.array([r.delta for r in rows])
    dom = np.array([r.domain_acc if r.status == "finished" else np.nan for r in rows])
    dom_z = np.array([r.domain_acc_embedding if r.status == "finished" else np.nan for r in rows])
    cls = np.array([r.probe_acc if r.status == "finished" else np.nan for r in rows])
    fig = xfig.domain_sweep_chart(
        d,
        dom,
        cls,
        domain_acc_embedding=dom_z,
        paper_domain=ex.PAPER_DOMAIN_ACC,
        paper_class=ex.PAPER_CLASS_ACC,
        paper_label=ex.PAPER_LABEL,
    )
    ui.chart(fig, key="dom_chart_sweep")
    fits = {
        "domain acc (h)": ex.trend(d, dom),
        "domain acc (ẑ)": ex.trend(d, dom_z),
        "class probe acc (h)": ex.trend(d, cls),
    }
    (p0, a0), (p1, a1) = ex.PAPER_DOMAIN_ACC
    paper_slope = (a1 - a0) / (p1 - p0)
    cols = st.columns(len(fits) + 1)
    for col, (name, fit) in zip(cols, fits.items(), strict=False):
        col.metric(
            f"Slope: {name}",
            "n/a" if not np.isfinite(fit.slope) else f"{fit.slope:+.3f}",
            help="Least-squares slope per unit α − β over the finished runs.",
        )
        col.caption(
            f"Rank correlation (Spearman) {fit.spearman:+.2f}, linear (Pearson) "
            f"{fit.pearson:+.2f} (n = {fit.n} runs)"
            if fit.n >= 3
            else f"Correlations need 3 finished runs (n = {fit.n})."
        )
    cols[-1].metric(
        f"Slope: {ex.PAPER_LABEL}", f"{paper_slope:+.3f}", help="Domain accuracy per unit α − β."
    )
    cols[-1].caption(f"domain {a0:.2f} → {a1:.2f} from α − β = {p0:+g} to {p1:+g}")
    _sweep_caption(done, fits, paper_slope)


def _sweep_caption(done: list[ex.SweepRow], fits: dict[str, ex.Trend], paper_slope: float) -> None:
    """What was measured, in numbers, next to what the paper reports."""
    if len(done) < 2:
        st.caption("The measured trend appears once two runs have finished.")
        return
    lo, hi = done[0], done[-1]
    fit = fits["domain acc (ẑ)"]
    rises = fit.slope > 0 and (fit.n < 3 or fit.spearman > 0)
    agree = (
        f"it rises with α − β as in the paper, by {fit.slope:+.3f} per unit against "
        f"{paper_slope:+.3f} on PACS"
        if rises
        else f"it does not rise with α − β (slope {fit.slope:+.3f} per unit), unlike the "
        f"paper's {paper_slope:+.3f} on PACS"
    )
    base = pixel_baseline(int(ex.domain_sweep_configs([0.0])[0]["seed"]))
    on_h = [r.domain_acc for r in done]
    cls = [r.probe_acc for r in done]
    n_batch = int(ex.domain_sweep_configs([0.0])[0]["batch_size"])
    st.caption(
        f"Measured on {len(done)} finished runs: on the embeddings ẑ the loss shapes, the "
        f"domain accuracy goes from {lo.domain_acc_embedding:.3f} (α − β = {lo.delta:+g}) to "
        f"{hi.domain_acc_embedding:.3f} (α − β = {hi.delta:+g}): {agree}. On the backbone "
        f"features h it stays within {min(on_h):.3f} – {max(on_h):.3f} (slope "
        f"{fits['domain acc (h)'].slope:+.3f}), where a linear probe on raw pixels already "
        f"reads the domain with accuracy {base['domain_acc']:.3f}: the domain is readable "
        "before any training here, so h has no room to show the trend (the paper's lowest "
        f"domain accuracy is {ex.PAPER_DOMAIN_ACC[0][1]:.2f}). Class accuracy spans "
        f"{min(cls):.3f} – {max(cls):.3f} (paper: {ex.PAPER_CLASS_ACC[0]:.3f} – "
        f"{ex.PAPER_CLASS_ACC[1]:.3f}; raw pixels: {base['probe_acc']:.3f}). Each target row "
        f"gives s = {ex.SWEEP_TOTAL:g} of its mass to the prior and keeps "
        f"{1 - ex.SWEEP_TOTAL:g} on its positive pair, at N = {n_batch} as at any batch size "
        "(the paper writes α, β per entry of the target, so its axis is not in shares: "
        "compare the direction of the trends more than their slopes); "
        "and every point is one seed of a short run with an MLP on 8 × 8 digits, not a ResNet."
    )


sweeps = ex.domain_sweeps(store)
if not sweeps:
    with ui.guard("Shipped sweep"):
        shipped_store, shipped_ids = shipped_sweep(str(store.dir))
        st.caption(
            "No sweep of yours yet, so here is the one shipped with the app: the same "
            f"{len(shipped_ids)} runs, trained by `python -m gca_viz.demo domain-sweep` on "
            "the CPU. The button above trains them again in your store, and the page then "
            "shows your sweep."
        )
        sweep_view(shipped_store, shipped_ids, False, shipped=True)
else:
    with b2:
        chosen = ui.select(
            "Sweep",
            "dom_sweep",
            list(sweeps),
            next(iter(sweeps)),
            format_func=lambda k: f"Sweep {k}: runs {', '.join(f'#{i}' for i in sweeps[k])}",
        )
    run_ids = sweeps[chosen]
    polling = any(store.get(i).status in ACTIVE for i in run_ids)
    st.fragment(run_every=2.0 if polling else None)(sweep_view)(store, run_ids, polling)
ui.show_code(ex.alpha_beta, ex.domain_sweep_configs, ex.domain_sweep_results, ex.trend)
