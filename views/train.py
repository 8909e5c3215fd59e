"""Train: configure and launch runs, watch them live, steer them, compare them."""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

import ui
from gca_viz import augment, data, losses, models, targets
from gca_viz.device import resolve_device
from gca_viz.figures.training import (
    PLAN_VIEWS,
    RunSeries,
    describe_change,
    metric_curves,
    metric_label,
    metric_title,
    plan_heatmap,
)
from gca_viz.registry import Param
from gca_viz.runs import ACTIVE, RESUMABLE, RunInfo, RunStore
from gca_viz.train import LIVE_PARAMS, TrainConfig, build_loss

COMPOSED = "composed"
UPLOAD, PATH = "upload", "path"
TARGET_CHOICES = ("pairs", "class", "domain")  # "custom" needs a matrix: not offered here
TARGET_PARAMS = {p.name for name in TARGET_CHOICES for p in targets.TARGETS[name].params}
DEFAULT_METRICS = ["loss", "knn_acc", "alignment", "uniformity"]
DIAGNOSTICS = {
    "loss": "loss on this batch",
    "entropy": "plan entropy H(P)",
    "marginal_error": "marginal error",
    "positive_mass": "mass on positive pairs",
    "mass": "total mass",
    "n_iter": "Sinkhorn sweeps",
    "solver_error": "solver error",
}

st.title("Train")
st.markdown(
    "Train a small encoder with any loss of the GCA family. Each run is its own process: it "
    "keeps going if you close this page, and this page only reads what it writes (metrics, "
    "the plan of its current batch, snapshots of the embeddings). While a run trains you can "
    "change its $\\varepsilon$, its Sinkhorn iterations, its marginal relaxations and its "
    "target prior; the charts mark the step where each change took effect."
)
st.latex(
    r"\mathcal{L} = \frac{1}{n}\sum_i d_M\!\Big(P_{\mathrm{tgt}}\,\Big\|\,"
    r"\mathrm{proj}_B\big(e^{-C(z', z'')/\varepsilon}\big)\Big)_i"
)


# ----------------------------------------------------------------------------- helpers


def run_label(info: RunInfo) -> str:
    return f"#{info.id} {info.name}"


def keep_valid(key: str, options: list[Any], default: Any) -> None:
    """Reset a widget's state when its value is no longer an option (a deleted run)."""
    if key in st.session_state and st.session_state[key] not in options:
        st.session_state[key] = default


def multiselect(label: str, key: str, options: list[Any], default: list[Any], **kw: Any) -> Any:
    """``st.multiselect`` backed by the query string (comma-separated values)."""
    by_name = {str(o): o for o in options}
    if key not in st.session_state:
        raw = st.query_params.get(key)
        picked = [by_name[s] for s in raw.split(",") if s in by_name] if raw is not None else None
        st.session_state[key] = default if picked is None else picked
    st.session_state[key] = [o for o in st.session_state[key] if o in options]
    values = st.multiselect(label, options, key=key, **kw)
    text = ",".join(str(v) for v in values)
    if st.query_params.get(key) != text:
        st.query_params[key] = text
    return values


def step_of(p: Param) -> float:
    """A +/- step for a number input: about a fiftieth of the parameter's slider range."""
    low, high = p.ui or (p.low or 0.0, p.high or 1.0)
    span = float(high) - float(low)
    return 10.0 ** math.floor(math.log10(span / 50)) if span > 0 else 0.01


def param_input(p: Param, key: str, default: Any) -> Any:
    """A widget for one schema parameter (the library validates the value at launch)."""
    label = f"{p.name} ({p.symbol})" if p.symbol else p.name
    if p.kind == "choice":
        return ui.select(label, key, list(p.choices), default, help=p.description)
    if p.optional:
        hard = ui.toggle(
            f"hard {p.symbol or p.name}",
            f"{key}_hard",
            default is None,
            help=p.description,
        )
        if hard:
            return None
        if default is None:
            default = p.ui[0] if p.ui else 1.0
    if p.kind == "int":
        return ui.number(label, key, int(default), step=1, help=p.description)
    return ui.number(label, key, float(default), step=step_of(p), format="%g", help=p.description)


