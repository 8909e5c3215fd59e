"""gca_viz._validate: one check per kind of argument, one wording (the name first, the
value last), numbers only (no strings, no bools)."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from gca_viz import _validate as v


@pytest.mark.parametrize(
    "check, good, expected",
    [
        (v.number, np.float32(0.5), 0.5),
        (v.number, torch.tensor(2.0), 2.0),
        (v.number, math.inf, math.inf),
        (v.finite, -3, -3.0),
        (v.positive, np.int64(4), 4.0),
        (v.nonnegative, 0, 0.0),
        (v.integer, np.int32(3), 3),
        (v.relaxation, 0.2, 0.2),
        (v.relaxation, math.inf, None),
        (v.relaxation, None, None),
    ],
)
def test_accepted_values_come_back_as_python_numbers(check, good, expected) -> None:  # type: ignore[no-untyped-def]
    out = check(good, "x")
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    "check, bad, says",
    [
        (v.number, "0.5", "x must be a number, got '0.5' (str)"),
        (v.number, True, "x must be a number, got True (bool)"),
        (v.number, torch.ones(3), "x must be a number"),
        (v.finite, math.nan, "x must be a finite number, got nan"),
        (v.positive, 0, "x must be a number > 0, got 0"),
        (v.positive, math.inf, "x must be a number > 0, got inf"),
        (v.nonnegative, -1e-9, "x must be a number >= 0, got -1e-09"),
        (v.integer, 2.0, "x must be an integer >= 1, got 2.0"),
        (v.integer, True, "x must be an integer >= 1, got True (bool)"),
        (v.integer, 0, "x must be an integer >= 1, got 0"),
        (v.relaxation, 0.0, "x must be a number > 0 (or None for a hard marginal), got 0.0"),
        (v.relaxation, math.nan, "x must be a number > 0 (or None for a hard marginal)"),
    ],
)
def test_refused_values_name_the_parameter_first_and_the_value_last(check, bad, says) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:
        check(bad, "x")
    assert str(info.value).startswith(says)


def test_bounds_are_named_and_checked() -> None:
    assert v.integer(0, "seed", 0) == 0
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0, got -1$"):
        v.integer(-1, "seed", 0)
    assert v.nonnegative(1.0, "share", 1.0) == 1.0
    with pytest.raises(ValueError, match=r"^share must be a number in \[0, 1\], got 1.5$"):
        v.nonnegative(1.5, "share", 1.0)


def test_arrays_with_nan_or_inf_are_named() -> None:
    v.finite_array(np.ones((2, 2)), "z")
    with pytest.raises(ValueError, match=r"^z contains NaN or inf$"):
        v.finite_array([1.0, math.inf], "z")


def test_the_library_words_its_checks_alike() -> None:
    """Modules that had their own wording now say the same thing for the same mistake."""
    from gca_viz import metrics, models, targets
    from gca_viz.lab import batches

    messages = []
    for call in (
        lambda: targets.pair_target(0),
        lambda: models.MLPEncoder((8,), hidden=0),
        lambda: metrics.knn_accuracy(np.ones((4, 2)), [0, 1, 0, 1], np.ones((2, 2)), [0, 1], k=0),
        lambda: batches.synthetic_batch(0),
    ):
        with pytest.raises(ValueError) as info:
            call()
        messages.append(str(info.value))
    assert all(re.fullmatch(r"\w+ must be an integer >= \d, got 0", m) for m in messages), messages
