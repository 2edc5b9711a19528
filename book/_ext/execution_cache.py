"""Key the notebook execution cache on the cvprep package as well as on each page's code.

myst-nb re-runs a page only when the page's own code changes. The pages' numbers and
figures come from ``cvprep``, so a fix in the package must re-run them too. The cache
lives in ``_build/.jupyter_cache/cvprep-<hash of solutions/cvprep>``: a changed package
gets a fresh cache (and a full execution), an unchanged one reuses every result, for
every output folder (the site test's second build included).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

PACKAGE = Path("solutions") / "cvprep"
CACHE_ROOT = Path("_build") / ".jupyter_cache"
PREFIX = "cvprep-"


def package_hash(package: Path) -> str:
    """A short hash of every Python file of ``package`` (paths and contents)."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode())
        digest.update(b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _drop_stale_caches(root: Path, keep: Path) -> None:
    for folder in root.glob(PREFIX + "*"):
        if folder != keep and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)


def key_cache_on_package(app, config) -> None:
    if config.nb_execution_cache_path:  # a path set in _config.yml wins
        return
    source = Path(app.srcdir)
    root = source / CACHE_ROOT
    cache = root / (PREFIX + package_hash(source / PACKAGE))
    _drop_stale_caches(root, keep=cache)
    config.nb_execution_cache_path = str(cache)


def setup(app) -> None:
    app.connect("config-inited", key_cache_on_package)
