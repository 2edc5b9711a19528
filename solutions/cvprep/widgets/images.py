"""A row of images (grayscale, RGB or signed maps) side by side, for the book's pages."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cvprep.widgets import _style


def _trace(image: np.ndarray, diverging: bool) -> go.BaseTraceType:
    if image.ndim == 3:  # [H, W, 3] RGB, floats in [0, 1] or uint8
        rgb = image if image.dtype == np.uint8 else np.clip(image * 255, 0, 255).astype(np.uint8)
        return go.Image(z=rgb, hoverinfo="skip")
    if diverging:  # signed responses: white at zero, blue negative, red positive
        limit = float(np.abs(image).max()) or 1.0
        return go.Heatmap(z=image, colorscale="RdBu_r", zmin=-limit, zmax=limit, showscale=False, hoverinfo="skip")
    return go.Heatmap(z=image, colorscale="gray", showscale=False, hoverinfo="skip")


def image_row(images: Mapping[str, np.ndarray], diverging: Sequence[bool] | None = None, height: int = 320) -> go.Figure:
    """Show images side by side with their titles.

    Args:
        images: title -> image, each ``ndarray[H, W]`` (grayscale or signed map) or
            ``ndarray[H, W, 3]`` (RGB).
        diverging: per image, whether it is a signed map to show with a diverging
            colour scale centred on zero (default: none are).
        height: figure height in pixels.

    Raises:
        ValueError: no images, an image that is neither 2-D nor ``[H, W, 3]``, or
            ``diverging`` of the wrong length.
    """
    if not images:
        raise ValueError("images must contain at least one image")
    diverging = [False] * len(images) if diverging is None else list(diverging)
    if len(diverging) != len(images):
        raise ValueError(f"diverging must have one entry per image ({len(images)}), got {len(diverging)}")
    fig = make_subplots(rows=1, cols=len(images), subplot_titles=list(images), horizontal_spacing=0.03)
    for col, ((title, image), signed) in enumerate(zip(images.items(), diverging), start=1):
        image = np.asarray(image)
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)):
            raise ValueError(f"image {title!r} must have shape [H, W] or [H, W, 3], got {image.shape}")
        fig.add_trace(_trace(image, signed), row=1, col=col)
    _style.base_layout(fig, "", height)
    fig.update_layout(margin=dict(t=40, b=10))
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False, constrain="domain")
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False, autorange="reversed")
    for col in range(1, len(images) + 1):
        fig.update_yaxes(scaleanchor=f"x{col if col > 1 else ''}", row=1, col=col)
    return fig
