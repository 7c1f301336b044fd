"""The shipped design, WiredVLM: one image token per cell, location tokens, the wired lookup,
and the packed training pass (one sequence per image, a block mask between its queries)."""

import json

import numpy as np
import pytest
import torch

from qgnb.pvp.batch import prompt_tensor, query_tensors
from qgnb.pvp.cards import load_directory, save
from qgnb.pvp.model import (
    CONTENT,
    WiredVLM,
    build_vlm,
    lm_config,
    location_ids,
    one_hot_codes,
    packed_mask,
    random_vision_tower,
)
from qgnb.pvp.queries import reconstruct_prompt
from qgnb.pvp.regimes import apply_regime, trainable_parameters
from qgnb.pvp.tokenizer import build_tokenizer


@pytest.fixture(scope="module")
def tok():
    return build_tokenizer(["the", "red", "circle"], locations=16)


@pytest.fixture
def model(tok):
    torch.manual_seed(0)
    return build_vlm(random_vision_tower(0)[0], tok, grid=16)


def test_location_tokens_are_single_tokens_and_answers_are_not(tok):
    assert tok.tokens(reconstruct_prompt(15, 0)) == ["[reconstruct]", "loc", ":", "[15,0]",
                                                     "rgb", ":"]
    assert tok.tokens("[15,0,3]") == ["[", "15", ",", "0", ",", "3", "]"]
    assert tok.tokens("[16,0]")[0] == "["  # outside the grid: spelled, not a location token
    ids = location_ids(tok, 16)
    assert len(set(ids)) == 256 and tok.decode([ids[17]]) == "[1,1]"
    with pytest.raises(ValueError, match="locations=16"):
        location_ids(build_tokenizer([]), 16)


def test_one_hot_codes_by_hand():
    codes = one_hot_codes([0, 2], [1, 0], side=3)
    assert codes.shape == (2, 32)
    assert codes[0].nonzero().flatten().tolist() == [0, 4]  # row 0; column 1 at 3 + 1
    assert codes[1].nonzero().flatten().tolist() == [2, 3]
    with pytest.raises(ValueError, match="at most 16"):
        one_hot_codes([0], [0], side=17)


def test_each_patch_unfolds_into_the_cells_it_covers(model):
    pixels = torch.randn(2, 3, 64, 64)
    tokens = model.image_tokens(pixels)
    assert tokens.shape == (2, 256, 128)
    patches = model.vision(pixel_values=pixels).last_hidden_state[:, 1:]
    unfolded = model.connector(patches).reshape(2, 64, 4, 64)  # patch, cell in patch, content
    for y, x in [(0, 0), (0, 1), (1, 0), (5, 12), (15, 15)]:
        patch, cell = (y // 2) * 8 + x // 2, (y % 2) * 2 + x % 2
        torch.testing.assert_close(tokens[:, y * 16 + x, CONTENT:], unfolded[:, patch, cell])
        assert tokens[0, y * 16 + x, :32].nonzero().flatten().tolist() == [y, 16 + x]
    assert not tokens[:, :, 32:CONTENT].any()


def test_every_location_token_attends_to_its_own_cell_at_init(model, tok):
    model.lm.config._attn_implementation = "eager"  # returns attention probabilities
    cells = [(y, x) for y in range(16) for x in range(16)]
    ids = prompt_tensor(tok, [reconstruct_prompt(y, x) for y, x in cells])
    image = model.image_tokens(torch.randn(1, 3, 64, 64))
    sequence = torch.cat([image.expand(len(cells), -1, -1), model.lm.transformer.wte(ids)], 1)
    with torch.no_grad():
        attention = model.lm.transformer(inputs_embeds=sequence, output_attentions=True
                                         ).attentions[0][:, 0, 256 + 3]  # head 0, location
    own = attention[torch.arange(256), torch.arange(256)]
    assert torch.equal(attention.argmax(dim=1), torch.arange(256))
    assert float(own.min()) > 0.99


def test_packed_mask_by_hand():
    # One image token, then two queries of three tokens; the second query has one pad.
    mask = packed_mask(1, torch.tensor([[[True, True, True], [True, True, False]]]))[0, 0]
    assert mask.int().tolist() == [
        [1, 0, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0, 0],
        [1, 0, 0, 0, 1, 0, 0],
        [1, 0, 0, 0, 1, 1, 0],
        [1, 0, 0, 0, 1, 1, 0],  # the pad sees its query but is seen by no one
    ]


def test_packed_pass_equals_each_query_behind_its_own_image(model, tok):
    model.eval()
    pixels = torch.randn(2, 3, 64, 64)
    queries = [[(reconstruct_prompt(3, 4), "[1,2,3]"), ("the red circle loc: [0,0] mask:", "1")],
               [(reconstruct_prompt(15, 15), "[0,0,0]"), (reconstruct_prompt(0, 9), "[9,9,9]")]]
    ids, mask, labels = query_tensors(tok, queries)
    loss, logits = model(pixels, ids, mask, labels)
    image = model.image_tokens(pixels)
    for b in range(2):
        for q in range(2):
            n = int(mask[b, q].sum())
            text = model.lm.transformer.wte(ids[b, q, :n])[None]
            reference = model.lm(inputs_embeds=torch.cat([image[b:b + 1], text], 1)).logits
            torch.testing.assert_close(logits[b, q, :n], reference[0, 256:], atol=1e-4,
                                       rtol=1e-4)


def test_wired_regimes_train_the_connector_without_a_position_scale(model):
    assert not hasattr(model, "position_scale")
    connector = sum(p.numel() for p in model.connector.parameters())
    # Linear(96 -> 128) and Linear(128 -> 4 cells x 64 content dimensions).
    assert connector == (96 * 128 + 128) + (128 * 256 + 256)
    assert trainable_parameters(apply_regime(model, "connector")) == connector
    lm = sum(p.numel() for p in model.lm.parameters())
    assert trainable_parameters(apply_regime(model, "connector+lm")) == connector + lm


def test_wired_checkpoint_round_trip(model, tok, tmp_path):
    info = {"vision": "random:0", "vision_adapted": False, "grid": 16, "image_source": "tower",
            "lm": {"hidden": 128, "layers": 2, "heads": 4}}
    with torch.no_grad():
        model.lm.transformer.h[0].attn.c_attn.weight.add_(0.5)  # trained away from the wiring
    save(model, tok, info, tmp_path)
    again, tok2, _ = load_directory(tmp_path)
    assert isinstance(again, WiredVLM)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value, msg=key)
    assert json.loads((tmp_path / "card.json").read_text())["image_source"] == "tower"


def test_wired_design_rejects_what_it_cannot_code(tok):
    tower = random_vision_tower(0)[0]
    with pytest.raises(ValueError, match="at most 16"):
        WiredVLM(tower, lm_config(tok.vocab_size, tok.eos_id, max_positions=2000), grid=32)
    with pytest.raises(ValueError, match="multiple of 8 patches"):
        WiredVLM(tower, lm_config(tok.vocab_size, tok.eos_id, max_positions=400), grid=12)
    with pytest.raises(ValueError, match="width 128"):
        WiredVLM(tower, lm_config(tok.vocab_size, tok.eos_id, hidden=64), grid=16)
    assert np.array_equal(location_ids(tok, 2), [location_ids(tok, 16)[i] for i in (0, 1, 16, 17)])
