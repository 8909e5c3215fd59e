"""Upload fuzzing: bad files and bad names against the two doors user data comes through.

* :func:`gca_viz.userdata.save_upload`, behind the Train page's uploader: truncated,
  empty, wrong-format and oversized files, archives that expand past the limit, object
  arrays carrying a pickle payload, and names with paths, NUL, control and text-direction
  characters. Every case is a real file the test writes to disk first.
* The loaders behind "a file or folder in the data directory": truncated CIFAR-10 binaries
  and images, an ``.npz`` posing as a PNG.
* The Train page itself (AppTest, the real page script): the same uploads through
  ``st.file_uploader``.

The claims, for every case: a ``ValueError`` (an ``st.error`` on the page) whose message
names the upload and the problem; no pickle payload runs (each one would create a marker
file, and a control proves it does when unpickled); nothing is written outside the data
directory, and a refused upload leaves nothing inside it either.
"""

from __future__ import annotations

import functools
import io
import pickle
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from PIL import Image
from streamlit.testing.v1 import AppTest

import gca_viz.data  # noqa: F401 - the loaders' module, imported first as an app would
from gca_viz.userdata import (
    MAX_VALUES,
    data_label,
    data_labels,
    load_user_dataset,
    save_upload,
)
from tests.helpers import store_without_demos, view

LIMIT = 1 << 20  # a 1 MB upload limit for the library cases (the app passes 50 MB)


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the marker file proves execution."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def npz_bytes(compressed: bool = False, **arrays: Any) -> bytes:
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


def good_arrays(n: int = 40) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.standard_normal((n, 5)).astype(np.float32), "y": np.arange(n) % 2}


def object_array(marker: Path, n: int = 40) -> np.ndarray:
    a = np.empty(n, dtype=object)
    a[:] = [Payload(marker), *range(n - 1)]
    return a


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, raw in members.items():
            zf.writestr(name, raw)
    return buffer.getvalue()


def npy_header(shape: tuple[int, ...], descr: str = "<f8") -> bytes:
    buffer = io.BytesIO()
    header = {"descr": descr, "fortran_order": False, "shape": shape}
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue()


