"""Checkpoints whole or refused: copies of shipped checkpoints with one defect each fail to
load with an error naming the file, through every loader (zoo, BLIP explainer, PVP)."""

import doctest
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

import qgnb.zoo.models
from qgnb.explain import BlipExplainer, checkpoint
from qgnb.explain.checkpoint import CheckpointError, verify_checkpoint
from qgnb.pvp import cards
from qgnb.zoo.models import checkpoint_dir, load_checkpoint, load_model

SHAPES_CLIP = checkpoint_dir("shapes-clip")  # before a test points the zoo at its copies


@pytest.fixture
def blip(tmp_path, monkeypatch):
    """A copy of the zoo's shapes-blip-base, which `load_model` then reads."""
    folder = tmp_path / "shapes-blip-base"
    shutil.copytree(checkpoint_dir("shapes-blip-base"), folder)
    monkeypatch.setattr(qgnb.zoo.models, "CHECKPOINTS", tmp_path)
    return folder


def check_refused(folder, error, message):
    """Every transformers loader refuses the folder with this error and message."""
    with pytest.raises(error, match=message):
        load_model("shapes-blip-base")
    with pytest.raises(error, match=message):
        load_checkpoint(folder, "blip")
    with pytest.raises(error, match=message):
        BlipExplainer.from_pretrained(folder)


def test_a_whole_copy_loads(blip):
    model, processor = load_model("shapes-blip-base")
    assert qgnb.zoo.models.checkpoint_dir("shapes-blip-base") == blip
    assert processor.tokenizer.unk_token_id not in processor.tokenizer("red circle")["input_ids"]
    # The zoo's own recipe: LAVIS' default would resize to 384 px, the zoo models take 64.
    explainer = BlipExplainer.from_pretrained(blip, recipe="zoo", layer=-1, tokens="all")
    assert explainer.name == str(blip)


def test_missing_tokenizer_is_named(blip):
    (blip / "tokenizer.json").unlink()
    check_refused(blip, FileNotFoundError, r"shapes-blip-base/tokenizer\.json \(or vocab\.txt\): "
                  r"missing, so the checkpoint is incomplete")


def test_missing_processor_is_named(blip):
    (blip / "processor_config.json").unlink()
    check_refused(blip, FileNotFoundError, r"processor_config\.json \(or "
                  r"preprocessor_config\.json\): missing")


def test_truncated_weights_are_named(blip):
    weights = blip / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    check_refused(blip, CheckpointError, r"model\.safetensors: unreadable weights, truncated")


def test_nan_weights_are_named_with_the_tensor(blip):
    weights = blip / "model.safetensors"
    state = load_file(weights)
    name = sorted(k for k, v in state.items() if v.is_floating_point())[3]
    state[name].view(-1)[:2] = torch.tensor([float("nan"), float("inf")])
    save_file(state, weights, metadata={"format": "pt"})
    check_refused(blip, CheckpointError, rf"model\.safetensors: tensor '{name}' holds 2 NaN or "
                  "infinite values")


def test_config_of_another_architecture_is_named(blip):
    shutil.copy(SHAPES_CLIP / "config.json", blip / "config.json")
    check_refused(blip, CheckpointError, r"config\.json: model_type 'clip' \(architectures "
                  r"\['CLIPModel'\]\), but a 'blip' checkpoint was asked for")


@pytest.mark.parametrize("name", ["config.json", "card.json", "tokenizer.json"])
def test_truncated_json_is_named(blip, name):
    path = blip / name
    path.write_text(path.read_text()[:40])
    check_refused(blip, CheckpointError, rf"{name}: not valid JSON, truncated or corrupt")


def test_sharded_weights_need_every_shard(tmp_path):
    folder = tmp_path / "sharded"
    folder.mkdir()
    save_file({"a": torch.zeros(2)}, folder / "model-00001-of-00002.safetensors")
    (folder / "model.safetensors.index.json").write_text(
        '{"weight_map": {"a": "model-00001-of-00002.safetensors", '
        '"b": "model-00002-of-00002.safetensors"}}')
    with pytest.raises(FileNotFoundError, match=r"model-00002-of-00002\.safetensors: missing"):
        verify_checkpoint(folder)


@pytest.fixture
def pvp(tmp_path):
    folder = tmp_path / "pvp-connector"
    shutil.copytree(cards.checkpoint_dir("pvp-connector"), folder)
    return folder


def test_pvp_checkpoint_defects_are_named(pvp):
    cards.load_directory(pvp)  # the whole copy loads
    state = load_file(pvp / "model.safetensors")
    name = sorted(state)[0]
    state[name].view(-1)[0] = float("nan")
    save_file(state, pvp / "model.safetensors")
    with pytest.raises(CheckpointError, match=rf"model\.safetensors: tensor '{name}' holds 1"):
        cards.load_directory(pvp)
    (pvp / "card.json").write_text('{"vision": "zoo:sha')
    with pytest.raises(CheckpointError, match=r"card\.json: not valid JSON"):
        cards.load_directory(pvp)
    (pvp / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json: missing"):
        cards.load_directory(pvp)


def test_docstring_examples():
    result = doctest.testmod(checkpoint, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def test_truncated_cards_are_named(blip, pvp):
    from qgnb.zoo.cards import card as zoo_card

    (blip / "card.json").write_text('{"heldout": {"met')
    with pytest.raises(ValueError, match=r"shapes-blip-base/card\.json: not valid JSON, truncated"):
        zoo_card("shapes-blip-base")
    (pvp / "card.json").write_text('{"name": "pvp-conn')
    with pytest.raises(ValueError, match=r"pvp-connector/card\.json: not valid JSON, truncated"):
        cards.card("pvp-connector", root=pvp.parent)


def test_cached_hub_snapshot_is_verified_too(blip, tmp_path, monkeypatch):
    # A repository id resolves to its snapshot in the Hugging Face cache, checked like a folder.
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--someone--blip-copy" / "snapshots" / "abc123"
    shutil.copytree(blip, snapshot)
    (cache / "models--someone--blip-copy" / "refs").mkdir()
    (cache / "models--someone--blip-copy" / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    (snapshot / "tokenizer.json").unlink()
    with pytest.raises(FileNotFoundError, match=r"snapshots/abc123/tokenizer\.json \(or "
                       r"vocab\.txt\): missing"):
        BlipExplainer.from_pretrained("someone/blip-copy")


@pytest.mark.parametrize(("change", "message"), [
    (lambda card: card["lm"].update(hidden=64), r"needs width 128 \(got 64\)"),
    (lambda card: card.pop("grid"), r"KeyError: 'grid'"),
])
def test_pvp_card_of_another_model_is_named(pvp, change, message):
    import json

    card = json.loads((pvp / "card.json").read_text())
    change(card)
    (pvp / "card.json").write_text(json.dumps(card))
    with pytest.raises(CheckpointError, match=r"pvp-connector/model\.safetensors does not fit the "
                       rf"model that .*pvp-connector/card\.json describes \(.*{message}"):
        cards.load_directory(pvp)
