"""The tiny VLM: a CLIP vision tower, an MLP connector and a small GPT-2 built from a config.

The image's patch tokens (CLIP's last hidden state without the class token), mapped by the
connector into the language model's embedding space, form a prefix; prompts and answers follow
as text tokens. Many queries share one image: the prefix runs through the language model once
per image and its key/value cache is repeated for every query of that image, so a batch of
``B`` images with ``Q`` queries each costs ``B`` prefix passes, not ``B * Q``.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    GPT2LMHeadModel,
)

IGNORE = -100  # label of a position that is not in the loss (prompt tokens, padding)


def lm_config(vocab_size: int, eos_id: int, hidden: int = 128, layers: int = 2,
              heads: int = 4, max_positions: int = 128) -> GPT2Config:
    """A small GPT-2 config without dropout (the data are generated; determinism matters).

    >>> lm_config(300, eos_id=2).n_embd
    128
    """
    return GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden,
                      n_layer=layers, n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=eos_id, eos_token_id=eos_id)


def _periods(count: int, width: int) -> torch.Tensor:
    """``width // 2`` periods, geometric from ``2 * count`` down to 4."""
    return (2.0 * count) * (4.0 / (2.0 * count)) ** torch.linspace(0, 1, width // 2)


def _sinusoids(values: torch.Tensor, periods: torch.Tensor) -> torch.Tensor:
    angles = values.float()[:, None] * (2 * torch.pi / periods)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def ordinal_embeddings(count: int, width: int, scale: float = 0.02) -> torch.Tensor:
    """``count x width`` sinusoidal embeddings of the values ``0..count-1`` (periods from
    ``2 * count`` down to 4, amplitude so the entries have standard deviation ``scale``).

    Number tokens start from these instead of random vectors so that ``137`` begins close to
    ``138``: the language model does not have to discover the order of 256 values from scratch
    (the output layer is tied to these embeddings, so answers inherit the same order).

    >>> e = ordinal_embeddings(256, 128)
    >>> bool((e[137] @ e[138]) > (e[137] @ e[20]))
    True
    """
    if width % 2:
        raise ValueError(f"width must be even, got {width}")
    return scale * 2**0.5 * _sinusoids(torch.arange(count), _periods(count, width))


def grid_position_codes(patches: int, grid: int, width: int, count: int = 256) -> torch.Tensor:
    """``patches**2 x width`` codes of each patch's centre in target-grid cells, row-major:
    the first half of the dimensions encodes the row, the second the column, each with every
    other period of ``ordinal_embeddings(count, width)`` (unit standard deviation).

    Why: a language model trained from scratch in a few minutes does not learn on its own
    which image token a coordinate ``[y,x]`` points at (it paints a centred blob instead).
    These codes share the frequencies of the number tokens' initial embeddings, so matching a
    coordinate to its patch is a linear map from the start. All regimes get the same codes.

    >>> codes = grid_position_codes(8, 16, 128)
    >>> codes.shape, bool(codes[9] @ codes[9] > codes[9] @ codes[54])
    (torch.Size([64, 128]), True)
    """
    if width % 4:
        raise ValueError(f"width must be a multiple of 4, got {width}")
    periods = _periods(count, width)[::2]
    centres = (torch.arange(patches) + 0.5) * grid / patches - 0.5
    rows = _sinusoids(centres, periods).repeat_interleave(patches, dim=0)
    cols = _sinusoids(centres, periods).repeat(patches, 1)
    return torch.cat([rows, cols], dim=1)


def random_vision_tower(seed: int = 0, hidden: int = 96, layers: int = 3, heads: int = 4,
                        image_size: int = 64, patch_size: int = 8
                        ) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """A randomly initialised CLIP vision tower (the zoo's ``shapes-clip`` shape) and a
    processor that only normalises 64x64 images (for tests, and before the zoo is trained).

    >>> tower, processor = random_vision_tower()
    >>> tower.config.hidden_size, processor.crop_size["height"]
    (96, 64)
    """
    torch.manual_seed(seed)
    config = CLIPVisionConfig(hidden_size=hidden, intermediate_size=4 * hidden,
                              num_hidden_layers=layers, num_attention_heads=heads,
                              image_size=image_size, patch_size=patch_size,
                              initializer_range=0.02)
    processor = CLIPImageProcessor(size={"shortest_edge": image_size},
                                   crop_size={"height": image_size, "width": image_size})
    return CLIPVisionModel(config), processor


def zoo_vision_tower(name: str = "shapes-clip"
                     ) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """The vision tower and image processor of a CLIP from ``qgnb.zoo`` (trained weights).

    >>> tower, processor = zoo_vision_tower()  # doctest: +SKIP
    """
    from qgnb.zoo import load_model

    clip, processor = load_model(name)
    return clip.vision_model, getattr(processor, "image_processor", processor)


def vision_tower(source: str) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """``"random:SEED"`` for a random tower, ``"zoo:NAME"`` for a zoo model's tower.

    >>> vision_tower("random:0")[0].config.num_hidden_layers
    3
    """
    kind, _, arg = source.partition(":")
    if kind == "random":
        return random_vision_tower(int(arg or 0))
    if kind == "zoo":
        return zoo_vision_tower(arg)
    raise ValueError(f"unknown vision source {source!r}; expected 'random:SEED' or 'zoo:NAME'")


class TinyVLM(nn.Module):
    """Vision tower -> MLP connector (+ patch position codes in units of the ``grid`` the
    model is asked about) -> causal language model, answering in text. ``number_ids`` (the
    tokenizer's ids of ``"0"``..``"255"``) start from ordinal embeddings.

    >>> tower, _ = random_vision_tower()
    >>> model = TinyVLM(tower, lm_config(300, eos_id=2))
    >>> model.image_tokens(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 64, 128])
    """

    def __init__(self, vision: CLIPVisionModel, config: GPT2Config, grid: int = 16,
                 number_ids: list[int] | None = None):
        super().__init__()
        self.vision = vision
        self.grid = grid
        width = config.n_embd
        self.connector = nn.Sequential(
            nn.Linear(vision.config.hidden_size, width), nn.GELU(), nn.Linear(width, width)
        )
        patches = vision.config.image_size // vision.config.patch_size
        self.register_buffer("position_codes", grid_position_codes(patches, grid, width),
                             persistent=False)
        self.position_scale = nn.Parameter(torch.ones(()))  # part of the connector's output
        self.lm = GPT2LMHeadModel(config)
        if number_ids is not None:
            with torch.no_grad():
                self.lm.transformer.wte.weight[number_ids] = ordinal_embeddings(
                    len(number_ids), width, config.initializer_range)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x P x width``: the patch tokens (class token dropped) through the connector, plus
    the scaled grid position codes of the patches (``grid_position_codes``)."""
        patches = self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:]
        return self.connector(patches) + self.position_scale * self.position_codes

    def prefix_cache(self, pixel_values: torch.Tensor, repeats: int):
        """The language model's key/value cache over each image's tokens, repeated ``repeats``
        times per image (image-major order), and the prefix length."""
        tokens = self.image_tokens(pixel_values)
        cache = self.lm.transformer(inputs_embeds=tokens, use_cache=True).past_key_values
        cache.batch_repeat_interleave(repeats)
        return cache, tokens.shape[1]

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Logits ``B x Q x T x vocab`` for ``Q`` text queries per image (``B x Q x T`` ids,
        right-padded) and, with ``labels`` (``IGNORE`` where not scored), the mean
        cross-entropy of the scored tokens."""
        b, q, t = input_ids.shape
        cache, p = self.prefix_cache(pixel_values, q)
        mask = torch.cat([torch.ones(b * q, p, dtype=attention_mask.dtype),
                          attention_mask.reshape(b * q, t)], dim=1)
        positions = torch.arange(p, p + t).expand(b * q, t)
        logits = self.lm(input_ids=input_ids.reshape(b * q, t), attention_mask=mask,
                         past_key_values=cache, position_ids=positions).logits
        logits = logits.reshape(b, q, t, -1)
        if labels is None:
            return None, logits
        # Token k is predicted from position k - 1 (the first text token from the image).
        loss = nn.functional.cross_entropy(
            logits[:, :, :-1].reshape(-1, logits.shape[-1]), labels[:, :, 1:].reshape(-1),
            ignore_index=IGNORE,
        )
        return loss, logits

    @torch.no_grad()
    def greedy_answers(self, pixel_values: torch.Tensor, prompt_ids: torch.Tensor,
                       eos_id: int, max_new_tokens: int) -> torch.Tensor:
        """Greedy answers ``B x Q x max_new_tokens`` to ``Q`` equal-length prompts per image
        (``B x Q x T``): one pass over the prompts, then one token per step for all queries,
        stopping early once every answer has produced ``eos_id``.

        >>> tower, _ = random_vision_tower()
        >>> model = TinyVLM(tower, lm_config(300, eos_id=2))
        >>> model.greedy_answers(torch.zeros(2, 3, 64, 64), torch.ones(2, 5, 4, dtype=torch.long),
        ...                      eos_id=2, max_new_tokens=3).shape
        torch.Size([2, 5, 3])
        """
        b, q, t = prompt_ids.shape
        cache, p = self.prefix_cache(pixel_values, q)
        ids = prompt_ids.reshape(b * q, t)
        positions = torch.arange(p, p + t).expand(b * q, t)
        answers = torch.full((b * q, max_new_tokens), eos_id, dtype=torch.long)
        done = torch.zeros(b * q, dtype=torch.bool)
        for k in range(max_new_tokens):
            logits = self.lm(input_ids=ids, past_key_values=cache, position_ids=positions,
                             use_cache=True).logits[:, -1]
            nxt = torch.where(done, eos_id, logits.argmax(-1))
            answers[:, k] = nxt
            done |= nxt == eos_id
            if bool(done.all()):
                break
            ids = nxt[:, None]
            positions = positions[:, -1:] + 1
        return answers.reshape(b, q, max_new_tokens)
