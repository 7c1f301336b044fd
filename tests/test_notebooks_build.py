"""notebooks/build.py: executed copies, offline HTML, the index, and the empty case."""

import doctest
import importlib.util
import os
import sys
from pathlib import Path

import nbformat
import pytest

BUILD_PY = Path(__file__).resolve().parents[1] / "notebooks" / "build.py"
spec = importlib.util.spec_from_file_location("notebook_build", BUILD_PY)
build = importlib.util.module_from_spec(spec)
sys.modules[spec.name] = build  # dataclasses look their module up there
spec.loader.exec_module(build)


def tiny_notebook(path: Path, *cells: str, summary: str | None = None) -> Path:
    """A notebook of code cells; ``summary`` is a code cell tagged ``summary``."""
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    if summary is not None:
        nb.cells.append(nbformat.v4.new_code_cell(summary, metadata={"tags": ["summary"]}))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)
    return path


def test_index_without_notebooks_says_so(tmp_path):
    results = build.build([], tmp_path / "out", timeout=60)
    assert results == []
    assert "There are no notebooks" in (tmp_path / "out" / "index.html").read_text()


def test_build_writes_offline_html_with_the_figure_and_an_index_with_summaries(tmp_path):
    nb = tiny_notebook(
        tmp_path / "fig.ipynb",
        "import os, plotly.graph_objects as go\n"
        "go.Figure(go.Scatter(x=[1, 2], y=[3, 4], name='the-trace'))",
        summary="print('pg_accuracy 0.750'); print(os.getcwd())",
    )
    out = tmp_path / "build"
    renderer = os.environ.get("PLOTLY_RENDERER")
    assert build.main([str(nb), "--out", str(out)]) == 0
    assert os.environ.get("PLOTLY_RENDERER") == renderer  # only the kernels saw "notebook"
    page = (out / "fig.html").read_text()
    assert "the-trace" in page and "Plotly.newPlot" in page
    assert "plotly.js v" in page  # the library itself is embedded
    assert not build.PLOTLY_CDN.search(page) and "mathjax/3" not in page
    # no script from any host; LaTeX renders with the MathJax copied beside the page
    assert not build.REMOTE_SCRIPT.search(page)
    assert '<script src="mathjax/MathJax.js?config=' in page
    assert (out / "mathjax" / "MathJax.js").is_file()
    index = (out / "index.html").read_text()
    assert '<a href="fig.html">fig</a>' in index  # no heading: the file name is the title
    # the summary cell ran in the notebook's folder
    assert f"<pre>pg_accuracy 0.750\n{tmp_path}\n</pre>" in index
    executed = nbformat.read(out / "fig.ipynb", as_version=4)
    assert [c.execution_count for c in executed.cells] == [1, 2]


def test_inplace_uses_the_default_renderer_and_keeps_a_failing_notebook(tmp_path):
    nb = tiny_notebook(tmp_path / "ok.ipynb", "import os; print(os.environ.get('PLOTLY_RENDERER'))")
    bad = tiny_notebook(tmp_path / "bad.ipynb", "1 / 0")
    before = bad.read_text()
    assert build.main([str(nb), str(bad), "--inplace"]) == 1
    stored = nbformat.read(nb, as_version=4).cells[0]
    assert stored.execution_count == 1 and stored.outputs[0].text == "None\n"
    assert bad.read_text() == before


def test_missing_notebook_is_named():
    with pytest.raises(FileNotFoundError, match="nowhere.ipynb"):
        build.main(["nowhere.ipynb", "--out", "unused"])


def test_docstring_examples_run():
    assert doctest.testmod(build).failed == 0
