"""Train page, part 1: the "New run" form (loss, data and model, optimisation) and launch.

Every widget keeps its value in the URL query string (``tr_*`` keys, see :mod:`ui`) but the
data path and the run name, which are kept for the session only (``ui.text``); the
library validates the configuration at launch and an invalid field is an ``st.error``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import streamlit as st

import ui
from gca_viz import augment, data, losses, models, targets, userdata
from gca_viz.device import resolve_device
from gca_viz.registry import Param
from gca_viz.runs import RunStore
from gca_viz.train import CONFIG_TARGETS, ConfigError, TrainConfig
from views._run_link import launch_status
from views._train_runs import by_user

COMPOSED = "composed"
UPLOAD, PATH = "upload", "path"
UPLOADED = "_tr_uploaded"  # (name, stored path) of the last upload: kept across page switches
CLEAR_NAME = "_tr_clear_name"  # a launch empties the run name (the next run took it too)
TARGET_CHOICES = CONFIG_TARGETS  # "custom" needs a matrix: not offered here
TARGET_PARAMS = {p.name for name in TARGET_CHOICES for p in targets.TARGETS[name].params}
LAUNCHED, SEEN = "tr_launched", "_tr_launched_seen"
FORM = "tr_new_run"  # the "New run" expander's key, numbered by FOLDS
FOLDS = "_tr_form_folds"  # launches so far: each one folds the form (a new expander)

LABELS = {
    "method": "Method",  # (under the column's heading "Loss")
    "target": "Target prior",
    "dataset": "Dataset",
    "augment": "Augmentation",
    "encoder": "Encoder",
    "out_dim": "Output dimension",
    "batch_size": "Batch size",
    "steps": "Steps",
    "lr": "Learning rate",
    "device": "Device",
    "layout": "Layout",
    "seed": "Seed",
    "optimizer": "Optimiser",
    "eval_every": "Evaluate every (steps)",
    "snapshot_every": "Snapshot every (steps)",
}
"""The form's label of each configuration field it sets (an error names the field by it)."""


def announce_launch(run_id: int) -> None:
    """Select the new run ``run_id`` below and say "Launched run #..." until the user next
    acts (the page's automatic reruns, when a run leaves the queue or ends, keep it)."""
    st.session_state["tr_select_next"] = run_id
    st.session_state[LAUNCHED] = run_id
    st.session_state[SEEN] = False


def _dismiss_seen_notice() -> None:
    """Drop a launch notice that was shown before this run of the page, if the user made
    this run; call it before anything on the page can launch."""
    if by_user() and st.session_state.get(SEEN):
        st.session_state.pop(LAUNCHED, None)
        st.session_state.pop(SEEN, None)


def param_input(p: Param, key: str, default: Any, link: bool = True) -> Any:
    """A widget for one schema parameter, labelled by its symbol and description (never its
    field name, :func:`ui.param_label`): the shared control for ε and the marginal weights
    (:func:`ui.param_slider`: a log-scale slider and a typed value; λ with its "hard" box),
    a number input for the others (the library validates the value at launch).

    ``link=False`` keeps the value out of the URL (a live change of a running run: a link or
    a reload shows the run's value, not a change that was never applied)."""
    if p in ui.SHARED_PARAMS:
        return ui.param_slider(p, key, default=default, link=link)
    label, help_ = ui.param_label(p), ui.param_help(p)
    if p.kind == "choice":
        return ui.select(label, key, list(p.choices), default, link=link, help=help_)
    if p.optional:
        hard = f"hard ${p.symbol}$" if p.symbol else "hard"
        if ui.toggle(hard, f"{key}_hard", default is None, link=link):
            return None
        if default is None:
            default = p.ui[0] if p.ui else 1.0
    if p.kind == "int":
        return ui.number(label, key, int(default), link=link, step=1, help=help_)
    step = ui.param_step(p)
    return ui.number(label, key, float(default), link=link, step=step, format="%g", help=help_)


@st.cache_data(show_spinner=False, max_entries=32)
def describe_user_data(path: str, mtime: float) -> str:
    """A one-line summary of user data (raises ``ValueError`` if it does not load)."""
    ds = data.load_user_dataset(path)
    domains = f", {ds.n_domains} domains" if ds.n_domains else ""
    return f"{ds.n} {ds.kind} samples of shape {ds.input_shape}, {ds.n_classes} classes{domains}"


