"""cvprep's Grad-CAM against grad-cam's GradCAM on the chapter's model: same maps, as fast? (A benchmark, not a test.)

The model is chapter 05's ``SmallCNN``, trained by ``cvprep.classifier.train_chapter_model``
(its wall time and its validation and test accuracy are printed, and whether it meets
the goal of training in under 60 s), or loaded from a saved state dict. The first N test
images are explained at each of the three stages ``model.features[0..2]`` (32, 16 and
8 px maps for a 64 px input), once for the predicted class and once for the true label,
by ``cvprep.interpret.grad_cam`` and by ``pytorch_grad_cam.GradCAM`` with
``ClassifierOutputTarget`` targets.

Both compute the same raw CAM, ``ReLU(sum_k alpha_k A_k)`` with ``alpha_k`` the spatial
mean of ``dy_c / dA_k``, at the layer's resolution. They then differ in how they turn it
into a heat map (read from the package's ``base_cam.py`` and ``utils/image.py``, grad-cam 1.5.7):

* cvprep upsamples with ``F.interpolate(mode="bilinear", align_corners=False)`` and
  divides by the maximum, so the map's minimum is whatever the upsampled CAM's
  minimum is (0 only where the CAM was zero over a whole interpolation neighbourhood).
* the package min-max scales the low-resolution CAM (``(x - min) / (1e-7 + max)``),
  resizes it with ``cv2.resize`` (INTER_LINEAR), then min-max scales the resized map
  again (``aggregate_multi_layers``). Resizing is linear with weights that sum to one,
  so it commutes with the first scaling and the result is the min-max scaling of the
  upsampled CAM; the first 1e-7 cancels, the second is 1e-7 relative to a peak near 1.
  Every map the package returns therefore spans [0, 1] (unless it is zero everywhere),
  and cvprep's maps only touch 0 when the upsampled CAM does.
* cv2's INTER_LINEAR samples at pixel centres with edge clamping, the same rule as
  bilinear ``align_corners=False``, so upsampling alone agrees to float32 rounding (a
  row of the table checks it on identical CAMs).

So the comparison is made three ways: the raw CAMs (cvprep's through the private
``_activations_and_gradients`` and ``_cam`` that ``grad_cam`` itself calls, the package's
through its own ``get_cam_image`` on the activations and gradients its hooks recorded),
the final maps as returned (they differ wherever the upsampled CAM's minimum is above
zero: a convention, not an error), and cvprep's maps min-max rescaled (which is exactly
the package's quantity) against the package's. The run fails (exit code 1) if the raw CAMs
differ by more than 1e-4 of their peak, or the like-with-like maps by more than 1e-4:
float32 keeps about 7 significant digits and the two sum the same products in different
orders (numpy against einsum, over up to 64 channels and 1024 positions), which accounts
for errors of order 1e-6 of the peak; 1e-4 is far above that and far below what the eye
sees (one step of an 8-bit colour map is 1/255 = 4e-3).

Times are per image, for the whole batch in one call and for one image per call, the
median of several repeats, on the machine's threads (``--threads``; the training itself
runs on one thread, as ``train_chapter_model`` always does). The four contenders of a
layer are timed in turn within each repeat, so that a load that drifts on a shared
machine falls on all of them alike. Each timed grad-cam call builds and releases its
GradCAM object (its hooks would otherwise also fire during cvprep's passes); the cost of
that is printed and is small. The package's backward pass runs down to every parameter
whatever the layer and fills their ``.grad``, where cvprep's stops at the target layer's
activation, so cvprep's lead should grow the later the layer. The load average is
printed at the start and the end: on a machine shared with other jobs every wall time
(the training's too) stretches, and one image per call suffers most.

grad-cam is not a dependency of cvprep; install it in the venv to run this (it brings
opencv-python-headless, matplotlib, scikit-learn and ttach, but leaves torch, torchvision
and numpy as they are):

    .venv/bin/pip install grad-cam
    .venv/bin/python benchmarks/bench_grad_cam.py [--images N] [--repeats N] [--threads N]
        [--state-dict /tmp/chapter_model.pt]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from cvprep.classifier import SmallCNN, accuracy, chapter_split, predict_logits, train_chapter_model
from cvprep.interpret import _activations_and_gradients, _cam, grad_cam
from timing import median_seconds

try:
    import cv2
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
except ImportError:  # pragma: no cover - depends on the environment
    GradCAM = ClassifierOutputTarget = cv2 = None

TRAINING_GOAL_SECONDS = 60.0
TOLERANCE = 1e-4  # of the peak, for raw CAMs; absolute, for maps in [0, 1] (see the module docstring)


def load_average() -> str:
    """The 1-minute load average, which says how much of the machine other jobs took."""
    return f"{os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "unknown"


def chapter_model(state_dict: str | None) -> SmallCNN:
    """The chapter's model, trained now (timed and reported) or loaded from ``state_dict``."""
    if state_dict is not None:
        model = SmallCNN()
        model.load_state_dict(torch.load(state_dict))
        print(f"Model: loaded from {state_dict} (not trained now, so the 60 s goal is not checked)")
    else:
        start, start_cpu = time.perf_counter(), time.process_time()
        model, log = train_chapter_model()
        seconds, cpu = time.perf_counter() - start, time.process_time() - start_cpu
        verdict = "met" if seconds < TRAINING_GOAL_SECONDS else "NOT met"
        # On one thread the CPU time is about what the wall time would be on an idle machine.
        print(f"Model: train_chapter_model() took {seconds:.1f} s wall time (training loop {log.seconds:.1f} s, "
              f"one thread, {cpu:.1f} s of CPU time); goal < {TRAINING_GOAL_SECONDS:.0f} s wall: {verdict}")
    model.eval()
    for split in ("validation", "test"):
        images, labels = chapter_split(split)
        print(f"  {split} accuracy: {accuracy(model, images, labels):.2%} ({len(images)} images)")
    return model


