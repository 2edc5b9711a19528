"""Markdown tables for the book."""

import pytest

from cvprep.widgets.tables import markdown_table, show_table


def test_markdown_table_formats_and_aligns():
    table = markdown_table([{"layer": "conv1", "params": 1792, "ratio": 0.5512}, {"layer": "a|b", "params": 9, "ratio": 1.0}])
    assert table.splitlines() == [
        "| layer | params | ratio |",
        "| :-- | --: | --: |",
        "| conv1 | 1,792 | 0.5512 |",
        "| a\\|b | 9 | 1 |",
    ]


def test_show_table_is_markdown():
    assert show_table([{"a": 1}])._repr_markdown_() == "| a |\n| --: |\n| 1 |"


@pytest.mark.parametrize(
    "rows, align, pattern",
    [([], None, "at least one row"), ([{"a": 1}, {"b": 2}], None, r"rows\[1\] has columns \['b'\]"),
     ([{"a": 1}], "lr", "one character per column")],
)
def test_markdown_table_rejects_bad_rows(rows, align, pattern):
    with pytest.raises(ValueError, match=pattern):
        markdown_table(rows, align)
