"""Execute every notebook in this folder headless; write executed copies and offline HTML.

``python notebooks/build.py --out build`` executes each ``notebooks/*.ipynb`` on a fresh
``python3`` kernel (working directory ``notebooks/``, ``PLOTLY_RENDERER=notebook`` so that
nbconvert's HTML keeps the figures, with plotly.js embedded: no network needed), writes
``build/NAME.ipynb`` and ``build/NAME.html``, and ``build/index.html`` linking them together
with each notebook's summary tables (the printed output of its cells tagged ``summary``).

``python notebooks/build.py --inplace`` re-executes the committed notebooks in place with the
default renderer instead (no random div ids in the stored outputs), which is how their outputs
are refreshed for nbval. Both keep an explorer's static first state, not its widget view, so
it shows without a kernel; the page's MathJax uses the STIX-Web fonts its copy ships.

The build never fails for want of notebooks: with none, it writes an index that says so. A
notebook that raises is still written (up to the failing cell) and the build exits with 1.
"""

from __future__ import annotations

import argparse
import contextlib
import html
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import jupyter_server_mathjax
import nbformat
from jinja2 import DictLoader
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbconvert import HTMLExporter

NOTEBOOK_DIR = Path(__file__).resolve().parent
SUMMARY_TAG = "summary"
KERNEL = "python3"
# nbconvert's lab template loads require.js from a CDN; plotly's embedded bundle does not need
# it, so this template drops it and the figures work with the network unplugged.
OFFLINE_TEMPLATE = "qgnb_offline.html.j2"
# The MathJax copy (jupyter-server-mathjax) ships the STIX-Web fonts only; left to its default
# TeX fonts it logs ERR_FILE_NOT_FOUND for fonts/TeX/fontdata.js and typesets in the wrong fonts.
# Its font probe "MathJax_Blank" loads url('about:blank'), which a file:// page refuses with a
# console error; a local() name that never loads gives the probe the same answer, silently.
MATHJAX_FONTS = (
    '"HTML-CSS": {availableFonts: ["STIX-Web"], preferredFont: "STIX-Web", '
    'webFont: "STIX-Web", imageFont: null, '
    'styles: {"@font-face": {"font-family": "MathJax_Blank", src: "local(\'MathJax_Blank\')"}}}'
)
OFFLINE_TEMPLATE_SOURCE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}
<script type="text/x-mathjax-config">MathJax.Hub.Config({""" + MATHJAX_FONTS + """});</script>
{{ super() }}
{%- endblock html_head_js_mathjax -%}
"""
# Plotly's notebook renderer adds a MathJax 3 <script> from a CDN to every figure; the page
# already loads nbconvert's MathJax for the Markdown, and two MathJax versions on one page
# clash, so the build copies drop the figures' copy (the figures hold no LaTeX).
FIGURE_MATHJAX = re.compile(r"<script src=\"[^\"]*mathjax[^\"]*\"></script>", re.IGNORECASE)
PLOTLY_CDN = re.compile(r"<script[^>]+src=[\"'][^\"']*cdn\.plot\.ly", re.IGNORECASE)
# nbconvert loads MathJax (for the Markdown's LaTeX) from a CDN; the build copies MathJax 2.7
# from the jupyter-server-mathjax package beside the pages instead, so formulas render offline.
MATHJAX_FILES = Path(jupyter_server_mathjax.__file__).parent / "static"
MATHJAX_URL = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
REMOTE_SCRIPT = re.compile(r"<script[^>]+src=[\"'](?:https?:)?//", re.IGNORECASE)


@dataclass
class Result:
    """What happened to one notebook: name, seconds taken, error text, summary tables, title."""

    name: str
    seconds: float
    error: str | None = None
    summaries: list[str] = field(default_factory=list)
    title: str = ""


def notebooks(folder: Path = NOTEBOOK_DIR) -> list[Path]:
    """The notebooks to build, in name order (``01_...`` before ``02_...``).

    >>> [p.suffix for p in notebooks()] == [".ipynb"] * len(notebooks())
    True
    """
    return sorted(p for p in folder.glob("*.ipynb") if not p.name.startswith("."))


def execute(path: Path, *, timeout: int) -> tuple[nbformat.NotebookNode, str | None]:
    """Run ``path`` top to bottom on a fresh kernel in its own folder.

    Returns the executed notebook and the error text of the first failing cell (or None).
    Widget state is not stored: it only renders with a widget manager fetched from the net.
    """
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb,
        kernel_name=KERNEL,
        timeout=timeout,
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
        store_widget_state=False,
    )
    try:
        client.execute()
    except CellExecutionError as err:
        return nb, str(err)
    return nb, None


def title(nb: nbformat.NotebookNode) -> str:
    """The first Markdown heading of the notebook (``""`` if it has none).

    >>> title(nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# 01 · PG\\ntext")]))
    '01 · PG'
    """
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return ""


def summaries(nb: nbformat.NotebookNode) -> list[str]:
    """The stdout text of every code cell tagged ``summary``, in order.

    >>> cell = nbformat.v4.new_code_cell("print(1)", metadata={"tags": ["summary"]})
    >>> cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\\n")]
    >>> summaries(nbformat.v4.new_notebook(cells=[cell]))
    ['1\\n']
    """
    texts = []
    for cell in nb.cells:
        if cell.cell_type != "code" or SUMMARY_TAG not in cell.metadata.get("tags", []):
            continue
        text = "".join(
            out.get("text", "")
            for out in cell.get("outputs", [])
            if out.output_type == "stream" and out.name == "stdout"
        )
        if text:
            texts.append(text)
    return texts


def drop_figure_mathjax(nb: nbformat.NotebookNode) -> int:
    """Remove the MathJax script tags from the notebook's HTML outputs; return how many.

    >>> cell = nbformat.v4.new_code_cell("fig")
    >>> cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html":
    ...     '<div><script src="https://x/mathjax/tex-svg.js"></script><b>plot</b></div>'})]
    >>> nb = nbformat.v4.new_notebook(cells=[cell])
    >>> drop_figure_mathjax(nb), nb.cells[0].outputs[0].data["text/html"]
    (1, '<div><b>plot</b></div>')
    """
    dropped = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            html_text = out.get("data", {}).get("text/html")
            if isinstance(html_text, str):
                out.data["text/html"], n = FIGURE_MATHJAX.subn("", html_text)
                dropped += n
    return dropped


def static_widgets(nb: nbformat.NotebookNode) -> int:
    """Drop widget views from outputs that carry a static HTML copy too; return how many.

    Widget state is never stored (it needs a widget manager from the net), so a stored view
    can only show "Loading widget..." or the Python repr; the HTML copy (``MetricExplorer``'s
    first state) shows the figure and numbers instead. Running the cell brings the widget back.

    >>> cell = nbformat.v4.new_code_cell("explorer")
    >>> cell.outputs = [nbformat.v4.new_output("display_data", data={"text/plain": "X()",
    ...     "application/vnd.jupyter.widget-view+json": {"model_id": "1"}, "text/html": "<b>"})]
    >>> nb = nbformat.v4.new_notebook(cells=[cell])
    >>> static_widgets(nb), sorted(nb.cells[0].outputs[0].data)
    (1, ['text/html', 'text/plain'])
    """
    dropped = 0
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            data = out.get("data", {})
            if WIDGET_VIEW in data and "text/html" in data:
                del data[WIDGET_VIEW]
                dropped += 1
    return dropped


def to_html(nb: nbformat.NotebookNode, name: str) -> str:
    """Standalone HTML for an executed notebook; raises if it would fetch plotly.js online."""
    exporter = HTMLExporter(
        template_name="lab",
        extra_loaders=[DictLoader({OFFLINE_TEMPLATE: OFFLINE_TEMPLATE_SOURCE})],
        template_file=OFFLINE_TEMPLATE,
        mathjax_url=MATHJAX_URL,
    )
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": name}})
    if PLOTLY_CDN.search(body):
        raise RuntimeError(f"{name}.html loads plotly.js from cdn.plot.ly; it must be embedded")
    if remote := REMOTE_SCRIPT.search(body):
        raise RuntimeError(f"{name}.html loads a script from the network: {remote.group(0)}")
    return body


def index_html(results: list[Result]) -> str:
    """The index page: one entry per notebook with its status, links and summary tables.

    >>> "no notebooks" in index_html([])
    True
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8"><title>qgnb notebooks</title>',
        "<style>body{font-family:sans-serif;max-width:60em;margin:2em auto}"
        "pre{background:#f6f6f6;padding:.6em;overflow-x:auto}.failed{color:#b00}</style>",
        "</head><body><h1>qgnb notebooks</h1>",
    ]
    if not results:
        parts.append("<p>There are no notebooks in <code>notebooks/</code> yet.</p>")
    for res in results:
        name = html.escape(res.name)
        status = (
            '<span class="failed">failed</span>'
            if res.error
            else f"executed in {res.seconds:.0f} s"
        )
        parts.append(
            f'<h2><a href="{name}.html">{html.escape(res.title or res.name)}</a></h2>'
            f'<p><code>{name}</code> · {status} · <a href="{name}.ipynb">executed notebook</a></p>'
        )
        if res.error:
            parts.append(f'<pre class="failed">{html.escape(res.error[-3000:])}</pre>')
        parts.extend(f"<pre>{html.escape(text)}</pre>" for text in res.summaries)
    parts.append("</body></html>")
    return "\n".join(parts)


