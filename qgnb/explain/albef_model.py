"""ALBEF's image-text matching model, built without ALBEF or LAVIS, loading its checkpoints.

ALBEF (Li et al., 2021; the model AMC fine-tunes) is a ViT-B/16 image encoder, a BERT-base
text encoder whose layers ``fusion_layer`` (6) to 11 cross-attend to the image tokens, and an
ITM head on the fused [CLS]. `AlbefITM` rebuilds that part with ALBEF's own parameter names
(``models/vit.py``, ``models/xbert.py``, ``models/model_retrieval.py`` of ALBEF;
``models/model_eval.py`` of AMC), so a published state dict loads by its own keys:

- ``visual_encoder.{cls_token, pos_embed, patch_embed.proj, blocks.N.{norm1, attn.qkv,
  attn.proj, norm2, mlp.fc1, mlp.fc2}, norm}``: ALBEF's ``VisionTransformer`` (LayerNorm eps
  1e-6, fused qkv with bias). Written here: ``torchvision``'s ViT names and splits its weights
  differently, and ALBEF's ``timm`` copy is not a dependency.
- ``text_encoder.{embeddings, encoder.layer.N.{attention, crossattention, intermediate,
  output}}``: `transformers`' BERT modules (``BertEmbeddings``, ``BertAttention``, ...), which
  carry exactly these names; self-attention is bidirectional as in ALBEF's encoder.
- ``itm_head``.

`load_albef_checkpoint` reads a checkpoint file (``{"model": state_dict}`` as ALBEF and AMC
save it, or a bare state dict), applies ALBEF's own loading steps (``Grounding.py``: strip
``bert.`` from the pre-training checkpoint's ``text_encoder.bert.*`` keys; interpolate
``visual_encoder.pos_embed`` when the checkpoint's patch grid differs) and sets aside what the
ITM map never uses (momentum encoders ``*_m``, queues, ``temp``, ITC projections, the MLM
head). Any other difference is an error that lists the missing and unexpected keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import BertConfig
from transformers.modeling_outputs import BaseModelOutput
from transformers.models.bert.modeling_bert import (
    BertAttention,
    BertEmbeddings,
    BertIntermediate,
    BertOutput,
)

# Keys of ALBEF/AMC checkpoints that the ITM map does not use (training-only parts).
UNUSED_PREFIXES = ("visual_encoder_m.", "text_encoder_m.", "vision_proj_m.", "text_proj_m.",
                   "vision_proj.", "text_proj.", "text_encoder.cls.")
UNUSED_KEYS = ("temp", "image_queue", "text_queue", "idx_queue", "queue_ptr",
               "text_encoder.embeddings.position_ids")


@dataclass(frozen=True)
class AlbefConfig:
    """Sizes of an ALBEF ITM model; the defaults are ALBEF's (``configs/config_bert.json``,
    ``image_res: 384``, ViT-B/16).

    >>> AlbefConfig().grid
    24
    """

    image_size: int = 384
    patch_size: int = 16
    vision_width: int = 768
    vision_layers: int = 12
    vision_heads: int = 12
    vision_mlp: int = 3072
    vocab_size: int = 30522
    text_width: int = 768
    text_layers: int = 12
    text_heads: int = 12
    text_mlp: int = 3072
    max_positions: int = 512
    fusion_layer: int = 6

    @property
    def grid(self) -> int:
        """Patches per side of the image grid."""
        return self.image_size // self.patch_size

    def bert(self) -> BertConfig:
        """The `transformers` BertConfig of the text encoder (eager attention, which returns
        the attention probabilities the GradCAM needs)."""
        return BertConfig(vocab_size=self.vocab_size, hidden_size=self.text_width,
                          num_hidden_layers=self.text_layers,
                          num_attention_heads=self.text_heads, intermediate_size=self.text_mlp,
                          max_position_embeddings=self.max_positions, layer_norm_eps=1e-12,
                          attn_implementation="eager")


class PatchEmbed(nn.Module):
    """``proj``: the patch convolution, as timm's PatchEmbed names it."""

    def __init__(self, patch_size: int, width: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.proj(pixels).flatten(2).transpose(1, 2)


class VitAttention(nn.Module):
    """ALBEF's ``Attention``: fused ``qkv``, softmax attention, ``proj``."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, width * 3)
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, tokens, width = x.shape
        qkv = self.qkv(x).reshape(batch, tokens, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v)
        return self.proj(out.transpose(1, 2).reshape(batch, tokens, width))


class VitMlp(nn.Module):
    """``fc1``, GELU, ``fc2``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class VitBlock(nn.Module):
    """Pre-norm transformer block: ``norm1``, ``attn``, ``norm2``, ``mlp``."""

    def __init__(self, width: int, heads: int, hidden: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-6)
        self.attn = VitAttention(width, heads)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.mlp = VitMlp(width, hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class AlbefVisionTransformer(nn.Module):
    """ALBEF's ``VisionTransformer``: ``(N, 3, S, S)`` pixels -> ``(N, 1 + patches, width)``.

    >>> vit = AlbefVisionTransformer(AlbefConfig(image_size=32, vision_width=8, vision_layers=1,
    ...     vision_heads=2, vision_mlp=16))
    >>> vit(torch.zeros(1, 3, 32, 32)).shape
    torch.Size([1, 5, 8])
    """

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__()
        width = config.vision_width
        self.patch_embed = PatchEmbed(config.patch_size, width)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, width))
        self.pos_embed = nn.Parameter(torch.zeros(1, config.grid**2 + 1, width))
        self.blocks = nn.ModuleList(VitBlock(width, config.vision_heads, config.vision_mlp)
                                    for _ in range(config.vision_layers))
        self.norm = nn.LayerNorm(width, eps=1e-6)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(pixels)
        x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)


