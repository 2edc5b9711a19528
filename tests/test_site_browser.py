"""The built site in a real browser: Playwright driving Debian's Chromium (tests/browser.py).

The site is served on 127.0.0.1 and every request elsewhere is refused, as it would
fail offline. For every page of the table of contents: nothing failed to load, no
console error, every plotly figure drew its data, every widget rendered, the maths
typeset. Every figure with a slider, buttons or frames answers them: moving a slider
or pressing a button changes what the figure draws, and in the theme's dark mode every
figure keeps a background its text stands out on. A screenshot of each chapter's first
page goes to _build/screenshots/ for review.
"""

from __future__ import annotations

import json
import re

import pytest

from browser import PageWatch, launched_chromium, require_chromium, serve_directory
from site_build import SITE, toc_pages

pytestmark = pytest.mark.slow

SCREENSHOTS = SITE.parent / "screenshots"
CHAPTER_FIRST_PAGE = re.compile(r"^book/(\d\d-[a-z-]+)/index$")
RENDER_TIMEOUT_MS = 20_000

# What a figure draws, without the state of its own controls (a slider's "active" step
# changes whenever it is moved, so comparing it would prove nothing).
DRAWN = """gd => JSON.stringify([gd.data, Object.fromEntries(Object.entries(gd.layout)
    .filter(([key]) => !['sliders', 'updatemenus'].includes(key)))])"""


@pytest.fixture(scope="module")
def site(build_log):
    require_chromium()
    with serve_directory(SITE) as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    with launched_chromium() as chromium:
        yield chromium


@pytest.fixture
def open_page(site, browser):
    """Open a page of the site; yields (page, watch) and closes it afterwards."""
    opened = []

    def open_(name: str, **options):
        page = browser.new_page(viewport={"width": 1300, "height": 900}, **options)
        watch = PageWatch(page)
        page.goto(f"{site}/{name}.html", wait_until="load")
        opened.append(page)
        return page, watch

    yield open_
    for page in opened:
        page.close()


def expected_on(name: str) -> dict[str, int]:
    """How many figures, widgets and maths the page's HTML asks the browser to render."""
    text = (SITE / name).with_suffix(".html").read_text(encoding="utf-8")
    return {
        "figures": text.count('class="plotly-graph-div"'),
        "widgets": text.count('type="application/vnd.jupyter.widget-view+json"'),
        "maths": len(re.findall(r'class="math[ "]', text)),
    }


def wait_until_rendered(page, expected: dict[str, int]) -> None:
    if expected["figures"]:
        page.wait_for_function(
            f"""() => {{
                const figures = document.querySelectorAll('.js-plotly-plot');
                return figures.length === {expected['figures']} &&
                    Array.from(figures).every(gd => gd._fullData && gd.querySelector('.main-svg'));
            }}""", timeout=RENDER_TIMEOUT_MS)
    if expected["widgets"]:
        page.wait_for_function(
            f"document.querySelectorAll('.jupyter-widgets.widget-container, .jupyter-widgets.widget-inline-hbox,"
            f" .jupyter-widgets.widget-box').length >= {expected['widgets']}", timeout=RENDER_TIMEOUT_MS)
    if expected["maths"]:
        page.wait_for_function(f"document.querySelectorAll('mjx-container').length >= {expected['maths']}",
                               timeout=RENDER_TIMEOUT_MS)


