"""Look and controls shared by the figure builders.

Figures carry their own white background so they stay readable when the site is in
dark mode, and use a colour-blind-safe palette (Tableau 10).
"""

from __future__ import annotations

from collections.abc import Sequence

import plotly.graph_objects as go

GREY = "#bab0ac"
LIGHT = "#eeeeee"
BLUE = "#4e79a7"
ORANGE = "#f28e2b"
RED = "#e15759"
GREEN = "#59a14f"
TEAL = "#76b7b2"
PURPLE = "#b07aa1"
FONT = dict(family="Helvetica, Arial, sans-serif", size=13, color="#222222")


def base_layout(fig: go.Figure, title: str, height: int) -> None:
    """White card, readable font, room for a slider underneath."""
    fig.update_layout(
        title=dict(text=title, x=0.01, xanchor="left"),
        height=height,
        template="plotly_white",
        paper_bgcolor="white",
        plot_bgcolor="white",
        font=FONT,
        margin=dict(l=20, r=20, t=60, b=20),
        showlegend=False,
    )


def categories(colors: Sequence[str]) -> list[list]:
    """A stepped colour scale that paints integer ``z = 0 .. len(colors) - 1`` one colour each."""
    scale = []
    for i, color in enumerate(colors):
        scale += [[i / len(colors), color], [(i + 1) / len(colors), color]]
    return scale


def slider(labels: Sequence[str], steps_args: Sequence[list], method: str, prefix: str, active: int = 0) -> dict:
    """A plotly slider whose step ``i`` calls ``method`` with ``steps_args[i]`` (no Python needed)."""
    steps = [dict(label=label, method=method, args=args) for label, args in zip(labels, steps_args)]
    return dict(active=active, steps=steps, currentvalue=dict(prefix=prefix), pad=dict(t=40), x=0.05, len=0.9)


def animation_controls(frame_names: Sequence[str], prefix: str, duration_ms: int = 700) -> tuple[dict, dict]:
    """A play/pause menu and a slider that step through named frames."""
    still = dict(mode="immediate", frame=dict(duration=0, redraw=True), transition=dict(duration=0))
    steps_args = [[[name], still] for name in frame_names]
    play = dict(
        type="buttons",
        direction="left",
        x=0.05,
        y=0,
        xanchor="right",
        yanchor="top",
        pad=dict(t=50, r=10),
        buttons=[
            dict(label="Play", method="animate",
                 args=[None, dict(frame=dict(duration=duration_ms, redraw=True), fromcurrent=True, transition=dict(duration=0))]),
            dict(label="Pause", method="animate", args=[[None], still]),
        ],
    )
    return play, slider(frame_names, steps_args, "animate", prefix)
