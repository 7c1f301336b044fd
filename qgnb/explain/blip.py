"""`BlipExplainer`: ITM GradCAM maps from `transformers`' `BlipForImageTextRetrieval`."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import torch
from PIL import Image
from transformers import BlipForImageTextRetrieval, BlipProcessor

from qgnb.explain.base import load_pretrained
from qgnb.explain.cross_attention import BLIP_ROUTE, CrossAttentionExplainer

# LAVIS' `compute_gradcam` default for BLIP (12 text layers); ALBEF/AMC use 8.
DEFAULT_BLIP_LAYER = 6
HUB_EXAMPLE = "Salesforce/blip-itm-base-coco"


class BlipExplainer(CrossAttentionExplainer):
    """GradCAM maps of BLIP's image-text matching head on one text cross-attention layer.

    `CrossAttentionExplainer` with BLIP's processor (resize to the model's square input,
    BERT tokens padded on the right) and `BLIP_ROUTE`; ``layer`` defaults to LAVIS' 6.

    >>> BlipExplainer.from_pretrained("/no/such/checkpoint")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP model '/no/such/checkpoint' not found ...
    """

    def __init__(self, model: BlipForImageTextRetrieval, processor: BlipProcessor, *,
                 layer: int = DEFAULT_BLIP_LAYER, tokens: str = "all",
                 device: str | torch.device | None = None, name: str | None = None) -> None:
        self.processor = processor
        super().__init__(model, partial(_processor_inputs, processor), route=BLIP_ROUTE,
                         layer=layer, tokens=tokens, device=device, name=name)

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
        model = load_pretrained(BlipForImageTextRetrieval, name_or_path, "BLIP model",
                                HUB_EXAMPLE)
        processor = load_pretrained(BlipProcessor, name_or_path, "BLIP processor", HUB_EXAMPLE)
        return cls(model, processor, layer=layer, tokens=tokens, device=device,
                   name=str(name_or_path))


def _processor_inputs(processor: BlipProcessor, images: list[Image.Image],
                      phrases: list[str]) -> dict[str, torch.Tensor]:
    return dict(processor(images=images, text=phrases, padding=True, truncation=True,
                          return_tensors="pt"))
