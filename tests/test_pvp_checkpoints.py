"""Shipped PVP checkpoints load and reproduce their cards' figures on the cards' fixed slice."""

import json

import pytest
import torch

from qgnb.pvp.cards import CHECKPOINTS, card, load, load_directory, save
from qgnb.pvp.model import build_vlm, random_vision_tower
from qgnb.pvp.recipes import RECIPES
from qgnb.pvp.tokenizer import build_tokenizer
from qgnb.pvp.train import evaluate

SHIPPED = sorted(p.name for p in CHECKPOINTS.iterdir() if (p / "card.json").is_file())


def test_every_recipe_is_shipped():
    assert SHIPPED == sorted(RECIPES)


@pytest.mark.parametrize("name", SHIPPED)
def test_checkpoint_reproduces_its_card_on_the_check_slice(name):
    info = card(name)
    model, tokenizer, processor = load(name)
    check = info["check"]
    got = evaluate(RECIPES[name], model, tokenizer, processor, check["split"], check["n"],
                   check["seed"])
    for key, value in got.items():
        assert value == pytest.approx(check[key], abs=1e-6), key


@pytest.mark.parametrize("name", SHIPPED)
def test_card_counts_and_lineage(name):
    info = card(name)
    assert info["command"] == f"python -m qgnb.pvp.train {name}"
    assert info["stages"][-1] == {"name": name, "task": RECIPES[name].task,
                                  "regime": RECIPES[name].regime, "steps": info["steps"]}
    assert info["vision_adapted"] == any("vision" in s["regime"] for s in info["stages"])
    assert (CHECKPOINTS / name / "model.safetensors").stat().st_size < 8_000_000


def test_save_and_load_round_trip_without_the_frozen_tower(tmp_path):
    tok = build_tokenizer(["the"], locations=8)
    tower, _ = random_vision_tower(seed=3)
    model = build_vlm(tower, tok, 8, layers=1, image_source="oracle")
    info = {"vision": "random:3", "vision_adapted": False, "grid": 8, "image_source": "oracle",
            "lm": {"hidden": 128, "layers": 1, "heads": 4}}
    save(model, tok, info, tmp_path)
    again, tok2, _ = load_directory(tmp_path)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, msg=key)
    assert tok2.to_str() == tok.to_str()
    assert json.loads((tmp_path / "card.json").read_text())["vision"] == "random:3"
    assert again.image_source == "oracle"
    assert not list(tmp_path.glob("*.partial"))  # written beside, then renamed


def test_missing_checkpoint_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing model.safetensors"):
        load_directory(tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m qgnb.pvp.train nothing"):
        card("nothing", tmp_path)
