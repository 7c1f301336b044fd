"""Cross-attention GradCAM core and BlipExplainer on a tiny random BLIP."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from test_explain_tiny import PHRASES, blip_model, blip_processor, noise_images

from qgnb.data import Sample
from qgnb.explain import evaluate, upsample_to_images
from qgnb.explain.blip import BlipExplainer
from qgnb.explain.cross_attention import cross_attention_gradcam, token_weights
from qgnb.metrics import score


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple:
    return blip_model(), blip_processor(tmp_path_factory.mktemp("blip"))


def inputs(processor, images, phrases, **kwargs) -> dict:
    kwargs.setdefault("padding", True)
    return processor(images=images, text=phrases, return_tensors="pt", **kwargs)


def gradcam(model, batch, **kwargs) -> torch.Tensor:
    return cross_attention_gradcam(model, batch["pixel_values"], batch["input_ids"],
                                   batch["attention_mask"], **kwargs)


def slow_reference(model, batch, layer: int) -> torch.Tensor:
    """LAVIS' recipe written out with loops, from the saved attention and its gradient."""
    saved = {}

    def keep(_module, _args, output):
        output[1].retain_grad()
        saved["probs"] = output[1]

    module = model.text_encoder.encoder.layer[layer].crossattention.self
    handle = module.register_forward_hook(keep)
    model.zero_grad()
    logits = model(**batch, use_itm_head=True).itm_score
    handle.remove()
    logits[0, 1].backward()
    attention, grad = saved["probs"][0].detach(), saved["probs"].grad[0]
    heads, tokens, columns = attention.shape
    n_tokens = int(batch["attention_mask"][0].sum())
    patch_map = torch.zeros(columns - 1)
    for p in range(1, columns):
        total = 0.0
        for h in range(heads):
            for t in range(n_tokens):
                total += float(attention[h, t, p]) * max(float(grad[h, t, p]), 0.0)
        patch_map[p - 1] = total / (heads * n_tokens)
    side = int((columns - 1) ** 0.5)
    return patch_map.view(side, side)


def test_token_weights_by_hand() -> None:
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    expected = {
        "all": [[1 / 4] * 4 + [0, 0], [1 / 6] * 6],
        "cls": [[1, 0, 0, 0, 0, 0], [1, 0, 0, 0, 0, 0]],
        "words": [[0, 0.5, 0.5, 0, 0, 0], [0, 0.25, 0.25, 0.25, 0.25, 0]],
    }
    for tokens, weights in expected.items():
        torch.testing.assert_close(token_weights(mask, tokens), torch.tensor(weights).float())


@pytest.mark.parametrize(
    ("mask", "tokens", "message"),
    [([[0, 1, 1]], "all", "sample 0: attention mask .* not right-padded"),
     ([[1, 1, 0]], "words", "sample 0: no 'words' token rows"),
     ([[1, 1, 1]], "mean", "tokens must be one of")],
)
def test_token_weights_rejects(mask, tokens, message) -> None:
    with pytest.raises(ValueError, match=message):
        token_weights(torch.tensor(mask), tokens)


@pytest.mark.parametrize("layer", [0, 1])
def test_core_equals_slow_reference(tiny, layer) -> None:
    model, processor = tiny
    batch = inputs(processor, noise_images([(32, 32)]), [PHRASES[1]])
    expected = slow_reference(model, batch, layer)
    got = gradcam(model, batch, layer=layer)[0]
    assert expected.abs().max() > 0
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-9)


