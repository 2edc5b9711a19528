"""Runs inside the student's kernel, before the first cell: watches and caps.

The grader pastes this file's source into a hidden first cell (the kernel cannot import
``autograder``: the sandbox hides it) followed by a call to :func:`install`. It

* records every use of the reference package ``cvprep`` by the student's own code
  (an import of it, or opening one of its files) and every file the student's code opens
  outside its own folder and the Python installation. "The student's own code" is any
  frame compiled from a cell whose source is not one of the instructor's locked cells,
  so the hidden tests may import ``cvprep.testing`` while a solution may not import
  ``cvprep.conv``, not even when a test calls it;
* caps what one cell may print (characters, not lines), so a runaway ``print`` cannot
  flood the grader or the feedback.

A hidden last cell calls :func:`report`, which displays the record as JSON under
:data:`REPORT_MIME`; the grader reads it and removes both cells again. A student who
tries hard can defeat any in-process check; this one catches honest mistakes and casual
shortcuts, and the sandbox (not this guard) is what keeps the hidden tests and the
gradebook out of reach.
"""

import builtins
import hashlib
import importlib
import linecache
import os
import sys

REPORT_MIME = "application/vnd.cvprep.guard+json"
MAX_EVENTS = 50


def source_hash(source):
    """The key of a cell: its stripped source, hashed (the grader computes the same)."""
    return hashlib.sha1(source.strip().encode("utf-8")).hexdigest()


class _CappedStream:
    """Forward writes to ``stream`` until the cell has printed ``state["cap"]`` characters."""

    def __init__(self, stream, state):
        self._stream = stream
        self._state = state

    def write(self, text):
        state = self._state
        room = state["cap"] - state["printed"]
        state["printed"] += len(text)
        if room > 0:
            self._stream.write(text[:room])
        if len(text) > room and not state["cut"]:
            state["cut"] = True
            state["cut_cells"] += 1
            state["stdout"].write(f"\n[output cut by the grader after {state['cap']:,} characters]\n")
        return len(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


def install(trusted_hashes, reference_roots, max_output_chars):
    """Start watching. ``trusted_hashes``: :func:`source_hash` of the instructor's cells."""
    trusted = set(trusted_hashes)
    roots = tuple(os.path.realpath(p) for p in reference_roots)
    own = os.path.realpath(os.getcwd())
    library = tuple(os.path.realpath(p) for p in {sys.prefix, sys.base_prefix, sys.exec_prefix} if p)
    system = ("/usr", "/lib", "/lib64", "/bin", "/etc", "/dev", "/proc", "/sys")
    events = []
    seen = set()
    busy = [False]
    cell_keys = {}

    def inside(path, folders):
        return any(path == f or path.startswith(f.rstrip("/") + "/") for f in folders)

    def student_cell(frame):
        # The innermost frame compiled from a cell the instructor did not write.
        while frame is not None:
            filename = frame.f_code.co_filename
            key = cell_keys.get(filename)
            if key is None:
                entry = linecache.cache.get(filename)
                if entry is not None and len(entry) == 4 and entry[1] is None:  # an IPython cell
                    key = source_hash("".join(entry[2]))
                else:
                    key = ""
                cell_keys[filename] = key
            if key and key not in trusted:
                return key
            frame = frame.f_back
        return None

    def record(kind, target, frame):
        cell = student_cell(frame)
        if cell is None:
            return
        key = (kind, target, cell)
        if key not in seen and len(events) < MAX_EVENTS:
            seen.add(key)
            events.append({"kind": kind, "target": target, "cell": cell})

    def is_reference(name):
        return isinstance(name, str) and (name == "cvprep" or name.startswith("cvprep."))

    def audit(event, args):
        if busy[0] or event not in ("import", "open"):
            return
        busy[0] = True
        try:
            if event == "import" and is_reference(args[0]):
                record("import", args[0], sys._getframe(1))
            elif event == "open" and isinstance(args[0], (str, bytes)):
                path = os.fsdecode(args[0])
                path = os.path.realpath(path if os.path.isabs(path) else os.path.join(os.getcwd(), path))
                if inside(path, roots):
                    record("open", path, sys._getframe(1))
                elif not inside(path, (own,) + library + system):
                    record("open-outside", path, sys._getframe(1))
        finally:
            busy[0] = False

    original_import = builtins.__import__
    original_import_module = importlib.import_module

    def record_import(name, frame):
        # A module already in sys.modules raises no audit event, so the wrappers below look too.
        if is_reference(name) and not busy[0]:
            busy[0] = True
            try:
                record("import", name, frame)
            finally:
                busy[0] = False

    def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0:
            record_import(name, sys._getframe(1))
        return original_import(name, globals, locals, fromlist, level)

    def guarded_import_module(name, package=None):
        record_import(name, sys._getframe(1))
        return original_import_module(name, package)

    builtins.__import__ = guarded_import
    importlib.import_module = guarded_import_module
    sys.addaudithook(audit)

    state = {"cap": max_output_chars, "printed": 0, "cut": False, "cut_cells": 0, "stdout": sys.stdout}
    sys.stdout = _CappedStream(sys.stdout, state)
    sys.stderr = _CappedStream(sys.stderr, state)

    def new_cell(*_):
        state["printed"], state["cut"] = 0, False

    shell = get_ipython()  # noqa: F821 - defined in every IPython kernel
    shell.events.register("pre_run_cell", new_cell)

    def report():
        from IPython.display import display

        display({REPORT_MIME: {"events": events, "cut_cells": state["cut_cells"]}}, raw=True)

    return report
