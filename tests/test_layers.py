"""The layers of DESIGN.md import downward only: data -> metrics -> explain -> zoo -> pvp -> viz
-> widgets. Every import statement of every module (function-level ones included) is read with
``ast``, so an upward import fails here even where it is only reached at run time."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "qgnb"
LAYERS = ["data", "metrics", "explain", "zoo", "pvp", "viz", "widgets"]


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (``None`` for the package root or outside)."""
    parts = module.split(".")
    return parts[1] if parts[0] == "qgnb" and len(parts) > 1 else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path``, relative ones resolved."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            found.append((node.lineno, target))
            # `from qgnb import viz` names a layer in the alias, not in the module
            if target == "qgnb":
                found += [(node.lineno, f"qgnb.{alias.name}") for alias in node.names]
    return found


def upward_imports(path: Path) -> list[str]:
    here = layer_of(module_name(path))
    if here not in LAYERS:
        return []
    rank = LAYERS.index(here)
    return [
        f"{path.relative_to(PACKAGE.parent)}:{line} imports {target} (layer {layer_of(target)})"
        for line, target in imported_modules(path)
        if layer_of(target) in LAYERS and LAYERS.index(layer_of(target)) > rank
    ]


SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_imports_point_downward(path):
    assert upward_imports(path) == []


# Above every layer: the command line (``qgnb``, ``python -m qgnb``) and the public testing
# helper (``qgnb.testing.assert_no_regression``), which users import by those names.
ENTRY_POINTS = {"__init__", "__main__", "cli", "testing"}


def test_top_level_holds_only_the_layers_and_entry_points():
    top = {p.stem for p in PACKAGE.glob("*.py")} | {
        p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").is_file()
    }
    assert top == ENTRY_POINTS | set(LAYERS)


def test_an_upward_import_is_caught(tmp_path, monkeypatch):
    fake = tmp_path / "qgnb"
    (fake / "metrics").mkdir(parents=True)
    bad = fake / "metrics" / "bad.py"
    bad.write_text(
        "import numpy\n\ndef f():\n    from ..zoo import load\n    from qgnb import viz\n"
    )
    monkeypatch.setattr(__import__(__name__), "PACKAGE", fake)
    assert imported_modules(bad) == [(1, "numpy"), (4, "qgnb.zoo"), (5, "qgnb"), (5, "qgnb.viz")]
    assert upward_imports(bad) == [
        "qgnb/metrics/bad.py:4 imports qgnb.zoo (layer zoo)",
        "qgnb/metrics/bad.py:5 imports qgnb.viz (layer viz)",
    ]