@st.cache_data(show_spinner=False, max_entries=32)
def describe_user_data(path: str, mtime: float) -> str:
    """A one-line summary of user data (raises ``ValueError`` if it does not load)."""
    ds = data.load_user_dataset(path)
    domains = f", {ds.n_domains} domains" if ds.n_domains else ""
    return f"{ds.n} {ds.kind} samples of shape {ds.input_shape}, {ds.n_classes} classes{domains}"


@st.cache_data(show_spinner=False, max_entries=16)
def has_domains(dataset: str, params_json: str) -> bool:
    """Whether the dataset carries domain labels (the domain prior needs them)."""
    try:
        if dataset in data.DATASETS:
            ds = data.load_dataset(dataset, **json.loads(params_json))
        else:
            ds = data.load_user_dataset(dataset)
    except ValueError:
        return False
    return ds.domain is not None


def save_upload(upload: Any, folder: Path) -> Path:
    """Write an uploaded file into ``folder`` under a sanitised, content-addressed name."""
    raw = upload.getvalue()
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(str(upload.name)).stem).strip("_")[:60]
    name = f"{stem or 'upload'}-{hashlib.sha256(raw).hexdigest()[:12]}.npz"
    dest = folder / name
    if not dest.exists():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{name}.{os.getpid()}.tmp"
        tmp.write_bytes(raw)
        os.replace(tmp, dest)
    return dest


def choose_dataset(store: RunStore) -> str | None:
    """The dataset widgets; the dataset name or path (``None`` until one is usable)."""
    options = [*data.DATASETS, UPLOAD, PATH]
    names = {UPLOAD: "Upload a .npz file…", PATH: "A file or folder in the data directory…"}
    choice = ui.select(
        "Dataset", "tr_data", options, data.DEFAULT_DATASET, format_func=lambda o: names.get(o, o)
    )
    if choice in data.DATASETS:
        st.caption(data.DATASETS[choice].description)
        return str(choice)
    if choice == UPLOAD:
        upload = st.file_uploader(
            "A .npz with arrays x, y and optionally domain (read without pickle)",
            type=["npz"],
            key="tr_upload",
        )
        if upload is None:
            return None
        path = save_upload(upload, store.dir / "uploads")
    else:
        base = (store.dir / "datasets").resolve()
        base.mkdir(parents=True, exist_ok=True)
        text = st.text_input(
            "A .npz, an image folder (one sub-folder per class) or CIFAR-10 binaries, "
            f"relative to {base}",
            key="tr_path",
            help="Copy or link your data into this folder first: the app reads nothing "
            "outside its data directory.",
        ).strip()
        if not text:
            return None
        path = (base / text).resolve()
        if not path.is_relative_to(base):
            st.error(f"{text}: the path leaves the data directory {base}; it is not read.")
            return None
        if not path.exists():
            st.error(f"{text}: no such file or folder in {base}.")
            return None
    try:
        summary = describe_user_data(str(path.resolve()), path.stat().st_mtime)
    except Exception as exc:  # a malformed file gets a message, never a traceback
        if choice == UPLOAD:
            path.unlink(missing_ok=True)
        reason = str(exc) if isinstance(exc, (ValueError, OSError)) else type(exc).__name__
        st.error(f"This data cannot be used: {reason}", icon=":material/error:")
        return None
    st.success(summary, icon=":material/dataset:")
    return str(path.resolve())


