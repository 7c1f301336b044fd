"""Open every page of a build folder in headless Chromium and check what a reader would see.

``python notebooks/check_pages.py build`` (``make browser-test``) loads each ``build/*.html``
from disk with the network cut off and fails (exit 1) when a page

- asks for anything that is not a local file (the request is aborted and named),
- logs a console error or raises a script error (a missing MathJax font file is one),
- holds a plotly figure that does not draw (its ``svg.main-svg`` never appears), or
- shows an explorer as its Python repr (``MetricExplorer(children=...``) instead of its
  first state.

It drives Debian's ``chromium`` (``apt-get install chromium``) through playwright; playwright's
own browser download is never used.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from pathlib import Path

from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FIGURES = "div.plotly-graph-div"
REPR_MARKERS = ("MetricExplorer(children=",)
# MathJax 2 typesets after load; its queue runs this callback once every formula is done.
MATHJAX_DONE = """() => new Promise(done => {
    if (!window.MathJax || !window.MathJax.Hub) { done(false); return; }
    window.MathJax.Hub.Queue(() => done(true));
})"""
FIGURES_DRAWN = """selector => [...document.querySelectorAll(selector)].every(
    div => div.querySelector("svg.main-svg"))"""


@dataclass
class PageReport:
    """What one page did: figures found and drawn, console errors, requests that left disk."""

    name: str
    figures: int = 0
    drawn: int = 0
    errors: list[str] = field(default_factory=list)
    outside: list[str] = field(default_factory=list)
    reprs: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the page loaded clean and drew every figure.

        >>> PageReport("a.html", figures=2, drawn=2).ok, PageReport("b.html", errors=["x"]).ok
        (True, False)
        """
        return not (self.errors or self.outside or self.reprs) and self.drawn == self.figures

    def line(self) -> str:
        """One line for the log.

        >>> PageReport("a.html", figures=3, drawn=2, outside=["https://x/y.js"]).line()
        'FAIL a.html: 2 of 3 figures drawn; 1 outside request(s): https://x/y.js'
        """
        parts = [f"{self.drawn} of {self.figures} figures drawn"]
        if self.errors:
            parts.append(f"{len(self.errors)} console error(s): " + " | ".join(self.errors))
        if self.outside:
            parts.append(f"{len(self.outside)} outside request(s): " + " ".join(self.outside))
        if self.reprs:
            parts.append("shows a Python repr: " + ", ".join(self.reprs))
        return f"{'ok' if self.ok else 'FAIL'} {self.name}: " + "; ".join(parts)


def check_pages(pages: list[Path], *, chromium: str = CHROMIUM,
                timeout_s: float = 60.0) -> list[PageReport]:
    """Load each page from disk in one headless Chromium and report what it did."""
    if not Path(chromium).is_file():
        raise FileNotFoundError(
            f"no Chromium at {chromium}: install Debian's (`apt-get install -y chromium`) or "
            "pass --chromium PATH"
        )
    reports = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        try:
            for page_path in pages:
                reports.append(_check_one(browser, page_path, timeout_s))
        finally:
            browser.close()
    return reports


def _check_one(browser, page_path: Path, timeout_s: float) -> PageReport:
    report = PageReport(page_path.name)
    page = browser.new_page()

    def route(r):
        # Only files on this disk may load; anything else is named and never leaves.
        if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
            r.continue_()
        else:
            report.outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and report.errors.append(m.text))
    page.on("pageerror", lambda e: report.errors.append(f"script error: {e}"))
    try:
        try:
            page.goto(page_path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1000)
        except PlaywrightTimeout:
            report.errors.append(f"the page did not finish loading within {timeout_s:g} s")
        page.evaluate(MATHJAX_DONE)
        report.figures = page.locator(FIGURES).count()
        if report.figures:
            try:
                page.wait_for_function(FIGURES_DRAWN, arg=FIGURES, timeout=timeout_s * 1000)
            except PlaywrightTimeout:  # counted below as figures that did not draw
                pass
        report.drawn = page.locator(f"{FIGURES}:has(svg.main-svg)").count()
        text = page.inner_text("body")
        report.reprs = [marker for marker in REPR_MARKERS if marker in text]
    finally:
        page.close()
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the build folder (make run writes build/)")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary")
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per page")
    args = parser.parse_args(argv)
    pages = sorted(args.folder.glob("*.html"))
    built = sorted(args.folder.glob("*.ipynb"))
    missing = [nb.with_suffix(".html").name for nb in built
               if not nb.with_suffix(".html").is_file()]
    if not pages or missing:
        print(f"{args.folder}: no pages to check (run `make run` first)" if not pages
              else f"{args.folder}: executed notebooks without a page: {missing}",
              file=sys.stderr)
        return 1
    reports = check_pages(pages, chromium=args.chromium, timeout_s=args.timeout)
    for report in reports:
        print(report.line(), flush=True)
    failed = [r.name for r in reports if not r.ok]
    figures = sum(r.figures for r in reports)
    print(f"{len(reports)} pages, {sum(r.drawn for r in reports)} of {figures} figures drawn, "
          f"{len(failed)} failed" + (f": {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
