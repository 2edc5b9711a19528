"""Look at a submission before nbgrader does, and repair what would stop it.

nbgrader grades a well-formed copy of the student version. Real submissions are often
not: the file is missing, renamed, empty or cut off; a graded cell was deleted, copied
or lost its metadata (some editors strip it); a locked test was edited. nbgrader then
drops the student, stops the whole batch (a duplicated grade id) or quietly restores the
test. :func:`prescreen` reads the submission, rebuilds it cell by cell against the
released notebook, and says what it found, so that every student gets a row and a
reason, and the original tests always run.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.corpus.words import generate_corpus_id as random_cell_id

# Flags: short, stable words for grades.csv; the notes say what exactly happened.
RENAMED = "renamed-notebook"
DUPLICATE = "duplicate-cell"
METADATA = "metadata-restored"
DELETED = "deleted-cell"
TAMPERED = "tampered"


@dataclass
class Prescreened:
    """What :func:`prescreen` found: a notebook ready for nbgrader, or why there is none."""

    status: str  # "ok", "missing" or "unreadable"
    notebook: nbformat.NotebookNode | None = None
    flags: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    raw: bytes = b""  # the submitted file, for the fingerprint

    def flag(self, flag: str, note: str) -> None:
        if flag not in self.flags:
            self.flags.append(flag)
        self.notes.append(note)


def _grade_id(cell) -> str | None:
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def _is_solution(cell) -> bool:
    return bool(cell.get("metadata", {}).get("nbgrader", {}).get("solution"))


def _is_locked_code(cell) -> bool:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return cell.cell_type == "code" and bool(meta.get("locked") or meta.get("grade")) and not meta.get("solution")


def _same_source(a: str, b: str) -> bool:
    return a.strip().replace("\r\n", "\n") == b.strip().replace("\r\n", "\n")


def _defined_function(source: str) -> str | None:
    match = re.search(r"^def\s+([A-Za-z_]\w*)\s*\(", source, flags=re.MULTILINE)
    return match.group(1) if match else None


def locate(folder: Path, name: str) -> tuple[Path | None, str | None]:
    """The submitted notebook ``name`` in ``folder``; or the only notebook there if it was renamed."""
    expected = folder / name
    if expected.is_file():
        return expected, None
    others = sorted(p for p in folder.glob("*.ipynb") if p.is_file()) if folder.is_dir() else []
    if len(others) == 1:
        return others[0], f"{name} was submitted as {others[0].name}"
    return None, None


def read(path: Path, result: Prescreened) -> nbformat.NotebookNode | None:
    """Parse the file, or record why it cannot be read."""
    result.raw = path.read_bytes()
    if not result.raw.strip():
        result.status = "unreadable"
        result.notes.append(f"{path.name} is empty ({len(result.raw)} bytes)")
        return None
    try:
        with warnings.catch_warnings():  # old notebooks without cell ids are fine: ids are renewed below
            warnings.simplefilter("ignore")
            notebook = nbformat.reads(result.raw.decode("utf-8"), as_version=4)
    except UnicodeDecodeError as error:
        result.status = "unreadable"
        result.notes.append(f"{path.name} is not UTF-8 text ({error.reason} at byte {error.start})")
        return None
    except (json.JSONDecodeError, nbformat.reader.NotJSONError) as error:
        result.status = "unreadable"
        result.notes.append(f"{path.name} is not valid notebook JSON (cut off or edited by hand?): "
                            f"{str(error).splitlines()[0][:200]}")
        return None
    except Exception as error:  # noqa: BLE001 - nbformat raises many kinds; all mean unreadable
        result.status = "unreadable"
        result.notes.append(f"{path.name} is not a notebook nbformat can read: {type(error).__name__}: "
                            f"{str(error).splitlines()[0][:200] if str(error) else ''}")
        return None
    if not isinstance(notebook.get("cells"), list):
        result.status = "unreadable"
        result.notes.append(f"{path.name} has no list of cells")
        return None
    return notebook


def rebuild(student: nbformat.NotebookNode, release: nbformat.NotebookNode, result: Prescreened) -> nbformat.NotebookNode:
    """The student's cells, matched to the released ones; what is missing comes back from the release."""
    position = {_grade_id(c): i for i, c in enumerate(release.cells) if _grade_id(c)}
    by_cell_id = {c.get("id"): i for i, c in enumerate(release.cells) if c.get("id")}
    by_function = {_defined_function(c.source): i for i, c in enumerate(release.cells)
                   if _is_solution(c) and _defined_function(c.source)}
    matched: dict[int, int] = {}  # release index -> index into `placed`
    placed: list[tuple[int | None, nbformat.NotebookNode]] = []  # (release index, cell)

    for cell in student.cells:
        cell.setdefault("metadata", {})
        grade_id = _grade_id(cell)
        index = position.get(grade_id)
        if grade_id is not None and (index is None or index in matched):
            cell.metadata.pop("nbgrader", None)  # a copy or an invented id: keep it as the student's own cell
            if index is not None:
                result.flag(DUPLICATE, f"cell {grade_id!r} appears more than once; the first copy is graded")
            index = None
        elif grade_id is None and cell.cell_type == "code":
            index = _match_unmarked(cell, release, by_cell_id, by_function, matched)
            if index is not None:
                cell.metadata["nbgrader"] = dict(release.cells[index].metadata["nbgrader"])
                result.flag(METADATA, f"cell {_grade_id(cell)!r} had lost its nbgrader metadata; it was "
                                      "recognised and restored")
        if index is not None:
            original = release.cells[index]
            if _is_locked_code(original) and not _same_source(cell.source, original.source):
                result.flag(TAMPERED, f"locked cell {_grade_id(original)!r} was edited; the original was run")
            matched[index] = len(placed)
        placed.append((index, cell))
    return _with_missing_cells(placed, matched, release, result)


