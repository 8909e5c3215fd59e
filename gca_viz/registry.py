"""Registries of named stages, each with a parameter schema and its formula as LaTeX.

The loss pipeline (``docs/math.md`` section 3) has four stages: cost, target plan,
projection, divergence. Every stage lives in a :class:`Registry`; an entry (:class:`Stage`)
carries the callable, a schema of its parameters (:class:`Param`: default, range, one-line
description), its formula as LaTeX and a one-line description. Pages build their controls
from the schemas, the documentation table from the LaTeX, and the tests parametrize over
the entries, so adding a stage is one registration.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from gca_viz._validate import not_learnable

ParamValue = float | int | str | None
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Param:
    """Schema of one parameter: default, admissible range and a one-line description.

    ``low``/``high`` bound a number (open bounds with ``low_open``/``high_open``);
    ``choices`` restricts a string; ``optional`` admits ``None`` (for example a hard
    marginal constraint instead of a relaxation weight) and ``allow_inf`` admits ``+inf``;
    ``ui`` is the range a slider should offer (within the admissible one).
    """

    name: str
    default: ParamValue
    description: str
    symbol: str = ""
    kind: Literal["float", "int", "choice"] = "float"
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    choices: tuple[str, ...] = ()
    optional: bool = False
    allow_inf: bool = False
    ui: tuple[float, float] | None = None

    def validate(self, value: Any) -> ParamValue:
        """Return ``value`` converted to the schema's kind, or raise ``ValueError`` naming it,
        worded as :mod:`gca_viz._validate` words its checks (``"epsilon must be a number > 0,
        got 0"``, ``"n_iter must be an integer >= 1, got 0"``); the bounds come from the
        schema."""
        if value is None:
            if self.optional:
                return None
            raise ValueError(f"{self.name} is required ({self.description})")
        if self.kind == "choice":
            if value not in self.choices:
                raise ValueError(f"{self.name} must be one of {self.choices}, got {value!r}")
            return str(value)
        not_learnable(value, self.name)
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"{self.name} must be a number, got {value!r}") from None
        if isinstance(value, bool) or math.isnan(number):
            raise ValueError(f"{self.name} must be a number, got {value!r}")
        if math.isinf(number) and not (number > 0 and self.allow_inf):
            raise ValueError(f"{self.name} must be a finite number, got {value!r}")
        if self.kind == "int" and number != int(number):
            raise ValueError(f"{self.name} must be an integer, got {value!r}")
        low, high = self.low, self.high
        kind = "an integer" if self.kind == "int" else "a number"
        if low is not None and (number < low or (self.low_open and number == low)):
            op = ">" if self.low_open else ">="
            raise ValueError(f"{self.name} must be {kind} {op} {_bound(low)}, got {value!r}")
        if high is not None and (number > high or (self.high_open and number == high)):
            op = "<" if self.high_open else "<="
            raise ValueError(f"{self.name} must be {kind} {op} {_bound(high)}, got {value!r}")
        return int(number) if self.kind == "int" else number


def _bound(x: float) -> str:
    """A bound as a message shows it: ``0.5``, ``1``, ``10,000,000`` (not ``1e+07``)."""
    return f"{int(x):,}" if float(x).is_integer() and abs(x) >= 1e5 else f"{x:g}"


@dataclass(frozen=True)
class Stage:
    """One registry entry: a callable, its parameter schema, its formula and a description."""

    name: str
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    latex: str
    description: str
    check: Callable[[Mapping[str, Any]], None] | None = None
    """Optional joint check of the validated values (a constraint linking parameters, such
    as ``α + β <= 1``); raises ``ValueError`` naming them."""

    @property
    def doc(self) -> str:
        """The callable's docstring (the formula with its definitions)."""
        return self.fn.__doc__ or ""

    def defaults(self) -> dict[str, ParamValue]:
        """Default value of every parameter."""
        return {p.name: p.default for p in self.params}

    def validate(self, params: Mapping[str, Any]) -> dict[str, ParamValue]:
        """Defaults overridden by ``params``, each validated, then checked together by
        :attr:`check` if the entry has one; unknown names are an error."""
        known = {p.name: p for p in self.params}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ValueError(
                f"{self.name} has no parameter {unknown[0]!r}; its parameters are "
                f"{sorted(known) or 'none'}"
            )
        out = self.defaults()
        out.update({k: known[k].validate(v) for k, v in params.items()})
        if self.check is not None:
            self.check(out)
        return out


class UnknownNameError(KeyError, ValueError):
    """An unknown registry name: a ``ValueError`` for callers, a ``KeyError`` for ``Mapping``."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass
class Registry(Mapping[str, Stage]):
    """A name -> :class:`Stage` mapping with a decorator to register entries."""

    kind: str
    _entries: dict[str, Stage] = field(default_factory=dict)

    def register(
        self,
        name: str,
        *,
        params: tuple[Param, ...] = (),
        latex: str,
        description: str,
        check: Callable[[Mapping[str, Any]], None] | None = None,
    ) -> Callable[[F], F]:
        """Decorator adding ``fn`` under ``name`` (``check``: see :attr:`Stage.check`)."""

        def add(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = Stage(name, fn, params, latex, description, check)
            return fn

        return add

    def __getitem__(self, name: str) -> Stage:
        try:
            return self._entries[name]
        except (KeyError, TypeError):  # TypeError: an unhashable name
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; choose one of {sorted(self._entries)}"
            ) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
