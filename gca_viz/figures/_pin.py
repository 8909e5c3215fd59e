"""The pinned sample's marks in :func:`gca_viz.figures.geometry.explorer_figure`, and the
trace helpers they share with its point clouds.

A pinned row gets, in this order (frames address traces by index): lines to its nearest
neighbours, rings on them, its own black diamond, then, when the panel knows its positive
partner (the embedding of an augmented view of the same sample), a dashed line to it and a
hollow diamond in the pinned point's colour at the partner's place.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

PIN_COLOR = "#111827"
"""The pinned sample's mark and its neighbours' rings."""

MONOSPACE = "DejaVu Sans Mono, Menlo, Consolas, monospace"
"""The hover labels' font: the input's shaded blocks line up in columns."""

PARTNER_NAME = "its partner (augmented view)"
"""Legend name of the partner's mark."""


def hover_args(texts: Sequence[str], rows: np.ndarray) -> dict[str, Any]:
    """Hover labels ``texts[rows]`` in :data:`MONOSPACE` on white."""
    return {
        "text": [texts[r] for r in rows],
        "hovertemplate": "%{text}<extra></extra>",
        "hoverlabel": {"bgcolor": "white", "font": {"family": MONOSPACE, "color": "#111827"}},
    }


def coords(P: np.ndarray, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The ``x``, ``y`` (and ``z``) of ``rows`` as float32 (half the bytes of float64)."""
    return {c: P[rows, j].astype(np.float32) for j, c in enumerate("xyz"[: P.shape[1]])}


def customdata(rows: np.ndarray, tag: int) -> np.ndarray:
    """``(m, 2)`` of (row, the panel's tag): what a click on a point reports."""
    return np.column_stack([rows, np.full(len(rows), tag)]).astype(np.int32)


def links(start: np.ndarray, ends: np.ndarray) -> dict[str, np.ndarray]:
    """Segments from the point ``start`` ``(dims,)`` to each of ``ends`` ``(m, dims)``,
    separated by NaN gaps."""
    dims = len(start)
    seg = np.full((len(ends), 3, dims), np.nan)
    seg[:, 0], seg[:, 1] = start, ends
    flat = seg.reshape(-1, dims)  # (3m, dims)
    return {c: flat[:, j].astype(np.float32) for j, c in enumerate("xyz"[:dims])}


@dataclass(frozen=True)
class PinMarks:
    """The marks of one panel's pinned row.

    Attributes:
        kind: the panel's trace class (``go.Scatter``, ``go.Scattergl``, ``go.Scatter3d``).
        axes: the panel's ``xaxis``/``yaxis`` or ``scene``.
        texts: every row's hover label.
        tag: the panel's click tag. row: the pinned row.
        neighbours: one ``(k,)`` array of rows per frame (may be empty: no neighbours).
        partner: one ``(dims,)`` point per frame, the partner's place (NaN where a frame
            has none); empty: no partner is drawn.
        color: the pinned point's colour, the partner's mark's.
        sphere: a 3-D scene (smaller marks, thinner lines).
    """

    kind: Any
    axes: Mapping[str, str]
    texts: Sequence[str]
    tag: int
    row: int
    neighbours: Sequence[np.ndarray]
    partner: Sequence[np.ndarray]
    color: str
    sphere: bool

    def _near(self, frame: int) -> np.ndarray:
        return self.neighbours[frame] if self.neighbours else np.zeros(0, np.int64)

    def traces(self, P: np.ndarray, frame: int, first: bool) -> list[Any]:
        """The marks at frame ``frame`` (points ``P``); ``first``: with legend entries."""
        near, big = self._near(frame), 1 if self.sphere else 2
        pin = np.array([self.row], dtype=np.int64)
        out = [
            self.kind(
                **links(P[self.row], P[near]),
                mode="lines",
                line={"color": PIN_COLOR, "width": 3 - big},
                opacity=0.6,
                hoverinfo="skip",
                showlegend=False,
                **self.axes,
            ),
            self._mark(P, near, f"its {len(near)} nearest (cosine)", first, 7 * big, "circle-open"),
            self._mark(P, pin, "pinned sample", first, 9 * big, "diamond"),
        ]
        if self.partner:
            out += self._partner(P, frame, first, big)
        return out

    def _mark(
        self, P: np.ndarray, rows: np.ndarray, name: str, first: bool, size: float, symbol: str
    ) -> Any:
        """Black marks on ``rows`` (the pinned sample, its neighbours), clickable too."""
        line = {
            "color": "white" if symbol == "diamond" else PIN_COLOR,
            "width": 1 + (symbol != "diamond"),
        }
        return self.kind(
            **coords(P, rows),
            mode="markers",
            name=name,
            legendgroup=name.split()[0],
            showlegend=first,
            marker={"size": size, "symbol": symbol, "color": PIN_COLOR, "line": line},
            customdata=customdata(rows, self.tag),
            **hover_args(self.texts, rows),
            **self.axes,
        )

    def _partner(self, P: np.ndarray, frame: int, first: bool, big: int) -> list[Any]:
        """A dashed line from the pinned point to its partner, and a hollow diamond of the
        pinned point's colour there (a click on it keeps the pin)."""
        at = self.partner[frame][None, :]  # (1, dims)
        head = self.texts[self.row].split("<br>")[0]
        return [
            self.kind(
                **links(P[self.row], at),
                mode="lines",
                line={"color": self.color, "width": 2 + big, "dash": "dash"},
                hoverinfo="skip",
                showlegend=False,
                **self.axes,
            ),
            self.kind(
                **coords(at, np.array([0])),
                mode="markers",
                name=PARTNER_NAME,
                legendgroup="partner",
                showlegend=first,
                marker={
                    "size": 9 * big,
                    "symbol": "diamond-open",
                    "color": self.color,
                    "line": {"color": self.color, "width": 2 * big},
                },
                customdata=customdata(np.array([self.row]), self.tag),
                text=[f"{head}<br>its partner: an augmented view of it"],
                hovertemplate="%{text}<extra></extra>",
                hoverlabel={"bgcolor": "white", "font": {"color": "#111827"}},
                **self.axes,
            ),
        ]

    def updates(self, P: np.ndarray, frame: int) -> list[dict[str, Any]]:
        """What a frame changes in :meth:`traces`' traces, in their order."""
        near = self._near(frame)
        out = [
            links(P[self.row], P[near]),
            {
                **coords(P, near),
                "customdata": customdata(near, self.tag),
                **hover_args(self.texts, near),
            },
            coords(P, np.array([self.row])),
        ]
        if self.partner:
            at = self.partner[frame][None, :]
            out += [links(P[self.row], at), coords(at, np.array([0]))]
        return out