def _load(dataset: str, params_json: str) -> data.Dataset | None:
    """The dataset a run would train on, or ``None`` if it does not load."""
    try:
        return data.load_dataset(dataset, **json.loads(params_json))
    except (ValueError, OSError):  # (an external run's "own data", a file gone since)
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def train_split_size(dataset: str, params_json: str, test_fraction: float) -> int | None:
    """Samples in the run's training split (a batch holds at most that many), or ``None``."""
    ds = _load(dataset, params_json)
    if ds is None or ds.n < 2:
        return None
    try:
        return ds.split(test_fraction)[0].n
    except ValueError:
        return None


@st.cache_data(show_spinner=False, max_entries=16)
def noise_warning(dataset: str, preset: str, mtime: float) -> str | None:
    """:func:`gca_viz.augment.noise_warning` of user vector data under ``preset`` (``None``
    for images, whose pixels are in [0, 1], or data that does not load); ``mtime`` keys the
    cache to the file's version."""
    ds = _load(dataset, "{}")
    if ds is None or ds.kind != "vector":
        return None
    return augment.noise_warning(ds.x, preset)


def _forget_removed_upload() -> None:
    """A file removed from the uploader (its ✕) is not used again from the store."""
    if st.session_state.get("tr_upload") is None:
        st.session_state.pop(UPLOADED, None)


def choose_dataset(store: RunStore) -> str | None:
    """The dataset widgets; the dataset name or path (``None`` until one is usable)."""
    options = [*data.DATASETS, UPLOAD, PATH]
    names = {UPLOAD: "Upload a .npz file…", PATH: "A file or folder in the data directory…"}
    choice = ui.select(
        LABELS["dataset"],
        "tr_data",
        options,
        data.DEFAULT_DATASET,
        format_func=lambda o: names.get(o, o),
    )
    if choice in data.DATASETS:
        st.caption(data.DATASETS[choice].description)
        return str(choice)
    if choice == UPLOAD:
        # No `type=`: Streamlit would refuse a bad name by raising in its own code (a
        # traceback on the page); save_upload checks the name and says what is wrong.
        upload = st.file_uploader(
            "A .npz with arrays x, y and optionally domain (read without pickle)",
            key="tr_upload",
            on_change=_forget_removed_upload,
        )
        kept = st.session_state.get(UPLOADED)
        fresh = False  # (a file uploaded in this page run: the one to drop if it is refused)
        if upload is None and kept is not None and Path(kept[1]).is_file():
            # The uploader is empty again after a page switch; the file it sent is stored.
            st.caption(f"Using **{kept[0]}**, uploaded earlier; upload another to replace it.")
            path = Path(kept[1])
        elif upload is None:
            return None
        else:
            limit = int(st.get_option("server.maxUploadSize")) * 2**20  # the server's too
            try:
                path = userdata.save_upload(
                    upload.getvalue(), upload.name, store.dir / userdata.UPLOADS, max_bytes=limit
                )
            except ValueError as exc:  # checked and refused: nothing was kept
                st.error(f"This data cannot be used: {exc}", icon=":material/error:")
                return None
            st.session_state[UPLOADED] = (upload.name, str(path))
            fresh = True
    else:
        base = (store.dir / "datasets").resolve()
        base.mkdir(parents=True, exist_ok=True)
        text = ui.text(
            "A .npz, an image folder (one sub-folder per class) or CIFAR-10 binaries, "
            f"relative to {base}",
            "tr_path",
            help="Copy your data into this folder first: the app reads nothing outside its "
            "data directory, and refuses links that lead out of it.",
        ).strip()
        found, total = userdata.data_entries(base, limit=12)
        if found:
            more = f" and {total - len(found)} more" if total > len(found) else ""
            shown = ", ".join("`" + n.replace("`", "'") + "`" for n in found)
            st.caption(f"In this folder: {shown}{more}")
        else:
            st.caption(
                "This folder holds no .npz file, CIFAR-10 .bin file or folder yet: copy your "
                "data into it, then type its name."
            )
        if not text:
            return None
        try:
            path = userdata.resolve_data_path(base, text)
        except ValueError as exc:
            st.error(str(exc), icon=":material/error:")
            return None
    try:
        summary = describe_user_data(str(path.resolve()), path.stat().st_mtime)
    except Exception as exc:  # a malformed file gets a message, never a traceback
        if choice == UPLOAD and fresh:  # (a kept one may be a past run's data)
            path.unlink(missing_ok=True)
            st.session_state.pop(UPLOADED, None)
        reason = str(exc) if isinstance(exc, (ValueError, OSError)) else type(exc).__name__
        st.error(f"This data cannot be used: {reason}", icon=":material/error:")
        return None
    st.success(summary, icon=":material/dataset:")
    return str(path.resolve())


