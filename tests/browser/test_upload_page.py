"""Bad uploads through the real uploader of the Train page, in Chromium.

What only the browser path shows: Streamlit's own size limit in the frontend (a file over
``server.maxUploadSize`` never leaves the browser), the server refusing an oversized body
sent past the frontend (HTTP 413), and names no browser would send (a NUL, a path) forged
into the upload request on its way to the server: each gets the page's ``st.error``
naming the problem, never an exception, nothing is kept, no pickle payload runs.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from playwright.sync_api import Route, expect

LIMIT_MB = 50  # .streamlit/config.toml


class Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def npz(**arrays: Any) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def renamer(forged: str) -> Callable[[Route], None]:
    """A route handler that puts ``forged`` in place of the upload's file name."""

    def rename(route: Route) -> None:
        body = route.request.post_data_buffer or b""
        route.continue_(post_data=body.replace(b'filename="x.npz"', forged.encode()))

    return rename


def test_bad_uploads_get_a_clear_message_on_the_page(
    app: Any, runs_dir: Path, tmp_path: Path
) -> None:
    page = app.page
    app.goto("/train?tr_data=upload", charts=0)
    app.open_new_run_form()
    uploader = page.locator(".st-key-tr_upload")
    file_input = uploader.locator("input[type=file]")
    expect(file_input).to_have_count(1, timeout=30_000)
    uploads = runs_dir / "uploads"
    kept_before = sorted(uploads.glob("*")) if uploads.exists() else []
    marker = tmp_path / "PWNED"
    good = npz(x=np.random.default_rng(0).random((30, 4)), y=np.arange(30) % 3)

    def upload(name: str, data: bytes | Path) -> None:
        files: Any = str(data) if isinstance(data, Path) else {
            "name": name, "mimeType": "application/octet-stream", "buffer": data
        }  # fmt: skip
        file_input.set_input_files(files=[files])

    def error_says(text: str) -> None:
        alert = page.locator('[data-testid="stAlert"]').filter(has_text=text)
        expect(alert.first).to_be_visible(timeout=20_000)
        app.assert_healthy()
        assert (sorted(uploads.glob("*")) if uploads.exists() else []) == kept_before

    # 1. over the limit: the frontend refuses it; nothing reaches the server
    big = tmp_path / "big.npz"
    big.write_bytes(b"PK\x03\x04" + bytes(LIMIT_MB * 2**20 + 1))
    upload("big.npz", big)
    expect(uploader.get_by_text(re.compile(rf"{LIMIT_MB}(\.0)?\s*MB"))).to_be_visible()
    app.assert_healthy()

    # 2. the server refuses an oversized body sent past the frontend: HTTP 413
    sizes: list[int] = []

    def inflate(route: Route) -> None:
        body = route.request.post_data_buffer or b""
        bigger = body.replace(b"PK\x03\x04", b"PK\x03\x04" + bytes(LIMIT_MB * 2**20 + 1), 1)
        response = route.fetch(post_data=bigger)
        sizes.append(response.status)
        route.fulfill(response=response)

    page.route("**/_stcore/upload_file/**", inflate)
    upload("small.npz", good)
    app.until(lambda: sizes, 30, "the forged upload's response")
    assert sizes == [413], sizes
    page.unroute("**/_stcore/upload_file/**")
    refused = [e for e in app.errors if "413" in e]  # the browser logs the refusal
    assert refused and len(refused) == len(app.errors), app.errors
    app.errors.clear()
    app.assert_healthy()

    # 3. names no browser sends, forged into the request: a NUL, a path, a direction mark
    for forged, says in (
        ('filename="a\x00b.npz"', "NUL character"),
        ('filename="../../evil.npz"', "the name holds a path"),
        ('filename="evil\u202ezpn.npz"', "text-direction character"),
    ):
        page.route("**/_stcore/upload_file/**", renamer(forged))
        upload("x.npz", good)
        error_says(says)
        page.unroute("**/_stcore/upload_file/**")
    assert not (runs_dir.parent / "evil.npz").exists()

    # 4. content: a pickle payload, a PNG under an .npz name, a truncated archive
    evil_y = np.empty(30, dtype=object)
    evil_y[:] = [Payload(marker), *range(29)]
    for name, data, says in (
        ("evil.npz", npz(x=np.zeros((30, 4)), y=evil_y), "object array"),
        ("photo.npz", b"\x89PNG\r\n\x1a\n" + bytes(64), "not a .npz archive"),
        ("cut.npz", good[: len(good) // 2], "corrupt or truncated"),
        ("notes.txt", good, "expected a .npz file"),
    ):
        upload(name, data)
        error_says(says)
    assert not marker.exists(), "the pickle payload ran"

    # 5. and a good one is accepted
    upload("fine.npz", good)
    expect(page.get_by_text("30 vector samples of shape (4,), 3 classes")).to_be_visible(
        timeout=20_000
    )
    app.assert_healthy()
    assert len(list(uploads.glob("fine-*.npz"))) == 1
