"""`AlbefExplainer`: the cross-attention GradCAM recipe for ALBEF-layout models (ALBEF, AMC).

ALBEF's code (and the AMC fine-tuning built on it) lays a model out as ``visual_encoder``
(image -> ``(N, 1 + patches, D)`` tokens), ``text_encoder`` (a BERT whose later layers
cross-attend to the image) and ``itm_head`` (``D -> 2``). Its grounding code backpropagates
the ITM "match" logit into ``text_encoder.base_model.encoder.layer[8].crossattention.self``.
Any model with that layout plugs in through `ALBEF_ROUTE`; a model with another layout gets its
own `CrossAttentionRoute` and a `CrossAttentionExplainer`. `AlbefExplainer.from_checkpoint`
loads ALBEF's or AMC's checkpoint file itself (`qgnb.explain.albef_model`); the default
recipe is AMC's grounding evaluation (``"amc"`` in `qgnb.explain.recipes`: layer 8, every
token row, ALBEF's caption cleaning, 384 x 384 input).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision import transforms
from transformers import AutoTokenizer

from qgnb.explain.albef_model import AlbefConfig, load_albef_checkpoint
from qgnb.explain.base import load_pretrained
from qgnb.explain.cross_attention import CrossAttentionExplainer, CrossAttentionRoute
from qgnb.explain.recipes import Recipe, get_recipe

BERT_EXAMPLE = "google-bert/bert-base-uncased"
# ALBEF normalises images with CLIP's statistics.
ALBEF_MEAN = (0.48145466, 0.4578275, 0.40821073)
ALBEF_STD = (0.26862954, 0.26130258, 0.27577711)


def _albef_layers(model: nn.Module) -> list[nn.Module | None]:
    layers = model.text_encoder.base_model.encoder.layer
    return [layer.crossattention.self if hasattr(layer, "crossattention") else None
            for layer in layers]


def _albef_itm_logits(model: nn.Module, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
    image_embeds = model.visual_encoder(pixel_values)
    image_atts = torch.ones(image_embeds.shape[:-1], dtype=torch.long,
                            device=image_embeds.device)
    output = model.text_encoder(input_ids, attention_mask=attention_mask,
                                encoder_hidden_states=image_embeds,
                                encoder_attention_mask=image_atts, output_attentions=True,
                                return_dict=True)
    return model.itm_head(output.last_hidden_state[:, 0, :])


# output_attentions=True makes the cross-attention modules return (context, probabilities).
ALBEF_ROUTE = CrossAttentionRoute(layers=_albef_layers, itm_logits=_albef_itm_logits)


def albef_image_transform(image_size: int = 384) -> Callable[[Image.Image], torch.Tensor]:
    """ALBEF's test-time transform: bicubic resize to a square, to tensor, CLIP normalisation.

    >>> albef_image_transform(32)(Image.new("RGB", (50, 20))).shape
    torch.Size([3, 32, 32])
    """
    return transforms.Compose([
        transforms.Resize((image_size, image_size),
                          interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize(ALBEF_MEAN, ALBEF_STD),
    ])


def _albef_inputs(tokenizer: Any, recipe: Recipe,
                  image_transform: Callable[[Image.Image], torch.Tensor],
                  images: list[Image.Image], phrases: list[str]) -> dict[str, torch.Tensor]:
    text = tokenizer(recipe.clean(phrases), padding="longest", truncation=True,
                     max_length=recipe.max_tokens, return_tensors="pt")
    return {"pixel_values": torch.stack([image_transform(image) for image in images]),
            "input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}


class AlbefExplainer(CrossAttentionExplainer):
    """Cross-attention GradCAM for an ALBEF-layout model (see the module docstring).

    ``tokenizer`` is a BERT tokenizer (a `transformers` tokenizer callable); phrases are
    cleaned and the layer and rows chosen by ``recipe`` (default ``"amc"``; ``layer``,
    ``tokens`` and ``image_size`` override it); images go through `albef_image_transform` of
    the recipe's ``image_size``.

    >>> import transformers
    >>> from transformers import BertConfig, BertModel, BlipVisionConfig, BlipVisionModel
    >>> transformers.logging.set_verbosity_error()
    >>> class Albef(nn.Module):  # the layout ALBEF's code uses, tiny and random
    ...     def __init__(self):
    ...         super().__init__()
    ...         vision = BlipVisionModel(BlipVisionConfig(hidden_size=16, intermediate_size=32,
    ...             num_hidden_layers=1, num_attention_heads=2, image_size=16, patch_size=8))
    ...         self.visual_encoder = lambda pixels: vision(pixels).last_hidden_state
    ...         self.vision = vision
    ...         self.text_encoder = BertModel(BertConfig(vocab_size=30, hidden_size=16,
    ...             num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
    ...             is_decoder=True, add_cross_attention=True), add_pooling_layer=False)
    ...         self.text_encoder.set_attn_implementation("eager")
    ...         self.itm_head = nn.Linear(16, 2)
    >>> tokenizer = lambda phrases, **kw: {"input_ids": torch.tensor([[2, 5, 3]]),
    ...                                    "attention_mask": torch.ones(1, 3, dtype=torch.long)}
    >>> explainer = AlbefExplainer(Albef(), tokenizer, image_size=16, layer=0, device="cpu")
    >>> explainer([Image.new("RGB", (12, 8))], ["a dog"]).shape
    torch.Size([1, 8, 12])
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, recipe: str | Recipe = "amc",
                 layer: int | None = None, tokens: str | None = None,
                 image_size: int | None = None, device: str | torch.device | None = None,
                 name: str | None = None) -> None:
        self.recipe = get_recipe(recipe).with_overrides(layer=layer, tokens=tokens,
                                                        image_size=image_size)
        if self.recipe.image_size is None:
            raise ValueError(f"recipe {self.recipe.name!r} leaves the input size to the model; "
                             "an ALBEF-layout model needs image_size=...")
        if self.recipe.first_token is not None:
            raise ValueError("ALBEF feeds BERT's [CLS] first; first_token must stay None, got "
                             f"{self.recipe.first_token!r}")
        self.tokenizer = tokenizer
        self.image_size = self.recipe.image_size
        preprocess = partial(_albef_inputs, tokenizer, self.recipe,
                             albef_image_transform(self.image_size))
        super().__init__(model, preprocess, route=ALBEF_ROUTE, layer=self.recipe.layer,
                         tokens=self.recipe.tokens, device=device, name=name)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        return {**super().config, **self.recipe.config()}

    @classmethod
    def from_checkpoint(cls, path: str | Path, tokenizer: str | Path | Any, *,
                        config: AlbefConfig | None = None, recipe: str | Recipe = "amc",
                        layer: int | None = None, tokens: str | None = None,
                        weights_only: bool = True,
                        device: str | torch.device | None = None) -> AlbefExplainer:
        """ALBEF's or AMC's checkpoint file loaded into `AlbefITM` (no ALBEF or LAVIS
        install), explained by AMC's grounding recipe unless told otherwise.

        ``tokenizer``: a folder with ``bert-base-uncased``'s tokenizer (ALBEF's), or a loaded
        tokenizer. ``config``: the model's sizes (default ALBEF's: ViT-B/16 at 384, BERT-base,
        fusion from layer 6); images are resized to its ``image_size``.

        >>> AlbefExplainer.from_checkpoint("/no/such/amc.pth", "/no/such/bert")
        Traceback (most recent call last):
        ...
        FileNotFoundError: ALBEF/AMC checkpoint /no/such/amc.pth does not exist
        """
        model = load_albef_checkpoint(path, config, weights_only=weights_only)
        if isinstance(tokenizer, str | Path):
            tokenizer = load_pretrained(AutoTokenizer, tokenizer, "BERT tokenizer",
                                        BERT_EXAMPLE)
        return cls(model, tokenizer, recipe=recipe, layer=layer, tokens=tokens,
                   image_size=model.albef_config.image_size, device=device,
                   name=str(path))
