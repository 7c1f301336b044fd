"""How each shipped PVP checkpoint is trained: one `Recipe` per name, stages chained by
``init_from``.

Stages (why): the language model is built from a config, so at first it reads nothing. The
paper's regimes start from a pretrained LLM that already reads and localises; the laptop-scale
analogue is **stage 0** (``pvp-stage0``): the language model learns PVP on *oracle* image
tokens (a linear map, trained with it, of each cell's exact colour, ``model.WiredVLM``), with
half its queries on the objects (without that weighting even exact tokens collapse to the
background; with the map fixed, it had not learnt to read after 700-780 steps).
Each regime then takes only stage 0's language model (``init_lm_only``), puts a fresh connector
onto the pinned vision tower, and trains for the same steps, differing only in what it trains.
Downstream, segmentation is learnt (connector + language model, encoder frozen in both) from
the frozen-encoder PVP model and from the adapted-encoder PVP model, so the only difference
between the two is what PVP did to the encoder.

A run's ``seed`` seeds its fresh weights and its batches; ``python -m qgnb.pvp.train NAME
--seed S`` trains with seed ``S`` (the shipped checkpoints are seed 0). Stage 0 is trained once,
with seed 0, and every seed's regimes start from it, as the paper's all start from one
pretrained language model.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgnb.pvp.model import IMAGE_SOURCES, PINNED
from qgnb.pvp.regimes import REGIMES

TASKS = ("pvp", "segmentation")


@dataclass(frozen=True)
class Recipe:
    """One training run: task, regime, steps and the checkpoint it starts from."""

    task: str
    regime: str
    steps: int
    init_from: str | None = None  # start from this PVP checkpoint; None: fresh connector and LM
    # Take only the language model from ``init_from``: fresh connector, the pinned tower, and
    # this recipe's image source (stage 0 to the regimes).
    init_lm_only: bool = False
    image_source: str = "tower"  # "tower" or "oracle" (model.WiredVLM)
    vision: str = PINNED  # vision tower source of a fresh model (see model.vision_tower)
    grid: int = 8
    images_per_step: int = 8
    queries_per_image: int = 32
    # Share of PVP training queries drawn where the detail is (queries.reconstruct_cells).
    # Uniform queries land on backgrounds, and the model learns to answer the background
    # colour everywhere, even from exact colours (stage 0 with 0.0: object-cell MAE 57).
    detail_share: float = 0.5
    learning_rate: float = 1e-3
    vision_learning_rate: float | None = None  # the tower's own rate when it trains
    warmup_steps: int = 100
    train_images: int = 100_000  # generated lazily: each step sees new scenes
    lm_hidden: int = 128
    lm_layers: int = 2
    lm_heads: int = 4
    eval_every: int = 100
    seed: int = 0
    # Trained once (seed 0) and started from by every seed: the stand-in for a pretrained
    # language model, which the paper's regimes share too.
    shared_across_seeds: bool = False

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"recipe task {self.task!r} is not one of {TASKS}")
        if self.regime not in REGIMES:
            raise ValueError(f"recipe regime {self.regime!r} is not one of {list(REGIMES)}")
        if self.image_source not in IMAGE_SOURCES:
            raise ValueError(f"recipe image_source {self.image_source!r} is not one of "
                             f"{IMAGE_SOURCES}")
        if self.init_lm_only and self.init_from is None:
            raise ValueError("init_lm_only needs init_from (whose language model to take)")


PVP_REGIMES = {
    "connector": "pvp-connector",
    "connector+lm": "pvp-connector-lm",
    "connector+lm+vision": "pvp-connector-lm-vision",
}
SEGMENTATION_MODELS = {"frozen encoder": "seg-frozen-encoder",
                       "PVP-adapted encoder": "seg-pvp-encoder"}
# Steps: at 300 regime and 200 segmentation steps (session 5) the adapted encoder was still
# improving steeply (object-cell MAE 16.4 -> 12.7 over its last 100 steps) where the
# connector-only regime had flattened, and segmentation had only just left "background
# everywhere" (cIoU 0.0 at step 100, 0.25-0.33 at 200; one seed still at 0.0). Doubled here:
# about 100 minutes of one thread for the three seeds of the five runs after stage 0.
REGIME_STEPS = 600
SEGMENTATION_STEPS = 500
# The regimes ask three quarters of their queries on object cells (stage 0: half). At half, the
# adapted encoder's object-cell error was 0.54 of connector-only's in seed 0 (0.45-0.46 in
# seeds 1-2); at three quarters 0.49 / 0.39 / 0.43 (experiments/pvp_margin_results/, 48
# held-out `id` scenes), and at every query on objects 0.49 on `id` but 0.54 on `ood`.
REGIME_DETAIL_SHARE = 0.75
RECIPES: dict[str, Recipe] = {
    "pvp-stage0": Recipe("pvp", "connector+lm", steps=1000, image_source="oracle",
                         shared_across_seeds=True),
    **{name: Recipe("pvp", regime, steps=REGIME_STEPS, init_from="pvp-stage0",
                    init_lm_only=True, detail_share=REGIME_DETAIL_SHARE)
       for regime, name in PVP_REGIMES.items()},
    "seg-frozen-encoder": Recipe("segmentation", "connector+lm", steps=SEGMENTATION_STEPS,
                                 init_from="pvp-connector-lm"),
    "seg-pvp-encoder": Recipe("segmentation", "connector+lm", steps=SEGMENTATION_STEPS,
                              init_from="pvp-connector-lm-vision"),
}


def recipe(name: str) -> Recipe:
    """The recipe of a shipped checkpoint; unknown names raise ValueError listing the known.

    >>> recipe("pvp-connector").init_from
    'pvp-stage0'
    """
    if name not in RECIPES:
        raise ValueError(f"unknown PVP checkpoint {name!r}; known: {', '.join(RECIPES)}")
    return RECIPES[name]


def chain(name: str) -> list[str]:
    """The checkpoints ``name`` starts from, oldest first, ending with ``name``.

    >>> chain("seg-pvp-encoder")
    ['pvp-stage0', 'pvp-connector-lm-vision', 'seg-pvp-encoder']
    """
    names = [name]
    while recipe(names[0]).init_from is not None:
        names.insert(0, recipe(names[0]).init_from)
    return names
