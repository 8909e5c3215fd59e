"""The Geometry page's data: a run's embedding snapshots as the view draws them, the
samples they hold (for hover labels and the pinned sample), and the page's choices."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from gca_viz import data, embed
from gca_viz.demo import LECTURE_PAIR
from gca_viz.figures.geometry import sample_hover
from gca_viz.runs import FROM_BATCH, RunInfo, RunStore

MAX_FRAMES = 60  # snapshots the ▶ plays at most (evenly spaced, the shown one included)


@st.cache_data(show_spinner=False, max_entries=32)
def label_names(dataset: str, params_json: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class and domain names of a run's dataset (empty if it cannot be loaded any more)."""
    try:
        ds = data.load_dataset(dataset, **json.loads(params_json))
    except Exception:  # a moved or deleted user file: fall back to label numbers
        return (), ()
    return ds.class_names, ds.domain_names


@st.cache_data(show_spinner=False, max_entries=16)
def _samples(
    dataset: str, params_json: str, test_fraction: float, seed: int, n: int
) -> tuple[embed.SnapshotSamples, list[str]] | None:
    """The samples a run's snapshots hold and their hover labels (``None`` if the data
    cannot be loaded any more)."""
    try:
        ds = data.load_dataset(dataset, **json.loads(params_json))
        s = embed.snapshot_samples(ds, n, test_fraction=test_fraction, seed=seed)
    except Exception:  # a moved user file, a changed dataset: hover without inputs
        return None
    hover = sample_hover(
        s.index,
        s.y,
        ds.class_names,
        domains=s.domain,
        domain_names=ds.domain_names or None,
        inputs=s.x,
        kind=s.kind,
    )
    return s, hover


def from_batch(arrays: dict[str, np.ndarray]) -> bool:
    """Whether an embedding snapshot holds rows of its step's training batch
    (:data:`gca_viz.runs.FROM_BATCH`), not fixed held-out samples."""
    return bool(arrays.get(FROM_BATCH, False))


def samples_text(n: int, batch: bool) -> str:
    """What the ``n`` points of an embedding snapshot are."""
    if batch:
        return (
            f"the first {n} rows of the step's training batch (other samples at every step; "
            "a loop that passes eval_batch= to its Recorder shows fixed held-out samples)"
        )
    return f"{n} held-out samples"


def run_label_names(run: RunInfo) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Class and domain names of a run: its dataset's (:func:`label_names`), else those a
    :class:`gca_viz.watch.Recorder` stored in its config (``class_names``,
    ``domain_names``)."""
    classes, domains = label_names(*data_key(run))
    stored = [
        tuple(str(v) for v in run.config.get(k) or ()) for k in ("class_names", "domain_names")
    ]
    return classes or stored[0], domains or stored[1]


def embedding_dim(store: RunStore, run: RunInfo) -> int:
    """The run's embedding dimension: its config's ``out_dim``, else (a recorded loop's
    config has none) its newest embedding snapshot's; 0 when neither says."""
    if run.config.get("out_dim"):
        return int(run.config["out_dim"])
    snaps = store.snapshots(run.id, "embeddings")
    arrays = store.load_snapshot(snaps[-1][1]) if snaps else None
    z = None if arrays is None else arrays.get("z")
    return int(z.shape[1]) if z is not None and z.ndim == 2 else 0


def data_key(run: RunInfo) -> tuple[str, str]:
    return str(run.config.get("dataset")), json.dumps(run.config.get("dataset_params", {}))


@dataclass(frozen=True)
class View:
    """The page's choices at its last full run (the view fragment reads only these)."""

    run_id: int
    compare_id: int
    method: str
    color_by: str
    auto: bool
    polling: bool
    classes: tuple[int, ...] = ()
    domains: tuple[int, ...] = ()
    k: int = 5
    statuses: tuple[str, ...] = ()
    """The statuses of the run and the compared run as the page's run list showed them: the
    fragment reruns the page when one changes (the list said "running" after the end)."""