@functools.cache
def bomb() -> bytes:
    """A real decompression bomb: an ``.npz`` of about 0.3 MB whose ``x`` is
    ``MAX_VALUES + 4096`` zero bytes once inflated (streamed in, never held in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        with zf.open("x.npy", "w", force_zip64=True) as fh:
            fh.write(npy_header((MAX_VALUES + 4096,), "|u1"))
            chunk = bytes(1 << 20)
            for _ in range((MAX_VALUES + 4096) // len(chunk)):
                fh.write(chunk)
            fh.write(bytes((MAX_VALUES + 4096) % len(chunk)))
        zf.writestr("y.npy", npz_member(np.zeros(2)))
    return buffer.getvalue()


def npz_member(a: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, a)
    return buffer.getvalue()


def exactly(size: int) -> bytes:
    """A valid ``.npz`` of exactly ``size`` bytes (an unused ``pad`` array fills it)."""
    pad = size - len(npz_bytes(**good_arrays(), pad=np.zeros(0, np.uint8)))
    for _ in range(3):  # the header of a longer shape can take a few bytes more
        raw = npz_bytes(**good_arrays(), pad=np.zeros(pad, np.uint8))
        pad += size - len(raw)
    assert len(raw) == size
    return raw


def png_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class Case:
    """An upload: its name, how to make its bytes (given the marker path), what the error
    says (``""``: accepted)."""

    id: str
    name: str
    make: Callable[[Path], bytes]
    says: str


GOOD = npz_bytes(**good_arrays())
GOOD_Z = npz_bytes(compressed=True, **good_arrays(400))

CASES = [
    # truncated archives, plain and compressed, cut at several points
    *[
        Case(
            f"truncated-{kind}-{frac}",
            f"cut {frac}.npz",
            lambda _, r=raw, f=frac: r[: int(len(r) * f)],
            "corrupt or truncated",
        )
        for kind, raw in (("plain", GOOD), ("deflate", GOOD_Z))
        for frac in (0.1, 0.5, 0.9, 0.99)
    ],
    Case("truncated-header", "cut.npz", lambda _: GOOD[:3], "not a .npz archive"),
    Case(
        "flipped-byte",
        "flip.npz",
        lambda _: GOOD[:200] + bytes([GOOD[200] ^ 0xFF]) + GOOD[201:],
        "corrupt or truncated",
    ),
    # not an archive at all
    Case("empty", "empty.npz", lambda _: b"", "the file is empty"),
    Case("text", "notes.npz", lambda _: b"x,y\n1,2\n", "not a .npz archive"),
    Case("png-renamed", "picture.npz", lambda _: png_bytes(), "not a .npz archive"),
    Case("pickle-renamed", "objects.npz", lambda m: pickle.dumps(Payload(m)), "not a .npz archive"),
    # archives with the wrong inside
    Case(
        "zip-no-arrays",
        "readme.npz",
        lambda _: zip_bytes({"readme.txt": b"hi"}),
        "missing array 'x'",
    ),
    Case(
        "zip-garbage-npy",
        "junk.npz",
        lambda _: zip_bytes({"x.npy": b"junk", "y.npy": b"junk"}),
        "not a valid .npz",
    ),
    Case(
        "npy-header-code",
        "code.npz",
        lambda _: zip_bytes({"x.npy": b"\x93NUMPY\x01\x00\x16\x00{'descr': __import__}\n"}),
        "not a valid .npz",
    ),
    Case("no-labels", "x-only.npz", lambda _: npz_bytes(x=np.zeros((4, 3))), "missing array 'y'"),
    # archives that would expand past the limit: refused from the header, nothing allocated
    Case("zip-bomb", "bomb.npz", lambda _: bomb(), "the limit is"),
    Case(
        "huge-header",
        "huge.npz",
        lambda _: zip_bytes({"x.npy": npy_header((10**6, 10**4)), "y.npy": npy_header((10**6,))}),
        "the limit is",
    ),
    # pickles: an object array in x, y or domain is refused before numpy reads it
    Case(
        "pickle-in-y",
        "evil-y.npz",
        lambda m: npz_bytes(x=good_arrays()["x"], y=object_array(m)),
        "object array",
    ),
    Case(
        "pickle-in-x",
        "evil-x.npz",
        lambda m: npz_bytes(x=object_array(m), y=np.arange(40) % 2),
        "object array",
    ),
    Case(
        "pickle-in-domain",
        "evil-d.npz",
        lambda m: npz_bytes(**good_arrays(), domain=object_array(m)),
        "object array",
    ),
    # ... and one in an array the loader never reads: accepted, never unpickled
    Case(
        "pickle-elsewhere",
        "extra.npz",
        lambda m: npz_bytes(**good_arrays(), notes=object_array(m)),
        "",
    ),
    # size
    Case("oversized", "big.npz", lambda _: b"PK\x03\x04" + bytes(LIMIT), "over the limit of 1 MB"),
    Case("at-the-limit", "edge.npz", lambda _: exactly(LIMIT), ""),
    # names
    Case("traversal", "../../evil.npz", lambda _: GOOD, "the name holds a path"),
    Case("absolute", "/tmp/gca-upload-evil.npz", lambda _: GOOD, "the name holds a path"),
    Case("windows-path", "..\\..\\evil.npz", lambda _: GOOD, "the name holds a path"),
    Case("dot-dot", "..", lambda _: GOOD, "the name holds a path"),
    Case("nul", "evil.npz\x00.png", lambda _: GOOD, "NUL character"),
    Case(
        "rtl-override", "evil\u202ezpn.npz", lambda _: GOOD, "text-direction character ('\\u202e')"
    ),
    Case("zero-width", "e\u200bvil.npz", lambda _: GOOD, "text-direction character"),
    Case("newline", "evil\n.npz", lambda _: GOOD, "control or text-direction character"),
    Case("blank", "   ", lambda _: GOOD, "has no name"),
    Case("wrong-type", "data.csv", lambda _: GOOD, "expected a .npz file"),
    Case(
        "csv-hint", "data.csv", lambda _: GOOD, "save it with np.savez(path, x=features, y=labels)"
    ),
    Case("image-hint", "cat.PNG", lambda _: GOOD, "are not uploaded: put them in the data dir"),
    Case("cifar-hint", "data_batch_1.bin", lambda _: GOOD, "CIFAR-10 binaries are not uploaded"),
    Case("double-suffix", "data.npz.exe", lambda _: GOOD, "got type '.exe'"),
    Case("no-suffix", "data", lambda _: GOOD, "got type '(none)'"),
    # odd but harmless names: accepted, stored under an ASCII name inside the folder
    Case("accents", "données ✓ 数据.npz", lambda _: GOOD, ""),
    Case("fullwidth-slash", "..／..／evil.npz", lambda _: GOOD, ""),
    Case("long-name", "a" * 300 + ".npz", lambda _: GOOD, ""),
    Case("upper-suffix", "DATA.NPZ", lambda _: GOOD, ""),
]


def tree(root: Path, skip: Path | None = None) -> set[str]:
    """Every path under ``root`` (outside ``skip``), relative."""
    return {
        str(p.relative_to(root))
        for p in root.rglob("*")
        if skip is None or not p.is_relative_to(skip)
    }


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_an_upload_is_refused_with_a_reason_or_kept_safely(case: Case, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    folder = data_dir / "uploads"
    sources = tmp_path / "sources"  # the user's machine: each case is a real file first
    sources.mkdir()
    marker = tmp_path / "PWNED"
    source = sources / "upload.bin"
    source.write_bytes(case.make(marker))
    before = tree(tmp_path)
    if case.says:
        with pytest.raises(ValueError) as info:
            save_upload(source.read_bytes(), case.name, folder, max_bytes=LIMIT)
        message = str(info.value)
        assert case.says in message, message
        assert message.startswith("upload"), message  # it names the upload
        assert str(source) not in message and ".tmp" not in message
        assert not folder.exists() or not any(folder.iterdir())  # nothing kept
    else:
        saved = save_upload(source.read_bytes(), case.name, folder, max_bytes=LIMIT)
        assert saved.parent == folder and saved.is_file()
        assert saved.name.isascii() and saved.name.endswith(".npz")
        assert len(saved.name) <= 60 + 1 + 12 + 4
        assert saved.read_bytes() == source.read_bytes()
        assert [p.name for p in folder.iterdir()] == [saved.name]  # no temporary file
        assert load_user_dataset(saved).n in (40, 400)
        # the same upload again lands on the same file
        assert save_upload(source.read_bytes(), case.name, folder, max_bytes=LIMIT) == saved
    assert not marker.exists(), "the pickle payload ran"
    assert tree(tmp_path, skip=data_dir) == before  # nothing written outside the data dir
    assert not Path("/tmp/gca-upload-evil.npz").exists()


def test_the_payloads_are_live(tmp_path: Path) -> None:
    """The control: unpickling the payload the cases carry does create the marker, so its
    absence above means it never ran."""
    marker = tmp_path / "PWNED"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()
    marker.unlink()
    path = tmp_path / "evil.npz"
    path.write_bytes(npz_bytes(x=good_arrays()["x"], y=object_array(marker)))
    with np.load(path, allow_pickle=True) as z:  # what the app never does
        z["y"]
    assert marker.exists()


def test_the_value_limit_is_checked_on_the_header_at_its_exact_edge(tmp_path: Path) -> None:
    """A header declaring ``MAX_VALUES`` values passes the check (the data is then missing:
    a truncated-file error); one more value is refused by the limit, unread."""
    path = tmp_path / "edge.npz"
    for values, says in ((MAX_VALUES, "reading array data"), (MAX_VALUES + 1, "the limit is")):
        path.write_bytes(zip_bytes({"x.npy": npy_header((values,), "|u1")}))
        with pytest.raises(ValueError, match=says):
            load_user_dataset(path)


def test_max_bytes_must_be_a_positive_integer(tmp_path: Path) -> None:
    for bad in (0, -1, 1.5, True, None):
        with pytest.raises(ValueError, match="max_bytes"):
            save_upload(GOOD, "a.npz", tmp_path, max_bytes=bad)  # type: ignore[arg-type]


# ------------------------------------------------ CIFAR-10 binaries and image folders


def cifar_records(n: int) -> bytes:
    records = np.zeros((n, 3073), np.uint8)
    records[:, 0] = np.arange(n) % 10
    return records.tobytes()


def image_folder(root: Path) -> Path:
    for cls in ("cat", "dog"):
        (root / cls).mkdir(parents=True)
        for i in range(3):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(root / cls / f"{i}.png")
    return root


DISK_CASES: list[tuple[str, Callable[[Path], Path], str]] = [
    (
        "cifar-truncated",
        lambda d: _write(d / "b.bin", cifar_records(5)[:-100]),
        "not a positive multiple of 3073",
    ),
    ("cifar-empty", lambda d: _write(d / "b.bin", b""), "size 0 bytes"),
    ("cifar-text", lambda d: _write(d / "b.bin", b"hello"), "not a positive multiple"),
    ("cifar-100-labels", lambda d: _write(d / "b.bin", bytes([99]) * 3073), "outside 0..9"),
    (
        "cifar-folder-truncated",
        lambda d: _write(d / "cifar-10-batches-bin" / "data_batch_1.bin", cifar_records(3)[:5000]),
        "not a positive multiple",
    ),
    (
        "image-truncated",
        lambda d: _cut(image_folder(d / "imgs") / "cat" / "0.png", 0.5),
        "not a readable image",
    ),
    (
        "image-empty",
        lambda d: _cut(image_folder(d / "imgs") / "dog" / "1.png", 0.0),
        "not a readable image",
    ),
    (
        "image-is-npz",
        lambda d: _write(image_folder(d / "imgs") / "cat" / "9.png", GOOD) and d / "imgs",
        "not a readable image",
    ),
    (
        "image-is-text",
        lambda d: _write(image_folder(d / "imgs") / "cat" / "9.jpg", b"<html>") and d / "imgs",
        "not a readable image",
    ),
    ("npz-is-png", lambda d: _write(d / "p.npz", png_bytes()), "not a .npz archive"),
]


def _write(path: Path, raw: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(raw)
    return path


def _cut(path: Path, frac: float) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * frac)])
    return path.parent.parent  # the image folder


@pytest.mark.parametrize("make, says", [c[1:] for c in DISK_CASES], ids=[c[0] for c in DISK_CASES])
def test_bad_files_on_disk_are_refused_by_name(
    make: Callable[[Path], Path], says: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    with pytest.raises(ValueError) as info:
        load_user_dataset(path)
    assert says in str(info.value)
    assert str(tmp_path) in str(info.value)  # names the file or folder


# -------------------------------------------------------------- the Train page (AppTest)


@pytest.fixture
def train_page(app_store: Path) -> tuple[AppTest, Path]:
    """The Train page on an empty store of the test's own with "Upload" chosen."""
    store_without_demos(app_store)  # the demo runs count as installed: none imported
    at = AppTest.from_file(view("train"), default_timeout=60)
    at.query_params["tr_data"] = "upload"
    at.run()
    assert not at.exception
    return at, app_store


