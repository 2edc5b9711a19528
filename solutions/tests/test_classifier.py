"""cvprep.classifier: the chapter 05 model, its training loop and its accuracy."""

import pytest
import torch
from torch import nn

from cvprep.classifier import (SmallCNN, accuracy, chapter_split, predict_logits, train_chapter_model,
                               train_classifier)

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny tensors: see conftest.py


def left_or_right(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A problem any CNN solves at once: class 0 has a bright left half, class 1 a bright right half."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 2
    images = 0.1 * torch.rand(n, 1, 16, 16, generator=generator)
    images[labels == 0, :, :, :8] += 0.8
    images[labels == 1, :, :, 8:] += 0.8
    return images, labels


def test_parameter_count_by_hand():
    # convs (no bias): 1*16*9 = 144, 16*32*9 = 4,608, 32*64*9 = 18,432; batch norms 2 * (16 + 32 + 64) = 224;
    # head 64 * 4 + 4 = 260; total 23,668
    assert sum(p.numel() for p in SmallCNN().parameters()) == 144 + 4_608 + 18_432 + 224 + 260


def test_output_shape_and_stages():
    model = SmallCNN(num_classes=5, in_channels=3).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 5)
    assert len(model.features) == 3  # Grad-CAM layers: model.features[i]


def train_small(seed: int = 0) -> tuple[SmallCNN, object]:
    images, labels = left_or_right(64)
    torch.manual_seed(seed)
    model = SmallCNN(num_classes=2, widths=(4, 8, 8))
    return model, train_classifier(model, images, labels, epochs=3, batch_size=16, lr=0.1, seed=seed)


def test_training_learns_and_is_reproducible():
    first, log = train_small()
    again, _ = train_small()
    assert log.losses[-1] < log.losses[0]
    assert not first.training  # left ready for evaluation
    for a, b in zip(first.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    images, labels = left_or_right(40, seed=1)
    assert accuracy(first, images, labels) == 1.0


def test_a_custom_loss_sees_every_image_once_per_epoch_and_replaces_cross_entropy():
    images, labels = left_or_right(40)
    seen = []

    def plain_cross_entropy(logits, batch):  # the default, written out: must train the same model
        seen.append(batch.clone())
        return nn.functional.cross_entropy(logits, labels[batch])

    models = []
    for loss_fn in (None, plain_cross_entropy):
        torch.manual_seed(0)
        models.append(SmallCNN(num_classes=2, widths=(4, 8, 8)))
        train_classifier(models[-1], images, labels, epochs=2, batch_size=16, loss_fn=loss_fn)
    for a, b in zip(*(m.state_dict().values() for m in models)):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    per_epoch = [torch.cat(seen[:3]), torch.cat(seen[3:])]  # 40 images in batches of 16: 3 steps an epoch
    for indices in per_epoch:
        assert sorted(indices.tolist()) == list(range(40))
    with pytest.raises(TypeError, match="^loss_fn must be callable"):
        train_classifier(models[0], images, labels, loss_fn="cross_entropy")


def test_frozen_layers_keep_their_weights_and_batch_norm_statistics():
    images, labels = left_or_right(32)
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, widths=(4, 8, 8))
    model.features.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head_before = model.head.weight.clone()
    train_classifier(model, images, labels, epochs=2, batch_size=8)
    for name, value in model.state_dict().items():
        if name.startswith("features."):  # weights, running means and variances, batch counters
            torch.testing.assert_close(value, before[name], rtol=0, atol=0, msg=name)
    assert not torch.equal(model.head.weight, head_before)


def test_param_groups_set_per_layer_learning_rates():
    images, labels = left_or_right(32)
    torch.manual_seed(0)
    model = SmallCNN(num_classes=2, widths=(4, 8, 8))
    start = model.features[0][0].weight.clone()
    # SGD scales every update (gradient, momentum and weight decay) by the group's rate: 0 freezes the first stage
    groups = [{"params": model.features[0].parameters(), "lr": 0.0},
              {"params": [p for name, p in model.named_parameters() if not name.startswith("features.0.")]}]
    train_classifier(model, images, labels, epochs=1, batch_size=8, param_groups=groups)
    torch.testing.assert_close(model.features[0][0].weight, start, rtol=0, atol=0)
    with pytest.raises(TypeError, match="^param_groups must"):
        train_classifier(model, images, labels, param_groups=[model.parameters()])


