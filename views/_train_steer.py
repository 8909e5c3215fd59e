"""Train page, part 4: live controls. Change a running run's ε, Sinkhorn iterations,
marginal relaxations and target prior; the run applies the change at its next step and
records that step, which the charts mark."""

from __future__ import annotations

import streamlit as st

import ui
from gca_viz import targets
from gca_viz.figures.training import describe_change
from gca_viz.runs import RunInfo, RunStore, live_targets, run_loss
from gca_viz.train import LIVE_PARAMS
from views._train_launch import TARGET_CHOICES, TARGET_PARAMS, param_input


def live_controls(store: RunStore, run: RunInfo) -> None:
    """ε, T, relaxations and target prior of a running run, applied at its next step."""
    try:
        now_target, now_params = store.current_settings(run.id)
        schema = run_loss(run).schema
    except ValueError as exc:
        st.error(f"This run's loss cannot be rebuilt here: {exc}")
        return
    live = [n for n in LIVE_PARAMS if n in now_params and n in schema and n not in TARGET_PARAMS]
    allowed = live_targets(run)  # an external loop gives its loss labels or not
    choices = [t for t in TARGET_CHOICES if t in allowed or t == now_target] or [now_target]
    index = choices.index(now_target) if now_target in choices else 0
    new_target = st.selectbox(
        "Target prior",
        choices,
        index=index,
        key=f"tr_live_{run.id}_target",
        help=" ".join(f"{t}: {targets.TARGETS[t].description}" for t in choices),
    )
    weights = targets.TARGETS[new_target].params
    wanted = {}
    fields = [schema[name] for name in live] + list(weights)
    for col, p in zip(st.columns(max(len(fields), 1)), fields, strict=False):
        with col:
            value = now_params.get(p.name, p.default)  # the run's current value
            wanted[p.name] = param_input(p, f"tr_live_{run.id}_{p.name}", value, link=False)
    submitted = st.button(
        "Apply at the next step",
        type="primary",
        icon=":material/bolt:",
        key=f"tr_live_{run.id}_apply",
    )
    st.caption(
        "Nothing changes until you press the button; the run applies the change before "
        "its next step and records that step."
    )
    if not submitted:
        return
    changes = {k: v for k, v in wanted.items() if now_params.get(k) != v}
    if new_target != now_target:
        changes["target"] = new_target
    if not changes:
        st.info("Nothing changed: edit a value first.")
        return
    last_key = f"_tr_live_requested_{run.id}"
    if st.session_state.get(last_key) == changes:  # e.g. Enter, then the button
        st.info("This change is already requested: it applies at the run's next step.")
        return
    try:
        store.request_change(run.id, changes)
    except ValueError as exc:
        st.error(f"Cannot apply this change: {exc}", icon=":material/error:")
        return
    st.session_state[last_key] = changes
    # the curves come into view, where the change will be marked: at 1366 x 768 they sat
    # ~700 px under the button, and a student changed ε and watched nothing
    ui.scroll_later("tr_curves")
    st.success(
        f"Requested {describe_change(changes)}: it takes effect at the run's next step "
        "and is marked on the charts.",
        icon=":material/check:",
    )


def steering(store: RunStore, run: RunInfo) -> None:
    """The live controls of a running run, in their expander (nothing for other runs)."""
    if run.status != "running":
        return
    if run.external and not run.config.get("recorder", {}).get("steerable"):
        return  # the external run's note says why it has no live controls
    with st.expander(
        "Live controls: change the loss while the run trains", expanded=True, icon=":material/tune:"
    ):
        live_controls(store, run)