PAGE_CASES = [
    c
    for c in CASES
    if c.id
    in {
        "truncated-deflate-0.5",
        "empty",
        "png-renamed",
        "pickle-in-y",
        "zip-bomb",
        "traversal",
        "nul",
        "rtl-override",
        "wrong-type",
    }
]


def test_the_train_page_says_what_is_wrong_with_each_upload(
    train_page: tuple[AppTest, Path], tmp_path: Path
) -> None:
    at, store_dir = train_page
    marker = tmp_path / "PWNED"
    outside = tree(tmp_path, skip=store_dir)
    for case in PAGE_CASES:
        at.get("file_uploader")[0].set_value((case.name, case.make(marker), "application/zip"))
        at.run()
        assert not at.exception, (case.id, [e.message for e in at.exception])
        errors = " ".join(str(e.value) for e in at.error)
        assert "This data cannot be used" in errors and case.says in errors, (case.id, errors)
        assert at.button(key="tr_launch").disabled, case.id
        assert not list(store_dir.glob("uploads/*")), case.id  # nothing kept
    assert not marker.exists()
    assert tree(tmp_path, skip=store_dir) == outside
    # and a good one, after all that, is accepted
    at.get("file_uploader")[0].set_value(("fine.npz", GOOD, "application/zip"))
    at.run()
    assert not at.exception
    assert "40 vector samples" in " ".join(str(s.value) for s in at.success)
    assert not at.button(key="tr_launch").disabled