def loss_controls() -> tuple[str, dict[str, str], str, dict[str, Any]]:
    """The loss widgets; returns ``(method, stages, target, loss_params)``."""
    method = ui.select(
        "Loss",
        "tr_method",
        [*losses.LOSSES, COMPOSED],
        "gca_ince",
        format_func=lambda m: losses.LOSSES[m].title if m in losses.LOSSES else "Composed loss…",
    )
    stages: dict[str, str] = {}
    preset: dict[str, Any] = {}
    params: dict[str, Param] = {}
    if method == COMPOSED:
        for kind, registry, default in (
            ("cost", losses.COSTS, "cosine"),
            ("projection", losses.PROJECTIONS, "sinkhorn"),
            ("divergence", losses.DIVERGENCES, "kl"),
        ):
            stages[kind] = ui.select(kind.capitalize(), f"tr_{kind}", list(registry), default)
            st.caption(registry[stages[kind]].description)
            params.update({p.name: p for p in registry[stages[kind]].params})
    else:
        m = losses.LOSSES[method]
        st.caption(f"{m.description} ({m.reference})")
        preset = dict(m.params)
        params = {p.name: p for s in m.build().stages.values() for p in s.params}
    target = ui.select("Target prior", "tr_target", list(TARGET_CHOICES), "pairs")
    st.caption(targets.TARGETS[target].description)
    values: dict[str, Any] = {}
    # A named method fixes its choices (e.g. where Sinkhorn stops); its numbers are free.
    shown = [
        p
        for n, p in params.items()
        if n not in TARGET_PARAMS and n not in preset and (method == COMPOSED or p.kind != "choice")
    ]
    cols = st.columns(2)
    for i, p in enumerate(shown):
        with cols[i % 2]:
            values[p.name] = param_input(p, f"tr_{p.name}", p.default)
    for i, p in enumerate(targets.TARGETS[target].params):
        with cols[i % 2]:
            values[p.name] = param_input(p, f"tr_{p.name}", p.default)
    return method, stages, target, values


def launch(store: RunStore, cfg: dict[str, Any], name: str) -> None:
    """Validate and launch; an invalid setting shows an ``st.error`` naming the field."""
    try:
        resolve_device(cfg["device"])  # a GPU that is not here fails now, not in the run
        if cfg["target"] == "domain" and not has_domains(
            cfg["dataset"], json.dumps(cfg["dataset_params"])
        ):
            raise ValueError(
                "target: the domain prior needs a dataset with domain labels "
                "(for example multidomain_digits)"
            )
        run_id = store.launch(cfg, name=name or None)
    except ValueError as exc:
        st.error(f"Cannot launch this run: {exc}", icon=":material/error:")
        return
    st.session_state["tr_select_next"] = run_id
    st.session_state["tr_launched"] = run_id


def current_settings(store: RunStore, run: RunInfo) -> tuple[str, dict[str, Any]]:
    """The run's target prior and loss parameters now: its config plus applied changes."""
    cfg = TrainConfig.from_dict(run.config)
    params = dict(build_loss(cfg).params)
    target = cfg.target
    for change in store.applied_changes(run.id):
        target = change.get("target", target)
        params.update({k: v for k, v in change.items() if k not in ("step", "target")})
    return target, params


def live_number(p: Param, value: Any, key: str) -> Any:
    """A number input for a live change, starting at the run's current value."""
    label = f"{p.name} ({p.symbol})" if p.symbol else p.name
    if p.optional:
        hard = st.checkbox(f"hard {p.symbol or p.name}", value=value is None, key=f"{key}_hard")
        start = value if value is not None else (p.ui[0] if p.ui else 1.0)
        num = st.number_input(
            label, value=float(start), step=step_of(p), format="%g", key=key, help=p.description
        )
        return None if hard else num
    if p.kind == "int":
        return st.number_input(label, value=int(value), step=1, key=key, help=p.description)
    return st.number_input(
        label, value=float(value), step=step_of(p), format="%g", key=key, help=p.description
    )


