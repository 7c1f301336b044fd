"""Named recipes: a transformers-saved BLIP folder gives LAVIS' text-localization map by default.

The reference below is LAVIS' own code path written out again (``BlipCaptionProcessor``,
``blip_image_eval``, ``BlipITM.forward`` with [ENC] first and ``max_txt_len=35``, and
``compute_gradcam(..., block_num=7)`` keeping ``gradcam[1]``), run on the same weights through
hooks that do what LAVIS' ``save_attention`` / ``register_hook`` do. It shares no code with
qgnb's recipe.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_explain_tiny import BERT_SPECIALS, WORDS, blip_processor, noise_images
from torchvision import transforms
from transformers import BlipConfig, BlipForImageTextRetrieval

from qgnb.explain.blip import BlipExplainer
from qgnb.explain.recipes import RECIPES, albef_caption, get_recipe, lavis_caption

CAPTIONS = ["The RED circle, left of the square!", "a big (blue) square; the green triangle."]
SIZES = [(50, 40), (33, 61)]  # (width, height): the maps must come back at these sizes


def lavis_depth_blip(seed: int = 0) -> BlipForImageTextRetrieval:
    """12 text layers and 12 heads (LAVIS' reshape hard-codes 12 heads), 384 input, 16 patches
    (its 24 x 24 grid); tiny widths."""
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config=dict(vocab_size=len(BERT_SPECIALS) + len(WORDS), hidden_size=48,
                         num_hidden_layers=12, num_attention_heads=12, intermediate_size=48,
                         max_position_embeddings=64, pad_token_id=0, bos_token_id=2,
                         sep_token_id=3),
        vision_config=dict(hidden_size=24, num_hidden_layers=1, num_attention_heads=2,
                           intermediate_size=24, image_size=384, patch_size=16,
                           initializer_range=0.2),
    )
    return BlipForImageTextRetrieval(config).eval()


@pytest.fixture(scope="module")
def lavis_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("blip-lavis")
    lavis_depth_blip().save_pretrained(folder)
    blip_processor(folder, image_size=384).save_pretrained(folder)
    return folder


def lavis_pre_caption(caption: str, max_words: int = 50) -> str:
    caption = re.sub(r"([.!\"()*#:;~])", " ", caption.lower())
    caption = re.sub(r"\s{2,}", " ", caption)
    caption = caption.rstrip("\n").strip(" ")
    caption_words = caption.split(" ")
    if len(caption_words) > max_words:
        caption = " ".join(caption_words[:max_words])
    return caption


def lavis_text_localization(model, tokenizer, raw_images, captions, block_num=7):
    """LAVIS' example notebook: ``gradcam[i][1]`` for each caption, at the 24 x 24 grid."""
    eval_transform = transforms.Compose([
        transforms.Resize((384, 384), interpolation=transforms.InterpolationMode.BICUBIC),
        transforms.ToTensor(),
        transforms.Normalize((0.48145466, 0.4578275, 0.40821073),
                             (0.26862954, 0.26130258, 0.27577711)),
    ])
    visual_input = torch.stack([eval_transform(image) for image in raw_images])
    text_input = [lavis_pre_caption(caption) for caption in captions]
    tokenized_text = tokenizer(text_input, padding="longest", return_tensors="pt")
    saved = {}

    def save_attention(_module, _args, output):
        saved["map"] = output[1]
        output[1].register_hook(lambda grad: saved.__setitem__("grad", grad))

    block = model.text_encoder.encoder.layer[block_num].crossattention.self
    handle = block.register_forward_hook(save_attention)
    # BlipITM.forward(samples, match_head="itm")
    text = tokenizer(text_input, padding="longest", truncation=True, max_length=35,
                     return_tensors="pt")
    encoder_input_ids = text.input_ids.clone()
    encoder_input_ids[:, 0] = tokenizer.convert_tokens_to_ids("[ENC]")
    output = model(input_ids=encoder_input_ids, pixel_values=visual_input,
                   attention_mask=text.attention_mask, use_itm_head=True).itm_score
    handle.remove()
    loss = output[:, 1].sum()
    model.zero_grad()
    loss.backward()
    with torch.no_grad():
        mask = tokenized_text.attention_mask.view(tokenized_text.attention_mask.size(0), 1, -1,
                                                  1, 1)
        token_length = tokenized_text.attention_mask.sum(dim=-1) - 2
        cams = saved["map"][:, :, :, 1:].reshape(visual_input.size(0), 12, -1, 24, 24) * mask
        grads = saved["grad"][:, :, :, 1:].clamp(0).reshape(visual_input.size(0), 12, -1, 24,
                                                            24) * mask
        gradcams = cams * grads
        maps = []
        for ind in range(visual_input.size(0)):
            gradcam = gradcams[ind].mean(0)
            length = token_length[ind]
            maps.append(gradcam[1:length + 1, :].sum(dim=0) / length)
    model.zero_grad(set_to_none=True)
    return torch.stack(maps)


def normalised_max_difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    return float((got - expected).abs().max() / expected.abs().max())


def test_saved_folder_defaults_to_lavis_text_localization(lavis_folder: Path) -> None:
    explainer = BlipExplainer.from_pretrained(lavis_folder, device="cpu")
    images = noise_images(SIZES, seed=3)
    maps = explainer(images, CAPTIONS)
    assert [tuple(m.shape) for m in maps] == [(40, 50), (61, 33)]

    model = BlipForImageTextRetrieval.from_pretrained(lavis_folder).eval()
    grids = lavis_text_localization(model, blip_processor(lavis_folder / "ref", 384).tokenizer,
                                    images, CAPTIONS)
    assert grids.abs().amax(dim=(1, 2)).min() > 0
    for got, grid, (width, height) in zip(maps, grids, SIZES, strict=True):
        expected = F.interpolate(grid[None, None], size=(height, width), mode="bicubic",
                                 align_corners=False)[0, 0]
        assert normalised_max_difference(got, expected) < 1e-4
    assert explainer.config == {
        "explainer": "BlipExplainer", "model": str(lavis_folder), "recipe": "lavis", "layer": 7,
        "tokens": "words", "first_token": "[ENC]", "first_token_id": 5, "captions": "lavis",
        "max_words": 50, "max_tokens": 35, "image_size": 384}


def test_lavis_caption_limits(lavis_folder: Path) -> None:
    # LAVIS: at most 50 words after cleaning, then at most max_txt_len=35 tokens, [ENC] first.
    explainer = BlipExplainer.from_pretrained(lavis_folder, device="cpu")
    batch = explainer.preprocess(noise_images([(9, 9)]), ["Red, " * 60])
    assert batch["input_ids"].shape == (1, 35)
    assert batch["input_ids"][0, 0] == 5 and batch["attention_mask"].sum() == 35
    assert explainer.recipe.clean(["Red, " * 60]) == [" ".join(["red,"] * 50)]  # 50 words


def test_old_default_is_a_different_map(lavis_folder: Path) -> None:
    # The map the folder gave before recipes (layer 6, every row, [CLS] first) is not LAVIS'.
    images = noise_images(SIZES[:1], seed=3)
    lavis = BlipExplainer.from_pretrained(lavis_folder, device="cpu")(images, CAPTIONS[:1])
    old = BlipExplainer.from_pretrained(lavis_folder, recipe="zoo", layer=6, tokens="all",
                                        device="cpu")(images, CAPTIONS[:1])
    assert normalised_max_difference(old, lavis) > 0.05


def test_enc_falls_back_to_lavis_layout(lavis_folder: Path, tmp_path: Path) -> None:
    # A tokenizer without [ENC] but with LAVIS' [DEC] BOS and one token fewer than the model's
    # vocabulary: [ENC] is the last id, as LAVIS' init_tokenizer adds it.
    model = BlipForImageTextRetrieval.from_pretrained(lavis_folder).eval()
    processor = blip_processor(tmp_path, 384)
    vocab = [token for token in BERT_SPECIALS if token != "[ENC]"] + WORDS[:-1]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    processor.tokenizer = type(processor.tokenizer)(str(tmp_path / "vocab.txt"),
                                                    bos_token="[DEC]")
    assert len(processor.tokenizer) == model.config.text_config.vocab_size - 1
    explainer = BlipExplainer(model, processor, recipe="lavis", device="cpu")
    assert explainer.first_id == model.config.text_config.vocab_size - 1
    processor.tokenizer = type(processor.tokenizer)(str(tmp_path / "vocab.txt"))
    with pytest.raises(ValueError, match=r"first_token '\[ENC\]' is not in the tokenizer's "
                                         r"vocabulary \(and the tokenizer is not LAVIS' layout"):
        BlipExplainer(model, processor, recipe="lavis", device="cpu")


def test_recipe_checks_the_input_size(lavis_folder: Path) -> None:
    from test_explain_tiny import blip_model
    with pytest.raises(ValueError, match="resizes images to 384 but the model takes 32; pass "
                                         "image_size=32"):
        BlipExplainer(blip_model(text_layers=8), blip_processor(lavis_folder / "p", 32),
                      recipe="lavis")


def test_caption_cleaning_by_hand() -> None:
    assert lavis_caption("Two DOGS: one ~ brown.") == "two dogs one brown"
    assert lavis_caption("a b c d", max_words=2) == "a b"
    assert albef_caption("The man's hat-band, (left)") == "the mans hat band left"
    assert albef_caption("a b c d", max_words=3) == "a b c"
    assert RECIPES["amc"].clean(["A Dog!"]) == ["a dog"]
    assert RECIPES["zoo"].clean(["A Dog!"]) == ["A Dog!"]
    with pytest.raises(ValueError, match=r"phrase 1: '\.\.\.' is empty after the 'lavis'"):
        RECIPES["lavis"].clean(["a dog", "..."])


def test_recipe_overrides_and_config() -> None:
    recipe = get_recipe("lavis").with_overrides(layer=6, tokens="all")
    assert (recipe.name, recipe.layer, recipe.tokens, recipe.first_token) == ("lavis", 6, "all",
                                                                             "[ENC]")
    assert recipe.config()["layer"] == 6 and "source" not in recipe.config()
    with pytest.raises(ValueError, match=r"has no field\(s\) \['block'\]"):
        get_recipe("amc").with_overrides(block=3)
    with pytest.raises(ValueError, match="unknown recipe 'paper'"):
        get_recipe("paper")
