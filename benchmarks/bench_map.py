"""cvprep's COCO mAP against pycocotools' COCOeval: same numbers, how much faster? (A benchmark, not a test.)

A seeded synthetic data set: 500 images, 1 to 8 objects each over 10 classes, with
sides from 8 to 300 pixels so that small, medium and large objects all occur; 100
detections per image, noisy copies of the objects (some duplicated, some with the wrong
class) plus random boxes, with random scores. Both implementations evaluate it; every
summary number is printed side by side (they must agree within 1e-4) with the median
time of each. pycocotools is timed for evaluate + accumulate + summarize, with its
prints suppressed; building its in-memory COCO objects is not timed.

pycocotools is not a dependency of cvprep; install it in the venv to run this:

    .venv/bin/pip install pycocotools
    .venv/bin/python benchmarks/bench_map.py [--images N] [--repeats N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys

import numpy as np

from cvprep.detection_metrics import mean_average_precision
from timing import median_seconds

try:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
except ImportError:  # pragma: no cover - depends on the environment
    COCO = COCOeval = None

N_CLASSES = 10
DETECTIONS_PER_IMAGE = 100
# pycocotools' summary order (COCOeval.stats) and our names for the same numbers
STATS_KEYS = ["map", "map_50", "map_75", "map_small", "map_medium", "map_large",
              "mar_1", "mar_10", "mar_100", "mar_small", "mar_medium", "mar_large"]


def synthetic_dataset(n_images: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Ground truth and detections, one dict of arrays per image, as mean_average_precision takes them."""
    rng = np.random.default_rng(seed)
    ground_truth, detections = [], []
    for _ in range(n_images):
        n = int(rng.integers(1, 9))
        sides = np.exp(rng.uniform(np.log(8), np.log(300), size=(n, 2)))  # [n, 2]: small to large
        corner = rng.uniform(0, 640, size=(n, 2)) - sides / 2
        boxes = np.concatenate([corner, corner + sides], axis=1)  # [n, 4]
        labels = rng.integers(0, N_CLASSES, size=n)
        # detections: 0-3 noisy copies of each object, the rest random boxes
        copies = rng.integers(0, 4, size=n)
        source = np.repeat(np.arange(n), copies)[:DETECTIONS_PER_IMAGE]
        noise = rng.normal(0, 0.08, size=(len(source), 4)) * np.tile(sides[source], 2)
        moved = boxes[source] + noise
        copied = np.concatenate([np.minimum(moved[:, :2], moved[:, 2:]), np.maximum(moved[:, :2], moved[:, 2:])], axis=1)
        copy_labels = np.where(rng.random(len(source)) < 0.9, labels[source], rng.integers(0, N_CLASSES, len(source)))
        n_random = DETECTIONS_PER_IMAGE - len(source)
        random_sides = np.exp(rng.uniform(np.log(8), np.log(300), size=(n_random, 2)))
        random_corner = rng.uniform(0, 640, size=(n_random, 2)) - random_sides / 2
        random_boxes = np.concatenate([random_corner, random_corner + random_sides], axis=1)
        ground_truth.append({"boxes": boxes, "labels": labels})
        detections.append({
            "boxes": np.concatenate([copied, random_boxes]),
            "scores": np.concatenate([rng.uniform(0.3, 1.0, len(source)), rng.uniform(0.0, 0.7, n_random)]),
            "labels": np.concatenate([copy_labels, rng.integers(0, N_CLASSES, n_random)]),
        })
    return ground_truth, detections


def to_xywh(boxes: np.ndarray) -> list[list[float]]:
    return np.concatenate([boxes[:, :2], boxes[:, 2:] - boxes[:, :2]], axis=1).tolist()


def coco_objects(ground_truth: list[dict], detections: list[dict]):
    """pycocotools' COCO ground truth and loaded results, built in memory (image ids from 1)."""
    images, annotations, results = [], [], []
    for image_id, (gt, det) in enumerate(zip(ground_truth, detections), start=1):
        images.append({"id": image_id, "width": 640, "height": 640})
        for box, label in zip(to_xywh(gt["boxes"]), gt["labels"].tolist()):
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": label,
                                "bbox": box, "area": box[2] * box[3], "iscrowd": 0})
        for box, score, label in zip(to_xywh(det["boxes"]), det["scores"].tolist(), det["labels"].tolist()):
            results.append({"image_id": image_id, "category_id": label, "bbox": box, "score": score})
    labels = np.unique(np.concatenate([e["labels"] for e in ground_truth + detections]))
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = {"images": images, "annotations": annotations,
                           "categories": [{"id": int(c), "name": str(c)} for c in labels]}
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
    return coco_gt, coco_dt


def run_cocoeval(coco_gt, coco_dt) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):
        evaluator = COCOeval(coco_gt, coco_dt, iouType="bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return dict(zip(STATS_KEYS, evaluator.stats.tolist()))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if COCOeval is None:
        print("pycocotools is not installed: this benchmark compares against it.\n"
              "Install it in the venv with `.venv/bin/pip install pycocotools` and run again.")
        return 1

    ground_truth, detections = synthetic_dataset(args.images, args.seed)
    coco_gt, coco_dt = coco_objects(ground_truth, detections)
    ours = mean_average_precision(ground_truth, detections)
    theirs = run_cocoeval(coco_gt, coco_dt)
    t_ours = median_seconds(lambda: mean_average_precision(ground_truth, detections), args.repeats, warm_up=False)
    t_theirs = median_seconds(lambda: run_cocoeval(coco_gt, coco_dt), args.repeats, warm_up=False)

    n_gt = sum(len(g["boxes"]) for g in ground_truth)
    n_det = sum(len(d["boxes"]) for d in detections)
    print(f"COCO box mAP: {args.images} images, {n_gt} objects, {n_det} detections, {N_CLASSES} classes, "
          f"median of {args.repeats}")
    print(f"  {'':12s} {'cvprep':>10s} {'pycocotools':>12s} {'difference':>11s}")
    worst = 0.0
    for key in STATS_KEYS:
        difference = abs(ours[key] - theirs[key])
        worst = max(worst, difference)
        print(f"  {key:12s} {ours[key]:10.6f} {theirs[key]:12.6f} {difference:11.1e}")
    print(f"  {'time':12s} {t_ours:9.3f}s {t_theirs:11.3f}s")
    print(f"  cvprep.detection_metrics.mean_average_precision is {t_theirs / t_ours:.1f}x faster than "
          f"COCOeval (evaluate + accumulate + summarize)")
    if worst > 1e-4:
        print(f"MISMATCH: the largest difference is {worst:.2e} > 1e-4")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
