"""Tiny random BLIP and CLIP models with word-level tokenizers, shared by the explain tests.

Builders only (imported by the other ``test_explain*`` files); the check below makes sure the
vocabulary tokenises the test phrases into known words.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import transformers
from PIL import Image
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    BertTokenizer,
    BlipConfig,
    BlipForImageTextRetrieval,
    BlipImageProcessor,
    BlipProcessor,
    CLIPConfig,
    CLIPImageProcessor,
    CLIPModel,
    CLIPProcessor,
    PreTrainedTokenizerFast,
)

transformers.logging.set_verbosity_error()

WORDS = ["the", "a", "red", "blue", "green", "circle", "square", "triangle", "left", "of", "big"]
BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[ENC]"]
PHRASES = ["the red circle", "a big blue square left of the green triangle", "the square"]


def blip_processor(folder: Path, image_size: int = 32) -> BlipProcessor:
    """BLIP processor: BERT word-piece tokenizer over `WORDS`, images resized to a square."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(BERT_SPECIALS + WORDS) + "\n")
    tokenizer = BertTokenizer(str(folder / "vocab.txt"))
    images = BlipImageProcessor(size={"height": image_size, "width": image_size})
    return BlipProcessor(image_processor=images, tokenizer=tokenizer)


def blip_model(image_size: int = 32, patch_size: int = 8, text_layers: int = 2,
               seed: int = 0) -> BlipForImageTextRetrieval:
    """Random BlipForImageTextRetrieval: hidden 32, 2 heads, vision init range 0.02."""
    torch.manual_seed(seed)
    config = BlipConfig(
        text_config=dict(vocab_size=len(BERT_SPECIALS) + len(WORDS), hidden_size=32,
                         num_hidden_layers=text_layers, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=32, pad_token_id=0,
                         bos_token_id=2, sep_token_id=3),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, image_size=image_size, patch_size=patch_size,
                           initializer_range=0.02),
    )
    return BlipForImageTextRetrieval(config).eval()


def clip_processor(image_size: int = 32) -> CLIPProcessor:
    """CLIP processor: a word-level tokenizer over `WORDS` (CLIP's BOS/EOS framing, EOS pads)."""
    specials = ["<|startoftext|>", "<|endoftext|>", "<unk>"]
    vocab = {token: i for i, token in enumerate(specials + WORDS)}
    words = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    words.pre_tokenizer = pre_tokenizers.Whitespace()
    words.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>",
        special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=words, bos_token="<|startoftext|>",
                                        eos_token="<|endoftext|>", pad_token="<|endoftext|>",
                                        unk_token="<unk>")
    images = CLIPImageProcessor(size={"shortest_edge": image_size},
                                crop_size={"height": image_size, "width": image_size})
    return CLIPProcessor(image_processor=images, tokenizer=tokenizer)


def clip_model(vocab_size: int, image_size: int = 32, patch_size: int = 8,
               seed: int = 0) -> CLIPModel:
    """Random CLIPModel: hidden 32, 2 layers, 2 heads, projection 16."""
    torch.manual_seed(seed)
    config = CLIPConfig(
        text_config=dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=32, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                           intermediate_size=64, image_size=image_size,
                           patch_size=patch_size, initializer_range=0.02),
        projection_dim=16,
    )
    return CLIPModel(config).eval()


def noise_images(sizes: list[tuple[int, int]], seed: int = 0) -> list[Image.Image]:
    """Random RGB images of the given ``(width, height)`` sizes."""
    rng = np.random.default_rng(seed)
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)) for w, h in sizes]


def test_tokenizers_know_every_word(tmp_path: Path) -> None:
    blip_ids = blip_processor(tmp_path / "blip").tokenizer(PHRASES[1])["input_ids"]
    clip_ids = clip_processor().tokenizer(PHRASES[1])["input_ids"]
    assert len(blip_ids) == len(clip_ids) == 9 + 2  # nine words, one token each, + 2 specials
    assert 1 not in blip_ids and 2 not in clip_ids  # no unknown words