@contextlib.contextmanager
def plotly_renderer(name: str | None):
    """Set ``PLOTLY_RENDERER`` for the kernels started inside (unset it for None), then restore."""
    before = os.environ.get("PLOTLY_RENDERER")
    if name is None:
        os.environ.pop("PLOTLY_RENDERER", None)
    else:
        os.environ["PLOTLY_RENDERER"] = name
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PLOTLY_RENDERER", None)
        else:
            os.environ["PLOTLY_RENDERER"] = before


def build(paths: list[Path], out: Path, *, timeout: int) -> list[Result]:
    """Execute ``paths`` into ``out`` (ipynb + HTML) and write ``out/index.html``."""
    out.mkdir(parents=True, exist_ok=True)
    shutil.copytree(MATHJAX_FILES, out / "mathjax", dirs_exist_ok=True)
    results = []
    for path in paths:
        print(f"executing {path.name} ...", flush=True)
        start = time.perf_counter()
        # Only the build copies use the notebook renderer: it embeds plotly.js (offline HTML)
        # but gives every figure a random div id, which must stay out of the committed outputs.
        with plotly_renderer("notebook"):
            nb, error = execute(path, timeout=timeout)
        res = Result(path.stem, time.perf_counter() - start, error, summaries(nb), title(nb))
        drop_figure_mathjax(nb)
        static_widgets(nb)
        nbformat.write(nb, out / path.name)
        try:
            (out / f"{path.stem}.html").write_text(to_html(nb, path.stem), encoding="utf-8")
        except RuntimeError as err:
            res.error = str(err)
        print(f"  {'FAILED' if res.error else 'ok'} in {res.seconds:.0f} s", flush=True)
        results.append(res)
    (out / "index.html").write_text(index_html(results), encoding="utf-8")
    print(f"wrote {out / 'index.html'} ({len(results)} notebooks)")
    return results


def refresh_inplace(paths: list[Path], *, timeout: int) -> list[Result]:
    """Re-execute ``paths`` in place, with the default plotly renderer."""
    results = []
    for path in paths:
        print(f"executing {path.name} in place ...", flush=True)
        start = time.perf_counter()
        with plotly_renderer(None):
            nb, error = execute(path, timeout=timeout)
        res = Result(path.stem, time.perf_counter() - start, error)
        if error is None:
            static_widgets(nb)
            nbformat.write(nb, path)
        print(f"  {'FAILED (file left unchanged)' if error else 'ok'} in {res.seconds:.0f} s")
        results.append(res)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--out", type=Path, default=Path("build"), help="build folder")
    mode.add_argument(
        "--inplace", action="store_true", help="re-execute the committed notebooks in place"
    )
    parser.add_argument(
        "notebooks", nargs="*", type=Path, help="notebooks to run (default: notebooks/*.ipynb)"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or notebooks()
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"notebook(s) not found: {', '.join(missing)}")
    if args.inplace:
        results = refresh_inplace(paths, timeout=args.timeout)
    else:
        results = build(paths, args.out, timeout=args.timeout)
    failed = [r for r in results if r.error]
    for res in failed:
        print(f"{res.name} failed:\n{res.error}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
