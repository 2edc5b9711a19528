"""The convolution-arithmetic animation: frames, taps and printed outputs against torch."""

import ipywidgets
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from cvprep.conv import conv_output_size
from cvprep.widgets import conv_arithmetic as widget

CONFIGS = [
    dict(input_size=5, kernel_size=3, stride=1, padding=0, dilation=1),
    dict(input_size=5, kernel_size=3, stride=2, padding=1, dilation=1),
    dict(input_size=7, kernel_size=3, stride=1, padding=0, dilation=2),
    dict(input_size=(4, 6), kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=1),
]


def test_tap_positions_hand_worked():
    # output (1, 0) of a 2x2 kernel with stride 2: rows 2-3, columns 0-1
    assert widget.tap_positions(1, 0, (2, 2), (2, 2), (1, 1)) == [(2, 0), (2, 1), (3, 0), (3, 1)]
    # dilation 2 spreads a 1x3 kernel over columns 0, 2, 4
    assert widget.tap_positions(0, 0, (1, 3), (1, 1), (1, 2)) == [(0, 0), (0, 2), (0, 4)]


@pytest.mark.parametrize("config", CONFIGS)
def test_one_frame_per_output_position(config):
    fig = widget.figure(**config)
    pair = lambda v: v if isinstance(v, tuple) else (v, v)  # noqa: E731
    out_h, out_w = (conv_output_size(*(pair(config[k])[a] for k in ("input_size", "kernel_size", "stride", "padding", "dilation")))
                    for a in (0, 1))
    assert len(fig.frames) == out_h * out_w == len(fig.layout.sliders[0].steps)
    kh, kw = pair(config["kernel_size"])
    for k, frame in enumerate(fig.frames):
        taps = np.argwhere(np.array(frame.data[0].z) == widget.TAP)
        assert len(taps) == kh * kw
        i, j = divmod(k, out_w)
        expected = widget.tap_positions(i, j, (kh, kw), pair(config["stride"]), pair(config["dilation"]))
        assert sorted(map(tuple, taps.tolist())) == sorted(expected)
        assert np.count_nonzero(np.array(frame.data[1].z) == widget.CURRENT) == 1


@pytest.mark.parametrize("config", CONFIGS)
def test_printed_outputs_match_torch(config):
    fig = widget.figure(**config)
    image, kernel = widget.example(config["input_size"], config["kernel_size"])
    expected = F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None],
                        stride=config["stride"], padding=config["padding"], dilation=config["dilation"])[0, 0]
    last = np.array(fig.frames[-1].data[1].text)
    assert last.astype(float).tolist() == expected.numpy().tolist()


def test_padding_cells_are_marked():
    fig = widget.figure(input_size=3, kernel_size=3, padding=1)
    inside = np.zeros((5, 5), bool)
    inside[1:4, 1:4] = True  # the 3x3 image inside a one-pixel ring of padding
    for frame in fig.frames:
        z = np.array(frame.data[0].z)
        assert z.shape == (5, 5)
        not_tap = z != widget.TAP
        assert np.array_equal((z == widget.PADDING)[not_tap], ~inside[not_tap])


def test_kernel_larger_than_padded_input_is_refused():
    with pytest.raises(ValueError, match="the output would be empty"):
        widget.figure(input_size=2, kernel_size=3)


def test_explorer_redraws_on_change():
    box = widget.explorer()
    assert isinstance(box, ipywidgets.VBox)
    sliders = box.children[0].children + box.children[1].children
    sliders[1].value = 5  # kernel 5 on a 5x5 input: one output
    sliders[0].value = 1  # now empty: the explorer reports it instead of raising
