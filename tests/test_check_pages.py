"""notebooks/check_pages.py in a real headless Chromium: what it catches, and a built page
with a formula, a figure and an explorer passing it. Skipped where Debian's chromium is not
installed (`.ci/run` installs it)."""

import importlib.util
import sys
from pathlib import Path

import nbformat
import plotly.graph_objects as go
import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def load(name):
    spec = importlib.util.spec_from_file_location(f"notebook_{name}", NOTEBOOKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


check = load("check_pages")
pytestmark = pytest.mark.skipif(not Path(check.CHROMIUM).is_file(),
                                reason=f"no Chromium at {check.CHROMIUM}")


def test_it_counts_drawn_figures_and_catches_errors_requests_and_reprs(tmp_path):
    fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 4]))
    fig.write_html(tmp_path / "good.html", include_plotlyjs="directory")  # plotly.min.js beside
    (tmp_path / "bad.html").write_text(
        '<html><body><script>console.error("boom")</script>'
        '<img src="https://example.invalid/x.png"><div class="plotly-graph-div"></div>'
        "<pre>MetricExplorer(children=(HBox(children=(Dropdown(</pre></body></html>"
    )
    good, bad = check.check_pages([tmp_path / "good.html", tmp_path / "bad.html"], timeout_s=30)
    assert good.ok and (good.figures, good.drawn) == (1, 1) and good.errors == []
    assert not bad.ok and (bad.figures, bad.drawn) == (1, 0)
    assert any("boom" in e for e in bad.errors)
    assert bad.outside == ["https://example.invalid/x.png"]
    assert bad.reprs == ["MetricExplorer(children="]


def test_main_fails_on_a_notebook_without_its_page(tmp_path, capsys):
    (tmp_path / "a.ipynb").write_text("{}")
    (tmp_path / "index.html").write_text("<html></html>")
    assert check.main([str(tmp_path)]) == 1
    assert "without a page: ['a.html']" in capsys.readouterr().err


def test_a_built_notebook_with_formula_figure_and_explorer_passes(tmp_path):
    build = load("build")
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# t\n\n" r"$$\text{IoU} = \frac{\sum_p \min(A, M)}{x}$$"),
        nbformat.v4.new_code_cell(
            "import numpy as np\nfrom qgnb.viz import map_figure\n"
            "from qgnb.widgets import MetricExplorer\n"
            "a = np.zeros((8, 8)); a[2, 3] = 1.0; img = np.zeros((8, 8, 3), np.uint8)\n"
            "map_figure(img, a, [[0, 0, 4, 4]], threshold=0.5)"
        ),
        nbformat.v4.new_code_cell("MetricExplorer([img], [a], [[[0, 0, 4, 4]]])"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, tmp_path / "t.ipynb")
    out = tmp_path / "build"
    assert build.main([str(tmp_path / "t.ipynb"), "--out", str(out)]) == 0
    page, index = check.check_pages([out / "t.html", out / "index.html"])
    assert page.ok, page.line()
    assert (page.figures, page.drawn) == (2, 2)  # the map and the explorer's first state
    assert index.ok and index.figures == 0