def test_batched_equals_one_by_one_and_padding_is_ignored(tiny) -> None:
    model, processor = tiny
    images = noise_images([(32, 32)] * 3, seed=1)
    batched = gradcam(model, inputs(processor, images, PHRASES), layer=0)
    padded = gradcam(model, inputs(processor, images[:1], PHRASES[:1], max_length=20,
                                   padding="max_length"), layer=0)
    for i in range(3):
        alone = gradcam(model, inputs(processor, images[i:i + 1], PHRASES[i:i + 1]), layer=0)
        torch.testing.assert_close(batched[i], alone[0], rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(padded[0], batched[0], rtol=1e-4, atol=1e-9)


def test_last_layer_word_rows_get_no_gradient(tiny) -> None:
    # Only the [CLS] row of the last cross-attention layer feeds the ITM head.
    model, processor = tiny
    batch = inputs(processor, noise_images([(32, 32)] * 2), PHRASES[:2])
    assert gradcam(model, batch, layer=-1, tokens="words").abs().max() == 0
    assert gradcam(model, batch, layer=-1, tokens="cls").abs().max() > 0
    torch.testing.assert_close(  # "all" = the [CLS] row's share of the token count
        gradcam(model, batch, layer=-1, tokens="all")[0],
        gradcam(model, batch, layer=-1, tokens="cls")[0] / batch["attention_mask"][0].sum())


def test_create_graph_map_is_differentiable(tiny) -> None:
    model, processor = tiny
    batch = inputs(processor, noise_images([(32, 32)] * 2), PHRASES[:2])
    maps = gradcam(model, batch, layer=0, create_graph=True)
    assert maps.requires_grad
    model.zero_grad()
    maps.sum().backward()
    vision_grad = model.vision_model.embeddings.patch_embedding.weight.grad
    query_grad = model.text_encoder.encoder.layer[0].crossattention.self.query.weight.grad
    assert vision_grad.abs().max() > 0 and query_grad.abs().max() > 0
    model.zero_grad()
    assert not gradcam(model, batch, layer=0).requires_grad


def test_frozen_model_gives_the_same_maps(tiny) -> None:
    model, processor = tiny
    batch = inputs(processor, noise_images([(32, 32)] * 2), PHRASES[:2])
    expected = gradcam(model, batch, layer=0)
    model.requires_grad_(False)
    try:
        torch.testing.assert_close(gradcam(model, batch, layer=0), expected)
    finally:
        model.requires_grad_(True)


def test_explainer_maps_at_image_size(tiny) -> None:
    model, processor = tiny
    model.zero_grad(set_to_none=True)
    explainer = BlipExplainer(model, processor, layer=0, tokens="all", device="cpu")
    same = explainer(noise_images([(40, 30), (40, 30)]), PHRASES[:2])
    assert same.shape == (2, 30, 40) and torch.isfinite(same).all()
    mixed = explainer(noise_images([(40, 30), (17, 50)]), PHRASES[:2])
    assert [m.shape for m in mixed] == [(30, 40), (50, 17)]
    torch.testing.assert_close(mixed[0], same[0])
    assert model.training is False
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_explainer_restores_training_mode(tiny) -> None:
    model, processor = tiny
    model.train()
    try:
        explainer = BlipExplainer(model, processor, layer=0, tokens="all", device="cpu")
        explainer(noise_images([(32, 32)]), ["a"])
        assert model.training
    finally:
        model.eval()


def test_explainer_rejects_bad_input(tiny) -> None:
    model, processor = tiny
    with pytest.raises(ValueError, match="recipe 'zoo' leaves layer to the caller"):
        BlipExplainer(model, processor, device="cpu")
    with pytest.raises(ValueError, match="cross-attention layer 7 does not exist"):
        BlipExplainer(model, processor, recipe="lavis", image_size=32, device="cpu")
    with pytest.raises(ValueError, match="tokens must be one of"):
        BlipExplainer(model, processor, layer=0, tokens="mean")
    explainer = BlipExplainer(model, processor, layer=-1, tokens="all", device="cpu")
    with pytest.raises(ValueError, match="2 images but 1 phrases"):
        explainer(noise_images([(8, 8), (8, 8)]), ["a"])
    with pytest.raises(ValueError, match="phrase 1: expected a non-empty string"):
        explainer(noise_images([(8, 8), (8, 8)]), ["a", " "])


def test_from_pretrained_round_trip(tiny, tmp_path: Path) -> None:
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    loaded = BlipExplainer.from_pretrained(tmp_path, recipe="zoo", layer=0, tokens="all",
                                           device="cpu")
    images = noise_images([(32, 32)] * 2)
    expected = BlipExplainer(model, processor, layer=0, tokens="all", device="cpu")
    torch.testing.assert_close(loaded(images, PHRASES[:2]), expected(images, PHRASES[:2]))
    assert loaded.config == {"explainer": "BlipExplainer", "model": str(tmp_path), "layer": 0,
                             "tokens": "all", "recipe": "zoo", "first_token": None,
                             "captions": None, "max_words": None, "max_tokens": None,
                             "image_size": 32}


def test_from_pretrained_missing_says_where_it_looked(tmp_path: Path) -> None:
    missing = tmp_path / "blip-itm-base-coco"
    with pytest.raises(FileNotFoundError) as error:
        BlipExplainer.from_pretrained(missing)
    message = str(error.value)
    assert str(missing) in message and "Hugging Face cache" in message
    assert "huggingface-cli download" in message


def test_evaluate_blip_maps_equal_direct_scoring(tiny, tmp_path: Path) -> None:
    model, processor = tiny
    explainer = BlipExplainer(model, processor, layer=0, tokens="all", device="cpu")
    images = noise_images([(40, 30)] * 3, seed=9)
    data = [Sample(f"r{i}", image, phrase, [[5, 5, 20, 25]])
            for i, (image, phrase) in enumerate(zip(images, PHRASES, strict=True))]
    table = evaluate(explainer, data, batch_size=2, store=tmp_path, progress=False)
    expected = score(explainer(images, PHRASES), [s.boxes for s in data],
                     ids=[s.id for s in data])
    pd.testing.assert_frame_equal(table.drop(columns="phrase"), expected, rtol=1e-4)
    assert table["io_ratio"].between(0, 1).all()
    resumed = evaluate(explainer, data, batch_size=2, store=tmp_path, progress=False)
    pd.testing.assert_frame_equal(resumed, table)
    assert resumed.attrs["seconds"]["explain"] == 0


def test_first_token_replaces_cls_as_lavis_does(tiny) -> None:
    model, processor = tiny
    images = noise_images([(32, 32)] * 2)
    batch = inputs(processor, images, PHRASES[:2])
    batch["input_ids"][:, 0] = processor.tokenizer.convert_tokens_to_ids("[ENC]")
    explainer = BlipExplainer(model, processor, layer=0, tokens="all", first_token="[ENC]",
                              device="cpu")
    expected = upsample_to_images(gradcam(model, batch, layer=0), [(32, 32)] * 2)
    torch.testing.assert_close(explainer(images, PHRASES[:2]), expected)
    assert explainer.config["first_token"] == "[ENC]"
    plain = BlipExplainer(model, processor, layer=0, tokens="all", device="cpu")
    plain = plain(images, PHRASES[:2])
    assert (plain - explainer(images, PHRASES[:2])).abs().max() > 0
    with pytest.raises(ValueError, match=r"first_token '\[DEC\]' is not in the tokenizer"):
        BlipExplainer(model, processor, layer=0, tokens="all", first_token="[DEC]")
