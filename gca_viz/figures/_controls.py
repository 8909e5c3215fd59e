"""The play controls the animated figures share: the ▶ / ❚❚ buttons, the frame slider and
the pace of a play (the half-step player's and the Geometry explorer's; plotly layout
dictionaries, nothing here imports streamlit)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

BUTTON_ROW = 34
"""Height (px) of the ▶ / ❚❚ buttons' own row above the frame slider
(:func:`player_controls`): a figure with the controls is this much taller."""

PLAY_SECONDS = 5.0
"""How long playing all the half-steps takes by default (:func:`play_frame_ms`)."""
FRAME_MS_RANGE = (50, 400)
"""The shortest and longest pause between frames: 20 and 2.5 frames per second."""


def play_frame_ms(n_frames: int) -> int:
    """The pause between frames when the ▶ button plays ``n_frames``: the whole play takes
    :data:`PLAY_SECONDS`, within :data:`FRAME_MS_RANGE`. At ``T = 10`` (21 frames) each
    half-step shows for 250 ms, long enough to see a row step and then a column step (at
    25 ms the play was over in half a second, faster than the heatmap could be drawn);
    ``T = 50`` (101 frames) plays at 20 frames per second."""
    low, high = FRAME_MS_RANGE
    return int(min(max(1000 * PLAY_SECONDS / max(n_frames - 1, 1), low), high))


def player_controls(
    names: Sequence[str], start: int, frame_ms: int, prefix: str, below: int
) -> dict[str, Any]:
    """Layout of a client-side animation: the ▶ / ❚❚ buttons and a slider over the frames
    ``names`` (``start`` active, ``frame_ms`` per frame when playing, the slider's label
    ``prefix`` + name), ``below`` pixels under the plot area (room for an x axis's ticks and
    title). The buttons sit on their own row and the slider under them spans the whole
    width: side by side (the slider from 22% of the width) they overlapped on a plot under
    660 px wide, as on a 1000 px window with the sidebar open. The caller leaves
    about ``100 +`` :data:`BUTTON_ROW` pixels under ``below`` for them. Shared by
    :func:`half_step_player` and the Geometry explorer."""
    step_args = {
        "mode": "immediate",
        "frame": {"duration": 0, "redraw": True},
        "transition": {"duration": 0},
    }
    play_args = {
        "mode": "immediate",
        "fromcurrent": True,
        "frame": {"duration": int(frame_ms), "redraw": True},
        "transition": {"duration": 0},
    }
    return {
        "updatemenus": [
            {
                "type": "buttons",
                "direction": "left",
                "x": 0.0,
                "y": 0.0,
                "xanchor": "left",
                "yanchor": "top",
                "pad": {"t": below + 6, "r": 10},
                "showactive": False,
                "buttons": [
                    {"label": "▶ Play", "method": "animate", "args": [None, play_args]},
                    {"label": "❚❚ Pause", "method": "animate", "args": [[None], step_args]},
                ],
            }
        ],
        "sliders": [
            {
                "active": start,
                "x": 0.0,
                "len": 1.0,
                "y": 0.0,
                "yanchor": "top",
                "currentvalue": {"prefix": prefix, "xanchor": "right", "font": {"size": 13}},
                "pad": {"t": below + BUTTON_ROW},
                "steps": [
                    {"label": name, "method": "animate", "args": [[name], step_args]}
                    for name in names
                ],
            }
        ],
    }