@dataclass(frozen=True)
class Loaded:
    """One run's embedding snapshots as the view draws them."""

    run: RunInfo
    step: int  # the snapshot the slider points at
    path: Path
    steps: list[int]  # the frames' steps (readable snapshots), the slider's one included
    zs: list[np.ndarray]  # (n, d) each
    arrays: dict[str, np.ndarray]  # the slider's snapshot (z, y, domain, z_partner)
    samples: embed.SnapshotSamples | None
    hover: list[str] | None
    partners: list[np.ndarray | None]  # (n, d) each frame's positive partners, if it has them

    @property
    def at(self) -> int:
        return self.steps.index(self.step)

    @property
    def z(self) -> np.ndarray:
        return self.zs[self.at]

    @property
    def partner(self) -> np.ndarray | None:
        """``(n, d)`` the slider's snapshot's positive partners (``z_partner``: an embedding
        of another view of each sample), ``None`` if it stores none (older runs)."""
        return self.partners[self.at]

    @property
    def from_batch(self) -> bool:
        """Whether the snapshots are rows of each step's training batch (an external loop
        without ``eval_batch``): other samples in every frame."""
        return from_batch(self.arrays)

    def index(self) -> np.ndarray:
        """``(n,)`` each row's position in the dataset (the row itself if unknown)."""
        return self.samples.index if self.samples is not None else np.arange(len(self.z))

    def row_of(self, sample: int | None) -> int | None:
        if sample is None:
            return None
        rows = np.flatnonzero(self.index() == sample)
        return int(rows[0]) if len(rows) else None


def plane_defaults(
    measured: list[int], names: dict[int, str], run_id: int, compare_id: int, limit: int = 8
) -> list[int]:
    """The runs the alignment-uniformity plane starts with: the run shown, the one compared
    with it, the demo runs a lecture compares (:data:`gca_viz.demo.LECTURE_PAIR`), then the
    newest others (``measured`` is newest first), ``limit`` at most. The demo pair dropped
    off once a lecturer had launched a few runs."""
    pair = [i for n in LECTURE_PAIR for i in measured if names.get(i) == n][: len(LECTURE_PAIR)]
    first = [i for i in (run_id, compare_id, *pair) if i in measured]
    ordered = list(dict.fromkeys([*first, *measured]))
    return ordered[:limit]


def frame_steps(steps: list[int], step: int) -> list[int]:
    """At most :data:`MAX_FRAMES` of ``steps``, evenly spaced, ``step`` among them."""
    if len(steps) <= MAX_FRAMES:
        return steps
    picks = {steps[int(i)] for i in np.linspace(0, len(steps) - 1, MAX_FRAMES - 1).round()}
    return sorted(picks | {step})


def load(store: RunStore, run: RunInfo, step: int, snaps: list[tuple[int, Path]]) -> Loaded | None:
    """The run's snapshots for the view, or ``None`` (with a warning) if the one at ``step``
    is unreadable; other unreadable snapshots are left out of the ▶."""
    paths = dict(snaps)
    arrays = store.load_snapshot(paths[step])
    if arrays is None or "z" not in arrays or "y" not in arrays:
        st.warning(
            f"Run #{run.id}: the embedding snapshot at step {step} is missing or "
            f"unreadable ({paths[step].name}). Pick another step.",
            icon=":material/warning:",
        )
        return None
    z = np.asarray(arrays["z"], dtype=np.float64)
    steps, zs, partners = [], [], []
    # Rows of each step's batch are other samples, with other labels, in every frame: no ▶
    # (it coloured every frame with the shown one's classes)
    frames = [step] if from_batch(arrays) else frame_steps([s for s, _ in snaps], step)
    for s in frames:
        other = arrays if s == step else store.load_snapshot(paths[s])
        if other is not None and "z" in other and np.shape(other["z"]) == z.shape:
            steps.append(s)
            zs.append(np.asarray(other["z"], dtype=np.float64))
            partners.append(_partner(other, z.shape))
    cfg = run.config
    found = _samples(
        *data_key(run), float(cfg.get("test_fraction", 0.25)), int(cfg.get("seed", 0)), len(z)
    )
    samples, hover = found if found is not None else (None, None)
    if samples is not None and not np.array_equal(samples.y, arrays["y"]):
        samples, hover = None, None  # the dataset changed since the run: no inputs to show
    return Loaded(run, step, paths[step], steps, zs, arrays, samples, hover, partners)


def _partner(arrays: dict[str, np.ndarray], shape: tuple[int, ...]) -> np.ndarray | None:
    """A snapshot's ``z_partner`` if it has one of ``z``'s shape, all finite and non-zero
    (snapshots written before partners were stored have none)."""
    found = arrays.get("z_partner")
    if found is None or np.shape(found) != shape:
        return None
    p = np.asarray(found, dtype=np.float64)
    return p if np.isfinite(p).all() and np.all(np.abs(p).sum(axis=1) > 0) else None


def labels_for(arrays: dict[str, np.ndarray], run: RunInfo, color_by: str) -> tuple[Any, Any, str]:
    """``(labels, names, legend title)`` for colouring one snapshot."""
    classes, domains = run_label_names(run)
    if color_by == "domain" and "domain" in arrays:
        return arrays["domain"], domains or None, "domain"
    return arrays["y"], classes or None, "class"