def min_max(maps: np.ndarray) -> np.ndarray:
    """Each map of ``maps`` [N, H, W] rescaled to span [0, 1]; constant maps become zero."""
    low = maps.min(axis=(1, 2), keepdims=True)
    span = maps.max(axis=(1, 2), keepdims=True) - low
    return np.where(span > 0, maps - low, 0.0) / np.where(span > 0, span, 1.0)


def package_maps(model, layer, images: torch.Tensor, classes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The package's heat maps [N, H, W] and its raw (ReLU'd, low-resolution) CAMs [N, h, w]."""
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    with GradCAM(model=model, target_layers=[layer]) as cam:
        maps = cam(input_tensor=images, targets=targets)
        recorded = cam.activations_and_grads
        activations, gradients = recorded.activations[0].numpy(), recorded.gradients[0].numpy()
        raw = np.maximum(cam.get_cam_image(images, layer, targets, activations, gradients), 0)
    return maps, raw


def cvprep_raw(model, layer, images: torch.Tensor, classes: torch.Tensor) -> np.ndarray:
    """cvprep's raw CAMs [N, h, w], from the helpers grad_cam calls before upsampling."""
    return _cam(*_activations_and_gradients(model, layer, images, classes)).numpy()


def relative_difference(ours: np.ndarray, theirs: np.ndarray) -> float:
    """Largest |ours - theirs| over each map, divided by that map's peak (all-zero maps: absolute)."""
    peaks = np.abs(theirs).max(axis=(1, 2))
    return float((np.abs(ours - theirs).max(axis=(1, 2)) / np.where(peaks > 0, peaks, 1.0)).max())


