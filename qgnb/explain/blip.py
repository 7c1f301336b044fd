"""`BlipExplainer`: ITM GradCAM maps from `transformers`' `BlipForImageTextRetrieval`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import BlipForImageTextRetrieval, BlipProcessor

from qgnb.explain.base import load_pretrained
from qgnb.explain.checkpoint import verify_pretrained
from qgnb.explain.cross_attention import BLIP_ROUTE, CrossAttentionExplainer

# LAVIS' `compute_gradcam` default for BLIP (12 text layers); ALBEF/AMC use 8.
DEFAULT_BLIP_LAYER = 6
HUB_EXAMPLE = "Salesforce/blip-itm-base-coco"


class BlipExplainer(CrossAttentionExplainer):
    """GradCAM maps of BLIP's image-text matching head on one text cross-attention layer.

    `CrossAttentionExplainer` with BLIP's processor (resize to the model's square input,
    BERT tokens padded on the right) and `BLIP_ROUTE`; ``layer`` defaults to LAVIS' 6.
    ``first_token``: BLIP's and LAVIS' own ITM code replaces the first text token by
    ``[ENC]``, while `transformers`' model is fed the processor's ``[CLS]`` unchanged
    (transformers issue #25629); pass ``first_token="[ENC]"`` to follow LAVIS when the
    checkpoint's tokenizer knows that token. The default keeps `transformers`' input.

    >>> BlipExplainer.from_pretrained("/no/such/checkpoint")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP model '/no/such/checkpoint' not found ...
    """

    def __init__(self, model: BlipForImageTextRetrieval, processor: BlipProcessor, *,
                 layer: int = DEFAULT_BLIP_LAYER, tokens: str = "all",
                 first_token: str | None = None, device: str | torch.device | None = None,
                 name: str | None = None) -> None:
        self.processor = processor
        self.first_token = first_token
        first_id = None
        if first_token is not None:
            first_id = processor.tokenizer.convert_tokens_to_ids(first_token)
            if first_id is None or first_id == processor.tokenizer.unk_token_id:
                raise ValueError(f"first_token {first_token!r} is not in the tokenizer's "
                                 "vocabulary")
        super().__init__(model, partial(_processor_inputs, processor, first_id),
                         route=BLIP_ROUTE, layer=layer, tokens=tokens, device=device, name=name)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        config = super().config
        if self.first_token is not None:
            config["first_token"] = self.first_token
        return config

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, layer: int = DEFAULT_BLIP_LAYER,
                        tokens: str = "all", first_token: str | None = None,
                        device: str | torch.device | None = None) -> BlipExplainer:
        """Load a BLIP ITM checkpoint and its processor from a folder or the HF cache, offline.

        >>> BlipExplainer.from_pretrained("Salesforce/no-such-model")
        Traceback (most recent call last):
        ...
        FileNotFoundError: BLIP model 'Salesforce/no-such-model' not found ...
        """
        verify_pretrained(name_or_path, "blip")
        model = load_pretrained(BlipForImageTextRetrieval, name_or_path, "BLIP model",
                                HUB_EXAMPLE)
        processor = load_pretrained(BlipProcessor, name_or_path, "BLIP processor", HUB_EXAMPLE)
        return cls(model, processor, layer=layer, tokens=tokens, first_token=first_token,
                   device=device, name=str(name_or_path))


def _processor_inputs(processor: BlipProcessor, first_id: int | None,
                      images: list[Image.Image], phrases: list[str]) -> dict[str, torch.Tensor]:
    inputs = dict(processor(images=images, text=phrases, padding=True, truncation=True,
                            return_tensors="pt"))
    if first_id is not None:
        inputs["input_ids"][:, 0] = first_id
    return inputs