def loss_controls() -> tuple[str, dict[str, str], str, dict[str, Any]]:
    """The loss widgets; returns ``(method, stages, target, loss_params)``."""
    method = ui.select(
        LABELS["method"],
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
        st.caption(f"{m.description} ({m.provenance})")
        preset = dict(m.params)
        params = m.build().schema
    target = ui.select(LABELS["target"], "tr_target", list(TARGET_CHOICES), "pairs")
    st.caption(targets.TARGETS[target].description)
    values: dict[str, Any] = {}
    # A named method fixes its choices (e.g. where Sinkhorn stops); its numbers are free.
    shown = [
        p
        for n, p in params.items()
        if n not in TARGET_PARAMS and n not in preset and (method == COMPOSED or p.kind != "choice")
    ]
    for p in [*shown, *targets.TARGETS[target].params]:  # one column: labels need the width
        values[p.name] = param_input(p, f"tr_{p.name}", p.default)
    underflow_note(
        stages.get("divergence") or losses.LOSSES[method].stages["divergence"], preset, values
    )
    return method, stages, target, values


def underflow_note(divergence: str, preset: dict[str, Any], values: dict[str, Any]) -> None:
    """A warning under the controls when a RINCE-type loss's terms underflow float32 (the
    runs' dtype) at the chosen ``ε`` and ``q``."""
    if divergence not in ("rince", "uot"):
        return
    chosen = {**values, **preset}
    try:
        q, epsilon = float(chosen["q"]), float(chosen["epsilon"])
        note = losses.rince_underflow(q, epsilon, divergence=divergence)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):  # a value still being typed
        return
    if note is not None:
        st.caption(f":material/warning: {note}")


def data_and_model(store: RunStore) -> dict[str, Any]:
    """The data and model widgets: dataset (``None`` until usable), augmentation, encoder."""
    dataset = choose_dataset(store)
    aug = ui.select(
        LABELS["augment"],
        "tr_augment",
        list(augment.PRESETS),
        "standard",
        help="How different the two views of a sample are; 'extreme' is the "
        "paper's noisy-view setting.",
    )
    drowned = None
    if dataset is not None and dataset not in data.DATASETS and Path(dataset).exists():
        drowned = noise_warning(dataset, aug, Path(dataset).stat().st_mtime)
    if drowned:  # (a run on such features sat at chance)
        st.warning(drowned[0].upper() + drowned[1:] + ".", icon=":material/warning:")
    encoder = ui.select(
        LABELS["encoder"],
        "tr_encoder",
        list(models.ENCODERS),
        "mlp",
        help=" ".join(f"{e}: {s.description}" for e, s in models.ENCODERS.items()),
    )
    out_dim = ui.number(
        LABELS["out_dim"],
        "tr_out_dim",
        3,
        step=1,
        help="2 or 3 lets the Geometry page draw the embeddings on the circle or the sphere.",
    )
    return {"dataset": dataset, "augment": aug, "encoder": encoder, "out_dim": out_dim}


def optimisation() -> dict[str, Any]:
    """Batch size, steps, learning rate and device."""
    fields = {
        "batch_size": ui.number(LABELS["batch_size"], "tr_batch", 256, step=32),
        "steps": ui.number(LABELS["steps"], "tr_steps", 300, step=50),
        "lr": ui.number(LABELS["lr"], "tr_lr", 2e-3, step=1e-4, format="%g"),
        "device": ui.select(
            LABELS["device"],
            "tr_device",
            ["auto", "cpu", "cuda"],
            "auto",
            help="auto picks CUDA, then Apple MPS, then the CPU.",
        ),
    }
    st.caption(f"auto means `{resolve_device('auto')}` on this machine.")
    return fields