def compare_maps(model, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Print the differences per stage and target; return the worst like-with-like difference."""
    predicted = predict_logits(model, images).argmax(1)
    size = tuple(images.shape[2:])
    print(f"\nHeat maps: {len(images)} test images ({int((predicted != labels).sum())} misclassified), "
          f"max |cvprep - grad-cam|")
    print(f"  {'layer':12s} {'target':9s} {'raw CAM':>9s} {'resize':>9s} {'returned':>9s} {'min-max':>9s} "
          f"{'min > 0':>8s} {'zero':>5s}")
    worst = 0.0
    for stage, layer in enumerate(model.features):
        for name, classes in (("predicted", predicted), ("label", labels)):
            ours = grad_cam(model, layer, images, classes).numpy()
            theirs, raw_theirs = package_maps(model, layer, images, classes)
            raw_ours = cvprep_raw(model, layer, images, classes)
            raw = relative_difference(raw_ours, raw_theirs)
            # the same CAMs through each resize: isolates bilinear align_corners=False against cv2 INTER_LINEAR
            torch_resized = F.interpolate(torch.from_numpy(raw_theirs)[:, None], size=size, mode="bilinear",
                                          align_corners=False)[:, 0].numpy()
            cv2_resized = np.stack([cv2.resize(m, size[::-1], interpolation=cv2.INTER_LINEAR) for m in raw_theirs])
            resize = relative_difference(torch_resized, cv2_resized)
            returned = float(np.abs(ours - theirs).max())
            like = float(np.abs(min_max(ours) - theirs).max())
            lifted = int((ours.min(axis=(1, 2)) > 0).sum())  # maps whose conventions differ
            empty = int((ours.max(axis=(1, 2)) == 0).sum())  # no positive evidence: zero in both
            worst = max(worst, raw, resize, like)
            print(f"  features[{stage}] {name:9s} {raw:9.1e} {resize:9.1e} {returned:9.1e} {like:9.1e} "
                  f"{lifted:5d}/{len(images)} {empty:5d}")
    print("  raw CAM: at the layer's resolution, before any scaling, relative to each map's peak")
    print("  resize:  F.interpolate(bilinear, align_corners=False) vs cv2.resize(INTER_LINEAR) on the same CAMs, "
          "relative")
    print("  returned: the maps as each library returns them (cvprep divides by the max, grad-cam min-max scales)")
    print("  min-max: cvprep's maps min-max rescaled, the package's convention: like with like")
    print("  min > 0: cvprep maps whose minimum is above 0, where the two conventions give different maps; "
          "zero: all-zero maps")
    return worst


def paired_medians(fns: dict[object, Callable[[], object]], repeats: int) -> dict[object, float]:
    """Median time of each function, timed in turn within every repeat (after one warm-up call each).

    On a machine shared with other jobs the load drifts; alternating the contenders makes
    each repeat's load fall on both of them alike instead of on whichever runs later.
    """
    for fn in fns.values():
        fn()
    times: dict[object, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(median_seconds(fn, 1, warm_up=False))
    return {name: statistics.median(values) for name, values in times.items()}


def package_call(model, layer, batches: list[tuple[torch.Tensor, list]]) -> list[np.ndarray]:
    """The package's maps for each (images, targets) of ``batches``, with one GradCAM object,
    built here and released at the end so its hooks never fire during cvprep's passes."""
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return [cam(input_tensor=x, targets=t) for x, t in batches]


def time_per_image(model, images: torch.Tensor, repeats: int) -> float:
    """Print the median time per image of each library, batched and one image per call;
    return the smallest speed ratio (grad-cam time / cvprep time)."""
    classes = predict_logits(model, images).argmax(1)
    targets = [ClassifierOutputTarget(int(c)) for c in classes]
    singles = list(zip(images.split(1), classes.split(1), targets))
    n = len(images)
    print(f"\nTime per image (predicted class), {torch.get_num_threads()} torch thread(s), "
          f"cv2 {cv2.getNumThreads()} thread(s), median of {repeats}, the contenders timed in turn")
    print(f"  {'layer':12s} {'call':10s} {'cvprep':>10s} {'grad-cam':>10s} {'grad-cam / cvprep':>18s}")
    slowest = float("inf")
    for stage, layer in enumerate(model.features):
        times = paired_medians({
            ("cvprep", "batch"): lambda: grad_cam(model, layer, images, classes),
            ("grad-cam", "batch"): lambda: package_call(model, layer, [(images, targets)]),
            ("cvprep", "one image"): lambda: [grad_cam(model, layer, x, c) for x, c, _ in singles],
            ("grad-cam", "one image"): lambda: package_call(model, layer, [(x, [t]) for x, _, t in singles]),
        }, repeats)
        for call in ("batch", "one image"):
            ours, theirs = times["cvprep", call], times["grad-cam", call]
            slowest = min(slowest, theirs / ours)
            print(f"  features[{stage}] {call:10s} {ours / n * 1e3:7.3f} ms {theirs / n * 1e3:7.3f} ms "
                  f"{theirs / ours:17.2f}x")
    build = median_seconds(lambda: package_call(model, model.features[0], []), repeats)
    print(f"  above 1x: cvprep is faster. grad-cam's times include building and releasing one GradCAM object per "
          f"timed call ({build * 1e6:.0f} us)")
    return slowest


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=64, help="test images to explain")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads for the comparison")
    parser.add_argument("--state-dict", default=None, help="load this saved SmallCNN instead of training")
    args = parser.parse_args()
    if GradCAM is None:
        print("grad-cam is not installed: this benchmark compares against it.\n"
              "Install it in the venv with `.venv/bin/pip install grad-cam` and run again.")
        return 1

    print(f"Machine: {os.cpu_count()} cores, load average {load_average()} at the start (other jobs slow every "
          f"time below)")
    model = chapter_model(args.state_dict)
    torch.set_num_threads(args.threads)
    images, labels = chapter_split("test")
    images, labels = images[:args.images], labels[:args.images]
    worst = compare_maps(model, images, labels)
    slowest = time_per_image(model, images, args.repeats)
    print(f"  load average {load_average()} at the end")
    print(f"\nGoal 'not slower': {'met' if slowest >= 1 else 'NOT met'} (smallest grad-cam / cvprep ratio "
          f"{slowest:.2f}x)")
    if worst > TOLERANCE:
        print(f"MISMATCH: the largest like-with-like difference is {worst:.2e} > {TOLERANCE:.0e}")
        return 1
    print(f"Goal 'identical maps': met, every like-with-like difference is within {TOLERANCE:.0e} "
          f"(largest {worst:.1e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