def figures_without_data(page) -> list[int]:
    """Indices of figures whose SVG shows none of their traces (or shapes, for a figure drawn with shapes)."""
    return page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).flatMap((gd, i) => {
        const traces = gd.querySelectorAll('g.trace, g.hm, .imagelayer image, g.table').length;
        const shapes = (gd.layout.shapes || []).length ? gd.querySelectorAll('.shapelayer path').length : 0;
        return traces + shapes > 0 ? [] : [i];
    })""")


def unrendered_maths(page) -> int:
    """Maths still shown as TeX source: \\( ... \\) or $$ left in the text after typesetting."""
    return page.evaluate(r"""() => Array.from(document.querySelectorAll('.math'))
        .filter(el => !el.querySelector('mjx-container') && /\\\(|\\\[|\$\$/.test(el.textContent)).length""")


# ------------------------------------------------------------------ interactivity


def figure_controls(name: str) -> list[tuple[int, str, int]]:
    """(figure index, "slider" or "menu", control index) for every control of every figure on a page."""
    text = (SITE / name).with_suffix(".html").read_text(encoding="utf-8")
    decoder = json.JSONDecoder()
    controls = []
    for index, match in enumerate(re.finditer(r'Plotly\.newPlot\(\s*"[^"]+",\s*', text)):
        _, end = decoder.raw_decode(text, match.end())
        layout, _ = decoder.raw_decode(text, re.compile(r",\s*").match(text, end).end())
        controls += [(index, "slider", i) for i in range(len(layout.get("sliders", [])))]
        controls += [(index, "menu", i) for i in range(len(layout.get("updatemenus", [])))]
    return controls


def move_slider(page, figure: int, slider: int) -> None:
    """Click the slider's rail at the step farthest from the current one, as a reader would."""
    state = page.evaluate(f"""() => {{
        const s = document.querySelectorAll('.js-plotly-plot')[{figure}]._fullLayout.sliders[{slider}];
        return [s.active, s.steps.length];
    }}""")
    active, steps = state
    rail = page.locator(".js-plotly-plot").nth(figure).locator("g.slider-container").nth(slider) \
        .locator("rect.slider-rail-touch-rect")
    rail.scroll_into_view_if_needed()
    box = rail.bounding_box()
    fraction = 0.02 if active >= steps / 2 else 0.98
    page.mouse.click(box["x"] + fraction * box["width"], box["y"] + box["height"] / 2)


def menu_buttons(page, figure: int, menu: int):
    """The clickable buttons of one update menu (a dropdown is opened first)."""
    menu_locator = page.locator(".js-plotly-plot").nth(figure).locator("g.updatemenu-container").nth(menu)
    header = menu_locator.locator("g.updatemenu-header")
    if header.count():
        header.click()
    return menu_locator.locator("g.updatemenu-button, g.updatemenu-dropdown-button")


def check_control_changes_the_drawing(page, name: str, figure: int, kind: str, control: int) -> None:
    gd = page.locator(".js-plotly-plot").nth(figure)
    before = gd.evaluate(DRAWN)
    changed = f"gd => ({DRAWN})(gd) !== {json.dumps(before)}"
    if kind == "slider":
        move_slider(page, figure, control)
        page.wait_for_function(f"() => ({changed})(document.querySelectorAll('.js-plotly-plot')[{figure}])",
                               timeout=5_000)
        return
    # a menu: some button other than the active one (pause, say) must change the drawing
    buttons = menu_buttons(page, figure, control)
    for index in range(buttons.count()):
        buttons.nth(index).click()
        page.wait_for_timeout(1_500)  # animations take their transition time
        if gd.evaluate(f"({changed})"):
            return
        buttons = menu_buttons(page, figure, control)  # a dropdown closes after a click
    pytest.fail(f"no button of update menu {control} of figure {figure} on {name} changed the drawing")


# ------------------------------------------------------------------ dark mode


def contrast(first: str, second: str) -> float:
    """WCAG contrast ratio of two CSS colours given as rgb()/rgba()."""
    def luminance(colour: str) -> float:
        red, green, blue = (int(v) / 255 for v in re.findall(r"[\d.]+", colour)[:3])
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in (red, green, blue)]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    light, dark = sorted([luminance(first), luminance(second)], reverse=True)
    return (light + 0.05) / (dark + 0.05)


def check_readable_in_dark_mode(page) -> None:
    """Switch the page to the theme's dark mode: every figure keeps an opaque, contrasting background."""
    page.evaluate("document.documentElement.dataset.theme = 'dark'; document.documentElement.dataset.mode = 'dark'")
    colours = page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(gd => {
        const text = gd.querySelector('.xtick text, .ytick text, .gtitle, text');
        return [getComputedStyle(gd.querySelector('.main-svg')).backgroundColor, getComputedStyle(text).fill];
    })""")
    for background, text in colours:
        assert "rgba(0, 0, 0, 0)" not in background, "a transparent figure would show dark text on the dark page"
        assert contrast(background, text) >= 4.5, (background, text)


# ------------------------------------------------------------------ the tests


@pytest.mark.parametrize("name", toc_pages())
def test_page_works_offline(open_page, name):
    """Renders with nothing from outside; every figure control changes its figure; readable in dark mode."""
    page, watch = open_page(name)
    wait_until_rendered(page, expected_on(name))
    assert {kind: found for kind, found in watch.problems().items() if found} == {}
    assert figures_without_data(page) == []
    assert unrendered_maths(page) == 0
    chapter = CHAPTER_FIRST_PAGE.match(name)
    if chapter:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{chapter[1]}.png"), full_page=True)
    for figure, kind, control in figure_controls(name):
        check_control_changes_the_drawing(page, name, figure, kind, control)
    check_readable_in_dark_mode(page)
    assert {kind: found for kind, found in watch.problems().items() if found} == {}


def test_the_interactive_checks_have_figures_to_check(build_log):
    # the controls are read from the built pages: make sure there are some to drive
    controls = {name: figure_controls(name) for name in toc_pages()}
    assert sum(map(len, controls.values())) >= 10
    assert all(controls[f"book/{name}"] for name in ("01-convolution/arithmetic", "04-architectures/cost",
                                                      "06-detection/boxes", "06-detection/nms", "06-detection/metrics"))