def live_controls(store: RunStore, run: RunInfo) -> None:
    """ε, T, relaxations and target prior of a running run, applied at its next step."""
    try:
        now_target, now_params = current_settings(store, run)
        stages = build_loss(TrainConfig.from_dict(run.config)).stages.values()
    except ValueError as exc:
        st.error(f"This run's loss cannot be rebuilt here: {exc}")
        return
    schema = {p.name: p for s in stages for p in s.params}
    live = [n for n in LIVE_PARAMS if n in now_params and n in schema and n not in TARGET_PARAMS]
    index = TARGET_CHOICES.index(now_target) if now_target in TARGET_CHOICES else 0
    new_target = st.selectbox(
        "Target prior",
        TARGET_CHOICES,
        index=index,
        key=f"tr_live_{run.id}_target",
        help=" ".join(f"{t}: {targets.TARGETS[t].description}" for t in TARGET_CHOICES),
    )
    weights = targets.TARGETS[new_target].params
    with st.form(f"tr_live_form_{run.id}", border=False):
        wanted = {}
        fields = [schema[name] for name in live] + list(weights)
        for col, p in zip(st.columns(max(len(fields), 1)), fields, strict=False):
            with col:
                wanted[p.name] = live_number(
                    p, now_params.get(p.name, p.default), f"tr_live_{run.id}_{p.name}"
                )
        submitted = st.form_submit_button(
            "Apply at the next step", type="primary", icon=":material/bolt:"
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
    st.success(
        f"Requested {describe_change(changes)}: it takes effect at the run's next step "
        "and is marked on the charts.",
        icon=":material/check:",
    )


@dataclass(frozen=True)
class MonitorView:
    """What the live monitor shows (the widgets' values at the last full page run)."""

    run_id: int
    compare: tuple[int, ...]
    status_then: str
    metrics: tuple[str, ...]
    smoothing: float
    plan_view: str
    plan_log: bool
    plan_order: bool


def fmt(v: float) -> str:
    return f"{v:.4g}" if math.isfinite(v) else "–"


def show_plan(store: RunStore, run: RunInfo, view: MonitorView) -> None:
    """The latest plan snapshot of the run with its diagnostics."""
    plans = store.snapshots(run.id, "plan")
    if not plans:
        every = run.config.get("snapshot_every", 0)
        if not every:
            st.caption("This run saves no plan snapshots (snapshot_every is 0).")
        elif run.status in ACTIVE:
            st.caption(f"The batch's plan is saved every {every} steps; none yet.")
        else:
            st.caption(f"Run #{run.id} saved no plan snapshot.")
        return
    step, path = plans[-1]
    snap = store.load_snapshot(path)
    if snap is None or view.plan_view not in snap:
        st.warning(
            f"The plan snapshot at step {step} is missing or unreadable ({path.name}).",
            icon=":material/warning:",
        )
        return
    left, right = st.columns([3, 2])
    with left:
        fig = plan_heatmap(
            snap,
            view.plan_view,
            log_scale=view.plan_log,
            order_by_class=view.plan_order,
            title=f"{PLAN_VIEWS[view.plan_view]} at step {step}",
        )
        st.plotly_chart(fig, key="tr_plan")
    with right:
        rows = len(snap[view.plan_view])
        joint = rows == 2 * len(snap.get("y", []))
        st.markdown(
            f"**The batch at step {step}**: {rows} x {rows}, "
            f"{'both views stacked (joint layout)' if joint else 'view 1 x view 2'}"
        )
        diag = {k[5:]: float(v) for k, v in snap.items() if k.startswith("diag_")}
        st.dataframe(
            [{"quantity": DIAGNOSTICS.get(k, k), "value": fmt(v)} for k, v in diag.items()],
            hide_index=True,
        )
        st.caption(
            "Row i is a sample, column j a candidate positive; the plan is the loss's "
            "soft matching, and its mass on the positive pairs is what the loss rewards. "
            "A smaller ε or more Sinkhorn sweeps make it sharper. Rows grouped by class "
            "show a class prior as blocks."
        )


def live_monitor(store: RunStore, view: MonitorView) -> None:
    """Status, progress, latest metrics, curves and the current plan of the selected run."""
    try:
        run = store.get(view.run_id)
    except ValueError:  # deleted meanwhile
        st.rerun()
    if run.status != view.status_then:
        st.rerun()  # stopped, finished or failed: refresh the whole page (buttons too)
    st.progress(
        run.progress,
        text=f"**{run.status}** · "
        f"step {run.step} of {run.steps} · {run.config.get('method')} on "
        f"{Path(str(run.config.get('dataset'))).name} · device "
        f"{run.config.get('device')}",
    )
    now = store.latest_metrics(run.id)
    shown = [n for n in ("loss", "knn_acc", "probe_acc", "alignment", "uniformity") if n in now]
    for col, name in zip(st.columns(max(len(shown), 1)), shown, strict=False):
        step, value = now[name]
        col.metric(metric_label(name), fmt(value), help=f"{metric_title(name)}, at step {step}")
    series = []
    for i in (view.run_id, *view.compare):
        try:
            label = run_label(store.get(i))
        except ValueError:
            continue
        series.append(
            RunSeries(label, store.metrics(i, list(view.metrics)), store.applied_changes(i))
        )
    if not view.metrics:
        st.caption("Choose metrics to draw above.")
    elif not any(len(s.metrics) for s in series):
        if run.status in ACTIVE:
            st.info(
                "No metrics yet: the first values arrive a few seconds after the run starts.",
                icon=":material/hourglass_empty:",
            )
        else:
            st.caption(f"Run #{run.id} recorded no metrics.")
    else:
        fig = metric_curves(series, list(view.metrics), smoothing=view.smoothing)
        st.plotly_chart(fig, key="tr_curves")
        n_changes = len(series[0].changes)
        note = f" Dotted lines mark live changes ({n_changes} on this run)." if n_changes else ""
        st.caption(
            "The per-batch training loss and held-out evaluations: k-NN and linear-probe "
            "accuracy on the backbone features; alignment and uniformity of the "
            f"normalised embeddings (lower is better for both).{note}"
        )
    show_plan(store, run, view)


# -------------------------------------------------------------------------- new run

store = ui.run_store()
store.reconcile()
runs = store.list_runs()

with st.expander("New run", expanded=not runs, icon=":material/add_circle:"):
    col_loss, col_data, col_opt = st.columns(3, gap="large")
    with col_loss:
        st.markdown("**Loss**")
        method, stages, target, loss_params = loss_controls()
    with col_data:
        st.markdown("**Data and model**")
        dataset = choose_dataset(store)
        aug = ui.select(
            "Augmentation",
            "tr_augment",
            list(augment.PRESETS),
            "standard",
            help="How different the two views of a sample are; 'extreme' is the "
            "paper's noisy-view setting.",
        )
        encoder = ui.select(
            "Encoder",
            "tr_encoder",
            list(models.ENCODERS),
            "mlp",
            help=" ".join(f"{e}: {s.description}" for e, s in models.ENCODERS.items()),
        )
        out_dim = ui.number(
            "Output dimension",
            "tr_out_dim",
            3,
            step=1,
            help="2 or 3 lets the Geometry page draw the embeddings on the circle or the sphere.",
        )
    with col_opt:
        st.markdown("**Optimisation**")
        batch_size = ui.number("Batch size", "tr_batch", 256, step=32)
        steps = ui.number("Steps", "tr_steps", 300, step=50)
        lr = ui.number("Learning rate", "tr_lr", 2e-3, step=1e-4, format="%g")
        device = ui.select(
            "Device",
            "tr_device",
            ["auto", "cpu", "cuda"],
            "auto",
            help="auto picks CUDA, then Apple MPS, then the CPU.",
        )
        st.caption(f"auto means `{resolve_device('auto')}` on this machine.")
        run_name = st.text_input("Run name (optional)", key="tr_name")
    with st.expander("Advanced settings"):
        a1, a2, a3 = st.columns(3)
        with a1:
            layout = ui.select(
                "Layout",
                "tr_layout",
                ["joint", "cross"],
                "joint",
                help="joint: 2N x 2N over both views (SimCLR); cross: N x N.",
            )
            seed = ui.number("Seed", "tr_seed", 0, step=1)
            optimizer = ui.select("Optimiser", "tr_optimizer", ["adamw", "sgd"], "adamw")
        with a2:
            eval_every = ui.number(
                "Evaluate every (steps)",
                "tr_eval",
                50,
                step=10,
                help="k-NN, linear probe, alignment, uniformity.",
            )
            snapshot_every = ui.number(
                "Snapshot every (steps)",
                "tr_snap",
                20,
                step=10,
                help="The batch's plan and the embeddings.",
            )
        with a3:
            encoder_params = {
                p.name: param_input(p, f"tr_enc_{p.name}", p.default)
                for p in models.ENCODERS[encoder].params
            }
            dataset_params = (
                {
                    p.name: param_input(p, f"tr_data_{p.name}", p.default)
                    for p in data.DATASETS[dataset].params
                }
                if dataset in data.DATASETS
                else {}
            )
    if st.button(
        "Launch run",
        type="primary",
        key="tr_launch",
        icon=":material/play_arrow:",
        disabled=dataset is None,
    ):
        launch(
            store,
            {
                "dataset": dataset,
                "dataset_params": dataset_params,
                "augment": aug,
                "encoder": encoder,
                "encoder_params": encoder_params,
                "out_dim": out_dim,
                "method": method,
                "stages": stages,
                "loss_params": loss_params,
                "layout": layout,
                "target": target,
                "batch_size": batch_size,
                "steps": steps,
                "optimizer": optimizer,
                "lr": lr,
                "seed": seed,
                "device": device,
                "eval_every": eval_every,
                "snapshot_every": snapshot_every,
            },
            run_name,
        )
    if dataset is None:
        st.caption("Choose the data to enable the launch button.")

if "tr_launched" in st.session_state:
    launched = st.session_state.pop("tr_launched")
    st.success(f"Launched run #{launched}: it trains in the background.", icon=":material/check:")

# ------------------------------------------------------------------------------ runs

st.subheader("Runs")
runs = store.list_runs()
if not runs:
    st.info(
        "No runs yet. Configure one under **New run** above and press **Launch run**: on the "
        "digits a few hundred steps take about a minute on a laptop CPU. Runs keep training "
        "when you leave this page, and the **Geometry** page then shows their embeddings.",
        icon=":material/info:",
    )
    st.stop()

by_id = {r.id: r for r in runs}
latest = {r.id: store.latest_metrics(r.id) for r in runs}
with st.expander(f"All runs ({len(runs)})", expanded=len(runs) > 1):
    st.dataframe(
        [
            {
                "run": r.id,
                "name": r.name,
                "status": r.status,
                "progress": r.progress,
                "method": r.config.get("method"),
                "data": Path(str(r.config.get("dataset"))).name,
                "out_dim": r.config.get("out_dim"),
                "loss": latest[r.id].get("loss", (0, None))[1],
                "k-NN acc": latest[r.id].get("knn_acc", (0, None))[1],
                "started": time.strftime("%d %b %H:%M", time.localtime(r.started or r.created)),
            }
            for r in runs
        ],
        hide_index=True,
        column_config={
            "progress": st.column_config.ProgressColumn("progress", min_value=0, max_value=1),
            "loss": st.column_config.NumberColumn(format="%.4f"),
            "k-NN acc": st.column_config.NumberColumn(format="%.3f"),
        },
    )

ids = [r.id for r in runs]
if "tr_select_next" in st.session_state:
    st.session_state["tr_run"] = st.session_state.pop("tr_select_next")
keep_valid("tr_run", ids, ids[0])
c_run, c_cmp = st.columns([1, 2])
with c_run:
    run_id = ui.select(
        "Run",
        "tr_run",
        ids,
        ids[0],
        format_func=lambda i: f"{run_label(by_id[i])} · {by_id[i].status}",
    )
with c_cmp:
    compare = multiselect(
        "Compare with",
        "tr_compare",
        [i for i in ids if i != run_id],
        [],
        format_func=lambda i: run_label(by_id[i]),
        placeholder="Other runs to draw on the same charts",
    )
info = by_id[run_id]


def act(action: Callable[[], Any], done: str) -> None:
    """Run a store action; its ``ValueError`` is an ``st.error``, success reruns the page."""
    try:
        action()
    except ValueError as exc:
        st.error(str(exc), icon=":material/error:")
        return
    st.toast(done)
    st.rerun()


def embeddings_npz(store: RunStore, run_id: int) -> Callable[[], bytes]:
    def build() -> bytes:
        with tempfile.TemporaryDirectory() as tmp:
            return store.export(run_id, tmp)["embeddings"].read_bytes()

    return build


b_stop, b_resume, b_delete, b_csv, b_cfg, b_npz = st.columns(6)
with b_stop:
    if st.button(
        "Stop",
        key="tr_stop",
        icon=":material/stop:",
        disabled=info.status not in ACTIVE,
        help="Finishes the current step, saves a checkpoint and stops.",
    ):
        act(lambda: store.stop(run_id), f"Stopping run #{run_id}…")
with b_resume:
    if st.button(
        "Resume",
        key="tr_resume",
        icon=":material/replay:",
        disabled=info.status not in RESUMABLE,
        help="Continue from the last checkpoint.",
    ):
        act(lambda: store.resume(run_id), f"Resuming run #{run_id}")
with b_delete, st.popover("Delete", icon=":material/delete:", disabled=info.status in ACTIVE):
    st.markdown(f"Delete run **#{run_id}** with its metrics, snapshots and checkpoint?")
    if st.button("Delete for good", key="tr_delete", type="primary"):
        act(lambda: store.delete(run_id), f"Deleted run #{run_id}")
with b_csv:
    st.download_button(
        "Metrics CSV",
        lambda: store.metrics_csv(run_id),
        f"run-{run_id}-metrics.csv",
        "text/csv",
        key="tr_dl_csv",
        icon=":material/download:",
        on_click="ignore",
    )
with b_cfg:
    st.download_button(
        "Config JSON",
        json.dumps(info.config, indent=2, sort_keys=True),
        f"run-{run_id}-config.json",
        "application/json",
        key="tr_dl_cfg",
        icon=":material/download:",
        on_click="ignore",
    )
with b_npz:
    st.download_button(
        "Embeddings NPZ",
        embeddings_npz(store, run_id),
        f"run-{run_id}-embeddings.npz",
        "application/octet-stream",
        key="tr_dl_npz",
        icon=":material/download:",
        on_click="ignore",
        help="Every embedding snapshot: z (snapshots, n, d), steps, y, domain.",
    )

if info.status == "failed":
    last = (info.error or "unknown error").strip().splitlines()[-1]
    st.error(f"Run #{run_id} failed: {last}", icon=":material/error:")
    with st.expander("Error details: the run process's traceback"):
        st.code(info.error or "", language="text")
elif info.status == "interrupted":
    st.warning(
        f"Run #{run_id} was interrupted ({info.error}); resume it from its last checkpoint.",
        icon=":material/warning:",
    )

if info.status == "running":
    with st.expander(
        "Live controls: change the loss while the run trains", expanded=True, icon=":material/tune:"
    ):
        live_controls(store, info)

# ----------------------------------------------------------------- live monitor

found = {n for i in (run_id, *compare) for n in latest.get(i, {})} - {"step_time"}
metric_options = [*dict.fromkeys([*DEFAULT_METRICS, *sorted(found)])]
m1, m2 = st.columns([3, 1])
with m1:
    chosen = multiselect(
        "Metrics", "tr_metrics", metric_options, DEFAULT_METRICS, format_func=metric_label
    )
with m2:
    smoothing = ui.slider(
        "Loss smoothing",
        "tr_smooth",
        0.0,
        0.95,
        0.6,
        step=0.05,
        help="Exponential moving average of the per-batch loss; the raw "
        "curve stays faint behind it.",
    )
p1, p2, p3 = st.columns(3)
with p1:
    plan_view = ui.select(
        "Matrix of the current batch",
        "tr_plan_view",
        list(PLAN_VIEWS),
        "plan",
        format_func=lambda v: PLAN_VIEWS[v],
    )
with p2:
    plan_log = ui.toggle("Log colour scale", "tr_plan_log", True)
with p3:
    plan_order = ui.toggle("Group rows by class", "tr_plan_order", True)

view = MonitorView(
    run_id,
    tuple(compare),
    info.status,
    tuple(chosen),
    float(smoothing),
    plan_view,
    plan_log,
    plan_order,
)
active = info.status in ACTIVE or any(by_id[i].status in ACTIVE for i in compare)
st.fragment(run_every=1.5 if active else None)(live_monitor)(store, view)

# ------------------------------------------------------------------- duplicate

with st.expander("Duplicate with changes", icon=":material/content_copy:"):
    st.caption("Edit any field of this run's configuration and launch the copy as a new run.")
    text = st.text_area(
        "Configuration (JSON)",
        json.dumps(info.config, indent=2, sort_keys=True),
        height=320,
        key=f"tr_dup_{run_id}",
    )
    if st.button("Launch the copy", key="tr_dup_launch", icon=":material/play_arrow:"):
        try:
            edited = json.loads(text)
            if not isinstance(edited, dict):
                raise ValueError("the configuration must be a JSON object of fields")
            new_id = store.duplicate(
                run_id, **{k: v for k, v in edited.items() if info.config.get(k) != v}
            )
        except json.JSONDecodeError as exc:
            st.error(f"The configuration is not valid JSON: {exc}", icon=":material/error:")
        except ValueError as exc:
            st.error(f"Cannot launch the copy: {exc}", icon=":material/error:")
        else:
            st.session_state["tr_select_next"] = new_id
            st.session_state["tr_launched"] = new_id
            st.rerun()
