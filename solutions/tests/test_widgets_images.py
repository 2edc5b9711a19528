"""The image-row figure used on the book's pages."""

import numpy as np
import plotly.graph_objects as go
import pytest

from cvprep.widgets.images import image_row


def test_image_row_kinds_and_titles():
    gray, signed, rgb = np.zeros((4, 5)), np.array([[-2.0, 1.0]]), np.ones((3, 3, 3))
    fig = image_row({"gray": gray, "signed": signed, "rgb": rgb}, diverging=[False, True, False])
    assert [a.text for a in fig.layout.annotations] == ["gray", "signed", "rgb"]
    assert isinstance(fig.data[0], go.Heatmap) and isinstance(fig.data[2], go.Image)
    assert (fig.data[1].zmin, fig.data[1].zmax) == (-2.0, 2.0)  # symmetric around zero
    assert np.array(fig.data[2].z).max() == 255  # floats in [0, 1] become bytes


@pytest.mark.parametrize(
    "images, diverging, pattern",
    [({}, None, "at least one image"), ({"a": np.zeros((2, 2, 2))}, None, r"must have shape \[H, W\] or \[H, W, 3\]"),
     ({"a": np.zeros((2, 2))}, [True, False], "one entry per image")],
)
def test_image_row_rejects_bad_input(images, diverging, pattern):
    with pytest.raises(ValueError, match=pattern):
        image_row(images, diverging)
