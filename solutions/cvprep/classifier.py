"""The small CNN chapter 05 trains on the CPU, and the loop that trains it.

Chapter 05 needs one real model to interpret, attack and calibrate. ``SmallCNN`` has
three conv-BN-ReLU stages with max pooling, global average pooling and a linear head:
a stage's output (``features[i]``) is a natural Grad-CAM layer. ``train_classifier``
is plain mini-batch SGD with momentum, seeded end to end (initial weights, batch order)
so the same call gives the same model on the same machine.

``train_chapter_model`` is the chapter's one recipe (data, model, schedule) so that every
page trains the same network; it trains on one thread, which makes the result the same
on every machine, not only on the same one. ``chapter_model`` returns that network
from a cache after the first call, so that the chapter's pages do not each spend the
training time again.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from dataclasses import dataclass, field

import torch
from torch import nn

from cvprep._torch_validation import check_labels, check_positive, check_tensor
from cvprep._validation import check_choice, check_int
from cvprep.shapes import make_shapes

# The chapter's data: shapes under noise and clutter, hard enough that a few percent of
# test images are misclassified (something to calibrate and explain), small enough to
# train on a laptop's CPU in well under a minute.
SHAPES_NOISE = 0.2
SHAPES_CLUTTER = 3
SPLITS = {"train": (2000, 0), "validation": (1000, 1), "test": (1000, 2)}  # name -> (size, seed)


class SmallCNN(nn.Module):
    """Three conv-BN-ReLU-maxpool stages (channels ``widths``), global average pooling, a linear head.

    Args:
        num_classes: outputs of the head.
        in_channels: channels of the input images.
        widths: output channels of the three stages.

    Shape:
        input (Tensor[N, in_channels, H, W]) -> logits (Tensor[N, num_classes]).
    """

    def __init__(self, num_classes: int = 4, in_channels: int = 1, widths: tuple[int, int, int] = (16, 32, 64)):
        super().__init__()
        num_classes, in_channels = check_int(num_classes, "num_classes", 2), check_int(in_channels, "in_channels", 1)
        stages, previous = [], in_channels
        for i, width in enumerate(widths):
            width = check_int(width, f"widths[{i}]", 1)
            stages.append(nn.Sequential(nn.Conv2d(previous, width, 3, padding=1, bias=False),
                                        nn.BatchNorm2d(width), nn.ReLU(inplace=True), nn.MaxPool2d(2)))
            previous = width
        self.features = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(previous, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.pool(self.features(x)).flatten(1))  # [N, num_classes]


@dataclass
class TrainingLog:
    """Mean training loss per epoch, and the wall time of the whole run."""

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_classifier(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, epochs: int = 5,
                     batch_size: int = 64, lr: float = 0.05, seed: int = 0,
                     loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
                     param_groups: list[dict] | None = None) -> TrainingLog:
    """Train ``model`` in place with SGD (momentum 0.9, weight decay 5e-4) and cross-entropy.

    Parameters with ``requires_grad=False`` are not updated, and a batch-norm layer whose
    parameters are all frozen stays in eval mode, so that its running statistics stay
    frozen too (feature extraction must not re-estimate the backbone's statistics from
    a small new data set).

    Args:
        model: a classifier returning logits [N, C]; left in eval mode afterwards.
        images (Tensor[N, C, H, W]): float inputs.
        labels (Tensor[N]): int class indices.
        epochs, batch_size: passes over the data and images per step (>= 1).
        lr: learning rate (> 0), decayed by a cosine schedule to 0 over the run.
        seed: seeds the batch order (and nothing else: build the model under
            ``torch.manual_seed`` for reproducible initial weights).
        loss_fn: replaces cross-entropy: called as ``loss_fn(logits, batch)`` with the
            batch's logits (Tensor[B, C]) and its indices into ``images`` (Tensor[B]), so
            a loss can look up per-image data (a teacher's logits, sample weights);
            it must return a scalar tensor.
        param_groups: optimiser parameter groups (``[{"params": ..., "lr": ...}, ...]``)
            for per-layer learning rates; a group without ``"lr"`` uses ``lr``. The cosine
            schedule scales every group's rate by the same factor. Default: one group of
            all the model's parameters.

    Returns:
        TrainingLog with the mean loss of each epoch.

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    images = check_tensor(images, "images", "[N, C, H, W]")
    labels = check_labels(labels, "labels", len(images), num_classes=_outputs(model, images[:1]))
    epochs, batch_size = check_int(epochs, "epochs", 1), check_int(batch_size, "batch_size", 1)
    lr, seed = check_positive(lr, "lr"), check_int(seed, "seed", 0)
    if loss_fn is None:
        def loss_fn(logits: torch.Tensor, batch: torch.Tensor) -> torch.Tensor:
            return nn.functional.cross_entropy(logits, labels[batch])
    elif not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable or None, got {type(loss_fn).__name__}")
    groups = list(model.parameters()) if param_groups is None else _check_param_groups(param_groups)
    optimiser = torch.optim.SGD(groups, lr=lr, momentum=0.9, weight_decay=5e-4)
    steps = epochs * -(-len(images) // batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimiser, T_max=steps)
    order, log, start = torch.Generator().manual_seed(seed), TrainingLog(), time.perf_counter()
    _train_mode_except_frozen_batch_norm(model)
    for _ in range(epochs):
        total = 0.0
        for batch in torch.randperm(len(images), generator=order).split(batch_size):
            loss = loss_fn(model(images[batch]), batch)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            schedule.step()
            total += loss.item() * len(batch)
        log.losses.append(total / len(images))
    model.eval()
    log.seconds = time.perf_counter() - start
    return log


def _check_param_groups(param_groups: object) -> list[dict]:
    if not isinstance(param_groups, list) or not all(isinstance(g, dict) and "params" in g for g in param_groups):
        raise TypeError("param_groups must be a list of dicts with a 'params' entry, "
                        f"got {type(param_groups).__name__}")
    return param_groups


def _train_mode_except_frozen_batch_norm(model: nn.Module) -> None:
    model.train()
    for module in model.modules():
        parameters = list(module.parameters(recurse=False))
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and parameters and not any(
                p.requires_grad for p in parameters):
            module.eval()


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """Logits (Tensor[N, C]) of ``model`` in eval mode, computed in batches."""
    images = check_tensor(images, "images", "[N, C, H, W]")
    model.eval()
    return torch.cat([model(chunk) for chunk in images.split(check_int(batch_size, "batch_size", 1))])


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Fraction of ``images`` whose largest logit is at their label."""
    logits = predict_logits(model, images)
    labels = check_labels(labels, "labels", len(images), logits.shape[1])
    return (logits.argmax(1) == labels).float().mean().item()


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then give every submodule its own flag back."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@torch.no_grad()
def _outputs(model: nn.Module, probe: torch.Tensor) -> int:
    with evaluating(model):  # batch norm cannot run in training mode on one image
        return model(probe).shape[1]


def chapter_split(name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the chapter's shapes data as tensors: images [N, 1, 64, 64] and labels [N].

    Args:
        name: "train", "validation" or "test"; each has its own seed, so no image is shared.

    Raises:
        ValueError: an unknown split name.
    """
    size, seed = SPLITS[check_choice(name, "name", tuple(SPLITS))]
    data = make_shapes(size, seed=seed, noise=SHAPES_NOISE, clutter=SHAPES_CLUTTER)
    return torch.from_numpy(data.images), torch.from_numpy(data.labels)


def train_chapter_model(epochs: int = 6, train_size: int | None = None, seed: int = 0) -> tuple[SmallCNN, TrainingLog]:
    """Train the chapter's ``SmallCNN`` on the training split, on one thread.

    One thread makes the float summation order, and so the trained weights, the same on
    every machine; the global torch RNG and thread count are left as they were.

    Args:
        epochs: passes over the training split (>= 1).
        train_size: use only the first ``train_size`` training images (default: all).
        seed: seeds the initial weights and the batch order.

    Returns:
        (model in eval mode, TrainingLog).

    Raises:
        TypeError, ValueError: a bad argument, named in the message.
    """
    epochs, seed = check_int(epochs, "epochs", 1), check_int(seed, "seed", 0)
    images, labels = chapter_split("train")
    if train_size is not None:
        train_size = check_int(train_size, "train_size", 1)
        images, labels = images[:train_size], labels[:train_size]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = SmallCNN()
        log = train_classifier(model, images, labels, epochs=epochs, seed=seed)
    finally:
        torch.set_num_threads(threads)
    return model, log


def _recipe_hash() -> str:
    """Changes whenever the code that determines the chapter model's weights could change."""
    from cvprep import shapes

    recipe = inspect.getsource(inspect.getmodule(SmallCNN)) + inspect.getsource(shapes) + torch.__version__
    return hashlib.sha256(recipe.encode()).hexdigest()[:16]


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` (POSIX; elsewhere no lock, only a wasted retraining)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when the file closes
        yield


def chapter_model(cache_dir: str | os.PathLike | None = None, *,
                  with_log: bool = False) -> SmallCNN | tuple[SmallCNN, TrainingLog]:
    """The model ``train_chapter_model()`` trains, trained once and then loaded from a cache.

    The weights are the same either way (training runs on one thread); the cache only
    saves time. The file name holds a hash of this module's and ``cvprep.shapes``'
    source and of the torch version, so a change to the recipe retrains. A lock file
    makes concurrent callers (the book's pages execute two at a time) wait for one
    training run instead of each starting their own.

    Args:
        cache_dir: where the weights are kept; default ``$CVPREP_CACHE``, else
            ``~/.cache/cvprep``.
        with_log: also return the TrainingLog of the run that trained the cached weights
            (its ``seconds`` were measured then, on the machine that trained them).

    Returns:
        SmallCNN in eval mode, or ``(model, log)`` with ``with_log``.
    """
    if cache_dir is None:
        cache_dir = os.environ.get("CVPREP_CACHE") or Path.home() / ".cache" / "cvprep"
    path = Path(cache_dir) / f"chapter-model-{_recipe_hash()}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(path.with_suffix(".lock")):
        if not path.exists():
            trained, log = train_chapter_model()
            saved = {"state_dict": trained.state_dict(), "losses": log.losses, "seconds": log.seconds}
            # write then rename: a reader without the lock never sees a half-written file
            with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".tmp", delete=False) as handle:
                torch.save(saved, handle)
            os.replace(handle.name, path)
        saved = torch.load(path, weights_only=True)
    model = SmallCNN()
    model.load_state_dict(saved["state_dict"])
    model.eval()
    return (model, TrainingLog(list(saved["losses"]), float(saved["seconds"]))) if with_log else model
