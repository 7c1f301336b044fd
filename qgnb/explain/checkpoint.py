"""Checkpoints whole or refused: verify a checkpoint folder before its weights are loaded.

`transformers` loads a folder without ``tokenizer.json`` with a fallback tokenizer (every word
``[UNK]``), and NaN weights load and run; both give silently wrong maps. So every qgnb loader
calls :func:`verify_checkpoint` first, which refuses, naming the file:

- a missing required file (tokenizer, processor, config, card, weights);
- a JSON file that does not parse (a truncated ``config.json`` or ``card.json``);
- a ``config.json`` of another architecture (its ``model_type``);
- a weights file that is truncated or unreadable, or holds NaN or infinite values (named
  with the tensor).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

# One of these makes a tokenizer: the fast tokenizer's file, or BERT's vocabulary (BLIP).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt")
# The image processor's settings: transformers >= 5 writes the first, older versions the second.
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
# What a transformers checkpoint of a vision-language model needs beside its weights.
TRANSFORMERS_FILES = ("config.json", "tokenizer_config.json", TOKENIZER_FILES, PROCESSOR_FILES)


class CheckpointError(ValueError):
    """A checkpoint file that is present but unusable (corrupt, truncated, NaN, wrong kind)."""


def verify_checkpoint(folder: str | Path, *, require: Sequence[str | Sequence[str]] = (),
                      model_type: str | None = None) -> Path:
    """Check a checkpoint folder before loading it; return it as a ``Path``.

    ``require``: file names that must be present; an entry that is a tuple of names is
    satisfied by any one of them (``TOKENIZER_FILES``). Every ``*.json`` in the folder must
    parse; ``model_type``, when given, must be ``config.json``'s ``model_type``; the weights
    (``model.safetensors``, its shards, or ``pytorch_model.bin``) must be readable to the end
    and finite. Raises ``FileNotFoundError`` naming a missing file and ``CheckpointError``
    naming a corrupt one (and the tensor, for non-finite weights).

    >>> from qgnb.zoo.models import checkpoint_dir
    >>> verify_checkpoint(checkpoint_dir("shapes-clip"), require=TRANSFORMERS_FILES,
    ...                   model_type="clip").name
    'shapes-clip'
    >>> verify_checkpoint(checkpoint_dir("shapes-clip"), model_type="blip")
    Traceback (most recent call last):
    ...
    qgnb.explain.checkpoint.CheckpointError: .../config.json: model_type 'clip' ...
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
    present = sorted(p.name for p in folder.iterdir())
    for entry in require:
        names = (entry,) if isinstance(entry, str) else tuple(entry)
        if not any((folder / name).is_file() for name in names):
            alternatives = f" (or {', '.join(names[1:])})" if len(names) > 1 else ""
            raise FileNotFoundError(
                f"{folder / names[0]}{alternatives}: missing, so the checkpoint is incomplete "
                f"and is not loaded (the folder holds {present})"
            )
    parsed = {path.name: _read_json(path) for path in sorted(folder.glob("*.json"))}
    if model_type is not None:
        if "config.json" not in parsed:
            raise FileNotFoundError(f"{folder / 'config.json'}: missing (a {model_type!r} "
                                    "checkpoint needs its config)")
        config = parsed["config.json"]
        found = config.get("model_type") if isinstance(config, dict) else None
        if found != model_type:
            architectures = config.get("architectures") if isinstance(config, dict) else None
            raise CheckpointError(
                f"{folder / 'config.json'}: model_type {found!r} (architectures "
                f"{architectures}), but a {model_type!r} checkpoint was asked for"
            )
    for path in _weight_files(folder, parsed):
        _verify_weights(path)
    return folder


def verify_pretrained(name_or_path: str | Path, model_type: str) -> None:
    """Verify a transformers checkpoint given as a folder or a Hugging Face cache id.

    A folder, or the cached snapshot of a repository id, is checked with
    :func:`verify_checkpoint` (``TRANSFORMERS_FILES``, ``model_type``); a name found in
    neither is left to the loader, which says where it looked.

    >>> verify_pretrained("/no/such/folder", "blip")  # nothing there to verify
    """
    folder = _local_folder(name_or_path)
    if folder is not None:
        verify_checkpoint(folder, require=TRANSFORMERS_FILES, model_type=model_type)


def _local_folder(name_or_path: str | Path) -> Path | None:
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except (HFValidationError, LocalEntryNotFoundError, OSError, ValueError):
        return None


def _read_json(path: Path) -> object:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise CheckpointError(f"{path}: not valid JSON, truncated or corrupt ({error})") from None


def _weight_files(folder: Path, parsed: dict[str, object]) -> list[Path]:
    index = parsed.get("model.safetensors.index.json")
    if index is not None:
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict):
            raise CheckpointError(f"{folder / 'model.safetensors.index.json'}: no weight_map")
        shards = [folder / name for name in sorted(set(weight_map.values()))]
        for shard in shards:
            if not shard.is_file():
                raise FileNotFoundError(f"{shard}: missing (listed in "
                                        "model.safetensors.index.json)")
        return shards
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            return [folder / name]
    raise FileNotFoundError(f"{folder / 'model.safetensors'}: missing (no weights in {folder})")


def _verify_weights(path: Path) -> None:
    """Read every tensor of a weights file (one at a time) and check it is finite."""
    for key, tensor in _tensors(path):
        _check_finite(path, key, tensor)


def _tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    try:
        if path.suffix == ".safetensors":
            with safe_open(str(path), framework="pt") as weights:
                for key in weights.keys():  # noqa: SIM118 (safe_open is not a mapping)
                    yield key, weights.get_tensor(key)
        else:
            yield from torch.load(path, map_location="cpu", weights_only=True,
                                  mmap=True).items()
    except (SafetensorError, OSError, RuntimeError, EOFError, ValueError) as error:
        raise CheckpointError(f"{path}: unreadable weights, truncated or corrupt "
                              f"({type(error).__name__}: {error})") from None


def _check_finite(path: Path, key: str, tensor: torch.Tensor) -> None:
    if tensor.is_floating_point():
        bad = int((~torch.isfinite(tensor)).sum())
        if bad:
            raise CheckpointError(f"{path}: tensor {key!r} holds {bad} NaN or infinite values "
                                  f"(of {tensor.numel()}); the weights are corrupt")
