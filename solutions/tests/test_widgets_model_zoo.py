"""Accuracy-against-cost chart: the cost cvprep computes is the cost torchvision publishes
for its weights (an independent count), and the chart shows exactly those rows."""

import pytest
import torchvision

from cvprep.widgets import model_zoo as widget

SMALL = (("ResNet", "resnet18"), ("MobileNet", "mobilenet_v2"), ("EfficientNet", "efficientnet_b1"))


@pytest.fixture(scope="module")
def rows():
    return widget.model_costs(SMALL)


def test_costs_match_what_torchvision_publishes(rows):
    for row in rows:
        meta = torchvision.models.get_model_weights(row.name)[row.weights].meta
        assert row.params == meta["num_params"]
        assert round(row.macs / 1e9, 3) == pytest.approx(meta["_ops"])  # torchvision's "GFLOPS" are MACs
        assert row.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert [r.resolution for r in rows] == [224, 224, 240]  # B1 is evaluated at 240 px


def test_the_figure_plots_every_row_and_switches_to_parameters(rows):
    fig = widget.figure(rows)
    assert [t.name for t in fig.data] == ["ResNet", "MobileNet", "EfficientNet"]
    assert [x for t in fig.data for x in t.x] == [r.macs / 1e9 for r in rows]
    assert [y for t in fig.data for y in t.y] == [r.top1 for r in rows]
    macs_button, params_button = fig.layout.updatemenus[0].buttons
    assert [x for xs in params_button.args[0]["x"] for x in xs] == [r.params / 1e6 for r in rows]
    assert [x for xs in macs_button.args[0]["x"] for x in xs] == [r.macs / 1e9 for r in rows]


def test_bad_requests_are_clear_errors():
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        widget.model_costs((("?", "resnet5000"),))
    with pytest.raises(ValueError, match="weights must be DEFAULT or one of"):
        widget.model_costs((("ResNet", "resnet18"),), weights="IMAGENET1K_V9")
    with pytest.raises(ValueError, match="rows must contain at least one model"):
        widget.figure([])


def test_explorer_redraws_for_the_chosen_families_and_weights(monkeypatch):
    asked = []

    def fake_costs(models, weights):  # the wiring, without profiling every network
        asked.append(([name for _, name in models], weights))
        return [widget.ModelCost(f, n, 224, 1, 1, 50.0, weights) for f, n in models]

    monkeypatch.setattr(widget, "model_costs", fake_costs)
    box = widget.explorer()
    families, weights = box.children[0].children
    families.value = ("MobileNet",)
    weights.value = "DEFAULT"
    assert asked[-2:] == [(["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"], "IMAGENET1K_V1"),
                          (["mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"], "DEFAULT")]
    families.value = ()
    assert len(asked) == 3  # nothing to draw: a message instead of an empty chart
