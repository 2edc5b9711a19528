"""nbgrader preprocessors that run a submission under watch.

They replace nbgrader's ``Execute`` in the autograde step (see ``course.load_config``):

* :class:`InjectGuard` puts a hidden first cell that installs
  :mod:`autograder.kernel_guard` and a hidden last cell that reports what it saw;
* :class:`GuardedExecute` is nbgrader's ``Execute`` that survives a kernel which
  ignores the interrupt after a timeout or dies (``os._exit``, a resource limit): it
  kills the kernel, marks that cell and every later one as failed with the reason, and
  lets nbgrader grade what ran before;
* :class:`CollectGuard` takes the report out, removes the two cells, caps every output
  in characters, and writes what it found to ``report_dir/<student>/<notebook>.json``
  for the grader.
"""

from __future__ import annotations

import json
from pathlib import Path

from nbclient.exceptions import CellTimeoutError, DeadKernelError
from nbformat.v4 import new_code_cell, new_output
from nbgrader.preprocessors import Execute, NbGraderPreprocessor
from traitlets import Integer, List, Unicode

from autograder import kernel_guard

GUARD_TAG = "cvprep-grader-guard"
NOT_RUN = "NotRunByGrader"


def _is_instructor_cell(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("locked") or meta.get("grade")) and not meta.get("solution")


def _error(ename: str, evalue: str) -> dict:
    return new_output("error", ename=ename, evalue=evalue, traceback=[f"{ename}: {evalue}"])


class InjectGuard(NbGraderPreprocessor):
    """Add the guard's first and last cells (tagged so that nothing else mistakes them)."""

    reference_roots = List(Unicode(), help="folders of the reference package").tag(config=True)
    max_output_chars = Integer(20_000, help="characters one cell may print").tag(config=True)

    def preprocess(self, nb, resources):
        module = Path(kernel_guard.__file__).read_text()
        prologue = (
            "def __cvprep_grader_guard():\n"
            f"    namespace = {{'get_ipython': get_ipython, '__name__': 'cvprep_grader_guard'}}\n"
            f"    exec(compile({module!r}, '<grader guard>', 'exec'), namespace)\n"
            "    return namespace['install'](TRUSTED, "
            f"{list(self.reference_roots)!r}, {self.max_output_chars})\n"
            "__cvprep_grader_report = __cvprep_grader_guard()\n"
            "del __cvprep_grader_guard"
        )
        epilogue = "__cvprep_grader_report()"
        trusted = {kernel_guard.source_hash(c.source) for c in nb.cells
                   if c.cell_type == "code" and _is_instructor_cell(c)}
        trusted.add(kernel_guard.source_hash(epilogue))
        first = new_code_cell(prologue.replace("TRUSTED", repr(sorted(trusted))))
        for cell in (first, last := new_code_cell(epilogue)):
            cell.metadata["tags"] = [GUARD_TAG]
        nb.cells = [first, *nb.cells, last]
        return nb, resources


class GuardedExecute(Execute):
    """nbgrader's Execute, which carries on (marking cells failed) when the kernel is lost."""

    def preprocess(self, nb, resources, km=None):
        self._lost = None
        return super().preprocess(nb, resources, km)

    def preprocess_cell(self, cell, resources, index):
        if cell.cell_type != "code":
            return cell, self.resources
        if self._lost:
            cell.outputs = [_error(NOT_RUN, f"not run: {self._lost}")]
            return cell, self.resources
        try:
            return super().preprocess_cell(cell, resources, index)
        except (CellTimeoutError, DeadKernelError, TimeoutError, RuntimeError) as error:
            died = isinstance(error, DeadKernelError) or "died" in str(error).lower()
            if died:
                what = "KernelDied"
                self._lost = ("the kernel died in an earlier cell (os._exit, a crash, or a resource limit "
                              "such as CPU time)")
                message = "the kernel died while running this cell (os._exit, a crash, or a resource limit)"
            else:
                what = "CellTimeoutError"
                self._lost = "an earlier cell ran past the time limit and could not be interrupted"
                message = (f"this cell ran longer than {self.timeout} s and ignored the interrupt; "
                           "the grader stopped the kernel")
            cell.outputs.append(_error(what, message))
            self._stop_kernel()
            return cell, self.resources

    def _stop_kernel(self) -> None:
        """Kill the kernel now: it ignores interrupts, or it is already gone."""
        from jupyter_core.utils import run_sync

        try:
            if self.km is not None:
                run_sync(self.km.shutdown_kernel)(now=True)
        except Exception as error:  # noqa: BLE001 - the kernel is gone either way; grading goes on
            self.log.warning("could not shut the kernel down cleanly: %s", error)


def _cap(text: str, limit: int) -> tuple[str, bool]:
    if len(text) <= limit:
        return text, False
    return text[:limit] + f"\n[... cut by the grader: {len(text) - limit:,} more characters]", True


class CollectGuard(NbGraderPreprocessor):
    """Read and remove the guard's cells; cap outputs; write the findings for the grader."""

    report_dir = Unicode("", help="where to write <student>/<notebook>.json").tag(config=True)
    max_output_chars = Integer(20_000, help="characters kept of one output").tag(config=True)

    def preprocess(self, nb, resources):
        report, cells = None, []
        for cell in nb.cells:
            if GUARD_TAG in cell.metadata.get("tags", []):
                for output in cell.get("outputs", []):
                    if kernel_guard.REPORT_MIME in output.get("data", {}):
                        report = output["data"][kernel_guard.REPORT_MIME]
                continue
            cells.append(cell)
        nb.cells = cells
        capped = sum(self._cap_outputs(cell) for cell in nb.cells if cell.cell_type == "code")
        errors = [o.get("ename") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        findings = {
            "guard_ran": report is not None,
            "events": (report or {}).get("events", []),
            "cells_cut": (report or {}).get("cut_cells", 0) + capped,
            "errors": errors,
        }
        if self.report_dir:
            info = resources.get("nbgrader", {})
            path = Path(self.report_dir) / info.get("student", "unknown") / f"{info.get('notebook', 'notebook')}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(findings, indent=1))
        return nb, resources

    def _cap_outputs(self, cell) -> int:
        capped = 0
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                output["text"], cut = _cap(output.get("text", ""), self.max_output_chars)
                capped += cut
            elif output.get("output_type") == "error":
                output["evalue"], cut = _cap(str(output.get("evalue", "")), self.max_output_chars)
                capped += cut
                lines, total = [], 0
                for line in output.get("traceback", []):
                    line, cut_line = _cap(line, self.max_output_chars - total)
                    lines.append(line)
                    total += len(line)
                    capped += cut_line
                    if total >= self.max_output_chars:
                        break
                output["traceback"] = lines
            else:
                data = output.get("data", {})
                size = len(json.dumps(data))
                if size > self.max_output_chars:
                    output["data"] = {"text/plain": f"[a {size:,}-character output, removed by the grader]"}
                    capped += 1
        return bool(capped)
