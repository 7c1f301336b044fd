"""Can the language model find a location at all? A lookup probe on mosaic images.

A finished one-off study, kept runnable outside the package: ``python
experiments/pvp_lookup/lookup.py`` (with the repository root on ``PYTHONPATH``), its tests with
``python -m pytest experiments/pvp_lookup``. Results in ``experiments/pvp_lookup/results/``
were made at commit 940c104 with the zoo's ``shapes-clip`` of that commit, which is the tower
PVP pinned (``qgnb.pvp.tower``, SHA-256 checked), so the runs here load the pinned tower.
The learnt-lookup model (``TinyVLM``) and its position codes live here; they left the package.

The shipped PVP models never learnt to point a coordinate at its patch (their reconstructions
are flat). A reconstruction needs two skills: reading a colour out of an image token, and
finding the token that ``loc: [y,x]`` names. This probe separates them. Its images are
*mosaics*: ``level x level`` blocks of uniformly random colours, so a block's colour says
nothing about any other block and the only way to beat answering the image's mean colour is to
look the location up (``level=1``, one colour per image, needs no lookup at all: it measures
reading alone). Its image tokens are either the vision tower's (``zoo:shapes-clip``) or
``oracle`` tokens, a linear map of the exact colours of the cells under each patch, so that
nothing can be lost in the encoder. The tiny VLM of the learnt-lookup design (``TinyVLM``) with
stage 1's tokenizer, prompts and optimiser settings, at a 16x16 grid. A third kind,
``oracle+wired-lookup`` (``WiredLookupVLM``), starts the language model with the lookup to the
patch built in, to test whether the rest (carrying the looked-up colour to the answer and
spelling it) is learnt. What it found shaped the shipped design (``model.WiredVLM``).

The script trains one run per (features, level, steps) and writes one JSON per run to
``results/`` (finished runs are skipped: a killed sweep loses nothing it had finished);
``lookup_table`` reads them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from tqdm.auto import tqdm
from transformers import CLIPVisionModel, GPT2Config, GPT2LMHeadModel

from qgnb.data.shapes import SHAPES_VOCABULARY
from qgnb.pvp.batch import pixel_values, query_tensors
from qgnb.pvp.model import (
    CODE_WIDTH,
    CONTENT,
    _periods,
    _sinusoids,
    greedy_decode,
    lm_config,
    location_ids,
    one_hot_codes,
    ordinal_embeddings,
    packed_forward,
    random_vision_tower,
    wire_lookup_head,
)
from qgnb.pvp.queries import all_cells, reconstruct_cells, reconstruct_queries, target_grid
from qgnb.pvp.reconstruct import reconstruction_error
from qgnb.pvp.tokenizer import build_tokenizer
from qgnb.pvp.tower import pinned_tower
from qgnb.pvp.train import optimise_step, optimiser

RESULTS = Path(__file__).resolve().parent / "results"
WIRED = "oracle+wired-lookup"
FEATURES = ("oracle", WIRED, "zoo:shapes-clip")
EVAL_IMAGES = 16
# Training loss of a model that has learnt the answer format but nothing of the colours: three
# of the eight scored tokens of "[r,g,b]<eos>" are numbers, uniform over 256 on a mosaic.
CHANCE_LOSS = 3 * math.log(256) / 8


@dataclass(frozen=True)
class Settings:
    """The old stage 1's optimiser and batch settings, at the 16x16 grid the probe's runs used
    (asking about cells smaller than a patch is what the probe is about)."""

    grid: int = 16
    images_per_step: int = 8
    queries_per_image: int = 32
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    lm_hidden: int = 128
    lm_layers: int = 2
    lm_heads: int = 4


SETTINGS = Settings()


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


class TinyVLM(nn.Module):
    """Vision tower -> MLP connector (+ patch position codes in units of the ``grid`` the
    model is asked about) -> causal language model, answering in text. ``number_ids`` (the
    tokenizer's ids of ``"0"``..``"255"``) start from ordinal embeddings.

    >>> tower, _ = random_vision_tower()
    >>> model = TinyVLM(tower, lm_config(300, eos_id=2))
    >>> model.image_tokens(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 64, 128])
    """

    CONNECTOR_PARTS = ("connector", "position_scale")  # what the "connector" regimes train

    def __init__(self, vision: CLIPVisionModel, config: GPT2Config, grid: int = 16,
                 number_ids: list[int] | None = None):
        super().__init__()
        self.vision = vision
        self.grid = grid
        self.patches = vision.config.image_size // vision.config.patch_size  # per side
        self._build_connector(vision.config.hidden_size, config.n_embd)
        self.lm = GPT2LMHeadModel(config)
        if number_ids is not None:
            with torch.no_grad():
                self.lm.transformer.wte.weight[number_ids] = ordinal_embeddings(
                    len(number_ids), config.n_embd, config.initializer_range)

    def _build_connector(self, vision_width: int, width: int) -> None:
        self.connector = nn.Sequential(
            nn.Linear(vision_width, width), nn.GELU(), nn.Linear(width, width)
        )
        self.register_buffer("position_codes", grid_position_codes(self.patches, self.grid,
                                                                   width), persistent=False)
        self.position_scale = nn.Parameter(torch.ones(()))  # part of the connector's output

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x P x width``: the patch tokens (class token dropped) through the connector, plus
    the scaled grid position codes of the patches (``grid_position_codes``)."""
        patches = self.vision(pixel_values=pixel_values).last_hidden_state[:, 1:]
        return self.connector(patches) + self.position_scale * self.position_codes

    def forward(self, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                attention_mask: torch.Tensor, labels: torch.Tensor | None = None
                ) -> tuple[torch.Tensor | None, torch.Tensor]:
        """``(loss, logits)`` for ``Q`` text queries per image (`qgnb.pvp.model.packed_forward`)."""
        return packed_forward(self.lm, self.image_tokens(pixel_values), input_ids,
                              attention_mask, labels)

    @torch.no_grad()
    def greedy_answers(self, pixel_values: torch.Tensor, prompt_ids: torch.Tensor,
                       eos_id: int, max_new_tokens: int) -> torch.Tensor:
        """Greedy answers ``B x Q x max_new_tokens`` (`qgnb.pvp.model.greedy_decode`).

        >>> tower, _ = random_vision_tower()
        >>> model = TinyVLM(tower, lm_config(300, eos_id=2))
        >>> model.greedy_answers(torch.zeros(2, 3, 64, 64), torch.ones(2, 5, 4, dtype=torch.long),
        ...                      eos_id=2, max_new_tokens=3).shape
        torch.Size([2, 5, 3])
        """
        return greedy_decode(self.lm, self.image_tokens(pixel_values), prompt_ids, eos_id,
                             max_new_tokens)


