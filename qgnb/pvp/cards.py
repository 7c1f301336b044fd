"""Shipped PVP checkpoints: save, load, and their cards (how made, what they score).

A checkpoint directory holds ``model.safetensors`` (connector and language model, plus the
vision tower only when some stage adapted it; otherwise the tower is rebuilt from its source),
``tokenizer.json`` and ``card.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from qgnb.data.records import read_json
from qgnb.explain.checkpoint import CheckpointError, verify_checkpoint
from qgnb.pvp.model import TinyVLM, build_vlm, vision_tower
from qgnb.pvp.tokenizer import PVPTokenizer

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
TIED = "lm.lm_head.weight"  # GPT-2 ties its output layer to the token embedding


def checkpoint_dir(name: str, root: Path = CHECKPOINTS) -> Path:
    """The directory of checkpoint ``name``.

    >>> checkpoint_dir("pvp-connector").name
    'pvp-connector'
    """
    return Path(root) / name


def card(name: str, root: Path = CHECKPOINTS) -> dict[str, Any]:
    """The card of a shipped checkpoint: recipe, command, parameter counts, training curve,
    held-out errors and the fixed check slice its error must reproduce on.

    >>> card("pvp-connector")["command"]  # doctest: +SKIP
    'python -m qgnb.pvp.train pvp-connector'
    """
    path = checkpoint_dir(name, root) / "card.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"PVP checkpoint {name!r} has no card at {path}; train it with "
            f"`python -m qgnb.pvp.train {name}`"
        )
    return read_json(path, f"PVP checkpoint {name!r} card")


def save(model: TinyVLM, tokenizer: PVPTokenizer, info: dict[str, Any], directory: Path) -> None:
    """Write weights, tokenizer and card. ``info["vision_adapted"]`` decides whether the
    vision tower's weights are stored (when False, ``info["vision"]`` rebuilds it);
    ``info["grid"]``, ``info["lookup"]`` (``"wired"`` or ``"learnt"``, the latter when absent)
    and ``info["lm"]`` rebuild the rest.

    >>> import tempfile
    >>> from qgnb.pvp.model import lm_config, random_vision_tower
    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([]); info = {"vision": "random:0", "vision_adapted": False,
    ...     "grid": 16, "lm": {"hidden": 32, "layers": 1, "heads": 2}}
    >>> model = TinyVLM(random_vision_tower(0)[0], lm_config(tok.vocab_size, tok.eos_id, 32, 1, 2))
    >>> folder = Path(tempfile.mkdtemp())
    >>> save(model, tok, info, folder)
    >>> load_directory(folder)[0].grid
    16
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()
             if k != TIED and (info["vision_adapted"] or not k.startswith("vision."))}
    save_file(state, directory / "model.safetensors")
    (directory / "tokenizer.json").write_text(tokenizer.to_str())
    (directory / "card.json").write_text(json.dumps(info, indent=1) + "\n")


def load_directory(directory: Path) -> tuple[TinyVLM, PVPTokenizer, Any]:
    """Model (eval mode), tokenizer and image processor from a checkpoint directory written by
    ``save`` (see its example)."""
    directory = Path(directory)
    if not (directory / "model.safetensors").is_file():
        raise FileNotFoundError(f"no PVP checkpoint at {directory} (missing model.safetensors)")
    verify_checkpoint(directory, require=("card.json", "tokenizer.json"))
    info = json.loads((directory / "card.json").read_text())
    tokenizer = PVPTokenizer.from_str((directory / "tokenizer.json").read_text())
    try:
        tower, processor = vision_tower(info["vision"])
        lm = info["lm"]
        model = build_vlm(info.get("lookup", "learnt"), tower, tokenizer, info["grid"],
                          lm["hidden"], lm["layers"], lm["heads"])
        missing, unexpected = model.load_state_dict(load_file(directory / "model.safetensors"),
                                                    strict=False)
    except (KeyError, TypeError, ValueError, RuntimeError) as error:  # a card of another model
        raise CheckpointError(f"{directory / 'model.safetensors'} does not fit the model that "
                              f"{directory / 'card.json'} describes ({type(error).__name__}: "
                              f"{error})") from None
    allowed = {TIED} | ({k for k in model.state_dict() if k.startswith("vision.")}
                        if not info["vision_adapted"] else set())
    if unexpected or set(missing) - allowed:
        raise ValueError(f"{directory}: checkpoint does not fit the model: missing "
                         f"{sorted(set(missing) - allowed)}, unexpected {sorted(unexpected)}")
    return model.eval(), tokenizer, processor


def load(name: str, root: Path = CHECKPOINTS) -> tuple[TinyVLM, PVPTokenizer, Any]:
    """A shipped PVP checkpoint: ``(model, tokenizer, image processor)``.

    >>> model, tokenizer, processor = load("pvp-connector")  # doctest: +SKIP
    """
    return load_directory(checkpoint_dir(name, root))
