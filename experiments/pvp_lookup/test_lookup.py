"""The lookup probe: mosaics, the mean-colour baseline, oracle image tokens, shipped runs."""

import json

import numpy as np
import pytest
import torch
from lookup import (
    EVAL_IMAGES,
    FEATURES,
    RESULTS,
    WIRED,
    OracleVLM,
    build,
    lookup_curves,
    lookup_table,
    main,
    mean_colour_error,
    mosaic,
    result_path,
    run,
)
from PIL import Image

from qgnb.pvp.batch import pixel_values, prompt_tensor
from qgnb.pvp.model import lm_config, random_vision_tower
from qgnb.pvp.queries import reconstruct_prompt
from qgnb.pvp.tokenizer import build_tokenizer


def test_mosaic_is_uniform_blocks_of_the_level():
    image = np.asarray(mosaic(4, np.random.default_rng(3)))
    assert image.shape == (64, 64, 3)
    blocks = image.reshape(4, 16, 4, 16, 3)
    # Every 16x16 block is one colour, and the 16 blocks are not all the same colour.
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert len({tuple(c) for c in blocks[:, 0, :, 0].reshape(-1, 3)}) == 16
    with pytest.raises(ValueError, match="divisor"):
        mosaic(3, np.random.default_rng(0))


def test_mean_colour_error_by_hand():
    # Left half black, right half (100, 200, 0): grid 2 cells are those colours; the mean is
    # (50, 100, 0), so every cell is off by (50, 100, 0): mean error (50 + 100 + 0) / 3 = 50.
    a = np.zeros((4, 4, 3), np.uint8)
    a[:, 2:] = (100, 200, 0)
    assert mean_colour_error([Image.fromarray(a)], 2) == pytest.approx(50.0)


def test_oracle_tokens_are_the_cells_under_each_patch():
    tok = build_tokenizer([])
    model = OracleVLM(random_vision_tower()[0], lm_config(tok.vocab_size, tok.eos_id), grid=16)
    pv = torch.arange(3 * 64 * 64, dtype=torch.float32).reshape(1, 3, 64, 64)
    colours = model.cell_colours(pv)
    assert colours.shape == (1, 64, 12)
    # Patch 1 (row 0, column 1) covers cells (0,2), (0,3), (1,2), (1,3); cell (r, c) is the
    # mean of pixels [4r:4r+4, 4c:4c+4]; order: channel, then cell row, then cell column.
    expected = [pv[0, ch, 4 * r:4 * r + 4, 4 * c:4 * c + 4].mean()
                for ch in range(3) for r in (0, 1) for c in (2, 3)]
    assert torch.allclose(colours[0, 1], torch.stack(expected))
    with pytest.raises(ValueError, match="not a multiple"):
        OracleVLM(random_vision_tower()[0], lm_config(tok.vocab_size, tok.eos_id), grid=12)


def test_shipped_runs_match_their_held_out_mosaics():
    paths = sorted(RESULTS.glob("*.json"))
    shipped = set()
    for path in paths:
        result = json.loads(path.read_text())
        assert path == result_path(result["features"], result["level"], result["steps"])
        shipped.add((result["features"], result["level"]))
        held_out = [mosaic(result["level"], np.random.default_rng([result["seed"], 10**6, k]))
                    for k in range(EVAL_IMAGES)]
        assert result["mean_colour_mae"] == pytest.approx(mean_colour_error(held_out, 16))
        assert 0 <= result["mae"] < 255 and result["unparseable"] < 0.05
    assert shipped >= {(f, level) for f in FEATURES for level in (1, 2, 4, 16)}
    table = lookup_table()
    assert len(table) == len(paths)
    assert np.allclose(table["gain"], table["mean-colour MAE"] - table["MAE"])
    # The curves hold every logged step of every run, and each run's last point is the
    # table's final loss.
    curves = lookup_curves()
    assert len(curves) == sum(len(json.loads(p.read_text())["curve"]) for p in paths)
    last = curves.groupby("run").tail(1).sort_values("loss")["loss"].to_numpy()
    assert np.allclose(last, np.sort(table["final loss"].to_numpy()))


def test_sweep_writes_one_file_per_run_and_skips_finished_runs(tmp_path, capsys):
    args = ["--features", "oracle", "--levels", "2", "--steps", "2", "--root", str(tmp_path)]
    main(args)
    path = result_path("oracle", 2, 2, tmp_path)
    first = json.loads(path.read_text())
    assert (first["features"], first["level"], first["steps"]) == ("oracle", 2, 2)
    assert [p["step"] for p in first["curve"]] == [2]
    main(args)  # a restarted sweep keeps what it had finished
    assert "skipped" in capsys.readouterr().out
    assert json.loads(path.read_text()) == first


def test_unknown_features_are_named():
    with pytest.raises(ValueError, match="unknown features 'clip'"):
        run("clip", 2, steps=1)


def test_wired_lookup_attends_from_every_location_to_its_patch_at_init():
    model, tok, processor = build(WIRED)
    model.lm.config._attn_implementation = "eager"  # returns attention probabilities
    cells = [(y, x) for y in range(16) for x in range(16)]
    ids = prompt_tensor(tok, [reconstruct_prompt(y, x) for y, x in cells])
    assert tok.tokens(reconstruct_prompt(3, 12))[3] == "[3,12]"
    image = model.image_tokens(pixel_values(processor, [mosaic(4, np.random.default_rng(0))]))
    sequence = torch.cat([image.expand(len(cells), -1, -1), model.lm.transformer.wte(ids)], 1)
    with torch.no_grad():
        attention = model.lm.transformer(inputs_embeds=sequence, output_attentions=True
                                         ).attentions[0][:, 0, 64 + 3]  # head 0, location token
    patches = torch.tensor([(y // 2) * 8 + x // 2 for y, x in cells])
    assert torch.equal(attention.argmax(dim=1), patches)
    assert float(attention[torch.arange(len(cells)), patches].min()) > 0.9


def test_reference_mean_colour_equals_the_probe_baseline():
    from qgnb.data import shapes
    from qgnb.pvp.report import reference_errors

    table = reference_errors("id", n=3, seed=4, grid=8).set_index("answer")["MAE"]
    images = [s.image for s in shapes("id", 3, 4)]
    # Each image's own MAE, averaged over images: the same quantity, computed two ways.
    assert table["image mean colour everywhere"] == pytest.approx(mean_colour_error(images, 8))
    assert table["2x2 blocks (4x coarser)"] > table["4x4 blocks (2x coarser)"]