def mosaic(level: int, rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A ``size x size`` image of ``level x level`` uniform blocks of random colours.

    >>> img = mosaic(2, np.random.default_rng(0), size=4)
    >>> a = np.asarray(img); bool((a[:2, :2] == a[0, 0]).all()), len(img.getcolors())
    (True, 4)
    """
    if level < 1 or size % level:
        raise ValueError(f"level must be a positive divisor of the image size {size}, got {level}")
    blocks = rng.integers(0, 256, (level, level, 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((size, size), Image.Resampling.NEAREST)


def mean_colour_error(images: list[Image.Image], grid: int) -> float:
    """MAE (0-255) of answering every cell with its image's mean colour: the score of a model
    that reads colours but cannot look a location up.

    >>> mean_colour_error([Image.new("RGB", (4, 4), (9, 9, 9))], 2)
    0.0
    """
    errors = []
    for image in images:
        cells = target_grid(image, grid).astype(float).reshape(-1, 3)
        errors.append(np.abs(cells - cells.mean(axis=0)).mean())
    return float(np.mean(errors))


class OracleVLM(TinyVLM):
    """A ``TinyVLM`` whose image tokens are a linear map of the exact colours of the target
    cells under each patch (plus the same grid position codes), in place of the vision tower.

    >>> tok = build_tokenizer([]); tower, _ = random_vision_tower()
    >>> model = OracleVLM(tower, lm_config(tok.vocab_size, tok.eos_id), grid=16)
    >>> model.cell_colours(torch.zeros(2, 3, 64, 64)).shape
    torch.Size([2, 64, 12])
    """

    def __init__(self, vision, config, grid: int = 16, number_ids: list[int] | None = None):
        super().__init__(vision, config, grid, number_ids)
        self.patches = vision.config.image_size // vision.config.patch_size
        if grid % self.patches:
            raise ValueError(f"grid {grid} is not a multiple of {self.patches} patches per side")
        k = grid // self.patches
        self.oracle = nn.Linear(k * k * 3, config.n_embd)

    def cell_colours(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``B x P x (k*k*3)``: each patch's ``k x k`` cells' mean (normalised) colours."""
        cells = nn.functional.avg_pool2d(pixel_values, pixel_values.shape[-1] // self.grid)
        b, p, k = cells.shape[0], self.patches, self.grid // self.patches
        blocks = cells.reshape(b, 3, p, k, p, k).permute(0, 2, 4, 1, 3, 5)
        return blocks.reshape(b, p * p, 3 * k * k)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.oracle(self.cell_colours(pixel_values)) + self.position_scale * \
            self.position_codes


class WiredLookupVLM(OracleVLM):
    """Oracle tokens, one token per location, and a first-layer head wired to look it up.

    Why: the probe shows that a from-scratch language model does not learn which patch
    ``[y,x]`` names. Here that step is built in at initialisation (``model.wire_lookup_head``:
    image tokens carry one-hot codes of their patch, a location token the code of the patch
    its cell lies in), so the probe can ask whether everything else is learnt. One image token
    per patch: picking the asked cell out of a patch of ``k x k`` cells is left to learning
    (``model.WiredVLM``, the shipped design, has one token per cell instead). Needs width 128
    and the tokenizer from ``location_tokenizer``.

    >>> tok = location_tokenizer(16); tower, _ = random_vision_tower()
    >>> model = WiredLookupVLM(tower, lm_config(tok.vocab_size, tok.eos_id), 16, tok.number_ids)
    >>> model.image_tokens(torch.zeros(1, 3, 64, 64)).shape
    torch.Size([1, 64, 128])
    """

    def __init__(self, vision, config, grid: int = 16, number_ids: list[int] | None = None):
        super().__init__(vision, config, grid, number_ids)
        if config.n_embd != 2 * CONTENT:
            raise ValueError(f"the wired lookup needs width {2 * CONTENT}, got {config.n_embd}")
        k = grid // self.patches
        self.oracle = nn.Linear(k * k * 3, config.n_embd - CONTENT)
        self.register_buffer("patch_codes",
                             4.0 * one_hot_codes(*all_cells(self.patches).T, self.patches),
                             persistent=False)

    def image_tokens(self, pixel_values: torch.Tensor) -> torch.Tensor:
        content = self.oracle(self.cell_colours(pixel_values))
        b, n = content.shape[:2]
        codes = self.patch_codes.expand(b, -1, -1)
        return torch.cat([codes, torch.zeros(b, n, CONTENT - CODE_WIDTH), content], dim=-1)

    def wire(self, tokenizer) -> None:
        """Wire head 0 of the first layer: each location token attends to its cell's patch."""
        k = self.grid // self.patches
        wire_lookup_head(self.lm, location_ids(tokenizer, self.grid),
                         one_hot_codes(*(all_cells(self.grid) // k).T, self.patches))


def location_tokenizer(grid: int):
    """The PVP tokenizer with one token per location ``[y,x]`` of a ``grid x grid`` grid.

    >>> location_tokenizer(16).tokens("[reconstruct] loc: [3,12] rgb:")[3]
    '[3,12]'
    """
    return build_tokenizer(SHAPES_VOCABULARY, locations=grid)


def build(features: str, seed: int = 0):
    """Model (vision tower frozen), tokenizer and processor for a probe run."""
    r = SETTINGS
    wired = features == WIRED
    tokenizer = location_tokenizer(r.grid) if wired else build_tokenizer(SHAPES_VOCABULARY)
    tower, processor = (random_vision_tower(seed) if features.startswith("oracle")
                        else pinned_tower())
    torch.manual_seed(seed)
    config = lm_config(tokenizer.vocab_size, tokenizer.eos_id, r.lm_hidden, r.lm_layers,
                       r.lm_heads)
    cls = {"oracle": OracleVLM, WIRED: WiredLookupVLM}.get(features, TinyVLM)
    model = cls(tower, config, r.grid, tokenizer.number_ids)
    if wired:
        model.wire(tokenizer)
    model.vision.requires_grad_(False)
    return model, tokenizer, processor


def run(features: str, level: int, steps: int, seed: int = 0,
        progress: bool = True) -> dict[str, Any]:
    """Train on mosaics of ``level`` for ``steps`` steps; held-out MAE against the mean-colour
    error on ``EVAL_IMAGES`` fresh mosaics, and the training-loss curve.

    >>> run("oracle", 2, steps=1, progress=False)["level"]
    2
    """
    if features not in FEATURES:
        raise ValueError(f"unknown features {features!r}; expected one of {FEATURES}")
    r = SETTINGS
    torch.set_num_threads(1)
    model, tokenizer, processor = build(features, seed)
    params, optimizer, scheduler = optimiser(model, r.learning_rate,
                                             min(r.warmup_steps, steps), steps)
    t0, curve, losses = time.time(), [], []
    for step in tqdm(range(steps), desc=f"lookup {features} level {level}", disable=not progress):
        rng = np.random.default_rng([seed, step])
        images = [mosaic(level, rng) for _ in range(r.images_per_step)]
        queries = [reconstruct_queries(image, r.grid, reconstruct_cells(
            target_grid(image, r.grid), r.queries_per_image, rng, 0.0)) for image in images]
        losses.append(optimise_step(model, params, optimizer, scheduler,
                                    pixel_values(processor, images),
                                    *query_tensors(tokenizer, queries)))
        if (step + 1) % 100 == 0 or step + 1 == steps:
            curve.append({"step": step + 1, "loss": float(np.mean(losses))})
            losses = []
    held_out = [mosaic(level, np.random.default_rng([seed, 10**6, k]))
                for k in range(EVAL_IMAGES)]
    scores = reconstruction_error(model, tokenizer, processor, held_out)
    return {"features": features, "level": level, "steps": steps, "seed": seed,
            "mae": scores["mae"], "unparseable": scores["unparseable"],
            "mean_colour_mae": mean_colour_error(held_out, r.grid),
            "train_seconds": round(time.time() - t0, 1), "threads": 1, "curve": curve,
            "command": f"python experiments/pvp_lookup/lookup.py --features {features} "
                       f"--levels {level} --steps {steps}"}


def result_path(features: str, level: int, steps: int, root: Path = RESULTS) -> Path:
    """Where the run for ``(features, level, steps)`` is stored.

    >>> result_path("zoo:shapes-clip", 4, 1000).name
    'zoo-shapes-clip-level4-steps1000.json'
    """
    return Path(root) / f"{features.replace(':', '-')}-level{level}-steps{steps}.json"


LEVEL_NAMES = {1: "1x1 (one colour: reading only)", 2: "2x2 (quadrants)", 4: "4x4",
               16: "16x16 (every cell)"}


def lookup_table(root: Path = RESULTS) -> pd.DataFrame:
    """The lookup probe's shipped runs : per image-token source and mosaic
    level: the training loss over the last 100 steps (``lookup.CHANCE_LOSS`` is chance), the
    held-out MAE, the MAE of answering the image's mean colour, and their difference (what
    looking the location up gained).

    >>> lookup_table().columns.tolist()
    ['image tokens', 'mosaic blocks', 'steps', 'final loss', 'MAE', 'mean-colour MAE', 'gain']
    """
    paths = sorted(Path(root).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no lookup-probe results in {root}; run "
                                f"python experiments/pvp_lookup/lookup.py")
    rows = []
    for path in paths:
        r = json.loads(path.read_text())
        rows.append({"image tokens": r["features"], "level": r["level"],
                     "mosaic blocks": LEVEL_NAMES.get(r["level"], f"{r['level']}x{r['level']}"),
                     "steps": r["steps"], "final loss": r["curve"][-1]["loss"],
                     "MAE": r["mae"], "mean-colour MAE": r["mean_colour_mae"],
                     "gain": r["mean_colour_mae"] - r["mae"]})
    table = pd.DataFrame(rows).sort_values(["image tokens", "level", "steps"],
                                           ascending=[False, True, True])
    return table.drop(columns="level").reset_index(drop=True)


def lookup_curves(root: Path = RESULTS) -> pd.DataFrame:
    """The lookup probe's training-loss curves, long format: one row per run and logged step
    (the loss averaged over the 100 steps before it), with the run's ``image tokens``, ``mosaic
    blocks`` and a ``run`` label.

    >>> lookup_curves().columns.tolist()
    ['image tokens', 'mosaic blocks', 'run', 'step', 'loss']
    """
    rows = []
    for path in sorted(Path(root).glob("*.json")):
        r = json.loads(path.read_text())
        blocks = LEVEL_NAMES.get(r["level"], f"{r['level']}x{r['level']}")
        label = f"{r['features']}, {r['level']}x{r['level']}, {r['steps']} steps"
        rows += [{"image tokens": r["features"], "mosaic blocks": blocks, "run": label,
                  "step": p["step"], "loss": p["loss"]} for p in r["curve"]]
    if not rows:
        raise FileNotFoundError(f"no lookup-probe results in {root}; run "
                                f"python experiments/pvp_lookup/lookup.py")
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", nargs="+", default=list(FEATURES), choices=FEATURES)
    parser.add_argument("--levels", nargs="+", type=int, default=[1, 2, 4, 16])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--root", type=Path, default=RESULTS)
    parser.add_argument("--fresh", action="store_true", help="redo runs that already exist")
    args = parser.parse_args(argv)
    for features in args.features:
        for level in args.levels:
            path = result_path(features, level, args.steps, args.root)
            if path.is_file() and not args.fresh:
                print(f"{path} exists; skipped (--fresh redoes it)")
                continue
            result = run(features, level, args.steps)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(result, indent=1) + "\n")
            print(path, {k: result[k] for k in ("mae", "mean_colour_mae", "train_seconds")})


if __name__ == "__main__":
    main()