class FixedLogits(nn.Module):
    """Returns the logits it was given, one row per input image, whatever the image."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits[: len(x)]


def test_accuracy_counts_argmax_hits():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [5.0, -1.0], [0.2, 0.1]])
    labels = torch.tensor([0, 1, 1, 1])  # hits: rows 0 and 1 -> 2 / 4
    model = FixedLogits(logits)
    assert accuracy(model, torch.zeros(4, 1, 2, 2), labels) == 0.5
    torch.testing.assert_close(predict_logits(model, torch.zeros(4, 1, 2, 2), batch_size=4), logits)


@pytest.mark.parametrize("kwargs, error, name", [
    ({"epochs": 0}, ValueError, "epochs"),
    ({"batch_size": 1.5}, TypeError, "batch_size"),
    ({"lr": 0.0}, ValueError, "lr"),
    ({"seed": -2}, ValueError, "seed"),
])
def test_bad_training_arguments_are_named(kwargs, error, name):
    images, labels = left_or_right(8)
    with pytest.raises(error, match=rf"^{name} must"):
        train_classifier(SmallCNN(num_classes=2), images, labels, **kwargs)


def test_bad_data_is_named():
    images, labels = left_or_right(8)
    with pytest.raises(TypeError, match="^images must"):
        train_classifier(SmallCNN(num_classes=2), images.numpy(), labels)
    with pytest.raises(ValueError, match="^labels must"):
        train_classifier(SmallCNN(num_classes=2), images, labels + 5)
    with pytest.raises(ValueError, match="^num_classes must"):
        SmallCNN(num_classes=1)


def test_chapter_splits_share_no_image():
    train, validation, test = (chapter_split(name)[0] for name in ("train", "validation", "test"))
    assert (len(train), len(validation), len(test)) == (2000, 1000, 1000)
    flat = torch.cat([train, validation, test]).flatten(1)
    assert len(torch.unique(flat, dim=0)) == len(flat)  # the noise alone makes equal images impossible


def test_chapter_model_is_reproducible_and_leaves_global_state_alone():
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    threads = torch.get_num_threads()
    first, log = train_chapter_model(epochs=1, train_size=128)
    assert torch.get_num_threads() == threads
    torch.testing.assert_close(torch.rand(3), expected_next)  # the global generator did not move
    second, _ = train_chapter_model(epochs=1, train_size=128)
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert len(log.losses) == 1 and not first.training


@pytest.fixture
def quick_recipe(monkeypatch):
    """chapter_model's training replaced by the real recipe on 64 images; the calls are counted."""
    import cvprep.classifier as classifier

    calls = []

    def recipe():
        calls.append(1)
        return train_chapter_model(epochs=1, train_size=64)

    monkeypatch.setattr(classifier, "train_chapter_model", recipe)
    return calls


def test_chapter_model_trains_once_then_loads_the_same_weights(tmp_path, monkeypatch, quick_recipe):
    import cvprep.classifier as classifier

    first, log = classifier.chapter_model(tmp_path, with_log=True)
    second, again = classifier.chapter_model(tmp_path, with_log=True)
    assert len(quick_recipe) == 1 and not second.training and isinstance(classifier.chapter_model(tmp_path), SmallCNN)
    assert again.losses == log.losses and again.seconds == log.seconds and len(log.losses) == 1
    [saved] = tmp_path.glob("chapter-model-*.pt")
    assert not list(tmp_path.glob("*.tmp"))
    for a, b in zip(first.state_dict().values(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    monkeypatch.setattr(classifier, "_recipe_hash", lambda: "changed")
    classifier.chapter_model(tmp_path)  # another recipe: trains again, beside the old file
    assert len(quick_recipe) == 2 and len(list(tmp_path.glob("chapter-model-*.pt"))) == 2


def test_concurrent_callers_share_one_training_run(tmp_path, quick_recipe):
    from concurrent.futures import ThreadPoolExecutor

    import cvprep.classifier as classifier

    with ThreadPoolExecutor(3) as pool:
        models = list(pool.map(lambda _: classifier.chapter_model(tmp_path), range(3)))
    assert len(quick_recipe) == 1  # the lock made the other two wait, then load
    for model in models[1:]:
        for a, b in zip(models[0].state_dict().values(), model.state_dict().values()):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_bad_chapter_arguments_are_named():
    with pytest.raises(ValueError, match="^name must"):
        chapter_split("dev")
    with pytest.raises(ValueError, match="^train_size must"):
        train_chapter_model(train_size=0)
