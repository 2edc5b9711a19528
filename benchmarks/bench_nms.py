"""How fast is cvprep's NumPy NMS next to torchvision's C++ one? (A benchmark, not a test.)

Boxes as a detector proposes them: jittered copies of one object box per 20 proposals,
in a 1000 x 1000 image, with distinct random scores; IoU threshold 0.5, so most boxes
are suppressed. Both implementations must keep the same indices. Prints the median of
several runs for 1,000 and 10,000 boxes, float32 and float64, on the CPU.

    .venv/bin/python benchmarks/bench_nms.py [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torchvision

from cvprep.nms import nms
from timing import median_seconds


def clustered_boxes(n: int, seed: int = 0, image: float = 1000.0, per_object: int = 20):
    """``n`` boxes (x1, y1, x2, y2) jittered around ``n // per_object`` objects, and distinct scores."""
    rng = np.random.default_rng(seed)
    n_objects = max(1, n // per_object)
    centres = rng.uniform(0, image, size=(n_objects, 2))
    sizes = rng.uniform(20, 200, size=(n_objects, 2))
    which = rng.integers(n_objects, size=n)
    jittered = centres[which] + rng.normal(0, 0.1, size=(n, 2)) * sizes[which]
    half = sizes[which] * np.exp(rng.normal(0, 0.15, size=(n, 2))) / 2
    boxes = np.concatenate([jittered - half, jittered + half], axis=1)
    scores = rng.permutation(n) / n  # distinct: torchvision's order for ties is unspecified
    return boxes, scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--threshold", type=float, default=0.5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"nms, IoU threshold {args.threshold}, {args.threads} thread(s), median of {args.repeats}")
    print(f"  {'boxes':>6s} {'dtype':>8s} {'kept':>6s} {'cvprep.nms.nms':>15s} {'torchvision.ops.nms':>20s} {'ratio':>7s}")
    for n in (1_000, 10_000):
        for dtype in (np.float32, np.float64):
            boxes, scores = clustered_boxes(n)
            boxes, scores = boxes.astype(dtype), scores.astype(dtype)
            boxes_t, scores_t = torch.from_numpy(boxes), torch.from_numpy(scores)
            ours = nms(boxes, scores, args.threshold)
            theirs = torchvision.ops.nms(boxes_t, scores_t, args.threshold).numpy()
            np.testing.assert_array_equal(ours, theirs)

            t_numpy = median_seconds(lambda: nms(boxes, scores, args.threshold), args.repeats)
            t_torch = median_seconds(lambda: torchvision.ops.nms(boxes_t, scores_t, args.threshold), args.repeats)
            print(
                f"  {n:6d} {np.dtype(dtype).name:>8s} {len(ours):6d} {t_numpy * 1e3:12.2f} ms "
                f"{t_torch * 1e3:17.2f} ms {t_numpy / t_torch:6.2f}x"
            )
    print("  ratio = NumPy time / torchvision time (below 1: NumPy is faster)")


if __name__ == "__main__":
    main()
