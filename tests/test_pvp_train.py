"""The training entry point end to end on a tiny budget: card, reload, resume, lineage,
stage 0's language model carried into a regime, seeds, and the resume safeguards."""

import json

import pytest
import torch

from qgnb.pvp import train as train_module
from qgnb.pvp.cards import card, load
from qgnb.pvp.recipes import chain, recipe


@pytest.fixture
def small_eval(monkeypatch):
    monkeypatch.setattr(train_module, "EVAL", {"n": 1, "seed": 0})
    monkeypatch.setattr(train_module, "CURVE_IMAGES", 1)
    monkeypatch.setattr(train_module, "CHECK", {"split": "id", "n": 1, "seed": 7})


def test_train_writes_a_reproducible_card_resumes_and_chains(tmp_path, small_eval):
    work = tmp_path / "work"
    info = train_module.train("pvp-stage0", tmp_path, work, steps=2, vision="random:0")
    assert info["steps"] == 2 and info["vision"] == "random:0" and not info["vision_adapted"]
    assert info["image_source"] == "oracle" and info["seed"] == 0
    assert [p["step"] for p in info["curve"]] == [2]
    assert set(info["eval"]) == {"id", "ood"} and "mae_object" in info["eval"]["id"]
    assert card("pvp-stage0", tmp_path)["check"] == json.loads(json.dumps(info["check"]))
    model, tokenizer, processor = load("pvp-stage0", tmp_path)
    again = train_module.evaluate(recipe("pvp-stage0"), model, tokenizer, processor, "id", 1, 7)
    assert again["mae"] == pytest.approx(info["check"]["mae"], nan_ok=True)
    assert again["unparseable"] == info["check"]["unparseable"]

    # A rerun finds the finished state in the work folder and trains no further.
    assert (work / "seed-0" / "pvp-stage0.pt").is_file()
    assert not list(work.rglob("*.partial"))
    rerun = train_module.train("pvp-stage0", tmp_path, work, steps=2, vision="random:0")
    assert [(p["step"], p["loss"]) for p in rerun["curve"]] == [
        (p["step"], p["loss"]) for p in info["curve"]]

    # Saved state from another recipe (here: another step count) is refused, not resumed.
    with pytest.raises(ValueError, match="another recipe.*--fresh"):
        train_module.train("pvp-stage0", tmp_path, work, steps=3, vision="random:0")

    # A regime takes stage 0's language model only: fresh connector, the tower's tokens.
    child = train_module.train("pvp-connector-lm-vision", tmp_path, work, steps=1)
    assert child["vision_adapted"] and child["vision"] == "random:0"
    assert child["image_source"] == "tower"
    assert [s["name"] for s in child["stages"]] == ["pvp-stage0", "pvp-connector-lm-vision"]
    assert child["trainable_parameters"] == child["total_parameters"]
    frozen = train_module.train("pvp-connector", tmp_path, work, steps=1)
    stage0, _, _ = load("pvp-stage0", tmp_path)
    regime, _, _ = load("pvp-connector", tmp_path)
    for key, value in stage0.lm.state_dict().items():  # the connector regime froze the LM
        torch.testing.assert_close(regime.lm.state_dict()[key], value, msg=key)
    assert frozen["trainable_parameters"] == sum(p.numel() for p in regime.connector.parameters())


def test_a_missing_parent_names_the_command_that_makes_it(tmp_path, small_eval):
    with pytest.raises(FileNotFoundError, match="python -m qgnb.pvp.train pvp-stage0`"):
        train_module.train("pvp-connector", tmp_path, tmp_path / "work", steps=1, seed=3,
                           shared_root=tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="python -m qgnb.pvp.train pvp-connector-lm "
                                                "--seed 3"):
        train_module.train("seg-frozen-encoder", tmp_path, tmp_path / "work", steps=1, seed=3)


def test_seeds_share_stage0_change_the_draws_and_store_their_cards(tmp_path, small_eval):
    results, shared = tmp_path / "results", tmp_path / "seed0"
    train_module.train("pvp-stage0", shared, tmp_path / "work", steps=1, vision="random:0")
    with pytest.raises(ValueError, match="trained once, with seed 0"):
        train_module.train("pvp-stage0", shared, tmp_path / "work", steps=1, seed=5)
    kwargs = {"work": tmp_path / "work", "steps": 1, "results": results, "shared_root": shared}
    one = train_module.train("pvp-connector", tmp_path / "a", seed=0, **kwargs)
    two = train_module.train("pvp-connector", tmp_path / "b", seed=5, **kwargs)
    assert one["curve"][0]["loss"] != two["curve"][0]["loss"]
    assert two["command"] == "python -m qgnb.pvp.train pvp-connector --seed 5"
    assert [s["name"] for s in two["stages"]] == ["pvp-stage0", "pvp-connector"]
    stored = json.loads((results / "seed-5" / "pvp-connector.json").read_text())
    assert stored["eval"] == json.loads(json.dumps(two["eval"]))
    assert not (results / "seed-0").exists()  # seed 0's cards are the shipped checkpoints


def test_recipes_chain_through_stage0_and_take_its_lm_only():
    assert chain("seg-frozen-encoder") == ["pvp-stage0", "pvp-connector-lm",
                                           "seg-frozen-encoder"]
    assert recipe("pvp-stage0").image_source == "oracle"
    assert recipe("pvp-stage0").shared_across_seeds
    assert recipe("pvp-stage0").detail_share == 0.5
    regimes = [recipe(n) for n in ("pvp-connector", "pvp-connector-lm",
                                   "pvp-connector-lm-vision")]
    assert all(r.init_lm_only and r.init_from == "pvp-stage0" for r in regimes)
    # The regimes differ only in what they train: same steps, same queries.
    assert len({(r.steps, r.detail_share, r.learning_rate) for r in regimes}) == 1
    with pytest.raises(ValueError, match="init_lm_only needs init_from"):
        type(recipe("pvp-stage0"))("pvp", "connector", 1, init_lm_only=True)
