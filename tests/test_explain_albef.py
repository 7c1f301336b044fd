"""ALBEF-layout models through the shared cross-attention core."""

from __future__ import annotations

import pytest
import torch
from test_explain_tiny import (
    BERT_SPECIALS,
    PHRASES,
    WORDS,
    blip_model,
    blip_processor,
    noise_images,
)
from torch import nn
from transformers import BertConfig, BertModel

from qgnb.explain.albef import ALBEF_ROUTE, AlbefExplainer, albef_image_transform
from qgnb.explain.blip import BlipExplainer
from qgnb.explain.cross_attention import resolve_layer


class AlbefLayout(nn.Module):
    """``visual_encoder`` / ``text_encoder`` / ``itm_head``, the attribute names of ALBEF."""

    def __init__(self, vision: nn.Module, text_encoder: nn.Module, itm_head: nn.Module) -> None:
        super().__init__()
        self.vision = vision
        self.text_encoder = text_encoder
        self.itm_head = itm_head

    def visual_encoder(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.vision(pixel_values).last_hidden_state


@pytest.fixture(scope="module")
def blip(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return blip_model(), blip_processor(tmp_path_factory.mktemp("albef"))


def bert_albef(blip_vision: nn.Module) -> AlbefLayout:
    torch.manual_seed(1)
    config = BertConfig(vocab_size=len(BERT_SPECIALS) + len(WORDS), hidden_size=32,
                        num_hidden_layers=3, num_attention_heads=2, intermediate_size=64,
                        is_decoder=True, add_cross_attention=True)
    text = BertModel(config, add_pooling_layer=False)
    text.set_attn_implementation("eager")  # eager attention returns the probabilities
    return AlbefLayout(blip_vision, text, nn.Linear(32, 2)).eval()


def test_blip_in_albef_layout_gives_blip_maps(blip) -> None:
    # One recipe, two routes: the same weights reached the ALBEF way give the same maps.
    model, processor = blip
    albef = AlbefLayout(model.vision_model, model.text_encoder, model.itm_head)
    images = noise_images([(32, 32), (32, 32)], seed=4)
    for layer, tokens in ((0, "all"), (1, "cls"), (0, "words")):
        expected = BlipExplainer(model, processor, layer=layer, tokens=tokens, device="cpu")
        got = AlbefExplainer(albef, processor.tokenizer, image_size=32, layer=layer,
                             tokens=tokens, device="cpu")
        # BLIP's processor resizes bicubic with PIL, ALBEF's transform with torchvision's PIL
        # path: the same pixels, so the same maps.
        torch.testing.assert_close(got(images, PHRASES[:2]), expected(images, PHRASES[:2]),
                                   rtol=1e-4, atol=1e-9)


def test_bert_albef_batched_equals_one_by_one(blip) -> None:
    model, processor = blip
    albef = bert_albef(model.vision_model)
    explainer = AlbefExplainer(albef, processor.tokenizer, image_size=32, layer=1, device="cpu")
    images = noise_images([(40, 30)] * 3, seed=5)
    batched = explainer(images, PHRASES)
    assert batched.shape == (3, 30, 40) and batched.abs().max() > 0
    for i in range(3):
        torch.testing.assert_close(explainer(images[i:i + 1], PHRASES[i:i + 1])[0], batched[i],
                                   rtol=1e-4, atol=1e-9)
    assert explainer.config == {"explainer": "AlbefExplainer", "model": "AlbefLayout",
                                "layer": 1, "tokens": "all", "image_size": 32, "recipe": "amc",
                                "first_token": None, "captions": "albef", "max_words": 30,
                                "max_tokens": None}


def test_layer_without_cross_attention_is_named(blip) -> None:
    model, _ = blip
    albef = bert_albef(model.vision_model)
    del albef.text_encoder.encoder.layer[0].crossattention
    with pytest.raises(ValueError, match=r"text layer 0 has no cross-attention; .*\[1, 2\]"):
        resolve_layer(ALBEF_ROUTE, albef, 0)
    with pytest.raises(ValueError, match="layer 3 does not exist: the model has 3 text layers"):
        resolve_layer(ALBEF_ROUTE, albef, 3)


def test_albef_image_transform_normalises_with_clip_statistics() -> None:
    white = albef_image_transform(4)(noise_images([(9, 5)])[0].point(lambda _: 255))
    expected = [(1 - m) / s for m, s in zip((0.48145466, 0.4578275, 0.40821073),
                                            (0.26862954, 0.26130258, 0.27577711), strict=True)]
    torch.testing.assert_close(white[:, 0, 0], torch.tensor(expected))
