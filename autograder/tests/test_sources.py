"""The exercise notebooks' solutions are the cvprep code, and the sync tool keeps them so."""

import textwrap

import nbformat
import pytest
import torch
from torch import nn

from autograder import course, sources
from cvprep import blocks, conv


def test_exercise_notebooks_match_cvprep():
    changes = sources.sync_all(course.EXERCISES, write=False)
    assert changes == [], "run `python -m autograder sync`: " + "; ".join(f"{c.cell_id} <- {c.reference}" for c in changes)


def test_function_body_starts_after_the_docstring():
    body = sources.function_body(conv.conv_output_size)
    assert body.startswith('size = check_int(size, "size", 1)')
    assert body.endswith("return (size + 2 * padding - span) // stride + 1")
    assert '"""' not in body


def test_solution_cell_is_filled_with_the_body():
    cell = textwrap.dedent('''
        def conv_output_size(size, kernel_size, stride=1, padding=0, dilation=1):
            """Learner-facing docstring."""
            ### BEGIN SOLUTION
            stale code
            ### END SOLUTION
    ''').strip()
    filled = sources.solution_cell(cell, "cvprep.conv:conv_output_size")
    assert "stale code" not in filled
    assert '    size = check_int(size, "size", 1)' in filled
    assert filled.startswith("def conv_output_size(") and filled.rstrip().endswith("### END SOLUTION")
    namespace = {"check_int": conv.check_int, "check_window_fits": conv.check_window_fits}
    exec(filled.replace("### BEGIN SOLUTION", "").replace("### END SOLUTION", ""), namespace)  # noqa: S102
    assert namespace["conv_output_size"](224, 7, 2, 3) == 112


def test_solution_cell_refuses_different_parameters():
    cell = 'def conv_output_size(n, k):\n    """x"""\n    ### BEGIN SOLUTION\n    ### END SOLUTION'
    with pytest.raises(ValueError, match=r"parameters \['n', 'k'\] differ from"):
        sources.solution_cell(cell, "cvprep.conv:conv_output_size")


def test_solution_cell_needs_one_region():
    with pytest.raises(ValueError, match="exactly one"):
        sources.solution_cell('def f():\n    """x"""\n', "cvprep.conv:conv_output_size")


def test_sync_rewrites_a_stale_notebook(tmp_path, source_notebook):
    stale = nbformat.from_dict(source_notebook)
    for cell in stale.cells:
        if cell.metadata.get("cvprep", {}).get("solution_from"):
            cell.source = cell.source.replace("return", "return  # edited by hand", 1)
    path = tmp_path / "stale.ipynb"
    nbformat.write(stale, path)
    changed = sources.sync_notebook(path)
    assert {c.cell_id for c in changed} == {"conv_output_size", "conv2d", "max_pool2d", "receptive_field"}
    assert sources.sync_notebook(path) == []  # now in sync
    assert nbformat.read(path, as_version=4).cells == source_notebook.cells


def test_cli_check_reports_in_sync(capsys):
    from autograder.__main__ import main

    assert main(["sync", "--check"]) == 0
    assert "match cvprep" in capsys.readouterr().out


# ---------------------------------------------------------------- classes, one method per solution region

SE_METHODS = ["cvprep.blocks:SqueezeExcitation.__init__", "cvprep.blocks:SqueezeExcitation.scale",
              "cvprep.blocks:SqueezeExcitation.forward"]
CLASS_CELL = textwrap.dedent('''
    class SqueezeExcitation(nn.Module):
        """Learner-facing docstring."""

        def __init__(self, channels, squeeze_channels, activation=nn.ReLU, scale_activation=nn.Sigmoid):
            ### BEGIN SOLUTION
            stale code
            ### END SOLUTION

        def scale(self, x):
            """The gate."""
            ### BEGIN SOLUTION
            stale code
            ### END SOLUTION

        def forward(self, x):
            ### BEGIN SOLUTION
            stale code
            ### END SOLUTION
''').strip()


def test_resolve_follows_a_class_to_its_method():
    assert sources.resolve("cvprep.blocks:Bottleneck.forward") is blocks.Bottleneck.forward
    assert sources.function_body(blocks.SqueezeExcitation.forward) == "return x * self.scale(x)"


def test_class_cell_is_filled_method_by_method():
    filled = sources.solution_cell(CLASS_CELL, SE_METHODS)
    assert "stale code" not in filled
    assert "        super().__init__()\n" in filled  # the method's indentation
    assert "        return x * self.scale(x)\n        ### END SOLUTION" in filled
    assert '        """The gate."""' in filled  # the notebook keeps its own docstrings
    assert sources.solution_cell(filled, SE_METHODS) == filled
    namespace = {"nn": nn, "torch": torch, "check_int": blocks.check_int, "_check_input": blocks._check_input,
                 "_make_activation": blocks._make_activation}
    exec(filled.replace(sources.BEGIN, "").replace(sources.END, ""), namespace)  # noqa: S102
    mine, reference = namespace["SqueezeExcitation"](8, 2), blocks.SqueezeExcitation(8, 2)
    mine.load_state_dict(reference.state_dict())
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(mine(x), reference(x))


def test_class_cell_needs_one_region_per_method():
    with pytest.raises(ValueError, match="needs 4 solution regions, one per reference in order; found 3"):
        sources.solution_cell(CLASS_CELL, [*SE_METHODS, "cvprep.blocks:SqueezeExcitation.forward"])


def test_class_cell_refuses_methods_in_the_wrong_order():
    with pytest.raises(ValueError, match="region in def scale is filled from cvprep.blocks:SqueezeExcitation.forward"):
        sources.solution_cell(CLASS_CELL, [SE_METHODS[0], SE_METHODS[2], SE_METHODS[1]])


def test_class_cell_refuses_different_method_parameters():
    cell = CLASS_CELL.replace("def scale(self, x):", "def scale(self, inputs):")
    with pytest.raises(ValueError, match=r"parameters \['self', 'inputs'\] differ from cvprep.blocks:SqueezeExcitation.scale"):
        sources.solution_cell(cell, SE_METHODS)


def test_a_region_outside_any_def_is_refused():
    with pytest.raises(ValueError, match="not inside a def"):
        sources.solution_cell(f"{sources.BEGIN}\nx = 1\n{sources.END}", "cvprep.conv:conv_output_size")


@pytest.mark.parametrize("source", [f"{sources.END}\n{sources.BEGIN}", f"{sources.BEGIN}\n{sources.BEGIN}\n{sources.END}",
                                    f"{sources.BEGIN}\n", f"{sources.BEGIN}\n{sources.END}\n{sources.END}"])
def test_unpaired_markers_are_refused(source):
    with pytest.raises(ValueError, match="must come in pairs"):
        sources.split_solutions(source)


@pytest.mark.parametrize("path", sorted(course.EXERCISES.glob("*/*.ipynb")), ids=lambda p: p.parent.name)
def test_sync_rewrites_every_stale_region_of_every_notebook(tmp_path, path):
    original = nbformat.read(path, as_version=4)
    stale = nbformat.from_dict(original)
    expected = set()
    for cell in stale.cells:
        if cell.metadata.get("cvprep", {}).get("solution_from"):
            cell.source = cell.source.replace(sources.BEGIN + "\n", sources.BEGIN + "\nstale = True  # edited by hand\n")
            expected.add(cell.metadata["nbgrader"]["grade_id"])
    nbformat.write(stale, tmp_path / path.name)
    assert {c.cell_id for c in sources.sync_notebook(tmp_path / path.name)} == expected
    assert nbformat.read(tmp_path / path.name, as_version=4).cells == original.cells
