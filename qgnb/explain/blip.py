"""`BlipExplainer`: ITM GradCAM maps from `transformers`' `BlipForImageTextRetrieval`."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import BlipForImageTextRetrieval, BlipProcessor

from qgnb.explain.base import (
    Maps,
    check_pairs,
    choose_device,
    eval_mode,
    image_sizes,
    upsample_to_images,
)
from qgnb.explain.cross_attention import BLIP_ROUTE, cross_attention_gradcam, resolve_layer

# LAVIS' `compute_gradcam` default for BLIP (12 text layers); ALBEF/AMC use 8.
DEFAULT_BLIP_LAYER = 6


def load_pretrained(loader: Any, name_or_path: str | Path, what: str) -> Any:
    """``loader.from_pretrained(name_or_path, local_files_only=True)``, or a FileNotFoundError
    that says where it looked (the folder, the Hugging Face cache) and how to get the files.

    >>> load_pretrained(BlipProcessor, "/no/such/blip", "BLIP processor")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP processor '/no/such/blip' not found ...
    """
    try:
        return loader.from_pretrained(str(name_or_path), local_files_only=True)
    except (OSError, ValueError) as error:
        from huggingface_hub.constants import HF_HUB_CACHE

        folder = Path(name_or_path).expanduser().resolve()
        raise FileNotFoundError(
            f"{what} {str(name_or_path)!r} not found (qgnb never downloads): looked in the folder "
            f"{folder} ({'exists' if folder.exists() else 'missing'}) and in the Hugging Face "
            f"cache {HF_HUB_CACHE}. On a machine with network run `huggingface-cli download "
            f"{name_or_path}` (e.g. Salesforce/blip-itm-base-coco) and copy the cache, or pass "
            f"a folder written by save_pretrained. ({error})"
        ) from error


class BlipExplainer:
    """GradCAM maps of BLIP's image-text matching head on one text cross-attention layer.

    ``explainer(images, phrases)`` preprocesses with the BLIP processor, runs
    `cross_attention_gradcam` (the LAVIS recipe, see `qgnb.explain.cross_attention`) in eval
    mode, and upsamples each patch-grid map bicubically to its image's size. The model moves
    to ``device`` (default: CUDA when available).

    >>> import transformers
    >>> transformers.logging.set_verbosity_error()
    >>> explainer = BlipExplainer.from_pretrained("/no/such/checkpoint")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP model '/no/such/checkpoint' not found ...
    """

    def __init__(self, model: BlipForImageTextRetrieval, processor: BlipProcessor, *,
                 layer: int = DEFAULT_BLIP_LAYER, tokens: str = "all",
                 device: str | torch.device | None = None, name: str | None = None) -> None:
        resolve_layer(BLIP_ROUTE, model, layer)
        self.model = model
        self.processor = processor
        self.layer = layer
        self.tokens = tokens
        self.name = name or model.config.name_or_path or type(model).__name__
        self.to(device)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, layer: int = DEFAULT_BLIP_LAYER,
                        tokens: str = "all",
                        device: str | torch.device | None = None) -> BlipExplainer:
        """Load a BLIP ITM checkpoint and its processor from a folder or the HF cache, offline.

        >>> BlipExplainer.from_pretrained("Salesforce/no-such-model")
        Traceback (most recent call last):
        ...
        FileNotFoundError: BLIP model 'Salesforce/no-such-model' not found ...
        """
        model = load_pretrained(BlipForImageTextRetrieval, name_or_path, "BLIP model")
        processor = load_pretrained(BlipProcessor, name_or_path, "BLIP processor")
        return cls(model, processor, layer=layer, tokens=tokens, device=device,
                   name=str(name_or_path))

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        return {"explainer": type(self).__name__, "model": self.name, "layer": self.layer,
                "tokens": self.tokens}

    def to(self, device: str | torch.device | None) -> BlipExplainer:
        """Move the model to ``device`` (``None``: CUDA when available); returns ``self``."""
        self.device = choose_device(device)
        self.model.to(self.device)
        return self

    def __call__(self, images: Sequence[Image.Image], phrases: Sequence[str]) -> Maps:
        check_pairs(images, phrases)
        inputs = self.processor(images=list(images), text=list(phrases), padding=True,
                                truncation=True, return_tensors="pt").to(self.device)
        with eval_mode(self.model):
            grids = cross_attention_gradcam(
                self.model, inputs["pixel_values"], inputs["input_ids"],
                inputs["attention_mask"], layer=self.layer, tokens=self.tokens)
        return upsample_to_images(grids, image_sizes(images))

    def __repr__(self) -> str:
        return f"BlipExplainer({self.name!r}, layer={self.layer}, tokens={self.tokens!r})"
