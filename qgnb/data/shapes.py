"""The synthetic benchmark: procedural scenes of coloured shapes with referring expressions.

Every sample is generated from ``(split, seed, index)`` alone with numpy's ``Generator``, using
integer draws and integer pixel arithmetic only, so the same arguments give byte-identical
images on any machine. Shapes are rasterised here with pixel-centre tests (not
``PIL.ImageDraw``, whose antialiasing and rounding differ across Pillow versions), which makes
every box the exact tight box of its mask under the pixel convention of :class:`Sample`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, overload

import numpy as np
from PIL import Image

from qgnb.data.sample import Sample

COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 210, 40),
    "purple": (150, 60, 190),
    "cyan": (40, 200, 210),
}
SHAPE_NAMES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "cross")
SIZES: tuple[str, ...] = ("small", "large")
RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
SHAPES_SPLITS: tuple[str, ...] = ("train", "id", "ood")
# Colour-shape pairs that never appear in "train" or "id" (as target, distractor or anchor);
# every "ood" target is one of them. One pair per shape, each with a different colour.
HELD_OUT_PAIRS: frozenset[tuple[str, str]] = frozenset(
    {
        ("green", "circle"),
        ("red", "square"),
        ("yellow", "triangle"),
        ("purple", "diamond"),
        ("blue", "cross"),
    }
)
# Background styles: "train" and "id" draw from the first three, "ood" only from the last two.
ID_BACKGROUNDS: tuple[str, ...] = ("flat", "tint", "gradient")
OOD_BACKGROUNDS: tuple[str, ...] = ("checker", "stripes")
SHAPES_VOCABULARY: tuple[str, ...] = tuple(
    sorted(
        {"the", *COLOURS, *SHAPE_NAMES, *SIZES}
        | {word for relation in RELATIONS for word in relation.split()}
    )
)

_SPLIT_CODES = {"train": 0, "id": 1, "ood": 2}
# Target descriptions from shortest to longest; the shape noun is always said.
_ATTRIBUTE_CHOICES: tuple[tuple[str, ...], ...] = ((), ("colour",), ("size",), ("size", "colour"))
# Distractor kinds and their cumulative probabilities (per mille): share the colour, share the
# shape, same colour and shape in the other size, an identical twin, or anything.
_DISTRACTOR_KINDS = (("colour", 280), ("shape", 560), ("pair", 720), ("twin", 850), ("any", 1000))
_MIN_SIZE = 32


def _noun_phrase(obj: dict[str, Any], attributes: Sequence[str]) -> str:
    words = ["the"]
    if "size" in attributes:
        words.append(obj["size"])
    if "colour" in attributes:
        words.append(obj["colour"])
    words.append(obj["shape"])
    return " ".join(words)


def describe(
    meta: dict[str, Any],
    target: int,
    relation: tuple[str, int] | None = None,
    attributes: Sequence[str] = ("size", "colour"),
    anchor_attributes: Sequence[str] = ("size", "colour"),
) -> str:
    """Render a referring expression for object ``target`` of a scene, in the benchmark grammar.

    The grammar is ``the [size] [colour] <shape> [<relation> the [size] [colour] <shape>]``;
    ``attributes`` picks which of ``"size"`` and ``"colour"`` are said for the target and
    ``anchor_attributes`` for the anchor of ``relation = (relation, anchor_index)``. A sample's
    own phrase is ``describe(meta, meta["target"], meta["relation"], meta["attributes"],
    meta["anchor_attributes"])``; change an object in a copy of ``meta`` to render a negative.

    Example:
        >>> meta = {"objects": [
        ...     {"colour": "red", "shape": "circle", "size": "small", "box": [1, 1, 9, 9]},
        ...     {"colour": "blue", "shape": "square", "size": "large", "box": [20, 1, 40, 21]}]}
        >>> describe(meta, 0, ("left of", 1), ["colour"], [])
        'the red circle left of the square'
    """
    objects = meta["objects"]
    unknown = set(attributes) | set(anchor_attributes)
    unknown -= {"size", "colour"}
    if unknown:
        raise ValueError(f"describe: unknown attributes {sorted(unknown)}; use 'size', 'colour'")
    if not 0 <= target < len(objects):
        raise ValueError(f"describe: target {target} out of range for {len(objects)} objects")
    phrase = _noun_phrase(objects[target], attributes)
    if relation is None:
        return phrase
    name, anchor = relation
    if name not in RELATIONS:
        raise ValueError(f"describe: unknown relation {name!r}; expected one of {RELATIONS}")
    if not 0 <= anchor < len(objects) or anchor == target:
        raise ValueError(f"describe: anchor {anchor} is not another object of the scene")
    return f"{phrase} {name} {_noun_phrase(objects[anchor], anchor_attributes)}"


def _related(box: Sequence[float], relation: str, anchor: Sequence[float]) -> bool:
    # Strict separation of the boxes along one axis, so the relation is never borderline.
    if relation == "left of":
        return box[2] <= anchor[0]
    if relation == "right of":
        return box[0] >= anchor[2]
    if relation == "above":
        return box[3] <= anchor[1]
    return box[1] >= anchor[3]


def _parse_noun_phrase(words: list[str], phrase: str) -> dict[str, str]:
    if not words or words.pop(0) != "the":
        raise ValueError(f"referents: {phrase!r} is not in the grammar (expected 'the')")
    description: dict[str, str] = {}
    if words and words[0] in SIZES:
        description["size"] = words.pop(0)
    if words and words[0] in COLOURS:
        description["colour"] = words.pop(0)
    if not words or words[0] not in SHAPE_NAMES:
        raise ValueError(f"referents: {phrase!r} is not in the grammar (expected a shape name)")
    description["shape"] = words.pop(0)
    return description


def _matching(objects: list[dict[str, Any]], description: dict[str, str]) -> list[int]:
    return [k for k, obj in enumerate(objects) if all(obj[a] == v for a, v in description.items())]


def referents(meta: dict[str, Any], phrase: str) -> list[int]:
    """Indices of the scene's objects that ``phrase`` (in the benchmark grammar) refers to.

    A relational phrase refers to the objects matching its first part that stand in the
    relation to its anchor; if the anchor part does not name exactly one object, the phrase
    refers to nothing. A referring expression is correct and unique when this is ``[target]``.

    Example:
        >>> meta = {"objects": [
        ...     {"colour": "red", "shape": "circle", "size": "small", "box": [1, 1, 9, 9]},
        ...     {"colour": "red", "shape": "circle", "size": "small", "box": [20, 1, 28, 9]}]}
        >>> referents(meta, "the red circle"), referents(meta, "the circle right of the circle")
        ([0, 1], [])
    """
    words = phrase.split()
    candidates = _matching(meta["objects"], _parse_noun_phrase(words, phrase))
    if not words:
        return candidates
    relation = next((r for r in RELATIONS if words[: len(r.split())] == r.split()), None)
    if relation is None:
        raise ValueError(f"referents: {phrase!r} has no known relation after its first part")
    del words[: len(relation.split())]
    anchors = _matching(meta["objects"], _parse_noun_phrase(words, phrase))
    if words:
        raise ValueError(f"referents: {phrase!r} has trailing words {words}")
    if len(anchors) != 1:
        return []
    boxes = [obj["box"] for obj in meta["objects"]]
    return [
        k for k in candidates if k != anchors[0] and _related(boxes[k], relation, boxes[anchors[0]])
    ]


def hard_negatives(meta: dict[str, Any]) -> list[str]:
    """Phrases one change away from the sample's phrase that refer to no object of the scene.

    Each changes one thing: the target's colour, shape or size (saying that attribute), or the
    relation (to the other relations). Useful as hard negatives for image-text matching.

    Example:
        >>> meta = {"objects": [
        ...     {"colour": "red", "shape": "circle", "size": "small", "box": [1, 1, 9, 9]},
        ...     {"colour": "blue", "shape": "circle", "size": "small", "box": [20, 1, 28, 9]}],
        ...     "target": 0, "relation": None, "attributes": ["colour"], "anchor_attributes": []}
        >>> "the red square" in hard_negatives(meta), "the blue circle" in hard_negatives(meta)
        (True, False)
    """
    target, relation = meta["target"], meta["relation"]
    attributes, anchor_attributes = list(meta["attributes"]), list(meta["anchor_attributes"])
    values = {"colour": tuple(COLOURS), "shape": SHAPE_NAMES, "size": SIZES}
    phrases: list[str] = []
    for attribute, options in values.items():
        said = sorted(set(attributes) | ({attribute} - {"shape"}))
        for value in options:
            if value == meta["objects"][target][attribute]:
                continue
            objects = [dict(obj) for obj in meta["objects"]]
            objects[target][attribute] = value
            changed = {"objects": objects}
            phrases.append(describe(changed, target, relation, said, anchor_attributes))
    if relation is not None:
        for other in RELATIONS:
            if other != relation[0]:
                phrases.append(
                    describe(meta, target, (other, relation[1]), attributes, anchor_attributes)
                )
    unique = dict.fromkeys(p for p in phrases if not referents(meta, p))
    return list(unique)


def _shortest_expression(
    objects: list[dict[str, Any]], target: int
) -> tuple[tuple[str, ...], tuple[str, int] | None, tuple[str, ...]] | None:
    """(target attributes, relation, anchor attributes) of the shortest unique expression."""

    def unique_attributes(k: int) -> tuple[str, ...] | None:
        for attributes in _ATTRIBUTE_CHOICES:
            description = {a: objects[k][a] for a in ("shape", *attributes)}
            if _matching(objects, description) == [k]:
                return attributes
        return None

    own = unique_attributes(target)
    if own is not None:
        return own, None, ()
    best: tuple[int, tuple[str, ...], tuple[str, int], tuple[str, ...]] | None = None
    for relation in RELATIONS:
        for anchor in range(len(objects)):
            anchor_attributes = unique_attributes(anchor) if anchor != target else None
            if anchor_attributes is None:
                continue
            for attributes in _ATTRIBUTE_CHOICES:
                description = {a: objects[target][a] for a in ("shape", *attributes)}
                hits = [
                    k
                    for k in _matching(objects, description)
                    if k != anchor and _related(objects[k]["box"], relation, objects[anchor]["box"])
                ]
                if hits == [target]:
                    words = len(attributes) + len(relation.split()) + len(anchor_attributes)
                    if best is None or words < best[0]:
                        best = (words, attributes, (relation, anchor), anchor_attributes)
                    break
    if best is None:
        return None
    return best[1], best[2], best[3]


def _shape_mask(shape: str, extent: int) -> np.ndarray:
    # Pixel-centre tests in doubled integer coordinates: centre of pixel j is (2j + 1) / 2.
    centres = 2 * np.arange(extent) + 1 - extent  # twice the offset from the region's centre
    dx, dy = np.abs(centres)[None, :], centres[:, None]
    if shape == "circle":
        return dx**2 + dy**2 <= extent**2
    if shape == "square":
        return np.ones((extent, extent), dtype=bool)
    if shape == "triangle":  # apex at the top centre, base along the bottom edge
        return dy + extent >= 2 * dx
    if shape == "diamond":
        return dx + np.abs(dy) <= extent
    return (3 * dx <= extent) | (3 * np.abs(dy) <= extent)  # cross


def _choice(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


def _greyish(rng: np.random.Generator) -> np.ndarray:
    grey = int(rng.integers(70, 181))
    return grey + rng.integers(-25, 26, size=3)


def _background(rng: np.random.Generator, style: str, size: int) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size]
    if style == "flat":
        grey = int(rng.integers(70, 181))
        return np.full((size, size, 3), grey, dtype=np.int64)
    if style == "tint":
        return np.broadcast_to(_greyish(rng), (size, size, 3)).astype(np.int64)
    first, second = _greyish(rng), _greyish(rng)
    if style == "gradient":
        weights = _choice(rng, [(1, 0), (0, 1), (1, 1), (1, -1)])
        ramp = weights[0] * cols + weights[1] * rows
        ramp = ramp - ramp.min()
        return first + (second - first) * ramp[..., None] // int(ramp.max())
    if style == "checker":
        cell = int(rng.integers(3, 9))
        pattern = (rows // cell + cols // cell) % 2
    else:  # stripes
        width = int(rng.integers(2, 7))
        pattern = (_choice(rng, [rows, cols, rows + cols]) // width) % 2
    return np.where(pattern[..., None] == 1, first, second)


def _sample_pair(
    rng: np.random.Generator, split: str, target: tuple[str, str], kind: str
) -> tuple[str, str]:
    colour, shape = target
    allowed = [
        (c, s)
        for c in COLOURS
        for s in SHAPE_NAMES
        if split == "ood" or (c, s) not in HELD_OUT_PAIRS
    ]
    if kind == "colour":
        allowed = [(c, s) for c, s in allowed if c == colour and s != shape]
    elif kind == "shape":
        allowed = [(c, s) for c, s in allowed if s == shape and c != colour]
    return _choice(rng, allowed)


def _scene(rng: np.random.Generator, split: str, size: int) -> list[dict[str, Any]]:
    if split == "ood":
        target_pair = _choice(rng, sorted(HELD_OUT_PAIRS))
    else:
        pairs = [(c, s) for c in COLOURS for s in SHAPE_NAMES if (c, s) not in HELD_OUT_PAIRS]
        target_pair = _choice(rng, pairs)
    target_size = _choice(rng, SIZES)
    specs = [(*target_pair, target_size)]
    for _ in range(int(rng.integers(1, 4))):
        draw = int(rng.integers(1000))
        kind = next(name for name, limit in _DISTRACTOR_KINDS if draw < limit)
        if kind == "twin":
            specs.append(specs[0])
        elif kind == "pair":
            specs.append((*target_pair, SIZES[1 - SIZES.index(target_size)]))
        else:
            specs.append((*_sample_pair(rng, split, target_pair, kind), _choice(rng, SIZES)))
    scale = size / 64
    extents = {
        "small": (round(9 * scale), round(12 * scale)),
        "large": (round(17 * scale), round(22 * scale)),
    }
    objects: list[dict[str, Any]] = []
    for colour, shape, size_name in specs:
        low, high = extents[size_name]
        extent = int(rng.integers(low, high + 1))
        for _ in range(100):  # rejection sampling: regions one pixel apart at least
            x0, y0 = (int(v) for v in rng.integers(1, size - extent, size=2))
            if all(
                x0 + extent + 1 <= o["region"][0]
                or o["region"][2] + 1 <= x0
                or y0 + extent + 1 <= o["region"][1]
                or o["region"][3] + 1 <= y0
                for o in objects
            ):
                break
        else:
            return []
        objects.append(
            {
                "colour": colour,
                "shape": shape,
                "size": size_name,
                "region": (x0, y0, x0 + extent, y0 + extent),
            }
        )
    return objects


def _tight_box(mask: np.ndarray) -> list[float]:
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return [float(cols[0]), float(rows[0]), float(cols[-1] + 1), float(rows[-1] + 1)]


def make_shapes_sample(split: str, seed: int, index: int, size: int = 64) -> Sample:
    """Generate sample ``index`` of the synthetic benchmark from ``(split, seed, index)`` alone.

    Example:
        >>> make_shapes_sample("id", 0, 5).image.size
        (64, 64)
    """
    _check_arguments(split, seed, size)
    if index < 0:
        raise ValueError(f"shapes: index must be >= 0, got {index}")
    rng = np.random.default_rng([_SPLIT_CODES[split], seed, index])
    while True:
        placed = _scene(rng, split, size)
        if not placed:
            continue
        order = rng.permutation(len(placed))
        objects, masks = [], []
        for k in order:
            x0, y0, x1, y1 = placed[k]["region"]
            mask = np.zeros((size, size), dtype=bool)
            mask[y0:y1, x0:x1] = _shape_mask(placed[k]["shape"], x1 - x0)
            masks.append(mask)
            obj = {key: placed[k][key] for key in ("colour", "shape", "size")}
            objects.append({**obj, "box": _tight_box(mask)})
        target = int(np.flatnonzero(order == 0)[0])
        expression = _shortest_expression(objects, target)
        if expression is not None:
            break
    attributes, relation, anchor_attributes = expression
    styles = OOD_BACKGROUNDS if split == "ood" else ID_BACKGROUNDS
    style = _choice(rng, styles)
    pixels = _background(rng, style, size)
    for obj, mask in zip(objects, masks, strict=True):
        pixels[mask] = np.asarray(COLOURS[obj["colour"]]) + rng.integers(-15, 16, size=3)
    amplitude = int(rng.integers(0, 21))
    pixels = pixels + rng.integers(-amplitude, amplitude + 1, size=(size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    meta = {
        "objects": objects,
        "target": target,
        "relation": relation,
        "attributes": list(attributes),
        "anchor_attributes": list(anchor_attributes),
        "dataset": "shapes",
        "split": split,
        "background": style,
        "noise": amplitude,
        "image_size": (size, size),
    }
    phrase = describe(meta, target, relation, attributes, anchor_attributes)
    sample_id = f"shapes/{split}/{seed}/{index}"
    return Sample(sample_id, image, phrase, [objects[target]["box"]], masks[target], meta)


def _check_arguments(split: str, seed: int, size: int) -> None:
    if split not in _SPLIT_CODES:
        raise ValueError(f"shapes: unknown split {split!r}; expected one of {SHAPES_SPLITS}")
    if seed < 0:
        raise ValueError(f"shapes: seed must be >= 0, got {seed}")
    if size < _MIN_SIZE:
        raise ValueError(f"shapes: size must be >= {_MIN_SIZE} pixels, got {size}")


class ShapesDataset(Sequence[Sample]):
    """A lazy sequence of synthetic samples: sample ``i`` is made when it is indexed.

    Slicing returns another lazy ``ShapesDataset`` over the selected indices.

    Example:
        >>> data = ShapesDataset("id", 0, 64, range(10))
        >>> len(data), len(data[2:5]), data[-1].id
        (10, 3, 'shapes/id/0/9')
    """

    def __init__(self, split: str, seed: int, size: int, indices: range) -> None:
        _check_arguments(split, seed, size)
        self.split, self.seed, self.size, self.indices = split, seed, size, indices

    def __len__(self) -> int:
        return len(self.indices)

    @overload
    def __getitem__(self, item: int) -> Sample: ...

    @overload
    def __getitem__(self, item: slice) -> ShapesDataset: ...

    def __getitem__(self, item: int | slice) -> Sample | ShapesDataset:
        if isinstance(item, slice):
            return ShapesDataset(self.split, self.seed, self.size, self.indices[item])
        try:
            index = self.indices[item]
        except IndexError:
            raise IndexError(f"shapes: index {item} out of range for {len(self)} samples") from None
        return make_shapes_sample(self.split, self.seed, index, self.size)

    def __repr__(self) -> str:
        return (
            f"ShapesDataset(split={self.split!r}, seed={self.seed}, size={self.size}, "
            f"indices={self.indices})"
        )


def shapes(split: str = "id", n: int = 1000, seed: int = 0, size: int = 64) -> ShapesDataset:
    """The synthetic grounding benchmark: ``n`` lazily generated scenes of coloured shapes.

    Each ``size x size`` scene holds 2-4 non-overlapping objects, each one of
    ``SHAPE_NAMES`` (circle, square, triangle, diamond, cross) in one of ``COLOURS`` (6) and
    ``SIZES`` (small: 9-12 px, large: 17-22 px at size 64, scaled with ``size``). The target
    is one object; distractors often share its colour, its shape, both (in the other size),
    or everything (a twin), so the phrase, the *shortest* unambiguous referring expression in
    the grammar of :func:`describe`, often needs size and colour, and sometimes a spatial
    relation (``left of``, ``right of``, ``above``, ``below``: strict separation of the boxes,
    with an anchor that is itself unique). ``sample.boxes`` is the target's tight box,
    ``sample.mask`` its exact mask, ``sample.meta`` the scene (``objects`` with colour,
    shape, size and box; ``target``; ``relation``; the ``attributes`` said; ``split``;
    ``background``).

    Splits: ``"train"`` and ``"id"`` are the same distribution from disjoint random streams
    (backgrounds flat grey, tinted or gradient, with pixel noise; the five colour-shape pairs
    of ``HELD_OUT_PAIRS`` never occur). ``"ood"`` shifts two things: every target is one of
    the held-out colour-shape pairs, and backgrounds are checkerboards or stripes, never seen
    in train/id. The vocabulary (``SHAPES_VOCABULARY``) and grammar are the same in every split.

    Sample ``i`` depends only on ``(split, seed, i)``, so ``shapes(n=10)[3]`` equals
    ``shapes(n=1000)[3]`` byte for byte.

    Example:
        >>> data = shapes("id", n=100)
        >>> sample = data[0]
        >>> len(data), sample.image.size, sample.mask.shape
        (100, (64, 64), (64, 64))
    """
    if n < 0:
        raise ValueError(f"shapes: n must be >= 0, got {n}")
    return ShapesDataset(split, seed, size, range(n))