def test_the_train_page_refuses_an_upload_over_the_servers_limit(
    train_page: tuple[AppTest, Path],
) -> None:
    """The page's own check uses ``server.maxUploadSize`` (50 MB in .streamlit/config.toml):
    a file the server let through (a different config, or a forged request) is refused."""
    at, store_dir = train_page
    limit = st.get_option("server.maxUploadSize")
    big = b"PK\x03\x04" + bytes(int(limit) * 2**20)
    at.get("file_uploader")[0].set_value(("big.npz", big, "application/zip"))
    at.run()
    assert not at.exception
    errors = " ".join(str(e.value) for e in at.error)
    assert f"over the limit of {limit} MB" in errors, errors
    assert not list(store_dir.glob("uploads/*"))


def test_pages_name_an_upload_as_it_was_sent(tmp_path: Path) -> None:
    """A run on an upload was named after its stored file, "gca_ince on
    good-0fc1f609f5fb.npz" (the content hash save_upload adds)."""
    stored = save_upload(npz_bytes(x=np.zeros((4, 2)), y=np.arange(4) % 2), "my data.npz",
                         tmp_path / "uploads", max_bytes=2**20)  # fmt: skip
    assert stored.name != "my_data.npz" and data_label(str(stored)) == "my_data.npz"
    assert data_label("digits") == "digits"  # a built-in dataset, as it is
    assert data_label("/data/datasets/cifar") == "cifar"  # a folder: its name
    assert data_label("/data/datasets/run-2024.npz") == "run-2024.npz"  # no hash: as it is
    hashed = "/data/datasets/scan-0fc1f609f5fb.npz"  # a user's own file named like one
    assert data_label(hashed) == "scan-0fc1f609f5fb.npz"  # outside uploads/: as it is


def test_a_runs_table_tells_apart_two_uploads_sent_under_one_name(tmp_path: Path) -> None:
    """Two different files both sent as mine.npz read alike by data_label; in a table of
    runs each names the start of its content hash, and one file used twice reads the same."""
    uploads = tmp_path / "uploads"
    first, second = (
        save_upload(
            npz_bytes(x=np.full((4, 2), v), y=np.arange(4) % 2),
            "mine.npz",
            uploads,
            max_bytes=2**20,
        )
        for v in (0.0, 1.0)
    )
    assert first != second and data_label(str(first)) == data_label(str(second))
    labels = data_labels([str(first), str(second), str(first), "digits"])
    assert labels[0] != labels[1] and labels[0] == labels[2] and labels[3] == "digits"
    for path, label in zip((first, second), labels, strict=False):
        assert label.startswith("mine.npz · ") and label[-6:] in path.name
    assert data_labels([str(first), "digits"]) == ["mine.npz", "digits"]  # alone: as sent
