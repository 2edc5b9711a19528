"""Small tables for the book's pages, computed in a cell and shown as Markdown."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def markdown_table(rows: Sequence[Mapping[str, object]], align: str | None = None) -> str:
    """Render rows (dicts sharing the same keys) as a GitHub/MyST Markdown table.

    Args:
        rows: one mapping per row; the first row's keys are the columns.
        align: one character per column, ``"l"``, ``"r"`` or ``"c"`` (default: numbers
            right-aligned, everything else left-aligned).

    Raises:
        ValueError: no rows, rows with different keys, or ``align`` of the wrong length.
    """
    if not rows:
        raise ValueError("rows must contain at least one row")
    columns = list(rows[0])
    for index, row in enumerate(rows):
        if list(row) != columns:
            raise ValueError(f"rows[{index}] has columns {list(row)}, expected {columns}")
    if align is None:
        align = "".join("r" if isinstance(rows[0][c], (int, float)) else "l" for c in columns)
    if len(align) != len(columns):
        raise ValueError(f"align must have one character per column ({len(columns)}), got {align!r}")
    rule = {"l": ":--", "r": "--:", "c": ":-:"}
    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join(rule[a] for a in align) + " |"]
    lines += ["| " + " | ".join(_cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def show_table(rows: Sequence[Mapping[str, object]], align: str | None = None):
    """Display :func:`markdown_table` as rich Markdown in a notebook or on the site."""
    from IPython.display import Markdown

    return Markdown(markdown_table(rows, align))
