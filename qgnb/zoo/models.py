"""Build, save and load the zoo's models and their processors (checkpoint directories)."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import (
    BlipForImageTextRetrieval,
    BlipImageProcessor,
    BlipProcessor,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
)

from qgnb.explain.checkpoint import TRANSFORMERS_FILES, verify_checkpoint
from qgnb.zoo.configs import ZooSpec, build_config, spec
from qgnb.zoo.tokenizer import shapes_tokenizer

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"


def checkpoint_dir(name: str) -> Path:
    """Where the checkpoint of zoo model ``name`` lives inside the package.

    >>> checkpoint_dir("shapes-clip").name
    'shapes-clip'
    """
    return CHECKPOINTS / spec(name).name


def new_processor(family: str, image_size: int = 64) -> BlipProcessor | CLIPProcessor:
    """The processor of a zoo model: square ``image_size`` images, the word-level shapes
    tokenizer.

    >>> new_processor("blip", 96).image_processor.size["height"]
    96
    """
    tokenizer = shapes_tokenizer()
    if family == "blip":
        images = BlipImageProcessor(size={"height": image_size, "width": image_size})
        return BlipProcessor(images, tokenizer)
    if family == "clip":
        images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                    crop_size={"height": image_size, "width": image_size})
        return CLIPProcessor(images, tokenizer)
    raise ValueError(f"unknown model family {family!r}; expected 'blip' or 'clip'")


def new_model(zoo_spec: ZooSpec, seed: int = 0):
    """A freshly initialised model and its processor for ``zoo_spec`` (seeded).

    >>> model, processor = new_model(spec("shapes-blip-base"))
    >>> type(model).__name__
    'BlipForImageTextRetrieval'
    """
    processor = new_processor(zoo_spec.architecture.family, zoo_spec.recipe.image_size)
    tok = processor.tokenizer
    config = build_config(zoo_spec, len(tok), tok.pad_token_id, tok.cls_token_id,
                          tok.sep_token_id)
    torch.manual_seed(seed)
    model_class = BlipForImageTextRetrieval if zoo_spec.architecture.family == "blip" else CLIPModel
    return model_class(config).eval(), processor


def save_checkpoint(model, processor, directory: Path) -> None:
    """Write ``model`` (safetensors + config) and ``processor`` files into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory, safe_serialization=True)
    processor.save_pretrained(directory)


def load_model(name: str):
    """The trained zoo model ``name`` and its processor, loaded offline from the package.

    >>> model, processor = load_model("shapes-clip")  # doctest: +SKIP
    """
    zoo_spec = spec(name)
    directory = checkpoint_dir(name)
    if not (directory / "model.safetensors").is_file():
        raise FileNotFoundError(
            f"zoo model {name!r} has no checkpoint at {directory} (missing model.safetensors); "
            f"train it with `python -m qgnb.zoo.train {name}`"
        )
    return load_checkpoint(directory, zoo_spec.architecture.family)


def load_checkpoint(directory: Path, family: str):
    """Model and processor from a checkpoint directory written by `save_checkpoint`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    if family in ("blip", "clip"):
        verify_checkpoint(directory, require=TRANSFORMERS_FILES, model_type=family)
    if family == "blip":
        model = BlipForImageTextRetrieval.from_pretrained(directory)
        processor = BlipProcessor.from_pretrained(directory)
    elif family == "clip":
        model = CLIPModel.from_pretrained(directory)
        processor = CLIPProcessor.from_pretrained(directory)
    else:
        raise ValueError(f"unknown model family {family!r}; expected 'blip' or 'clip'")
    return model.eval(), processor
