"""The zoo's model specifications: architecture and training recipe of each shipped model.

One `ZooSpec` per model name. The architectures are `transformers` configs built from a few
numbers (`build_config`); the recipes are step counts per stage (`train.py` runs them).
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import BlipConfig, CLIPConfig

MAX_PHRASE_TOKENS = 16


@dataclass(frozen=True)
class Architecture:
    """Width and depth of a small BLIP or CLIP built from a config (no pretrained weights)."""

    family: str  # "blip" or "clip"
    hidden: int
    vision_layers: int
    text_layers: int
    heads: int
    embed_dim: int  # joint image-text space of the contrastive heads


@dataclass(frozen=True)
class Recipe:
    """Training stages, in order: ``(stage, steps)`` with stage in {"itc", "itm", "amc"}.

    ``itc``: image-text contrastive only; ``itm``: contrastive + matching with hard negatives;
    ``amc``: matching + contrastive + the attention mask consistency loss, on the map read
    where the reading rule (`qgnb.zoo.reading`) reads the ``init_from`` model.

    ``attribute_weight`` (0: off) adds the auxiliary object-attribute loss on the vision tower
    (`qgnb.zoo.attributes`): each object's shape and size from the mean of the tower's last
    hidden states over the patches whose centres fall in its box; ``relation_weight`` adds the
    same for the relations between every ordered pair of objects. ``relation_share``: the share
    of a relational phrase's hard negatives that change its relation (the rest are drawn from
    all its hard negatives, where relation changes are a few of many). ``layout_weight``
    (CLIP only) adds the layout readout: each object's centre read linearly from the image
    embedding by a readout of its kind (`qgnb.zoo.attributes.AttributeHeads.layout_loss`).
    """

    stages: tuple[tuple[str, int], ...]
    image_size: int = 64
    patch_size: int = 8
    batch_size: int = 64
    learning_rate: float = 5e-4
    warmup_steps: int = 100
    train_scenes: int = 20000
    seed: int = 0
    init_from: str | None = None  # start from this zoo model's checkpoint
    amc_margin: float = 0.5
    amc_share_weight: float = 1.0
    amc_weight: float = 1.0
    # CLIP: each image's true phrase against this many of its hard negatives in one softmax
    # (beside the in-batch contrastive loss): the zero-shot retrieval it is scored on.
    negatives_per_scene: int = 1
    attribute_weight: float = 0.0
    relation_weight: float = 0.0
    relation_share: float = 0.0
    layout_weight: float = 0.0
    threads: int = 1  # torch threads; results are reproducible for a fixed count


@dataclass(frozen=True)
class ZooSpec:
    """A shipped model: its name, architecture and training recipe."""

    name: str
    architecture: Architecture
    recipe: Recipe
    notes: str = ""

    def __post_init__(self) -> None:
        # Checked here, so that a variant built with `dataclasses.replace` fails before training.
        if self.recipe.layout_weight > 0 and self.architecture.family != "clip":
            raise ValueError(f"{self.name}: layout_weight reads CLIP's image embedding; a "
                             f"{self.architecture.family} recipe cannot use it")

    @property
    def total_steps(self) -> int:
        return sum(steps for _, steps in self.recipe.stages)


_BASE = Architecture(
    family="blip", hidden=96, vision_layers=3, text_layers=2, heads=4, embed_dim=64
)
_LARGE = Architecture(
    family="blip", hidden=128, vision_layers=4, text_layers=2, heads=4, embed_dim=96
)
_CLIP = Architecture(
    family="clip", hidden=96, vision_layers=3, text_layers=2, heads=4, embed_dim=64
)

# The towers-that-see-shape recipes (PROBES.md): the auxiliary object-attribute loss on the
# vision tower, a relation head beside it, and half of a relational phrase's hard negatives
# changing its relation (relation negatives were the errors left once shape was learnt).
_SEEING = dict(attribute_weight=1.0, relation_weight=0.5, relation_share=0.5)

SPECS: dict[str, ZooSpec] = {
    spec.name: spec
    for spec in (
        ZooSpec(
            "shapes-clip",
            _CLIP,
            Recipe(stages=(("itc", 4400),), negatives_per_scene=4, **_SEEING),
            notes="CLIPModel, image-text contrastive (in-batch, and each image against four of "
                  "its hard negatives) + the auxiliary object-attribute and relation heads on "
                  "the vision tower; maps by gScoreCAM.",
        ),
        ZooSpec(
            "shapes-blip-base",
            _BASE,
            Recipe(stages=(("itc", 300), ("itm", 4400)), **_SEEING),
            notes="BlipForImageTextRetrieval, ITC warm-up then ITC + ITM with hard negatives, "
                  "+ the auxiliary object-attribute and relation heads on the vision tower.",
        ),
        ZooSpec(
            "shapes-blip-amc",
            _BASE,
            Recipe(stages=(("amc", 300),), learning_rate=2e-4, warmup_steps=50,
                   init_from="shapes-blip-base", seed=1),
            notes="shapes-blip-base fine-tuned with ITM + ITC + the AMC loss (Yang et al. 2023) "
                  "on the map read where the reading rule reads shapes-blip-base.",
        ),
        ZooSpec(
            "shapes-blip-large",
            _LARGE,
            Recipe(stages=(("itc", 300), ("itm", 2300)), **_SEEING),
            notes="Wider and deeper than shapes-blip-base (about twice its parameters), "
                  "ITC warm-up then ITC + ITM, + the auxiliary object-attribute and relation "
                  "heads on the vision tower (fewer steps than base: a step costs about twice "
                  "as much, and a run must fit 45 minutes of one thread).",
        ),
    )
}


def spec(name: str) -> ZooSpec:
    """The specification of a zoo model; unknown names raise ValueError listing the known ones.

    >>> spec("shapes-blip-base").architecture.hidden
    96
    """
    if name not in SPECS:
        raise ValueError(f"unknown zoo model {name!r}; known models: {', '.join(SPECS)}")
    return SPECS[name]


def build_config(zoo_spec: ZooSpec, vocab_size: int, pad_token_id: int,
                 cls_token_id: int, sep_token_id: int) -> BlipConfig | CLIPConfig:
    """A `transformers` config for a small BLIP or CLIP at the recipe's image and patch size.

    >>> from qgnb.zoo.configs import SPECS
    >>> build_config(SPECS["shapes-clip"], 20, 0, 2, 3).vision_config.patch_size
    8
    """
    a, recipe = zoo_spec.architecture, zoo_spec.recipe
    vision = dict(hidden_size=a.hidden, intermediate_size=4 * a.hidden,
                  num_hidden_layers=a.vision_layers, num_attention_heads=a.heads,
                  image_size=recipe.image_size, patch_size=recipe.patch_size,
                  initializer_range=0.02)
    text = dict(vocab_size=vocab_size, hidden_size=a.hidden, intermediate_size=4 * a.hidden,
                num_hidden_layers=a.text_layers, num_attention_heads=a.heads,
                max_position_embeddings=MAX_PHRASE_TOKENS, pad_token_id=pad_token_id)
    if a.family == "blip":
        # initializer_range=0.02: BLIP's default 1e-10 leaves the vision tower blind (PROBES.md).
        return BlipConfig(
            vision_config=vision,
            text_config=dict(text, encoder_hidden_size=a.hidden, bos_token_id=cls_token_id,
                             sep_token_id=sep_token_id, eos_token_id=sep_token_id),
            image_text_hidden_size=a.embed_dim,
        )
    if a.family == "clip":
        # eos_token_id=[SEP]: CLIP pools the text at the first eos token of each phrase.
        return CLIPConfig(
            vision_config=dict(vision, projection_dim=a.embed_dim),
            text_config=dict(text, projection_dim=a.embed_dim, bos_token_id=cls_token_id,
                             eos_token_id=sep_token_id),
            projection_dim=a.embed_dim,
        )
    raise ValueError(f"unknown architecture family {a.family!r}; expected 'blip' or 'clip'")
