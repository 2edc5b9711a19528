"""How fast is cvprep's NumPy conv2d next to PyTorch's? (A benchmark, not a test.)

Input [8, 64, 56, 56], 64 filters of 3x3, padding 1 (a ResNet stage-1 convolution),
float32, on the CPU. Prints the median of several runs for each implementation.

    .venv/bin/python benchmarks/bench_conv2d.py [--repeats N] [--threads N]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from cvprep.conv import conv2d
from timing import median_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 64, 56, 56), dtype=np.float32)
    weight = rng.standard_normal((64, 64, 3, 3), dtype=np.float32)
    bias = rng.standard_normal(64, dtype=np.float32)
    xt, wt, bt = torch.from_numpy(x), torch.from_numpy(weight), torch.from_numpy(bias)

    ours = conv2d(x, weight, bias, padding=1)
    with torch.no_grad():
        theirs = F.conv2d(xt, wt, bt, padding=1).numpy()
    np.testing.assert_allclose(ours, theirs, rtol=1e-3, atol=1e-3)

    macs = 8 * 64 * 56 * 56 * 64 * 3 * 3
    t_numpy = median_seconds(lambda: conv2d(x, weight, bias, padding=1), args.repeats)
    with torch.no_grad():
        t_torch = median_seconds(lambda: F.conv2d(xt, wt, bt, padding=1), args.repeats)
    print(f"conv2d [8, 64, 56, 56] * [64, 64, 3, 3], padding 1, float32, {args.threads} thread(s), "
          f"median of {args.repeats}")
    for name, seconds in (("cvprep.conv.conv2d (NumPy im2col)", t_numpy), ("torch.nn.functional.conv2d", t_torch)):
        print(f"  {name:36s} {seconds * 1e3:8.1f} ms   {macs / seconds / 1e9:6.1f} GMAC/s")
    print(f"  PyTorch is {t_numpy / t_torch:.1f}x faster")


if __name__ == "__main__":
    main()
