"""Arrays in: what the figure builders accept (numpy arrays, lists, torch tensors on any
device, with or without autograd)."""

from __future__ import annotations

from typing import Any

import numpy as np


def floats(x: Any) -> np.ndarray:
    """``x`` as a float64 numpy array; a torch tensor is detached and copied to the CPU
    first (``np.asarray`` refused one that requires grad, as a plan straight from a loss
    does, with torch's "Can't call numpy() on Tensor that requires grad")."""
    detach = getattr(x, "detach", None)
    if callable(detach):
        x = detach().cpu()
    return np.asarray(x, dtype=float)
