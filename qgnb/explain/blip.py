"""`BlipExplainer`: ITM GradCAM maps from `transformers`' `BlipForImageTextRetrieval`."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from transformers import BlipForImageTextRetrieval, BlipProcessor

from qgnb.explain.albef import albef_image_transform
from qgnb.explain.base import load_pretrained
from qgnb.explain.checkpoint import verify_pretrained
from qgnb.explain.cross_attention import BLIP_ROUTE, CrossAttentionExplainer
from qgnb.explain.recipes import Recipe, get_recipe

HUB_EXAMPLE = "Salesforce/blip-itm-base-coco"


class BlipExplainer(CrossAttentionExplainer):
    """GradCAM maps of BLIP's image-text matching head on one text cross-attention layer.

    `CrossAttentionExplainer` with BLIP's route and a `Recipe` (see `qgnb.explain.recipes`)
    that fixes layer, token rows, first token, caption cleaning and input size together:

    - ``recipe="zoo"`` (the constructor's default, what `qgnb.zoo` uses): `transformers`'
      input as the processor makes it ([CLS] first, phrases as given, the processor's size);
      ``layer`` and ``tokens`` must be passed (the zoo passes its configured ones).
    - ``recipe="lavis"`` (`from_pretrained`'s default, for real BLIP checkpoints): LAVIS' text
      localization: text layer 7 (the 8th of 12), [ENC] first, the word rows averaged, LAVIS'
      caption cleaning, at most 35 tokens, LAVIS' eval transform at 384. BLIP-large: LAVIS
      runs the very same code on it (its text localization example loads the large ITM model
      with ``block_num=7``; both BLIP-base and BLIP-large have a 12-layer BERT-base text
      encoder, only the ViT differs), so the same recipe applies.

    Explicit ``layer``, ``tokens``, ``first_token`` and ``image_size`` override the recipe's
    value (or pass a `Recipe` of your own; ``first_token="[CLS]"`` keeps `transformers`' own
    first token under the LAVIS recipe); ``config`` records the recipe's name and every
    resolved value. [ENC]: the
    tokenizer's token when it has one; else, for LAVIS' layout (``bert-base-uncased`` + [DEC]
    as BOS, text vocabulary one larger than the tokenizer), the id LAVIS gives it, the last.

    >>> BlipExplainer.from_pretrained("/no/such/checkpoint")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP model '/no/such/checkpoint' not found ...
    """

    def __init__(self, model: BlipForImageTextRetrieval, processor: BlipProcessor, *,
                 recipe: str | Recipe = "zoo", layer: int | None = None,
                 tokens: str | None = None, first_token: str | None = None,
                 image_size: int | None = None, device: str | torch.device | None = None,
                 name: str | None = None) -> None:
        self.recipe = get_recipe(recipe).with_overrides(
            layer=layer, tokens=tokens, first_token=first_token, image_size=image_size)
        self.processor = processor
        model_size = model.config.vision_config.image_size
        if self.recipe.image_size is not None and self.recipe.image_size != model_size:
            raise ValueError(f"recipe {self.recipe.name!r} resizes images to "
                             f"{self.recipe.image_size} but the model takes {model_size}; "
                             f"pass image_size={model_size} to override")
        self.first_id = _first_token_id(processor, model, self.recipe.first_token)
        super().__init__(model, partial(_recipe_inputs, processor, self.recipe, self.first_id),
                         route=BLIP_ROUTE, layer=self.recipe.layer, tokens=self.recipe.tokens,
                         device=device, name=name)

    @property
    def first_token(self) -> str | None:
        """The token that replaces the first one (``None``: the tokenizer's [CLS] stays)."""
        return self.recipe.first_token

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        config = {**super().config, **self.recipe.config()}
        if self.recipe.image_size is None:
            config["image_size"] = self.model.config.vision_config.image_size
        if self.first_id is not None:
            config["first_token_id"] = self.first_id
        return config

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, recipe: str | Recipe = "lavis",
                        layer: int | None = None, tokens: str | None = None,
                        first_token: str | None = None, image_size: int | None = None,
                        device: str | torch.device | None = None) -> BlipExplainer:
        """Load a BLIP ITM checkpoint and its processor from a folder or the HF cache, offline;
        maps by LAVIS' text-localization recipe unless told otherwise.

        >>> BlipExplainer.from_pretrained("Salesforce/no-such-model")
        Traceback (most recent call last):
        ...
        FileNotFoundError: BLIP model 'Salesforce/no-such-model' not found ...
        """
        verify_pretrained(name_or_path, "blip")
        model = load_pretrained(BlipForImageTextRetrieval, name_or_path, "BLIP model",
                                HUB_EXAMPLE)
        processor = load_pretrained(BlipProcessor, name_or_path, "BLIP processor", HUB_EXAMPLE)
        return cls(model, processor, recipe=recipe, layer=layer, tokens=tokens,
                   first_token=first_token, image_size=image_size, device=device,
                   name=str(name_or_path))


def _first_token_id(processor: BlipProcessor, model: BlipForImageTextRetrieval,
                    first_token: str | None) -> int | None:
    if first_token is None:
        return None
    tokenizer = processor.tokenizer
    token_id = tokenizer.convert_tokens_to_ids(first_token)
    if token_id is not None and token_id != tokenizer.unk_token_id:
        return int(token_id)
    vocab_size = model.config.text_config.vocab_size
    # LAVIS' init_tokenizer: bert-base-uncased, then [DEC] as BOS, then [ENC] (the last id).
    if (first_token == "[ENC]" and tokenizer.bos_token == "[DEC]"
            and len(tokenizer) == vocab_size - 1):
        return vocab_size - 1
    raise ValueError(f"first_token {first_token!r} is not in the tokenizer's vocabulary (and "
                     f"the tokenizer is not LAVIS' layout: BOS {tokenizer.bos_token!r}, "
                     f"{len(tokenizer)} tokens for a text vocabulary of {vocab_size})")


def _recipe_inputs(processor: BlipProcessor, recipe: Recipe, first_id: int | None,
                   images: list[Image.Image], phrases: list[str]) -> dict[str, torch.Tensor]:
    text = processor.tokenizer(recipe.clean(phrases), padding="longest", truncation=True,
                               max_length=recipe.max_tokens, return_tensors="pt")
    if recipe.image_size is None:
        pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    else:  # LAVIS' blip_image_eval, the same transform as ALBEF's test transform
        transform = albef_image_transform(recipe.image_size)
        pixels = torch.stack([transform(image.convert("RGB")) for image in images])
    input_ids = text["input_ids"].clone()
    if first_id is not None:
        input_ids[:, 0] = first_id
    return {"pixel_values": pixels, "input_ids": input_ids,
            "attention_mask": text["attention_mask"]}