class AlbefTextLayer(nn.Module):
    """One layer of ALBEF's text encoder from `transformers`' BERT modules; ``crossattention``
    (keys and values from ``vision_width``) only from ``fusion_layer`` on."""

    def __init__(self, bert: BertConfig, cross: bool, vision_width: int) -> None:
        super().__init__()
        self.attention = BertAttention(bert)
        if cross:
            self.crossattention = BertAttention(bert, is_cross_attention=True)
            attention = self.crossattention.self
            attention.key = nn.Linear(vision_width, attention.all_head_size)
            attention.value = nn.Linear(vision_width, attention.all_head_size)
        self.intermediate = BertIntermediate(bert)
        self.output = BertOutput(bert)

    def forward(self, hidden: torch.Tensor, text_mask: torch.Tensor, image: torch.Tensor,
                image_mask: torch.Tensor) -> torch.Tensor:
        hidden, _ = self.attention(hidden, text_mask)
        if hasattr(self, "crossattention"):
            hidden, _ = self.crossattention(hidden, None, image, image_mask)
        return self.output(self.intermediate(hidden), hidden)


class AlbefTextEncoder(nn.Module):
    """ALBEF's multimodal BERT (``mode='multi_modal'``): text through all layers, the image
    entering by cross-attention from ``fusion_layer`` on. Called as ALBEF calls it:
    ``encoder(input_ids, attention_mask=..., encoder_hidden_states=image_tokens,
    encoder_attention_mask=...)`` -> ``.last_hidden_state``."""

    def __init__(self, config: AlbefConfig) -> None:
        super().__init__()
        bert = config.bert()
        self.embeddings = BertEmbeddings(bert)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList(
            AlbefTextLayer(bert, k >= config.fusion_layer, config.vision_width)
            for k in range(config.text_layers))

    @property
    def base_model(self) -> AlbefTextEncoder:
        """Itself (ALBEF's code reaches the layers through ``text_encoder.base_model``)."""
        return self

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                encoder_hidden_states: torch.Tensor, encoder_attention_mask: torch.Tensor,
                **bert_options: Any) -> BaseModelOutput:
        """``bert_options`` (``output_attentions``, ``return_dict``, as `ALBEF_ROUTE` passes
        them to a BertModel) change nothing here: the layers always return probabilities."""
        hidden = self.embeddings(input_ids=input_ids)
        text_mask = _additive_mask(attention_mask, hidden.dtype)
        image_mask = _additive_mask(encoder_attention_mask, hidden.dtype)
        for layer in self.encoder.layer:
            hidden = layer(hidden, text_mask, encoder_hidden_states, image_mask)
        return BaseModelOutput(last_hidden_state=hidden)


def _additive_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    # ALBEF's xbert: (1 - mask) * -10000 added to the scores, broadcast over heads and queries.
    return (1.0 - mask[:, None, None, :].to(dtype)) * -10000.0


