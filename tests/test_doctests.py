"""Every runnable example in the package's docstrings gives what it shows.

One test per module of ``qgnb``, found by walking the package, so a new module is covered
without being listed, and each test asserts that examples ran. Package ``__init__`` files only
re-export, so they hold none.
"""

import doctest
import importlib
import pkgutil

import pytest

import qgnb

# ``python -m qgnb`` only runs the command line of `qgnb.cli`, whose examples run here.
ENTRY_POINTS = {"qgnb.__main__"}
MODULES = sorted(
    info.name for info in pkgutil.walk_packages(qgnb.__path__, prefix="qgnb.")
    if info.name not in ENTRY_POINTS
)
PACKAGES = {info.name for info in pkgutil.walk_packages(qgnb.__path__, prefix="qgnb.")
            if info.ispkg}


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    # By module path: a package re-exports functions, and doctest only collects an object
    # from the module that defines it, so each example runs exactly once.
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"
    if name in PACKAGES:
        return
    assert result.attempted > 0, f"{name}: no docstring example ran"


def test_the_walk_found_every_layer():
    layers = {"qgnb.data", "qgnb.metrics", "qgnb.explain", "qgnb.zoo", "qgnb.pvp", "qgnb.viz",
              "qgnb.widgets"}
    assert layers <= set(MODULES)
    assert len(MODULES) > 40
