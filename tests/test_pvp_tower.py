"""PVP's pinned vision tower: loaded from PVP's own copy, its hash checked, in every card."""

import json
import shutil

import pytest
import torch

from qgnb.pvp.cards import load_directory, save
from qgnb.pvp.model import build_vlm, vision_tower
from qgnb.pvp.tokenizer import build_tokenizer
from qgnb.pvp.tower import TOWER_DIR, TOWER_SHA256, file_sha256, pinned_tower


def test_the_pinned_copy_has_the_pinned_hash_and_loads():
    assert file_sha256(TOWER_DIR / "model.safetensors") == TOWER_SHA256
    source = json.loads((TOWER_DIR / "source.json").read_text())
    assert source["sha256"] == TOWER_SHA256
    tower, processor = vision_tower("pinned")
    assert tower.config.hidden_size == 96 and tower.config.patch_size == 8
    assert processor.crop_size == {"height": 64, "width": 64}
    again, _ = pinned_tower()
    for key, value in tower.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, msg=key)


def test_a_changed_tower_is_refused_with_both_hashes(tmp_path):
    copy = tmp_path / "tower"
    shutil.copytree(TOWER_DIR, copy)
    data = bytearray((copy / "model.safetensors").read_bytes())
    data[-1] ^= 1  # one bit of one weight
    (copy / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match=f"expected {TOWER_SHA256}"):
        pinned_tower(copy)
    with pytest.raises(FileNotFoundError, match="python -m qgnb.pvp.tower"):
        pinned_tower(tmp_path / "nowhere")


def test_cards_record_the_tower_hash_and_loading_checks_it(tmp_path):
    tok = build_tokenizer([], locations=8)
    tower, _ = pinned_tower()
    model = build_vlm(tower, tok, 8, layers=1)
    info = {"vision": "pinned", "vision_adapted": False, "grid": 8, "image_source": "tower",
            "lm": {"hidden": 128, "layers": 1, "heads": 4}, "command": "python -m x"}
    save(model, tok, info, tmp_path)
    card = json.loads((tmp_path / "card.json").read_text())
    assert card["tower_sha256"] == TOWER_SHA256
    load_directory(tmp_path)  # loads
    card["tower_sha256"] = "0" * 64
    (tmp_path / "card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="trained on the pinned tower with SHA-256 0000.*"
                                         "retrain it with `python -m x`"):
        load_directory(tmp_path)
