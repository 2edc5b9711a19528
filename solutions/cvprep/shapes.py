"""A generated image-classification data set: one shape per image, anywhere in it.

Chapter 05 trains a small CNN on the CPU and then asks where it looks (Grad-CAM), how it
breaks (adversarial examples) and how far to trust it (calibration). That needs data
that ships with the code, is seeded, and whose object position varies, so that a heat
map that follows the object means something. ``make_shapes`` draws a filled shape of a
random class, size and position on a noisy background, in NumPy.

The classes differ in outline, not in brightness: every shape is drawn with the same
intensity range, so a network has to look at the shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cvprep._validation import check_int

CLASSES = ("circle", "square", "triangle", "cross")


class Shapes(NamedTuple):
    """A generated data set.

    Attributes:
        images (ndarray[N, 1, S, S]): float32 in [0, 1].
        labels (ndarray[N]): int64 indices into ``CLASSES``.
        boxes (ndarray[N, 4]): float32 (x1, y1, x2, y2) pixel box of each shape, x2 and
            y2 exclusive (the smallest box holding every pixel the shape covers).
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray


def _mask(label: int, size: int, cx: float, cy: float, radius: float) -> np.ndarray:
    """Boolean [size, size] mask of one shape centred at (cx, cy) with half-width ``radius``."""
    y, x = np.mgrid[0:size, 0:size] + 0.5  # pixel centres
    dx, dy = x - cx, y - cy
    name = CLASSES[label]
    if name == "circle":
        return dx**2 + dy**2 <= radius**2
    if name == "square":
        side = radius * 0.85  # about the circle's area, so size alone does not give the class away
        return (np.abs(dx) <= side) & (np.abs(dy) <= side)
    if name == "triangle":  # apex up, base at cy + radius
        top, bottom = cy - radius, cy + radius
        half_width = radius * (y - top) / (bottom - top)
        return (y >= top) & (y <= bottom) & (np.abs(dx) <= half_width)
    arm = radius * 0.3  # cross: two bars of width 2 * arm
    return ((np.abs(dx) <= arm) & (np.abs(dy) <= radius)) | ((np.abs(dy) <= arm) & (np.abs(dx) <= radius))


def _box(mask: np.ndarray) -> np.ndarray:
    rows, cols = np.nonzero(mask)
    return np.array([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1], dtype=np.float32)


def _line(size: int, rng: np.random.Generator) -> np.ndarray:
    """Boolean [size, size] mask of a straight stroke about 2 px wide, of random place, angle and length."""
    y, x = np.mgrid[0:size, 0:size] + 0.5
    x0, y0 = rng.uniform(0, size, size=2)
    angle, length = rng.uniform(0, np.pi), rng.uniform(size / 8, size / 3)
    along = (x - x0) * np.cos(angle) + (y - y0) * np.sin(angle)
    across = -(x - x0) * np.sin(angle) + (y - y0) * np.cos(angle)
    return (np.abs(along) <= length / 2) & (np.abs(across) <= 1.0)


def make_shapes(n: int, size: int = 64, seed: int = 0, noise: float = 0.1, clutter: int = 0) -> Shapes:
    """Generate ``n`` images of one filled shape each, classes balanced (round robin, then shuffled).

    Each image: a background of Gaussian noise around 0.2, and one shape with intensity
    drawn from [0.6, 1.0], half-width from [size/8, size/4], centre anywhere that keeps
    the whole shape inside the image. ``clutter`` straight strokes as bright as the
    shapes are drawn under the shape: edges that belong to no class, so a network cannot
    answer "is there an edge here" and must judge the outline. They come from a second
    generator, so the same seed gives the same shapes, boxes and labels at any clutter.

    Args:
        n: number of images (>= 1).
        size: side of the square images in pixels (>= 16).
        seed: seed of the NumPy generator; the same seed gives the same data set.
        noise: standard deviation of the background and shape noise (>= 0).
        clutter: distracting strokes per image (>= 0).

    Returns:
        Shapes(images (ndarray[n, 1, size, size]), labels (ndarray[n]), boxes (ndarray[n, 4])).

    Raises:
        TypeError: ``n``, ``size``, ``seed`` or ``clutter`` is not an int, or ``noise``
            not a real number.
        ValueError: ``n < 1``, ``size < 16``, ``seed < 0``, ``clutter < 0`` or ``noise``
            negative or not finite.
    """
    n, size, seed = check_int(n, "n", 1), check_int(size, "size", 16), check_int(seed, "seed", 0)
    clutter = check_int(clutter, "clutter", 0)
    if isinstance(noise, bool) or not isinstance(noise, (int, float)):
        raise TypeError(f"noise must be a real number, got {type(noise).__name__} {noise!r}")
    if not 0.0 <= noise < float("inf"):
        raise ValueError(f"noise must be finite and >= 0, got {noise}")
    rng, clutter_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    labels = rng.permutation(np.arange(n) % len(CLASSES)).astype(np.int64)
    images = np.empty((n, 1, size, size), dtype=np.float32)
    boxes = np.empty((n, 4), dtype=np.float32)
    for i, label in enumerate(labels):
        radius = rng.uniform(size / 8, size / 4)
        cx, cy = rng.uniform(radius + 1, size - radius - 1, size=2)
        mask = _mask(int(label), size, cx, cy, radius)
        image = 0.2 + noise * rng.standard_normal((size, size))
        for _ in range(clutter):
            image[_line(size, clutter_rng)] = clutter_rng.uniform(0.6, 1.0)
        image[mask] = rng.uniform(0.6, 1.0) + noise * rng.standard_normal(int(mask.sum()))
        images[i, 0] = np.clip(image, 0.0, 1.0)
        boxes[i] = _box(mask)
    return Shapes(images, labels, boxes)