def advanced(encoder: str, dataset: str | None) -> dict[str, Any]:
    """Layout, seed, optimiser, evaluation and snapshot cadence, encoder and data options."""
    a1, a2, a3 = st.columns(3)
    with a1:
        layout = ui.select(
            LABELS["layout"],
            "tr_layout",
            ["joint", "cross"],
            "joint",
            help="joint: 2N x 2N over both views (SimCLR); cross: N x N.",
        )
        seed = ui.number(LABELS["seed"], "tr_seed", 0, step=1)
        optimizer = ui.select(LABELS["optimizer"], "tr_optimizer", ["adamw", "sgd"], "adamw")
    with a2:
        eval_every = ui.number(
            LABELS["eval_every"],
            "tr_eval",
            50,
            step=10,
            help="k-NN, linear probe, alignment, uniformity.",
        )
        snapshot_every = ui.number(
            LABELS["snapshot_every"],
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
            if dataset is not None and dataset in data.DATASETS
            else {}
        )
    return {
        "layout": layout,
        "seed": seed,
        "optimizer": optimizer,
        "eval_every": eval_every,
        "snapshot_every": snapshot_every,
        "encoder_params": encoder_params,
        "dataset_params": dataset_params,
    }


def launch(store: RunStore, cfg: dict[str, Any], name: str) -> None:
    """Validate and launch; an invalid setting shows an ``st.error`` naming the field."""
    try:
        resolve_device(cfg["device"])  # a GPU that is not here fails now, not in the run
        config = TrainConfig.from_dict(cfg)
        ds = _load(cfg["dataset"], json.dumps(cfg["dataset_params"]))
        if ds is not None:  # too few samples, no domains: refused now, not in the run
            config.check_data(ds)
        run_id = store.launch(config, name=name or None)
    except ValueError as exc:
        st.error(launch_problems(exc), icon=":material/error:")
        return
    announce_launch(run_id)
    st.session_state[CLEAR_NAME] = True
    # Fold the form away and show the new run's live monitor (the page reruns at once).
    st.session_state[FOLDS] = st.session_state.get(FOLDS, 0) + 1
    ui.scroll_later("tr_monitor")  # the live monitor, on the next run
    st.rerun()


def launch_problems(exc: ValueError) -> str:
    """Why a run cannot launch, each problem led by the label of the field it names: one
    line, or a list when the config has several bad fields (:class:`ConfigError`)."""
    problems = ConfigError.problems_of(exc)
    if len(problems) == 1:
        return f"Cannot launch this run: {labelled(problems[0])}"
    items = "\n".join(f"- {labelled(problem)}" for problem in problems)
    return f"Cannot launch this run; change these {len(problems)} settings:\n\n{items}"


def field_label(name: str) -> str | None:
    """The form's label of configuration field or schema parameter ``name`` (a loss's,
    target's, encoder's or dataset's), or ``None`` if the form has no widget for it."""
    if name in LABELS:
        return LABELS[name]
    registries = [losses.COSTS, losses.PROJECTIONS, losses.DIVERGENCES, targets.TARGETS,
                  models.ENCODERS, data.DATASETS]  # fmt: skip
    for registry in registries:
        for entry in registry.values():
            for p in entry.params:
                if p.name == name:  # its symbol, else its label
                    return f"${p.symbol}$" if p.symbol else ui.param_label(p)
    return None


def labelled(message: str) -> str:
    """A validation message that starts with a field's name, led by the label the user
    sees instead: ``"lr must be > 0"`` -> ``"Learning rate (lr) must be > 0"``."""
    match = re.match(r"([a-z][a-z0-9_]*)\b", message)
    label = field_label(match.group(1)) if match else None
    if match is not None and label is not None:
        message = f"{label} (`{match.group(1)}`){message[match.end() :]}"
    # Further fields the advice names ("set eval_every and snapshot_every to 0"), by the
    # labels the form shows them with.
    return re.sub(
        r"(?<![`\w])(eval_every|snapshot_every|batch_size)(?![`\w])",
        lambda m: f"{LABELS[m.group(1)]} (`{m.group(1)}`)",
        message,
    )


SNAPSHOTS_NOTED = 200
"""From this many snapshots on, the form says how many a run will write and their size."""


