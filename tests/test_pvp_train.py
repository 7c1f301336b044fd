"""The training entry point end to end on a tiny budget: card, reload, resume, lineage."""

import json

import pytest

from qgnb.pvp import train as train_module
from qgnb.pvp.cards import card, load
from qgnb.pvp.recipes import recipe


@pytest.fixture
def small_eval(monkeypatch):
    monkeypatch.setattr(train_module, "EVAL", {"n": 1, "seed": 0})
    monkeypatch.setattr(train_module, "CURVE_IMAGES", 1)
    monkeypatch.setattr(train_module, "CHECK", {"split": "id", "n": 1, "seed": 7})


def test_train_writes_a_reproducible_card_resumes_and_chains(tmp_path, small_eval):
    work = tmp_path / "work"
    info = train_module.train("pvp-stage1", tmp_path, work, steps=2, vision="random:0")
    assert info["steps"] == 2 and info["vision"] == "random:0" and not info["vision_adapted"]
    assert [p["step"] for p in info["curve"]] == [2]
    assert set(info["eval"]) == {"id", "ood"}
    assert card("pvp-stage1", tmp_path)["check"] == json.loads(json.dumps(info["check"]))
    model, tokenizer, processor = load("pvp-stage1", tmp_path)
    again = train_module.evaluate(recipe("pvp-stage1"), model, tokenizer, processor, "id", 1, 7)
    assert again["mae"] == pytest.approx(info["check"]["mae"], nan_ok=True)
    assert again["unparseable"] == info["check"]["unparseable"]

    # A rerun finds the finished state in the work folder and trains no further.
    assert (work / "pvp-stage1.pt").is_file()
    rerun = train_module.train("pvp-stage1", tmp_path, work, steps=2, vision="random:0")
    assert [(p["step"], p["loss"]) for p in rerun["curve"]] == [
        (p["step"], p["loss"]) for p in info["curve"]]

    # A regime starts from stage 1, inherits its tower source and records the lineage.
    child = train_module.train("pvp-connector-lm-vision", tmp_path, work, steps=1)
    assert child["vision_adapted"] and child["vision"] == "random:0"
    assert [s["name"] for s in child["stages"]] == ["pvp-stage1", "pvp-connector-lm-vision"]
    assert child["trainable_parameters"] == child["total_parameters"]
