"""Discrete colours that stay apart on a projector.

Plotly's default qualitative colours include pastels (cyan, light green, pink, yellow) that
wash out on a white page or a light sphere when projected. :data:`LEGIBLE` keeps every colour
at a contrast ratio of at least 3:1 against white (WCAG's bar for graphical marks) and every
pair at least 20 apart in CIELAB (ΔE*ab), and clear of the pinned sample's near-black and the
dimmed points' grey (tests/test_figures_geometry.py checks all three).
"""

from __future__ import annotations

from collections.abc import Sequence

LEGIBLE: tuple[str, ...] = (
    "#1f5fbf",  # blue
    "#d62728",  # red
    "#1a7f37",  # green
    "#7b3fbf",  # purple
    "#c45a00",  # orange
    "#0e7c86",  # teal
    "#c2185b",  # magenta
    "#b8860b",  # gold
    "#8c564b",  # brown
    "#7a7a00",  # olive
)
"""Ten colours for classes 0-9 and for runs, in that order."""


METHOD_COLORS: dict[str, str] = {
    "ince": "#2f6fde",  # (gca_viz.figures.plans.COLORS: "ince")
    "gca_ince": "#1b9e77",  # ("gca")
    "gca_uot": "#c2410c",  # ("unbalanced")
}
"""The colours the Story and Plan lab give INCE, GCA-INCE and GCA-UOT, which runs of those
methods keep on the training charts (:func:`run_colors`)."""


OTHER_RUNS: tuple[str, ...] = ("#c2185b", "#b8860b", "#8c564b", "#5b21b6", "#4d7c0f")
"""The colours of runs that do not take their method's (:func:`run_colors`): magenta, gold,
brown, violet and moss. With :data:`METHOD_COLORS` they make eight colours at least 40
ΔE*ab apart (LEGIBLE's teal and red, 33 and 18 from GCA-INCE's green and GCA-UOT's orange,
read as the same run on the alignment-uniformity plane), each 3:1 on white."""


def run_colors(methods: Sequence[str | None]) -> list[str]:
    """A colour per run, given each run's method: the first run of a method in
    :data:`METHOD_COLORS` takes that method's colour, so INCE is blue and GCA-INCE green on
    every page; the others take :data:`OTHER_RUNS` in turn (cycled past its end)."""
    taken = set()
    out: list[str | None] = []
    for method in methods:
        color = METHOD_COLORS.get(method or "")
        out.append(color if color not in taken else None)
        taken.add(color)
    free = iter(OTHER_RUNS * (len(out) // len(OTHER_RUNS) + 1))
    return [c if c is not None else next(free) for c in out]


def run_palette(runs: Sequence[tuple[int, str | None]]) -> dict[int, str]:
    """``{run id: colour}`` over ``(id, method)`` of every run of a store: :func:`run_colors`
    in the order of the ids, so a run keeps its colour on every page and whichever runs a
    chart shows (a page that coloured the runs it showed, in its own order, gave the same
    run green on Train and red on Geometry's plane)."""
    ordered = sorted(runs, key=lambda r: r[0])
    colors = run_colors([method for _, method in ordered])
    return {run_id: color for (run_id, _), color in zip(ordered, colors, strict=True)}
