"""nbval settings for the notebooks in this folder.

Figures are checked through the numbers the notebooks print beside them, so plotly's JSON
(exact floats and layout defaults that move with plotly's version) and widget views (random
model ids) are never compared; their cells also carry ``# NBVAL_IGNORE_OUTPUT``.
"""

SKIPPED_MIME_TYPES = (
    "application/vnd.plotly.v1+json",
    "application/vnd.jupyter.widget-view+json",
)


def pytest_collectstart(collector):
    if collector.fspath and collector.fspath.ext == ".ipynb":
        collector.skip_compare += SKIPPED_MIME_TYPES
