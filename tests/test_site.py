"""Build the site exactly as `make book` does and check what a reader gets (in its HTML;
test_site_browser.py looks at it in a browser)."""

import html
import json
import os
import re
import signal
import subprocess
import time
import urllib.request

import pytest
import yaml

from browser import free_port
from repo_paths import BOOK, REPO
from site_build import SITE, toc_pages

KERNEL_NOISE = ("Kernel is running over TCP without encryption",)


def page(path: str) -> str:
    return (SITE / path).with_suffix(".html").read_text(encoding="utf-8")


def plotly_figures(text: str) -> list[dict]:
    """The figure specs plotly.js is given on a page: Plotly.newPlot("id", data, layout, config)."""
    decoder = json.JSONDecoder()
    figures = []
    for match in re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text):
        data, end = decoder.raw_decode(text, match.end())
        layout, _ = decoder.raw_decode(text, re.compile(r",\s*").match(text, end).end())
        figures.append({"data": data, "layout": layout})
    return figures


def test_build_has_no_warnings(build_log):
    warnings = [line for line in build_log.splitlines()
                if "WARNING" in line and not any(noise in line for noise in KERNEL_NOISE)]
    assert not warnings, "\n".join(warnings)


def test_every_toc_page_is_built(build_log):
    missing = [f for f in toc_pages() if not (SITE / f).with_suffix(".html").exists()]
    assert not missing


@pytest.mark.parametrize("name, minimum, interactive", [
    ("01-convolution/convolution", 1, None),
    ("01-convolution/arithmetic", 4, "frames"),
    ("01-convolution/receptive-field", 3, "sliders"),
    ("01-convolution/forward-pass", 1, None),
    ("04-architectures/cost", 2, "sliders"),  # FLOP calculator, per-layer breakdown (menu)
    ("04-architectures/choosing", 2, "sliders"),  # accuracy against cost (buttons), compound scaling
    ("05-classification/training", 1, None),  # the data
    ("05-classification/imbalance", 3, None),  # effective-number weights, focal loss, losses under noise
    ("05-classification/distillation", 2, "sliders"),  # soft targets over T, MAE masking
    ("05-classification/interpretability", 1, "sliders"),  # Grad-CAM viewer
    ("05-classification/adversarial", 1, "sliders"),  # epsilon slider
    ("05-classification/calibration", 1, "sliders"),  # reliability before and after temperature scaling
    ("06-detection/boxes", 1, "sliders"),  # IoU playground
    ("06-detection/anchors", 1, None),
    ("06-detection/nms", 2, "sliders"),  # NMS step by step, NMS against Soft-NMS over the threshold
    ("06-detection/metrics", 1, "sliders"),  # PR curve and the AP definitions
    ("06-detection/practice", 3, None),  # augmentation, tracking, weather
])
def test_chapter_figures_render_and_stay_interactive(build_log, name, minimum, interactive):
    text = page(f"book/{name}")
    assert text.count('class="plotly-graph-div"') >= minimum
    assert "_static/vendor/plotly.min.js" in text  # loaded from the site itself, not a CDN
    figures = plotly_figures(text)
    assert len(figures) == text.count('class="plotly-graph-div"')
    if interactive == "sliders":
        assert any(f["layout"].get("sliders") for f in figures)
    if interactive == "frames":  # frames are added by a separate Plotly.addFrames call
        assert "Plotly.addFrames" in text and '"updatemenus"' in text


def test_plotly_is_vendored(build_log):
    js = SITE / "_static" / "vendor" / "plotly.min.js"
    assert js.stat().st_size > 1_000_000


# a script, style sheet, font or image the browser fetches by itself (links <a href> are the reader's choice)
FETCHED = re.compile(r'<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)="(https?:)?//[^"]*"', re.IGNORECASE)


def test_no_page_fetches_anything_from_another_host(build_log):
    offending = {}
    for path in SITE.rglob("*.html"):
        found = FETCHED.search(path.read_text(encoding="utf-8"))
        if found:
            offending[str(path.relative_to(SITE))] = found.group(0)
    assert not offending


def test_mathjax_and_widget_scripts_are_served_by_the_site(build_log):
    text = page("book/06-detection/boxes")
    assert 'src="../../_static/vendor/mathjax/tex-chtml.js' in text
    for script in ["vendor/mathjax/tex-chtml.js", "vendor/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff",
                   "vendor/require.js", "vendor/html-manager/embed-amd.js"]:
        assert (SITE / "_static" / script).is_file(), script


