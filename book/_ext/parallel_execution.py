"""Execute the pages that need it on every core before Sphinx reads them one by one.

myst-nb executes notebooks while Sphinx reads them, one page at a time, so a clean build
uses one core for the longest part of its work. Before reading starts, this module finds
the notebook pages whose code is not in the execution cache, executes them in parallel
(one kernel per page, ``cvprep_execution_jobs`` at a time, default: one per core) and
stores the results exactly as myst-nb would. myst-nb then finds every page in the cache.

A page that fails here is simply not cached: myst-nb executes it again and reports the
error as usual.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from sphinx.util import logging

logger = logging.getLogger(__name__)


def _excluded(path: Path, patterns: list[str]) -> bool:
    return any(PurePosixPath(path.as_posix()).match(pattern) for pattern in patterns)


def pages_to_execute(env, docnames, cache) -> list[tuple[Path, object, dict]]:
    """(path, notebook, jupyter-cache read format) of every page myst-nb would execute."""
    from myst_nb.core.read import create_nb_reader

    config = env.mystnb_config
    pending = []
    for docname in sorted(docnames):
        path = Path(env.doc2path(docname))
        if path.suffix != ".md" or _excluded(path, config.execution_excludepatterns):
            continue
        text = path.read_text(encoding="utf-8")
        reader = create_nb_reader(str(path), env.myst_config, config, text)
        if reader is None:  # a plain Markdown page
            continue
        notebook = reader.read(text)
        try:
            cache.match_cache_notebook(notebook)
        except KeyError:
            pending.append((path, notebook, reader.read_fmt))
    return pending


def _execute(path: Path, notebook, config):
    from jupyter_cache.executors.utils import single_nb_execution

    return single_nb_execution(notebook, cwd=str(path.parent), timeout=config.execution_timeout,
                               allow_errors=config.execution_allow_errors, meta_override=True)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


@contextmanager
def _threads_per_kernel(threads: int):
    """Kernels started inside share the cores instead of each taking all of them.

    Two kernels running torch with two threads each on two cores spend most of their
    time waiting for one another (a page took five times as long as alone).
    """
    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: str(max(1, threads)) for name in THREAD_VARIABLES})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def execute_in_parallel(app, env, docnames) -> None:
    config = env.mystnb_config
    if config.execution_mode != "cache" or app.config.cvprep_execution_jobs < 2:
        return
    from jupyter_cache import get_cache
    from jupyter_cache.base import CacheBundleIn

    cache = get_cache(config.execution_cache_path)
    pending = pages_to_execute(env, docnames, cache)
    if len(pending) < 2:
        return
    jobs = min(app.config.cvprep_execution_jobs, len(pending))
    logger.info(f"executing {len(pending)} pages, {jobs} at a time")
    # threads suffice: each page runs in its own kernel process, the thread only waits on it
    with ThreadPoolExecutor(max_workers=jobs) as pool, _threads_per_kernel((os.cpu_count() or 1) // jobs):
        futures = {pool.submit(_execute, path, notebook, config): (path, notebook, read_fmt)
                   for path, notebook, read_fmt in pending}
        for future in as_completed(futures):
            path, notebook, read_fmt = futures[future]
            result = future.result()
            if result.err is not None:
                logger.info(f"{path}: failed in parallel execution; it runs again when read")
                continue
            record = cache.add_nb_to_project(str(path), read_data=read_fmt)
            cache.cache_notebook_bundle(CacheBundleIn(notebook, record.uri, data={"execution_seconds": result.time}),
                                        check_validity=False, overwrite=True)
            logger.info(f"executed {path.relative_to(app.srcdir)} in {result.time:.1f} s")


def setup(app) -> None:
    app.add_config_value("cvprep_execution_jobs", os.cpu_count() or 1, "")
    app.connect("env-before-read-docs", execute_in_parallel)
