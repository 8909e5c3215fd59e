"""Tests for gca_viz.registry: parameter schemas (Param), entries (Stage) and registries."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from gca_viz import losses
from gca_viz.registry import Param, Registry, Stage, UnknownNameError

ALL_REGISTRIES = {
    "cost": losses.COSTS,
    "target": losses.TARGETS,
    "projection": losses.PROJECTIONS,
    "divergence": losses.DIVERGENCES,
}


# ------------------------------------------------------------------------------ Param


def test_float_param_converts_and_keeps_type() -> None:
    p = Param("temp", 0.5, "A temperature.", low=0.0, high=2.0)
    for value in (1, 1.5, np.float32(0.25), np.int64(2)):
        out = p.validate(value)
        assert isinstance(out, float)
        assert out == float(value)


def test_int_param_returns_int() -> None:
    p = Param("steps", 10, "Number of steps.", kind="int", low=1)
    assert p.validate(3) == 3 and isinstance(p.validate(3), int)
    assert p.validate(4.0) == 4 and isinstance(p.validate(4.0), int)
    assert p.validate(np.int64(7)) == 7 and isinstance(p.validate(np.int64(7)), int)
    with pytest.raises(ValueError, match="steps must be an integer"):
        p.validate(2.5)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        p.validate(0)


@pytest.mark.parametrize("value", [True, False, "abc", [1.0], object(), math.nan])
def test_non_numbers_rejected(value: Any) -> None:
    p = Param("weight", 1.0, "A weight.")
    with pytest.raises(ValueError, match="weight must be a number"):
        p.validate(value)


def test_choice_param() -> None:
    p = Param("end", "column", "Last half-step.", kind="choice", choices=("column", "row"))
    assert p.validate("row") == "row"
    assert p.validate("column") == "column"
    with pytest.raises(ValueError, match=r"end must be one of \('column', 'row'\), got 'diag'"):
        p.validate("diag")
    with pytest.raises(ValueError, match="end must be one of"):
        p.validate(1)
    with pytest.raises(ValueError, match="end is required"):
        p.validate(None)


def test_optional_param_admits_none_only_when_optional() -> None:
    optional = Param("relax", 0.2, "Relaxation.", low=0.0, low_open=True, optional=True)
    assert optional.validate(None) is None
    required = Param("relax", 0.2, "Relaxation.", low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"relax is required \(Relaxation.\)"):
        required.validate(None)


def test_infinity_only_when_allowed() -> None:
    allowing = Param("lam", 1.0, "Weight.", low=0.0, low_open=True, allow_inf=True)
    assert allowing.validate(math.inf) == math.inf
    assert allowing.validate(float("inf")) == math.inf
    with pytest.raises(ValueError, match="lam must be a finite number"):
        allowing.validate(-math.inf)  # only +inf is a limit
    finite = Param("lam", 1.0, "Weight.", low=0.0, low_open=True)
    for value in (math.inf, -math.inf):
        with pytest.raises(ValueError, match="lam must be a finite number"):
            finite.validate(value)


def test_allow_inf_still_respects_high_bound() -> None:
    p = Param("w", 1.0, "Weight.", low=0.0, high=10.0, allow_inf=True)
    with pytest.raises(ValueError, match="w must be a number <= 10"):
        p.validate(math.inf)


@pytest.mark.parametrize(
    ("param", "inside", "outside", "match"),
    [
        (
            Param("a", 1.0, "d", low=0.0),
            [0.0, 1e-300, 5.0],
            [-1e-12, -3.0],
            r"a must be a number >= 0",
        ),
        (
            Param("a", 1.0, "d", low=0.0, low_open=True),
            [1e-300, 5.0],
            [0.0, -1.0],
            r"a must be a number > 0",
        ),
        (
            Param("a", 0.5, "d", high=1.0),
            [1.0, -7.0],
            [1.0 + 1e-12, 2.0],
            r"a must be a number <= 1",
        ),
        (
            Param("a", 0.5, "d", high=1.0, high_open=True),
            [0.999],
            [1.0, 3.0],
            r"a must be a number < 1",
        ),
        (
            Param("a", 0.5, "d", low=0.0, low_open=True, high=1.0),
            [1.0, 0.5],
            [0.0, 1.5],
            r"a must be a number (> 0|<= 1)",
        ),
    ],
)
def test_bounds(param: Param, inside: list[float], outside: list[float], match: str) -> None:
    for value in inside:
        assert param.validate(value) == value
    for value in outside:
        with pytest.raises(ValueError, match=match):
            param.validate(value)


def test_error_messages_name_the_parameter_and_value() -> None:
    p = Param("epsilon", 0.5, "Temperature.", low=0.0, low_open=True)
    with pytest.raises(ValueError, match=r"^epsilon must be a number > 0, got -2$"):
        p.validate(-2)
    with pytest.raises(ValueError, match=r"^epsilon must be a number, got 'x'$"):
        p.validate("x")


def test_param_is_frozen() -> None:
    p = Param("a", 1.0, "d")
    with pytest.raises(AttributeError):
        p.default = 2.0  # type: ignore[misc]


# ------------------------------------------------------------------------------ Stage


def _stage() -> Stage:
    def fn(x: float, *, scale: float = 1.0, mode: str = "a") -> float:
        """Scale ``x``."""
        return x * scale

    params = (
        Param("scale", 1.0, "Scale.", low=0.0),
        Param("mode", "a", "Mode.", kind="choice", choices=("a", "b")),
    )
    return Stage("scaler", fn, params, r"y = s x", "Scales its input.")


def test_stage_defaults_and_validate() -> None:
    stage = _stage()
    assert stage.defaults() == {"scale": 1.0, "mode": "a"}
    assert stage.validate({}) == {"scale": 1.0, "mode": "a"}
    assert stage.validate({"scale": 3}) == {"scale": 3.0, "mode": "a"}
    assert stage.doc == "Scale ``x``."
    with pytest.raises(ValueError, match="scale must be a number >= 0"):
        stage.validate({"scale": -1})


def test_stage_unknown_parameter_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"scaler has no parameter 'gamma'.*\['mode', 'scale'\]"):
        _stage().validate({"gamma": 1.0})
    empty = Stage("plain", lambda: None, (), "x", "y")
    with pytest.raises(ValueError, match="plain has no parameter 'a'; its parameters are none"):
        empty.validate({"a": 1})


def test_stage_check_links_parameters_after_each_is_validated() -> None:
    seen: list[dict[str, Any]] = []

    def check(values: Any) -> None:
        seen.append(dict(values))
        if values["lo"] > values["hi"]:
            raise ValueError("lo must be <= hi")

    reg = Registry("widget")
    params = (Param("lo", 0.0, "Low.", low=0.0), Param("hi", 1.0, "High.", low=0.0))
    reg.register("range", params=params, latex="r", description="A range.", check=check)(
        lambda lo=0.0, hi=1.0: (lo, hi)
    )
    stage = reg["range"]
    assert stage.check is check and stage.validate({"lo": 0.5}) == {"lo": 0.5, "hi": 1.0}
    with pytest.raises(ValueError, match="lo must be <= hi"):
        stage.validate({"lo": 2})
    with pytest.raises(ValueError, match="lo must be a number >= 0"):  # each parameter first
        stage.validate({"lo": -1})
    assert seen == [{"lo": 0.5, "hi": 1.0}, {"lo": 2.0, "hi": 1.0}]
    assert _stage().check is None  # no check: validate is per parameter only


# --------------------------------------------------------------------------- Registry


def _registry() -> Registry:
    reg = Registry("widget")

    @reg.register("b", latex="B", description="Second letter.")
    def b() -> str:
        return "b"

    @reg.register("a", params=(Param("k", 1, "A count.", kind="int"),), latex="A", description="A.")
    def a(k: int = 1) -> str:
        return "a" * k

    return reg


def test_register_returns_function_and_stores_stage() -> None:
    reg = Registry("widget")

    def fn() -> int:
        return 7

    assert reg.register("seven", latex="7", description="Seven.")(fn) is fn
    entry = reg["seven"]
    assert isinstance(entry, Stage)
    assert (entry.name, entry.fn, entry.latex, entry.description) == ("seven", fn, "7", "Seven.")
    assert entry.fn() == 7


def test_registry_is_a_mapping_in_registration_order() -> None:
    reg = _registry()
    assert list(reg) == ["b", "a"]
    assert len(reg) == 2
    assert "a" in reg and "b" in reg
    assert "x" not in reg
    assert reg.get("x") is None
    assert dict(reg)["a"].fn(k=3) == "aaa"


def test_unknown_name_is_value_and_key_error_naming_choices() -> None:
    reg = _registry()
    with pytest.raises(ValueError, match=r"unknown widget 'x'; choose one of \['a', 'b'\]"):
        reg["x"]
    with pytest.raises(KeyError):
        reg["x"]
    with pytest.raises(UnknownNameError) as info:
        reg["x"]
    assert str(info.value) == "unknown widget 'x'; choose one of ['a', 'b']"  # no repr quotes


def test_duplicate_registration_raises_and_keeps_first() -> None:
    reg = _registry()
    first = reg["a"]
    with pytest.raises(ValueError, match="widget 'a' is already registered"):
        reg.register("a", latex="A2", description="Again.")(lambda: "other")
    assert reg["a"] is first
    assert len(reg) == 2


def test_registries_do_not_share_entries() -> None:
    one, two = Registry("one"), Registry("two")
    one.register("x", latex="x", description="x")(lambda: None)
    assert "x" in one and "x" not in two


# ------------------------------------------------------------- the project's registries


@pytest.mark.parametrize("kind", list(ALL_REGISTRIES))
def test_project_registries_are_consistent(kind: str) -> None:
    registry = ALL_REGISTRIES[kind]
    assert isinstance(registry, Registry) and registry.kind == kind
    assert len(registry) > 0
    for name, stage in registry.items():
        assert stage.name == name
        assert callable(stage.fn)
    with pytest.raises(ValueError, match=rf"unknown {kind} 'no-such-entry'"):
        registry["no-such-entry"]
    assert "no-such-entry" not in registry
