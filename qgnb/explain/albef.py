"""`AlbefExplainer`: the cross-attention GradCAM recipe for ALBEF-layout models (ALBEF, AMC).

ALBEF's code (and the AMC fine-tuning built on it) lays a model out as ``visual_encoder``
(image -> ``(N, 1 + patches, D)`` tokens), ``text_encoder`` (a BERT whose later layers
cross-attend to the image) and ``itm_head`` (``D -> 2``). Its grounding code backpropagates
the ITM "match" logit into ``text_encoder.base_model.encoder.layer[8].crossattention.self``.
Any model with that layout plugs in through `ALBEF_ROUTE`; a model with another layout gets its
own `CrossAttentionRoute` and a `CrossAttentionExplainer`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from qgnb.explain.cross_attention import CrossAttentionExplainer, CrossAttentionRoute

# ALBEF's grounding default (the sixth of its six fusion layers is 11; 8 is the third).
DEFAULT_ALBEF_LAYER = 8
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


def _albef_inputs(tokenizer: Any, image_transform: Callable[[Image.Image], torch.Tensor],
                  images: list[Image.Image], phrases: list[str]) -> dict[str, torch.Tensor]:
    text = tokenizer(phrases, padding="longest", truncation=True, return_tensors="pt")
    return {"pixel_values": torch.stack([image_transform(image) for image in images]),
            "input_ids": text["input_ids"], "attention_mask": text["attention_mask"]}


class AlbefExplainer(CrossAttentionExplainer):
    """Cross-attention GradCAM for an ALBEF-layout model (see the module docstring).

    ``tokenizer`` is a BERT tokenizer (a `transformers` tokenizer callable); images go
    through `albef_image_transform` of ``image_size``.

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

    def __init__(self, model: nn.Module, tokenizer: Any, *, image_size: int = 384,
                 layer: int = DEFAULT_ALBEF_LAYER, tokens: str = "all",
                 device: str | torch.device | None = None, name: str | None = None) -> None:
        self.tokenizer = tokenizer
        self.image_size = image_size
        preprocess = partial(_albef_inputs, tokenizer, albef_image_transform(image_size))
        super().__init__(model, preprocess, route=ALBEF_ROUTE, layer=layer, tokens=tokens,
                         device=device, name=name)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        return {**super().config, "image_size": self.image_size}