class AlbefITM(nn.Module):
    """ALBEF's ITM path: ``visual_encoder``, ``text_encoder``, ``itm_head`` (module docstring).

    >>> model = AlbefITM(AlbefConfig(image_size=32, vision_width=8, vision_layers=1,
    ...     vision_heads=2, vision_mlp=16, vocab_size=20, text_width=8, text_layers=2,
    ...     text_heads=2, text_mlp=16, fusion_layer=1))
    >>> sorted({key.split(".")[0] for key in model.state_dict()})
    ['itm_head', 'text_encoder', 'visual_encoder']
    """

    def __init__(self, config: AlbefConfig | None = None) -> None:
        super().__init__()
        self.albef_config = config or AlbefConfig()
        self.visual_encoder = AlbefVisionTransformer(self.albef_config)
        self.text_encoder = AlbefTextEncoder(self.albef_config)
        self.itm_head = nn.Linear(self.albef_config.text_width, 2)


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: int) -> torch.Tensor:
    """ALBEF's ``interpolate_pos_embed``: the checkpoint's ``(1, 1 + g*g, D)`` position
    embedding resized bicubically to a ``grid`` x ``grid`` patch grid ([CLS] kept).

    >>> interpolate_pos_embed(torch.zeros(1, 1 + 16, 8), 6).shape
    torch.Size([1, 37, 8])
    """
    old = int(round((pos_embed.shape[1] - 1) ** 0.5))
    if old * old != pos_embed.shape[1] - 1:
        raise ValueError(f"visual_encoder.pos_embed has {pos_embed.shape[1] - 1} patch "
                         "positions, not a square grid")
    if old == grid:
        return pos_embed
    width = pos_embed.shape[-1]
    patches = pos_embed[:, 1:].reshape(1, old, old, width).permute(0, 3, 1, 2)
    patches = F.interpolate(patches.float(), size=(grid, grid), mode="bicubic",
                            align_corners=False)
    patches = patches.permute(0, 2, 3, 1).flatten(1, 2).to(pos_embed.dtype)
    return torch.cat([pos_embed[:, :1], patches], dim=1)


def albef_state_dict(checkpoint: Mapping[str, Any], model: AlbefITM) -> dict[str, torch.Tensor]:
    """The ITM model's state dict from an ALBEF/AMC checkpoint, by ALBEF's loading steps; a
    ValueError lists missing, unexpected and wrongly shaped keys.

    >>> model = AlbefITM(AlbefConfig(image_size=32, vision_width=8, vision_layers=1,
    ...     vision_heads=2, vision_mlp=16, vocab_size=20, text_width=8, text_layers=2,
    ...     text_heads=2, text_mlp=16, fusion_layer=1))
    >>> albef_state_dict({"model": {"itm_head.weight": torch.zeros(2, 8)}}, model)
    Traceback (most recent call last):
    ...
    ValueError: the checkpoint does not match ALBEF's ITM model: 66 missing keys ...
    """
    state = checkpoint.get("model", checkpoint)
    if not isinstance(state, Mapping):
        raise ValueError(f"the checkpoint's 'model' entry is a {type(state).__name__}, not a "
                         "state dict")
    renamed = {key.replace("bert.", "") if "bert" in key else key: value  # as Grounding.py
               for key, value in state.items()}
    used = {key: value for key, value in renamed.items()
            if key not in UNUSED_KEYS and not key.startswith(UNUSED_PREFIXES)}
    if "visual_encoder.pos_embed" in used:
        used["visual_encoder.pos_embed"] = interpolate_pos_embed(
            used["visual_encoder.pos_embed"], model.albef_config.grid)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(used))
    unexpected = sorted(set(used) - set(expected))
    shapes = sorted(f"{key}: file {tuple(used[key].shape)}, model {tuple(expected[key].shape)}"
                    for key in set(used) & set(expected)
                    if tuple(used[key].shape) != tuple(expected[key].shape))
    if missing or unexpected or shapes:
        raise ValueError(
            f"the checkpoint does not match ALBEF's ITM model: {len(missing)} missing keys "
            f"{_listing(missing)}; {len(unexpected)} unexpected keys {_listing(unexpected)}; "
            f"{len(shapes)} keys of another shape {_listing(shapes)}. Check the file is an "
            "ALBEF/AMC checkpoint and that AlbefConfig matches its sizes.")
    return used


def _listing(keys: list[str], most: int = 12) -> str:
    shown = ", ".join(keys[:most])
    return f"[{shown}{', ...' if len(keys) > most else ''}]"


def load_albef_checkpoint(path: str | Path, config: AlbefConfig | None = None, *,
                          weights_only: bool = True) -> AlbefITM:
    """An `AlbefITM` with the weights of the ALBEF/AMC checkpoint file at ``path``, in eval mode.

    ``weights_only=True`` loads the file without running pickled code; a checkpoint that also
    pickled other objects needs ``weights_only=False`` (only for a file you trust).

    >>> load_albef_checkpoint("/no/such/amc.pth")
    Traceback (most recent call last):
    ...
    FileNotFoundError: ALBEF/AMC checkpoint /no/such/amc.pth does not exist
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"ALBEF/AMC checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as error:
        raise ValueError(f"{path}: not a readable torch checkpoint ({type(error).__name__}: "
                         f"{error}); a file that pickled more than tensors needs "
                         "weights_only=False (only for a file you trust)") from error
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path}: holds a {type(checkpoint).__name__}, not a state dict")
    model = AlbefITM(config)
    try:
        model.load_state_dict(albef_state_dict(checkpoint, model))
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from error
    return model.eval()
