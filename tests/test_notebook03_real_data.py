"""Notebook 03's real-data section: skipped when left at its defaults, an error on a wrong path."""

import json
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "03_model_comparison.ipynb"


def _parameters_and_body() -> tuple[str, str]:
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    index = next(k for k, c in enumerate(cells) if "parameters" in c["metadata"].get("tags", []))
    return "".join(cells[index]["source"]), "".join(cells[index + 1]["source"])


def test_real_data_section_is_skipped_when_left_at_its_defaults(capsys):
    parameters, body = _parameters_and_body()
    namespace: dict = {}
    exec(parameters, namespace)
    assert namespace["REAL_CHECKPOINT"] is None and namespace["REAL_DATA"] is None
    exec(body, namespace)
    assert capsys.readouterr().out.startswith("skipped:")


def test_real_data_section_raises_on_a_wrong_given_path(tmp_path):
    parameters, body = _parameters_and_body()
    namespace: dict = {}
    exec(parameters, namespace)
    namespace.update(REAL_CHECKPOINT=str(tmp_path / "no-checkpoint"), REAL_DATA=str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"REAL_CHECKPOINT: .*no-checkpoint does not exist"):
        exec(body, namespace)
    (tmp_path / "no-checkpoint").mkdir()
    with pytest.raises(FileNotFoundError, match=r"REAL_DATA: .*refcoco\+ does not exist"):
        exec(body, namespace)