def _match_unmarked(cell, release, by_cell_id, by_function, matched) -> int | None:
    """The release cell an unmarked code cell came from: same cell id, else same function."""
    for index in (by_cell_id.get(cell.get("id")), by_function.get(_defined_function(cell.source))):
        if index is not None and index not in matched and release.cells[index].get("metadata", {}).get("nbgrader"):
            if release.cells[index].cell_type == "code":
                return index
    return None


def _with_missing_cells(placed, matched, release, result) -> nbformat.NotebookNode:
    cells = []
    last = -1
    for index, cell in placed:
        if index is not None:
            for missing in range(last + 1, index):
                cells.extend(_restore(release, missing, matched, result))
            last = max(last, index)
        cells.append(cell)
    for missing in range(last + 1, len(release.cells)):
        cells.extend(_restore(release, missing, matched, result))
    notebook = nbformat.v4.new_notebook(metadata=release.metadata, cells=cells)
    for cell in notebook.cells:
        cell["id"] = random_cell_id()  # a copied cell repeats its id; nbformat wants them unique
        if cell.cell_type == "code":
            cell.setdefault("outputs", [])
            cell.setdefault("execution_count", None)
        if not isinstance(cell.get("source"), str):
            cell["source"] = "".join(cell.get("source") or [])
    return notebook


def _restore(release, index, matched, result):
    if index in matched or not _grade_id(release.cells[index]):
        return []
    original = release.cells[index]
    if original.cell_type == "code":
        kind = "solution" if _is_solution(original) else "test" if original.metadata["nbgrader"].get("grade") else "locked"
        result.flag(DELETED, f"{kind} cell {_grade_id(original)!r} was missing; the released version was put back")
    return [nbformat.from_dict(json.loads(json.dumps(original)))]


def prescreen(folder: Path, release_path: Path) -> Prescreened:
    """Find, read and rebuild the submitted copy of the notebook at ``release_path``."""
    result = Prescreened(status="ok")
    path, renamed = locate(folder, release_path.name)
    if path is None:
        result.status = "missing"
        result.notes.append(f"no {release_path.name} in {folder}")
        return result
    if renamed:
        result.flag(RENAMED, renamed)
    student = read(path, result)
    if student is None:
        return result
    release = nbformat.read(release_path, as_version=4)
    result.notebook = rebuild(student, release, result)
    return result
