"""Serve every script the site needs from the site itself: it must work with no network.

Sphinx, myst-nb and plotly default to CDNs for MathJax, require.js, the ipywidgets HTML
manager and plotly.js. ``_config.yml`` points ``mathjax_path`` and ``nb_ipywidgets_js``
at ``_static/vendor/`` instead, and this module fills that folder after each build:

* from ``node_modules/`` (``npm ci`` of the repository's package.json, run by
  ``make book``): MathJax, require.js and the HTML manager with its icon fonts;
* from the installed plotly package: ``plotly.min.js``.

The files go to the output folder, not to a source ``_static/`` folder, because Jupyter
Book adds every script found under a source ``_static/`` to every page.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from sphinx.errors import ExtensionError

VENDOR = "vendor"  # under _static/


@dataclass(frozen=True)
class Asset:
    """Files of an npm package copied to ``_static/vendor/<target>``."""

    package: str  # folder under node_modules/
    source: str  # a file or folder inside the package
    target: str  # path under _static/vendor/
    patterns: tuple[str, ...] = ("*",)  # for a folder: which files to take (no source maps)


NPM_ASSETS = (
    # tex-chtml.js loads its fonts, TeX extensions and menu from folders beside it
    Asset("mathjax", "es5", "mathjax"),
    Asset("requirejs", "require.js", "require.js"),
    # embed-amd.js is self-contained but for the Font Awesome files its CSS names
    Asset("@jupyter-widgets/html-manager", "dist", "html-manager",
          ("embed-amd.js", "*.woff2", "*.woff", "*.ttf", "*.eot", "*.svg")),
)


def _copy_if_changed(source: Path, target: Path) -> None:
    if target.exists() and target.stat().st_size == source.stat().st_size \
            and target.stat().st_mtime >= source.stat().st_mtime:
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)


def copy_asset(node_modules: Path, asset: Asset, static: Path) -> None:
    """Copy one asset from ``node_modules`` into ``static/vendor``."""
    source = node_modules / asset.package / asset.source
    if not source.exists():
        raise ExtensionError(
            f"{source} is missing: the site serves its own JavaScript. Run `make book`, "
            "which installs it with `npm ci` from package-lock.json.")
    target = static / VENDOR / asset.target
    if source.is_file():
        _copy_if_changed(source, target)
        return
    for pattern in asset.patterns:
        for path in source.rglob(pattern):
            if path.is_file():
                _copy_if_changed(path, target / path.relative_to(source))


def _copy_plotly(static: Path) -> None:
    import plotly

    _copy_if_changed(Path(plotly.__file__).parent / "package_data" / "plotly.min.js",
                     static / VENDOR / "plotly.min.js")


def copy_vendored_assets(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.outdir) / "_static"
    node_modules = Path(app.srcdir) / "node_modules"
    for asset in NPM_ASSETS:
        copy_asset(node_modules, asset, static)
    _copy_plotly(static)


def add_plotly_js(app, pagename, templatename, context, doctree) -> None:
    """Load plotly.js only on pages that draw a figure: it is the largest script of the site."""
    if "plotly-graph-div" in context.get("body", ""):
        app.add_js_file(f"{VENDOR}/plotly.min.js")


def _widget_scripts(app, docname: str) -> dict:
    """myst-nb's per-page scripts (the widget state and manager among them)."""
    from myst_nb.sphinx_ import NbMetadataCollector

    return NbMetadataCollector.get_doc_data(app.env).get(docname, {}).get("js_files", {})


def point_widget_manager_at_its_fonts(app, pagename, templatename, context, doctree) -> None:
    """The widget manager finds its icon fonts beside itself, not beside the page."""
    if "ipywidgets_state" in _widget_scripts(app, pagename):
        folder = context["pathto"](f"_static/{VENDOR}/html-manager/", 1)
        app.add_js_file(None, priority=400,  # before the manager itself (500)
                        body=f'window.__jupyter_widgets_assets_path__ = new URL("{folder}", document.baseURI).href;')


def setup(app) -> None:
    app.connect("html-page-context", add_plotly_js)
    app.connect("html-page-context", point_widget_manager_at_its_fonts)
    app.connect("build-finished", copy_vendored_assets)
