"""Package-level promises: importing cvprep is cheap (no torch, no plotly)."""

import subprocess
import sys

NUMPY_ONLY_MODULES = ["cvprep", "cvprep.box_coding", "cvprep.boxes", "cvprep.conv", "cvprep.cost",
                      "cvprep.detection_metrics", "cvprep.nms", "cvprep.receptive_field", "cvprep.scaling", "cvprep.shapes",
                      "cvprep.testing"]


def test_numpy_modules_do_not_import_torch_or_plotly():
    code = (
        f"import sys, {', '.join(NUMPY_ONLY_MODULES)}\n"
        "heavy = sorted(m for m in ('torch', 'plotly', 'ipywidgets', 'torchvision') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
