"""ALBEF/AMC checkpoints loaded without ALBEF: key names, interpolation, and the maps.

The checkpoint here is written key by key from ALBEF's and AMC's code (an AMC/ALBEF
pre-training checkpoint: ``{"model": ...}`` with ``text_encoder.bert.*``, the MLM head, the
momentum encoders and the queues), tiny and random, with a patch grid smaller than the
model's so the position embedding must be interpolated. The reference map is ALBEF's forward
pass and ``Grounding.py``'s GradCAM written out functionally on that state dict.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from test_explain_tiny import BERT_SPECIALS, WORDS, blip_processor, noise_images

from qgnb.explain.albef import AlbefExplainer, albef_image_transform
from qgnb.explain.albef_model import AlbefConfig, AlbefITM, load_albef_checkpoint
from qgnb.explain.recipes import albef_caption

CONFIG = AlbefConfig(image_size=48, patch_size=16, vision_width=24, vision_layers=2,
                     vision_heads=2, vision_mlp=32, vocab_size=len(BERT_SPECIALS) + len(WORDS),
                     text_width=16, text_layers=12, text_heads=2, text_mlp=32, max_positions=32,
                     fusion_layer=6)
CHECKPOINT_GRID = 2  # the file's pos_embed is for a 2 x 2 grid; the model's is 3 x 3
PHRASES = ["The red circle, left of the square!", "a big blue square"]


def vit_shapes(prefix: str, c: AlbefConfig, grid: int) -> dict[str, tuple]:
    """ALBEF models/vit.py VisionTransformer (timm PatchEmbed, Block, Attention, Mlp)."""
    d = c.vision_width
    shapes = {f"{prefix}.cls_token": (1, 1, d), f"{prefix}.pos_embed": (1, grid * grid + 1, d),
              f"{prefix}.patch_embed.proj.weight": (d, 3, c.patch_size, c.patch_size),
              f"{prefix}.patch_embed.proj.bias": (d,),
              f"{prefix}.norm.weight": (d,), f"{prefix}.norm.bias": (d,)}
    for i in range(c.vision_layers):
        b = f"{prefix}.blocks.{i}"
        shapes.update({f"{b}.norm1.weight": (d,), f"{b}.norm1.bias": (d,),
                       f"{b}.attn.qkv.weight": (3 * d, d), f"{b}.attn.qkv.bias": (3 * d,),
                       f"{b}.attn.proj.weight": (d, d), f"{b}.attn.proj.bias": (d,),
                       f"{b}.norm2.weight": (d,), f"{b}.norm2.bias": (d,),
                       f"{b}.mlp.fc1.weight": (c.vision_mlp, d),
                       f"{b}.mlp.fc1.bias": (c.vision_mlp,),
                       f"{b}.mlp.fc2.weight": (d, c.vision_mlp), f"{b}.mlp.fc2.bias": (d,)})
    return shapes


def bert_shapes(prefix: str, c: AlbefConfig) -> dict[str, tuple]:
    """ALBEF models/xbert.py BertModel: embeddings, layers, cross-attention from fusion_layer."""
    h, m = c.text_width, c.text_mlp
    e = f"{prefix}.embeddings"
    shapes = {f"{e}.word_embeddings.weight": (c.vocab_size, h),
              f"{e}.position_embeddings.weight": (c.max_positions, h),
              f"{e}.token_type_embeddings.weight": (2, h),
              f"{e}.LayerNorm.weight": (h,), f"{e}.LayerNorm.bias": (h,)}
    for i in range(c.text_layers):
        lay = f"{prefix}.encoder.layer.{i}"
        parts = ["attention"] + (["crossattention"] if i >= c.fusion_layer else [])
        for part in parts:
            width = c.vision_width if part == "crossattention" else h  # config.encoder_width
            shapes.update({f"{lay}.{part}.self.query.weight": (h, h),
                           f"{lay}.{part}.self.query.bias": (h,),
                           f"{lay}.{part}.self.key.weight": (h, width),
                           f"{lay}.{part}.self.key.bias": (h,),
                           f"{lay}.{part}.self.value.weight": (h, width),
                           f"{lay}.{part}.self.value.bias": (h,),
                           f"{lay}.{part}.output.dense.weight": (h, h),
                           f"{lay}.{part}.output.dense.bias": (h,),
                           f"{lay}.{part}.output.LayerNorm.weight": (h,),
                           f"{lay}.{part}.output.LayerNorm.bias": (h,)})
        shapes.update({f"{lay}.intermediate.dense.weight": (m, h),
                       f"{lay}.intermediate.dense.bias": (m,),
                       f"{lay}.output.dense.weight": (h, m), f"{lay}.output.dense.bias": (h,),
                       f"{lay}.output.LayerNorm.weight": (h,),
                       f"{lay}.output.LayerNorm.bias": (h,)})
    return shapes


def amc_checkpoint(c: AlbefConfig = CONFIG, seed: int = 0) -> dict:
    """An AMC (ALBEF pre-training layout) checkpoint: BertForMaskedLM text encoders."""
    shapes = {**vit_shapes("visual_encoder", c, CHECKPOINT_GRID),
              **vit_shapes("visual_encoder_m", c, CHECKPOINT_GRID),
              **bert_shapes("text_encoder.bert", c), **bert_shapes("text_encoder_m.bert", c),
              "text_encoder.cls.predictions.bias": (c.vocab_size,),
              "text_encoder.cls.predictions.transform.dense.weight": (c.text_width, c.text_width),
              "itm_head.weight": (2, c.text_width), "itm_head.bias": (2,),
              "vision_proj.weight": (8, c.vision_width), "vision_proj.bias": (8,),
              "text_proj.weight": (8, c.text_width), "text_proj.bias": (8,),
              "vision_proj_m.weight": (8, c.vision_width), "temp": (), "image_queue": (8, 4),
              "text_queue": (8, 4), "queue_ptr": (1,)}
    generator = torch.Generator().manual_seed(seed)
    state = {key: torch.randn(shape, generator=generator) * 0.3 for key, shape in shapes.items()}
    for key in state:  # LayerNorm weights near 1, as trained ones are
        if key.endswith(("LayerNorm.weight", "norm1.weight", "norm2.weight", "norm.weight")):
            state[key] = 1 + 0.1 * state[key]
    state["text_encoder.bert.embeddings.position_ids"] = torch.arange(c.max_positions)[None]
    return {"model": state, "epoch": 4}


def albef_interpolate_pos_embed(pos_embed_checkpoint: torch.Tensor, num_patches: int):
    """ALBEF models/vit.py interpolate_pos_embed, for one extra ([CLS]) token."""
    embedding_size = pos_embed_checkpoint.shape[-1]
    orig_size = int((pos_embed_checkpoint.shape[-2] - 1) ** 0.5)
    new_size = int(num_patches ** 0.5)
    extra_tokens = pos_embed_checkpoint[:, :1]
    pos_tokens = pos_embed_checkpoint[:, 1:]
    pos_tokens = pos_tokens.reshape(-1, orig_size, orig_size, embedding_size).permute(0, 3, 1, 2)
    pos_tokens = F.interpolate(pos_tokens, size=(new_size, new_size), mode="bicubic",
                               align_corners=False)
    pos_tokens = pos_tokens.permute(0, 2, 3, 1).flatten(1, 2)
    return torch.cat((extra_tokens, pos_tokens), dim=1)


def reference_gradcam(state: dict, c: AlbefConfig, pixels, input_ids, attention_mask,
                      block_num: int = 8) -> torch.Tensor:
    """ALBEF's ITM forward (multi_modal mode) and Grounding.py's gradcam, functionally."""
    s = {k.replace("bert.", ""): v for k, v in state.items()}
    ln = F.layer_norm

    def linear(x, name):
        return F.linear(x, s[f"{name}.weight"], s[f"{name}.bias"])

    x = F.conv2d(pixels, s["visual_encoder.patch_embed.proj.weight"],
                 s["visual_encoder.patch_embed.proj.bias"], stride=c.patch_size)
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([s["visual_encoder.cls_token"].expand(x.shape[0], -1, -1), x], dim=1)
    x = x + albef_interpolate_pos_embed(s["visual_encoder.pos_embed"], c.grid ** 2)
    d, heads = c.vision_width, c.vision_heads
    for i in range(c.vision_layers):
        b = f"visual_encoder.blocks.{i}"
        h = ln(x, (d,), s[f"{b}.norm1.weight"], s[f"{b}.norm1.bias"], 1e-6)
        qkv = linear(h, f"{b}.attn.qkv").reshape(x.shape[0], x.shape[1], 3, heads, d // heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        attn = ((q @ k.transpose(-2, -1)) * (d // heads) ** -0.5).softmax(dim=-1)
        x = x + linear((attn @ v).transpose(1, 2).reshape(x.shape), f"{b}.attn.proj")
        h = ln(x, (d,), s[f"{b}.norm2.weight"], s[f"{b}.norm2.bias"], 1e-6)
        x = x + linear(F.gelu(linear(h, f"{b}.mlp.fc1")), f"{b}.mlp.fc2")
    image = ln(x, (d,), s["visual_encoder.norm.weight"], s["visual_encoder.norm.bias"], 1e-6)

    w, th = c.text_width, c.text_heads
    e = "text_encoder.embeddings"
    length = input_ids.shape[1]
    t = (s[f"{e}.word_embeddings.weight"][input_ids] + s[f"{e}.token_type_embeddings.weight"][0]
         + s[f"{e}.position_embeddings.weight"][:length])
    t = ln(t, (w,), s[f"{e}.LayerNorm.weight"], s[f"{e}.LayerNorm.bias"], 1e-12)
    extended = (1.0 - attention_mask[:, None, None, :].float()) * -10000.0
    saved = {}

    def attention(hidden, keys_from, prefix, mask, save):
        def split(z):
            return z.view(z.shape[0], z.shape[1], th, w // th).permute(0, 2, 1, 3)
        q = split(linear(hidden, f"{prefix}.self.query"))
        k = split(linear(keys_from, f"{prefix}.self.key"))
        v = split(linear(keys_from, f"{prefix}.self.value"))
        scores = q @ k.transpose(-1, -2) / math.sqrt(w // th)
        probs = torch.softmax(scores + mask if mask is not None else scores, dim=-1)
        if save:  # a leaf, so that its gradient is kept (LAVIS/ALBEF: register_hook)
            probs = probs.detach().requires_grad_(True)
            saved["probs"] = probs
        out = (probs @ v).permute(0, 2, 1, 3).reshape(hidden.shape)
        return ln(linear(out, f"{prefix}.output.dense") + hidden, (w,),
                  s[f"{prefix}.output.LayerNorm.weight"], s[f"{prefix}.output.LayerNorm.bias"],
                  1e-12)

    for i in range(c.text_layers):
        lay = f"text_encoder.encoder.layer.{i}"
        t = attention(t, t, f"{lay}.attention", extended, False)
        if i >= c.fusion_layer:
            t = attention(t, image, f"{lay}.crossattention", None, i == block_num)
        inner = F.gelu(linear(t, f"{lay}.intermediate.dense"))
        t = ln(linear(inner, f"{lay}.output.dense") + t, (w,), s[f"{lay}.output.LayerNorm.weight"],
               s[f"{lay}.output.LayerNorm.bias"], 1e-12)
    logits = linear(t[:, 0, :], "itm_head")
    logits[:, 1].sum().backward()
    mask = attention_mask.view(attention_mask.size(0), 1, -1, 1, 1)
    g = c.grid
    cams = saved["probs"][:, :, :, 1:].reshape(pixels.size(0), th, -1, g, g) * mask
    grads = saved["probs"].grad[:, :, :, 1:].clamp(min=0).reshape(pixels.size(0), th, -1, g, g)
    return (cams * grads * mask).mean(1).mean(1).detach()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("amc")
    torch.save(amc_checkpoint(), folder / "amc.pth")
    blip_processor(folder / "bert").tokenizer.save_pretrained(folder / "bert")
    return folder / "amc.pth", folder / "bert"


def test_checkpoint_maps_equal_albef_grounding_code(files) -> None:
    path, bert = files
    explainer = AlbefExplainer.from_checkpoint(path, bert, config=CONFIG, device="cpu")
    images = noise_images([(50, 40), (36, 30)], seed=6)
    maps = explainer(images, PHRASES)
    assert [tuple(m.shape) for m in maps] == [(40, 50), (30, 36)]

    tokenizer = explainer.tokenizer
    text = tokenizer([albef_caption(p) for p in PHRASES], padding="longest",
                     return_tensors="pt")
    transform = albef_image_transform(CONFIG.image_size)
    pixels = torch.stack([transform(image) for image in images])
    state = {k: v.requires_grad_(False) for k, v in amc_checkpoint()["model"].items()}
    grids = reference_gradcam(state, CONFIG, pixels, text["input_ids"], text["attention_mask"])
    counts = text["attention_mask"].sum(dim=1)
    for i, (got, grid) in enumerate(zip(maps, grids, strict=True)):
        # Grounding.py's .mean(1) over token rows divides by the padded length; qgnb's "all"
        # rows by the phrase's own token count: a per-phrase scale, undone here.
        grid = grid * text["input_ids"].shape[1] / counts[i]
        expected = F.interpolate(grid[None, None], size=tuple(got.shape), mode="bicubic",
                                 align_corners=False)[0, 0]
        assert expected.abs().max() > 0
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6 * expected.abs().max())
    assert explainer.config["recipe"] == "amc" and explainer.config["layer"] == 8


def test_loaded_model_equals_the_generic_route(files) -> None:
    path, bert = files
    loaded = AlbefExplainer.from_checkpoint(path, bert, config=CONFIG, device="cpu")
    model = AlbefITM(CONFIG)
    state = {k.replace("bert.", ""): v for k, v in amc_checkpoint()["model"].items()
             if k.startswith(("visual_encoder.", "text_encoder.bert.", "itm_head."))
             and not k.endswith("position_ids")}
    state["visual_encoder.pos_embed"] = albef_interpolate_pos_embed(
        state["visual_encoder.pos_embed"], CONFIG.grid ** 2)
    model.load_state_dict(state)
    generic = AlbefExplainer(model.eval(), loaded.tokenizer, layer=8, tokens="all",
                             image_size=CONFIG.image_size, device="cpu")
    images = noise_images([(40, 40)] * 2, seed=7)
    torch.testing.assert_close(loaded(images, PHRASES), generic(images, PHRASES))


def test_wrong_file_names_the_keys(files, tmp_path: Path) -> None:
    path, _ = files
    checkpoint = amc_checkpoint()
    state = checkpoint["model"]
    del state["itm_head.weight"]
    state["text_encoder.bert.pooler.dense.weight"] = torch.zeros(2, 2)
    torch.save(checkpoint, tmp_path / "bad.pth")
    with pytest.raises(ValueError) as error:
        load_albef_checkpoint(tmp_path / "bad.pth", CONFIG)
    message = str(error.value)
    assert str(tmp_path / "bad.pth") in message
    assert "1 missing keys [itm_head.weight]" in message
    assert "1 unexpected keys [text_encoder.pooler.dense.weight]" in message
    with pytest.raises(ValueError, match=r"keys of another shape \[text_encoder.embeddings"
                                         r".word_embeddings.weight: file \(17, 16\), model"):
        load_albef_checkpoint(path, dataclasses.replace(CONFIG, vocab_size=30))
    (tmp_path / "text.pth").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a readable torch checkpoint"):
        load_albef_checkpoint(tmp_path / "text.pth", CONFIG)
