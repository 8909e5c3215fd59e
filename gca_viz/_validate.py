"""The one place that checks scalar arguments and arrays, with one wording.

Every check raises ``ValueError`` whose message starts with the parameter's name and ends
with the value it got: ``"epsilon must be a number > 0, got -2"``. A number is a Python,
numpy or 0-d torch number; a string (``"0.5"``) or a bool is refused, not converted, since it
is most likely a mistake (a value read from a file unparsed, a flag in the wrong place).
Array checks that need torch live with the solver (:mod:`gca_viz.ot`); this module imports
numpy only, so any module of the library can use it.
"""

from __future__ import annotations

import math
import os
import sys
from typing import Any

import numpy as np

__all__ = [
    "dtype_name",
    "finite",
    "finite_array",
    "integer",
    "nonnegative",
    "not_learnable",
    "number",
    "positive",
    "relaxation",
]


def dtype_name(dtype: Any) -> str:
    """A torch or numpy dtype as messages and lines name it: ``"float32"`` for both
    ``torch.float32`` and ``np.float32`` (a numpy input's message said "torch.float32")."""
    return str(dtype).removeprefix("torch.")


FLOAT32_SQUARE_SAFE = 1e18
"""The largest magnitude whose float32 square (in a norm or a variance, summed over a row)
stays below float32's 3.4e38: user vectors and recorded embeddings beyond it are refused."""


def _library_dirs() -> tuple[str, ...]:
    """gca_viz's folder and torch's (``nn.Module.__call__``), if torch is loaded."""
    dirs = [os.path.dirname(os.path.abspath(__file__))]
    where = getattr(sys.modules.get("torch"), "__file__", None)
    if isinstance(where, str):
        dirs.append(os.path.dirname(os.path.abspath(where)))
    return tuple(d + os.sep for d in dirs)


def user_stacklevel() -> int:
    """The ``stacklevel`` for :func:`warnings.warn`, called where the warning is raised,
    that points the warning at the first caller outside gca_viz and torch (the user's
    line): a fixed level named a line inside the library as soon as the call went through
    one more function, as a loss's does through ``nn.Module.__call__``."""
    frame = sys._getframe(1)  # the function that warns: stacklevel 1
    level = 1
    inside = _library_dirs()
    while frame is not None and frame.f_code.co_filename.startswith(inside):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def _got(value: Any) -> str:
    """The end of a message: the value, and its type where the repr hides it."""
    if isinstance(value, str | bytes | bool | np.bool_):
        return f"got {value!r} ({type(value).__name__})"
    return f"got {value!r}"


def not_learnable(value: Any, name: str) -> None:
    """Refuse a tensor that requires grad where a plain number is read: it would be read
    once as a float and never trained (a learnable temperature needs an API that keeps it
    in the graph, which the OT solvers and the losses' parameters do not)."""
    if getattr(value, "requires_grad", False):
        raise ValueError(
            f"{name} must be a plain number, got a tensor that requires grad (it would be "
            "read once as a float and never trained)"
        )


def number(value: Any, name: str) -> float:
    """``value`` as a float (``nan`` and ``inf`` included): ``"<name> must be a number"``;
    a tensor that requires grad is refused (:func:`not_learnable`)."""
    not_learnable(value, name)
    if isinstance(value, str | bytes | bool | np.bool_):
        raise ValueError(f"{name} must be a number, {_got(value)}")
    try:
        return float(value)
    except (TypeError, ValueError, RuntimeError):  # RuntimeError: a tensor of many entries
        raise ValueError(f"{name} must be a number, {_got(value)}") from None


def finite(value: Any, name: str) -> float:
    """``value`` as a finite float: ``"<name> must be a finite number"``."""
    x = number(value, name)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be a finite number, {_got(value)}")
    return x


def positive(value: Any, name: str) -> float:
    """``value`` as a finite float ``> 0``: ``"<name> must be a number > 0"``."""
    x = number(value, name)
    if not 0 < x < math.inf:
        raise ValueError(f"{name} must be a number > 0, {_got(value)}")
    return x


def nonnegative(value: Any, name: str, high: float = math.inf) -> float:
    """``value`` as a finite float in ``[0, high]``: ``"<name> must be a number >= 0"``
    (``"... in [0, high]"`` when ``high`` is finite)."""
    x = number(value, name)
    if not (0 <= x <= high and math.isfinite(x)):
        span = f"in [0, {high:g}]" if math.isfinite(high) else ">= 0"
        raise ValueError(f"{name} must be a number {span}, {_got(value)}")
    return x


def integer(value: Any, name: str, low: int = 1) -> int:
    """``value`` as an int ``>= low`` (Python or numpy integers; not a bool, not a float such
    as ``2.0``): ``"<name> must be an integer >= low"``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, {_got(value)}")
    return int(value)


def relaxation(value: Any, name: str) -> float | None:
    """A marginal weight ``λ > 0`` of unbalanced OT; ``None`` or ``inf`` (a hard marginal)
    come back as ``None``: ``"<name> must be a number > 0 (or None for a hard marginal)"``."""
    if value is None:
        return None
    x = number(value, name)
    if math.isnan(x) or x <= 0:
        hard = "(or None for a hard marginal)"
        raise ValueError(f"{name} must be a number > 0 {hard}, {_got(value)}")
    return None if math.isinf(x) else x


def finite_array(x: Any, name: str) -> None:
    """``ValueError("<name> contains NaN or inf")`` unless every entry of ``x`` is finite."""
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{name} contains NaN or inf")