def snapshot_note(opt: dict[str, Any], more: dict[str, Any], out_dim: Any = 3) -> None:
    """Say how many snapshots a long run writes and about how much disk they take: a plan
    snapshot holds four float32 matrices of up to 128 rows (compressed to about 0.6 of
    that), an embedding snapshot two float32 embeddings of ``out_dim`` for each of up to
    :attr:`~gca_viz.train.TrainConfig.eval_subset` held-out samples (random floats: they do
    not compress). Every 20 steps for 20,000 steps wrote 1,000 of each, 270 MB."""
    numbers = (opt.get("steps"), more.get("snapshot_every"), opt.get("batch_size"))
    if not all(isinstance(v, int | float) and v > 0 for v in numbers):
        return
    steps, every, batch = (float(v) for v in numbers)  # type: ignore[arg-type]
    count = int(steps // every)
    if count < SNAPSHOTS_NOTED:
        return
    rows = min(128, 2 * int(batch) if more.get("layout", "joint") == "joint" else int(batch))
    dim = int(out_dim) if isinstance(out_dim, int | float) and out_dim > 0 else 3
    embeddings = TrainConfig.eval_subset * (2 * dim * 4 + 8) + 1024
    count += int(steps % every != 0)  # (and one at the last step)
    megabytes = count * (4 * rows * rows * 4 * 0.62 + embeddings) / 2**20
    st.caption(
        f"This run will write {count:,} snapshots of the plan and the embeddings, about "
        f"{megabytes:,.0f} MB; raise Snapshot every (steps) in Advanced settings for fewer."
    )


def batch_note(dataset: str | None, opt: dict[str, Any], more: dict[str, Any]) -> None:
    """Say so when the batch size exceeds the training split: the run caps it there."""
    batch = opt.get("batch_size")
    if dataset is None or not isinstance(batch, int | float):
        return
    fraction = more.get("test_fraction", TrainConfig.test_fraction)
    size = train_split_size(dataset, json.dumps(more.get("dataset_params", {})), fraction)
    if size is not None and batch > size:
        st.caption(
            f"The training split of this dataset holds {size} samples, so each batch will "
            f"hold all {size} (a batch size of {batch:g} is capped there)."
        )


def new_run_form(store: RunStore, expanded: bool) -> None:
    """The "New run" expander; a launched run is selected below and announced until the
    user next acts.

    Opening and folding the form happen in the browser alone. It was a stateful expander
    (``on_change="rerun"``, so that a launch could fold it), and the page run its opening
    started redrew the form a moment later, wiping what the user had begun to type in it.
    A launch now folds it by giving it a new key: a new expander, drawn folded (the
    widgets inside keep their values, which live under their own keys)."""
    _dismiss_seen_notice()
    with st.expander(
        "New run",
        expanded=expanded,
        key=f"{FORM}_{st.session_state.get(FOLDS, 0)}",
        icon=":material/add_circle:",
    ):
        # (at 800 px a third of the page each: the method box read "GCA-INC")
        col_loss, col_data, col_opt = ui.wrapping("tr_form", 180).columns(3, gap="large")
        with col_loss:
            st.markdown("**Loss**")
            method, stages, target, loss_params = loss_controls()
        with col_data:
            st.markdown("**Data and model**")
            data_model = data_and_model(store)
        with col_opt:
            st.markdown("**Optimisation**")
            opt = optimisation()
            if st.session_state.pop(CLEAR_NAME, False):
                st.session_state["tr_name"] = ""
            run_name = ui.text("Run name (optional)", "tr_name")
        with st.expander("Advanced settings"):
            more = advanced(data_model["encoder"], data_model["dataset"])
        batch_note(data_model["dataset"], opt, more)
        snapshot_note(opt, more, data_model.get("out_dim"))
        if st.button(
            "Launch run",
            type="primary",
            key="tr_launch",
            icon=":material/play_arrow:",
            disabled=data_model["dataset"] is None,
        ):
            cfg = {
                **data_model,
                **opt,
                **more,
                "method": method,
                "stages": stages,
                "loss_params": loss_params,
                "target": target,
            }
            launch(store, cfg, run_name)
        if data_model["dataset"] is None:
            st.caption("Choose the data to enable the launch button.")
    if LAUNCHED in st.session_state:
        st.success(
            f"Launched run #{st.session_state[LAUNCHED]}: it "
            + launch_status(store, int(st.session_state[LAUNCHED])),
            icon=":material/check:",
        )
        st.session_state[SEEN] = True
