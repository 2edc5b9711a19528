"""cvprep.shapes: the generated data set is seeded, balanced, correctly boxed and varied."""

import math

import numpy as np
import pytest

from cvprep.shapes import CLASSES, _mask, make_shapes


def test_same_seed_same_data_other_seed_other_data():
    first, again, other = make_shapes(40, seed=3), make_shapes(40, seed=3), make_shapes(40, seed=4)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first.images, other.images)


def test_layout_dtypes_and_range():
    data = make_shapes(10, size=32)
    assert data.images.shape == (10, 1, 32, 32) and data.images.dtype == np.float32
    assert data.labels.shape == (10,) and data.labels.dtype == np.int64
    assert data.boxes.shape == (10, 4) and data.boxes.dtype == np.float32
    assert data.images.min() >= 0.0 and data.images.max() <= 1.0


def test_classes_are_balanced():
    counts = np.bincount(make_shapes(102).labels, minlength=len(CLASSES))
    assert counts.max() - counts.min() <= 1  # 102 = 4 * 25 + 2


def test_boxes_are_where_the_bright_pixels_are():
    # without noise the background is exactly 0.2 and every shape pixel is in [0.6, 1.0]
    data = make_shapes(30, size=48, noise=0.0)
    for image, box in zip(data.images[:, 0], data.boxes):
        rows, cols = np.nonzero(image > 0.4)
        np.testing.assert_array_equal(box, [cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        assert box[0] >= 0 and box[1] >= 0 and box[2] <= 48 and box[3] <= 48


def test_objects_move_around_the_image():
    boxes = make_shapes(200, size=64).boxes
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    assert centres.std(axis=0).min() > 64 / 8  # spread over the image, not stuck in the middle


@pytest.mark.parametrize("name, area", [
    ("circle", math.pi * 60**2),
    ("square", (2 * 0.85 * 60) ** 2),
    ("triangle", 60 * 2 * 60),  # base 2r, height 2r: half of 2r * 2r
    ("cross", 2 * (2 * 0.3 * 60) * (2 * 60) - (2 * 0.3 * 60) ** 2),  # two bars minus their overlap
])
def test_shape_areas_match_their_geometry(name, area):
    pixels = _mask(CLASSES.index(name), 200, 100.0, 100.0, 60.0).sum()
    assert pixels == pytest.approx(area, rel=0.02)


def test_brightness_does_not_give_the_class_away():
    data = make_shapes(400, size=48, noise=0.0)
    means = [data.images[data.labels == c][data.images[data.labels == c] > 0.4].mean() for c in range(len(CLASSES))]
    assert max(means) - min(means) < 0.05


def test_clutter_adds_strokes_under_the_same_shapes():
    plain, cluttered = make_shapes(60, size=48, noise=0.0), make_shapes(60, size=48, noise=0.0, clutter=3)
    np.testing.assert_array_equal(plain.labels, cluttered.labels)
    np.testing.assert_array_equal(plain.boxes, cluttered.boxes)
    shape = plain.images > 0.4  # without noise: exactly the shape's pixels
    # the shape is drawn last, so clutter never changes it ...
    np.testing.assert_array_equal(plain.images[shape], cluttered.images[shape])
    # ... and the strokes are as bright as shapes, outside them
    bright_elsewhere = ((cluttered.images > 0.4) & ~shape).sum(axis=(1, 2, 3))
    assert (bright_elsewhere > 0).mean() > 0.9  # a stroke can hide under the shape


@pytest.mark.parametrize("kwargs, error, name", [
    ({"n": 0}, ValueError, "n"),
    ({"n": 2.0}, TypeError, "n"),
    ({"n": 4, "size": 8}, ValueError, "size"),
    ({"n": 4, "seed": -1}, ValueError, "seed"),
    ({"n": 4, "noise": -0.1}, ValueError, "noise"),
    ({"n": 4, "noise": "0.1"}, TypeError, "noise"),
    ({"n": 4, "noise": float("nan")}, ValueError, "noise"),
    ({"n": 4, "clutter": -1}, ValueError, "clutter"),
    ({"n": 4, "clutter": 1.0}, TypeError, "clutter"),
])
def test_bad_arguments_are_named(kwargs, error, name):
    with pytest.raises(error, match=rf"^{name} must"):
        make_shapes(**kwargs)
