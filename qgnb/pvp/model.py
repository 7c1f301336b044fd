"""The PVP model: a vision tower, an MLP connector and a small GPT-2 built from a config.

The image tokens form a prefix of the language model's input, one token per target-grid cell;
prompts and answers follow as text tokens. A cell's token carries a one-hot code of its row and
column and, as content, either the connector's map of the vision tower's patch token
(``image_source="tower"``, every shipped regime) or a linear map, trained with it, of the cell's
exact mean colour (``image_source="oracle"``: stage 0, where the language model learns to read
before any encoder is compared). A location ``[y,x]`` is one token, and the first layer starts
with a head wired to attend from it to its cell (``wire_lookup_head``).

Training runs each image's tokens and all its queries as one packed sequence (``packed_mask``);
decoding runs the image once and repeats its key/value cache for every query. Either way a
batch of ``B`` images with ``Q`` queries each costs ``B`` image passes, not ``B * Q``.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn
from transformers import (
    CLIPImageProcessor,
    CLIPVisionConfig,
    CLIPVisionModel,
    GPT2Config,
    GPT2LMHeadModel,
)

from qgnb.pvp.queries import all_cells, location_text
from qgnb.pvp.tower import pinned_tower

IGNORE = -100  # label of a position that is not in the loss (prompt tokens, padding)


def lm_config(vocab_size: int, eos_id: int, hidden: int = 128, layers: int = 2,
              heads: int = 4, max_positions: int = 128) -> GPT2Config:
    """A small GPT-2 config without dropout (the data are generated; determinism matters), with
    the exact GELU (one kernel on CPU; GPT-2's tanh approximation costs a sixth of a step).

    >>> lm_config(300, eos_id=2).n_embd
    128
    """
    return GPT2Config(vocab_size=vocab_size, n_positions=max_positions, n_embd=hidden,
                      n_layer=layers, n_head=heads, resid_pdrop=0.0, embd_pdrop=0.0,
                      attn_pdrop=0.0, bos_token_id=eos_id, eos_token_id=eos_id,
                      activation_function="gelu")


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


PINNED = "pinned"  # the vision source of every shipped checkpoint (qgnb.pvp.tower)


def vision_tower(source: str) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """``"pinned"`` for PVP's pinned copy of the zoo's ``shapes-clip`` tower (its hash checked,
    ``qgnb.pvp.tower``), ``"random:SEED"`` for a random tower (tests).

    >>> vision_tower("random:0")[0].config.num_hidden_layers
    3
    """
    kind, _, arg = source.partition(":")
    if kind == "random":
        return random_vision_tower(int(arg or 0))
    if source == PINNED:
        return pinned_tower()
    raise ValueError(f"unknown vision source {source!r}; expected {PINNED!r} or 'random:SEED'")


def packed_mask(prefix: int, text_mask: torch.Tensor) -> torch.Tensor:
    """``B x 1 x L x L`` boolean attention mask (True: may attend) for a sequence of ``prefix``
    image tokens followed by ``Q`` queries of ``T`` tokens (``text_mask``: ``B x Q x T``, False at
    padding): the image is causal, and a query sees the whole image and its own earlier
    non-padding tokens, never another query.

    >>> packed_mask(1, torch.tensor([[[True, True], [True, False]]]))[0, 0].int().tolist()
    [[1, 0, 0, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0], [1, 0, 0, 1, 0], [1, 0, 0, 1, 0]]
    """
    b, q, t = text_mask.shape
    n = prefix + q * t
    block = torch.cat([torch.full((prefix,), -1), torch.arange(q).repeat_interleave(t)])
    step = torch.cat([torch.arange(prefix), torch.arange(t).repeat(q)])
    same = (block[:, None] == block[None, :]) & (step[None, :] <= step[:, None])
    sees = same | (block[None, :] == -1)  # everyone sees the image (causally within it)
    sees[:prefix] = torch.tril(torch.ones(prefix, n, dtype=torch.bool))[:, :n]
    keys = torch.cat([torch.ones(b, prefix, dtype=torch.bool), text_mask.reshape(b, -1)], 1)
    mask = sees[None] & keys[:, None, :]
    return mask[:, None]


# Residual-stream layout of the wired lookup (``wire_lookup_head``): one-hot codes of where an
# image token sits, one-hot codes of where a location token points, then content.
CODE, LOCATION, CONTENT = 0, 32, 64
CODE_WIDTH = 32


def one_hot_codes(rows, cols, side: int) -> torch.Tensor:
    """``len(rows) x 32`` codes: one-hot row in ``[0, side)``, one-hot column in
    ``[side, 2 side)`` (so ``side`` is at most 16).

    >>> one_hot_codes([1], [0], 2).tolist()[0][:4]
    [0.0, 1.0, 1.0, 0.0]
    """
    if 2 * side > CODE_WIDTH:
        raise ValueError(f"one-hot codes fit at most {CODE_WIDTH // 2} rows, got {side}")
    rows, cols = np.asarray(rows), np.asarray(cols)
    codes = torch.zeros(len(rows), CODE_WIDTH)
    codes[np.arange(len(rows)), rows] = 1.0
    codes[np.arange(len(rows)), side + cols] = 1.0
    return codes


@torch.no_grad()
def wire_lookup_head(lm: GPT2LMHeadModel, location_ids: list[int], location_codes: torch.Tensor,
                     sharpness: float = 3.0) -> None:
    """Build "find the image token that ``[y,x]`` names" into head 0 of ``lm``'s first layer.

    Why: a language model trained from scratch in CPU minutes does not learn this lookup on its
    own (the lookup probe, ``experiments/pvp_lookup``, measured that: even with exact colours as
    image tokens, 4x4 mosaics stay at chance). Image tokens must carry their own one-hot codes
    in dimensions
    ``[CODE, CODE + 32)`` and content from ``CONTENT`` on. Here each location token's embedding
    becomes its code (``location_codes``, scaled) in ``[LOCATION, LOCATION + 32)`` and zero
    elsewhere; position embeddings are cleared below ``CONTENT``; head 0 reads its query from
    the location block and its key from the code block, so a location token attends to the
    image token with the same code (not to itself: its key is zero). ``sharpness`` scales the
    query so that this attention is close to 1 at initialisation. Everything stays trainable.
    """
    if lm.config.n_embd // lm.config.n_head != CODE_WIDTH:
        raise ValueError(f"the wired lookup needs a head width of {CODE_WIDTH}, got "
                         f"{lm.config.n_embd // lm.config.n_head}")
    wte = lm.transformer.wte.weight
    wte[location_ids] = 0.0
    wte[location_ids, LOCATION:LOCATION + CODE_WIDTH] = 0.1 * location_codes
    lm.transformer.wpe.weight[:, :CONTENT] = 0.0
    attn = lm.transformer.h[0].attn
    width = lm.config.n_embd
    query, key = slice(0, CODE_WIDTH), slice(width, width + CODE_WIDTH)  # head 0's columns
    for block in (query, key):
        attn.c_attn.weight[:, block] = 0.0
        attn.c_attn.bias[block] = 0.0
    attn.c_attn.weight[LOCATION:LOCATION + CODE_WIDTH, query] = sharpness * torch.eye(CODE_WIDTH)
    attn.c_attn.weight[CODE:CODE + CODE_WIDTH, key] = torch.eye(CODE_WIDTH)


def location_ids(tokenizer, grid: int) -> list[int]:
    """Token ids of ``[y,x]`` for every cell of a ``grid x grid`` grid, row-major; a tokenizer
    without location tokens (``build_tokenizer(..., locations=grid)``) is an error."""
    ids = [tokenizer.tokenizer.token_to_id(location_text(y, x)) for y, x in all_cells(grid)]
    if None in ids:
        raise ValueError(f"the tokenizer has no location tokens for a {grid}x{grid} grid; "
                         f"build it with build_tokenizer(words, locations={grid})")
    return ids



IMAGE_SOURCES = ("tower", "oracle")


class WiredVLM(nn.Module):
    """The PVP model: one image token per target cell and a wired lookup.

    With ``image_source="tower"`` the connector unfolds each patch token into the ``k x k``
    target cells it covers (``k = grid / patches``); with ``"oracle"`` the connector is a linear
    map of the cell's exact mean colour (box average of the processor's pixels; the tower is
    then unused). Either way a token is a one-hot code of
    its row and column (dimensions ``[0, 32)``), zeros, and 64 dimensions of content. A location
    ``[y,x]`` is one token (``build_tokenizer(..., locations=grid)``), and ``wire`` builds the
    step "attend to cell (y, x)" into the first layer (``wire_lookup_head``), so training
    spends its minutes on reading and spelling colours, and on what the encoder keeps. Number
    tokens (``number_ids``) start from ordinal embeddings. Needs width 128 with 4 heads and
    ``grid`` a multiple of the patches per side, at most 16.

    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([], locations=16); tower, _ = random_vision_tower()
    >>> model = WiredVLM(tower, lm_config(tok.vocab_size, tok.eos_id, max_positions=320), 16)
    >>> model.wire(tok); model.image_tokens(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 256, 128])
    """

    CONNECTOR_PARTS = ("connector",)  # what the "connector" regimes train

    def __init__(self, vision: CLIPVisionModel, config: GPT2Config, grid: int = 8,
                 number_ids: list[int] | None = None, image_source: str = "tower"):
        super().__init__()
        if image_source not in IMAGE_SOURCES:
            raise ValueError(f"unknown image source {image_source!r}; expected one of "
                             f"{IMAGE_SOURCES}")
        self.vision = vision
        self.grid = grid
        self.image_source = image_source
        self.patches = vision.config.image_size // vision.config.patch_size  # per side
        width = config.n_embd
        if width != 2 * CONTENT or grid % self.patches or grid > CODE_WIDTH // 2:
            raise ValueError(f"the wired VLM needs width {2 * CONTENT} (got {width}) and a grid "
                             f"that is a multiple of {self.patches} patches and at most "
                             f"{CODE_WIDTH // 2} (got {grid})")
        k = grid // self.patches
        if image_source == "oracle":
            # A linear map of the exact colour: a fixed one was tried and did not learn to read
            # in 1,000 steps (docs/pvp.md); the lookup probe's trainable one did.
            self.connector = nn.Linear(3, width - CONTENT)
        else:
            self.connector = nn.Sequential(nn.Linear(vision.config.hidden_size, width),
                                           nn.GELU(), nn.Linear(width, k * k * (width - CONTENT)))
        codes = one_hot_codes(*all_cells(grid).T, grid)
        self.register_buffer("cell_codes", 4.0 * codes, persistent=False)
        self.lm = GPT2LMHeadModel(config)
        if number_ids is not None:
            with torch.no_grad():
                self.lm.transformer.wte.weight[number_ids] = ordinal_embeddings(
                    len(number_ids), width, config.initializer_range)

    def cell_colours(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x grid**2 x 3``: each cell's mean (normalised) colour, row-major."""
        cells = nn.functional.avg_pool2d(pixel_values, pixel_values.shape[-1] // self.grid)
        return cells.flatten(2).transpose(1, 2)

    def content(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x grid**2 x 64``: each cell's content, from the tower or the oracle."""
        if self.image_source == "oracle":
            return self.connector(self.cell_colours(pixel_values))
        patches = self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:]
        b, p, k = patches.shape[0], self.patches, self.grid // self.patches
        content = self.connector(patches).reshape(b, p, p, k, k, -1)  # patch row, col, cell
        return content.permute(0, 1, 3, 2, 4, 5).reshape(b, self.grid**2, -1)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x grid**2 x 128``: one token per target cell, row-major (see the class)."""
        content = self.content(pixel_values)
        b = content.shape[0]
        zeros = content.new_zeros(b, self.grid**2, CONTENT - CODE_WIDTH)
        return torch.cat([self.cell_codes.expand(b, -1, -1), zeros, content], dim=-1)

    def wire(self, tokenizer) -> None:
        """Wire the first layer's head 0 to look locations up (``wire_lookup_head``)."""
        wire_lookup_head(self.lm, location_ids(tokenizer, self.grid),
                         one_hot_codes(*all_cells(self.grid).T, self.grid))

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(loss, logits)`` for ``Q`` text queries per image (`packed_forward`)."""
        return packed_forward(self.lm, self.image_tokens(pixel_values), input_ids,
                              attention_mask, labels)

    @torch.no_grad()
    def greedy_answers(self, pixel_values: torch.Tensor, prompt_ids: torch.Tensor,
                       eos_id: int, max_new_tokens: int) -> torch.Tensor:
        """Greedy answers ``B x Q x max_new_tokens`` to ``Q`` equal-length prompts per image
        (`greedy_decode`).

        >>> from qgnb.pvp.tokenizer import build_tokenizer
        >>> tok = build_tokenizer([], locations=8)
        >>> model = build_vlm(random_vision_tower()[0], tok, 8)
        >>> model.greedy_answers(torch.zeros(2, 3, 64, 64), torch.ones(2, 5, 4, dtype=torch.long),
        ...                      eos_id=2, max_new_tokens=3).shape
        torch.Size([2, 5, 3])
        """
        return greedy_decode(self.lm, self.image_tokens(pixel_values), prompt_ids, eos_id,
                             max_new_tokens)


# The decoding below takes a language model and image tokens, not a model class, so that the
# experiments' other image-token designs (experiments/pvp_lookup) reuse it as it is.
def packed_forward(lm: GPT2LMHeadModel, image: torch.Tensor, input_ids: torch.Tensor,
                   attention_mask: torch.Tensor, labels: torch.Tensor | None = None
                   ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Logits ``B x Q x T x vocab`` of ``lm`` for ``Q`` text queries per image (``B x Q x T``
    ids, right-padded) behind the image tokens ``image`` (``B x P x width``) and, with
    ``labels`` (``IGNORE`` where not scored), the mean cross-entropy of the scored tokens.

    Packed: each image's tokens and all its queries form one sequence, and a block mask
    lets a query see the image and its own earlier tokens only (positions restart after
    the image for every query). That equals running every query behind its own copy of the
    image, without copying the image's keys and values ``Q`` times (with one token per cell the
    prefix is long, and those copies cost more than the attention itself).
    """
    b, q, t = input_ids.shape
    p = image.shape[1]
    text = lm.transformer.wte(input_ids.reshape(b, q * t))
    positions = torch.cat([torch.arange(p), torch.arange(p, p + t).repeat(q)])
    hidden = lm.transformer(
        inputs_embeds=torch.cat([image, text], dim=1),
        attention_mask=packed_mask(p, attention_mask.bool()),
        position_ids=positions.expand(b, -1),
    ).last_hidden_state
    logits = lm.lm_head(hidden[:, p:]).reshape(b, q, t, -1)
    if labels is None:
        return None, logits
    # Token k is predicted from position k - 1 (the first text token from the image).
    loss = nn.functional.cross_entropy(
        logits[:, :, :-1].reshape(-1, logits.shape[-1]), labels[:, :, 1:].reshape(-1),
        ignore_index=IGNORE,
    )
    return loss, logits


@torch.no_grad()
def greedy_decode(lm: GPT2LMHeadModel, image: torch.Tensor, prompt_ids: torch.Tensor,
                  eos_id: int, max_new_tokens: int) -> torch.Tensor:
    """Greedy answers ``B x Q x max_new_tokens`` of ``lm`` to ``Q`` equal-length prompts per
    image (``B x Q x T``) behind the image tokens ``image`` (``B x P x width``): one pass over
    the image into a key/value cache shared by its queries, one over the prompts, then one
    token per step for all queries, stopping early once every answer has produced ``eos_id``.
    """
    b, q, t = prompt_ids.shape
    p = image.shape[1]
    cache = lm.transformer(inputs_embeds=image, use_cache=True).past_key_values
    cache.batch_repeat_interleave(q)  # image-major, as the prompts are flattened
    ids = prompt_ids.reshape(b * q, t)
    positions = torch.arange(p, p + t).expand(b * q, t)
    answers = torch.full((b * q, max_new_tokens), eos_id, dtype=torch.long)
    done = torch.zeros(b * q, dtype=torch.bool)
    for k in range(max_new_tokens):
        logits = lm(input_ids=ids, past_key_values=cache, position_ids=positions,
                    use_cache=True).logits[:, -1]
        nxt = torch.where(done, eos_id, logits.argmax(-1))
        answers[:, k] = nxt
        done |= nxt == eos_id
        if bool(done.all()):
            break
        ids = nxt[:, None]
        positions = positions[:, -1:] + 1
    return answers.reshape(b, q, max_new_tokens)


TEXT_POSITIONS = 64  # room for a prompt and its answer after the image tokens


def build_vlm(vision: CLIPVisionModel, tokenizer, grid: int, hidden: int = 128,
              layers: int = 2, heads: int = 4, image_source: str = "tower") -> WiredVLM:
    """A fresh ``WiredVLM`` around ``vision``, wired at once (the tokenizer needs location
    tokens for ``grid``); number tokens start from ordinal embeddings.

    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([], locations=8)
    >>> build_vlm(random_vision_tower()[0], tok, 8, image_source="oracle").image_source
    'oracle'
    """
    config = lm_config(tokenizer.vocab_size, tokenizer.eos_id, hidden, layers, heads,
                       max_positions=grid**2 + TEXT_POSITIONS)
    model = WiredVLM(vision, config, grid, tokenizer.number_ids, image_source)
    model.wire(tokenizer)
    return model
