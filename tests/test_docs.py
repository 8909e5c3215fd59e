"""The README's Python examples run as written: a reader copies them whole, and the second
block used a ``y`` it never defined (a library user's review: ``NameError``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> list[str]:
    """The fenced ``python`` blocks of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_examples_run_in_order_and_give_finite_values(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # (an example saves a figure)
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert len(blocks) >= 2  # the OT core and the loss family
    torch.manual_seed(0)
    scope: dict[str, object] = {}
    for block in blocks:  # one reader's session: later blocks use earlier names
        exec(compile(block, str(README), "exec"), scope)
    for name in ("value", "res"):
        assert name in scope, name
    assert (tmp_path / "half_steps.html").stat().st_size > 1_000_000  # the saved player
    value = scope["value"]
    assert isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value)
