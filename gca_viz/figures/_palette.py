"""Discrete colours that stay apart on a projector.

Plotly's default qualitative colours include pastels (cyan, light green, pink, yellow) that
wash out on a white page or a light sphere when projected. :data:`LEGIBLE` keeps every colour
at a contrast ratio of at least 3:1 against white (WCAG's bar for graphical marks) and every
pair at least 20 apart in CIELAB (ΔE*ab), and clear of the pinned sample's near-black and the
dimmed points' grey (tests/test_figures_geometry.py checks all three).
"""

from __future__ import annotations

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