def test_pages_without_widgets_load_no_widget_scripts(build_log):
    # cost.md's live explorer is not executed at build time (skip-execution), so no widget
    # state, require.js or widget manager rides along on the page
    text = page("book/04-architectures/cost")
    assert "widget-state+json" not in text and "embed-amd.js" not in text


def binder_links(text: str) -> list[str]:
    return re.findall(r'href="(https://mybinder\.org/v2/gh/[^"]+)"', text)


@pytest.mark.parametrize("name", [p for p in toc_pages() if re.match(r"book/(\d\d-|_exercises/)", p)])
def test_every_chapter_page_can_be_launched_and_run_locally(build_log, name):
    config = yaml.safe_load((REPO / "_config.yml").read_text())
    text = html.unescape(page(name))
    [link] = set(binder_links(text))
    suffix = ".ipynb" if name.startswith("book/_exercises/") else ".md"
    org_repo = config["repository"]["url"].removeprefix("https://github.com/")
    assert link == f"https://mybinder.org/v2/gh/{org_repo}/{config['repository']['branch']}?urlpath=lab/tree/{name}{suffix}"
    assert "download-notebook-button" in text or name.startswith("book/_exercises/")  # there the source is the notebook
    words = visible_text(text)
    assert "make lab" in words and f"git clone {config['repository']['url']}" in words
    if not name.startswith("book/_exercises/"):
        assert f"and open {name}.md" in words


def visible_text(text: str) -> str:
    """A page's text without tags, entities or line breaks (code spans split words into spans)."""
    return re.sub(r"\s+", " ", html.unescape(re.sub(r"<[^>]+>", "", text)))


def test_no_errors_or_stderr_on_pages(build_log):
    for path in SITE.joinpath("book").rglob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert "output traceback" not in text and "output stderr" not in text, path


def test_glued_numbers_match_cvprep(build_log):
    import torchvision

    from cvprep.receptive_field import receptive_field

    text = page("book/01-convolution/receptive-field")
    vgg = receptive_field(torchvision.models.vgg16())[-1].size
    assert f'VGG-16’s <span class="pasted-text">{vgg}</span>' in text or f"VGG-16's <span class=\"pasted-text\">{vgg}</span>" in text


@pytest.mark.parametrize("exercise", ["01-convolution/convolution", "04-architectures/architectures",
                                      "05-classification/classification", "06-detection/detection"])
def test_exercise_page_is_the_student_version(build_log, exercise):
    text = html.unescape(page(f"book/_exercises/{exercise}"))
    assert "YOUR CODE HERE" in text and "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    assert "cvprep.testing" not in text


def test_question_page_links_every_question_to_its_section(build_log):
    text = page("book/questions")
    for question in yaml.safe_load((BOOK / "questions.yml").read_text()):
        assert f'id="q-{question["id"]}"' in text
        assert f'#{question["section"]}"' in text, question["id"]


def test_chapter_04_quotes_profile(build_log):
    import torchvision

    from cvprep.cost import profile

    report = profile(torchvision.models.resnet50(), (1, 3, 224, 224))
    text = page("book/04-architectures/cost")
    assert f'<span class="pasted-text">{report.params / 1e6:.1f}</span> million parameters' in text
    assert f'<span class="pasted-text">{report.macs / 1e9:.2f}</span> G MACs' in text


def test_chapter_06_quotes_the_reference_functions(build_log):
    import numpy as np

    from cvprep.boxes import box_iou
    from cvprep.nms import nms
    from cvprep.widgets import nms_steps

    inside = box_iou(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[4.0, 4.0, 6.0, 6.0]]))[0, 0]  # 4 / 100
    text = page("book/06-detection/boxes")
    assert f'one has IoU <span class="pasted-text">{inside:.2f}</span>' in text
    scene = nms_steps.crowd_scene(seed=0)
    kept = len(nms(scene.boxes, scene.scores, 0.5))
    assert re.search(rf'It ends with\s*<span class="pasted-text">{kept}</span>', page("book/06-detection/nms"))


def test_make_serve_serves_the_site_on_localhost(build_log):
    port = free_port()
    server = subprocess.Popen(["make", "--no-print-directory", "serve", f"PORT={port}"], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/book/intro.html", timeout=2) as response:
                    assert response.status == 200 and b"cvprep" in response.read()
                    break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "make serve did not answer"
                time.sleep(0.3)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)
