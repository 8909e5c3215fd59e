"""The pinned sample's positive partner on the Geometry page (AppTest), from a run trained
with partner embeddings, from the shipped demo runs (regenerated with partners) and from an
older run whose snapshots have none; and the partners an external loop's Recorder stores."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gca_viz import data, demo, embed, losses
from gca_viz.cli import DirectoryWriter
from gca_viz.figures._pin import PARTNER_NAME
from gca_viz.runs import RunStore
from gca_viz.train import TrainConfig, Trainer
from gca_viz.watch import Recorder
from tests.helpers import assert_clean, charts, open_page, texts
from tests.pages.conftest import TINY
from tests.plotly_json import array

ROW = 17  # the snapshot row the tests pin


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the shipped demo runs (installed when the page first opens it) and, as
    run 1, a tiny 3-D run trained now (with partners)."""
    path = tmp_path_factory.mktemp("partner-store")
    out = path.parent / f"{path.name}-run"
    cfg = TrainConfig.from_dict({**TINY, "method": "ince", "out_dim": 3, "steps": 20})
    Trainer(cfg, [DirectoryWriter(out)]).fit()
    assert RunStore(path).import_directory(out, name="with partners") == 1
    return path


def _snapshot(store: RunStore, run_id: int) -> dict[str, np.ndarray]:
    arrays = store.load_snapshot(store.snapshots(run_id, "embeddings")[-1][1])
    assert arrays is not None
    return arrays


def _pinned(at: Any, run_id: int) -> dict[str, Any]:
    """Pin snapshot row :data:`ROW` of run ``run_id`` as a click does; its figure."""
    at.selectbox(key="geo_run").set_value(run_id).run()
    at.session_state["_geo_click"] = {"chart": f"geo_fig_{run_id}", "customdata": [ROW, 0]}
    at.run()
    assert_clean(at)
    return charts(at)[f"geo_fig_{run_id}"]


def _partner_trace(fig: dict[str, Any]) -> list[dict[str, Any]]:
    return [t for t in fig["data"] if t.get("name") == PARTNER_NAME]


def _xy(trace: dict[str, Any], dims: int) -> np.ndarray:
    return np.stack([array(trace[c]).astype(np.float64) for c in "xyz"[:dims]], axis=1)


def test_a_pinned_sample_shows_its_partner_and_how_far_it_sits(
    store_dir: Path, app_env: Callable[[Path], None]
) -> None:
    app_env(store_dir)
    store = RunStore(store_dir)
    snap = _snapshot(store, 1)
    z, partner = snap["z"].astype(np.float64), snap["z_partner"].astype(np.float64)
    at = open_page("geometry")
    fig = _pinned(at, 1)
    samples = embed.snapshot_samples(data.load_dataset("digits"), len(z), test_fraction=0.25,
                                     seed=0)  # fmt: skip
    assert at.selectbox(key="geo_pin").value == samples.index[ROW]
    (mark,) = _partner_trace(fig)  # on the sphere: the partner's own embedding
    np.testing.assert_allclose(_xy(mark, 3)[0], partner[ROW], rtol=1e-5)
    d = embed.partner_distance(z, ROW, partner[ROW])
    unit = z / np.linalg.norm(z, axis=1, keepdims=True)
    sims = np.delete(unit @ unit[ROW], ROW)  # the other samples, straight from the formula
    cos = float(unit[ROW] @ partner[ROW] / np.linalg.norm(partner[ROW]))
    assert d.rank == 1 + int(np.sum(sims > cos))
    text = texts(at.markdown)
    assert f"cosine distance **{1 - cos:.3f}** between the two views" in text
    assert f"rank **{d.rank}** among its neighbours" in text
    notes = texts(at.caption)
    assert "hollow diamond on a dashed line is the pinned sample's positive partner" in notes
    assert "Row of the batch plan:** none: these are held-out samples" in notes

    # PCA: the partner goes through the same linear map as the points
    at.selectbox(key="geo_method").set_value("pca").run()
    assert_clean(at)
    (mark,) = _partner_trace(charts(at)["geo_fig_1"])
    mean, axes = embed.pca_basis(z, 2)
    np.testing.assert_allclose(_xy(mark, 2)[0], (partner[ROW] - mean) @ axes.T, atol=1e-5)


def test_the_demo_runs_show_the_pinned_samples_partner(
    store_dir: Path, app_env: Callable[[Path], None]
) -> None:
    """The shipped demo runs, the runs a lecture opens first, store partners since they were
    regenerated (they said "not available" before)."""
    app_env(store_dir)
    at = open_page("geometry")  # installs the demo runs
    store = RunStore(store_dir)
    demo_run = next(r for r in store.list_runs() if r.name == "demo-ince")
    snap = _snapshot(store, demo_run.id)
    assert snap["z_partner"].shape == snap["z"].shape
    (mark,) = _partner_trace(_pinned(at, demo_run.id))
    np.testing.assert_allclose(_xy(mark, 3)[0], snap["z_partner"][ROW], rtol=1e-5)
    text = texts(at.markdown)
    assert "between the two views" in text and "not available" not in text


def test_an_older_run_without_partners_still_loads_and_says_so(
    tmp_path: Path, app_env: Callable[[Path], None]
) -> None:
    """A run whose snapshots predate partners (a demo run's copy with them taken out)."""
    older = tmp_path / "older-run"
    shutil.copytree(demo.ASSETS / "demo-ince", older)
    for path in (older / "snapshots").glob("*_embeddings.npz"):
        with np.load(path) as npz:
            arrays = {k: npz[k] for k in npz.files if k != "z_partner"}
        np.savez(path, **arrays)
    store = RunStore(tmp_path / "store")
    run_id = store.import_directory(older, name="older run")
    app_env(tmp_path / "store")
    at = open_page("geometry")
    assert "z_partner" not in _snapshot(store, run_id)
    fig = _pinned(at, run_id)
    assert not _partner_trace(fig)
    assert [t for t in fig["data"] if t.get("name") == "pinned sample"]  # pinned all the same
    text = texts(at.markdown)
    assert f"**Its positive partner:** not available for #{run_id} older run" in text
    assert "hollow diamond" not in texts(at.caption)


def test_a_recorder_stores_the_batchs_positives_as_partners(tmp_path: Path) -> None:
    """Without an eval batch the Geometry points are the batch's first rows of ``z1``: their
    partners are the same rows of ``z2``. An eval batch has one view: no partners."""
    torch.manual_seed(0)
    z1, z2 = torch.randn(40, 4), torch.randn(40, 4)
    model = torch.nn.Linear(6, 4)
    plain = Recorder(tmp_path, name="batch rows", loss=losses.get("ince"), snapshot_every=1)
    evals = Recorder(tmp_path, name="eval batch", loss=losses.get("ince"), snapshot_every=1,
                     eval_batch=torch.randn(30, 6), model=model)  # fmt: skip
    for rec in (plain, evals):
        rec.batch(1, z1, z2, labels=torch.arange(40) % 2)
        rec.finish()
    store = RunStore(tmp_path)
    rows = _snapshot(store, plain.run_id or 0)
    expected = torch.nn.functional.normalize(z2, dim=1).numpy()
    np.testing.assert_allclose(rows["z_partner"], expected, rtol=1e-6)
    assert rows["z_partner"].shape == rows["z"].shape == (40, 4)
    assert "z_partner" not in _snapshot(store, evals.run_id or 0)
