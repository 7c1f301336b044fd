"""qgnb.data: grounding samples ``(id, image, phrase, boxes[, mask])``.

The synthetic benchmark (:func:`shapes`) works on any machine; the loaders read the real
evaluation sets in their usual on-disk formats.
"""

from qgnb.data.sample import Sample
from qgnb.data.shapes import (
    COLOURS,
    HELD_OUT_PAIRS,
    ID_BACKGROUNDS,
    OOD_BACKGROUNDS,
    RELATIONS,
    SHAPE_NAMES,
    SHAPES_VOCABULARY,
    SIZES,
    SPLITS,
    ShapesDataset,
    describe,
    hard_negatives,
    make_shapes_sample,
    referents,
    shapes,
)

__all__ = [
    "COLOURS",
    "HELD_OUT_PAIRS",
    "ID_BACKGROUNDS",
    "OOD_BACKGROUNDS",
    "RELATIONS",
    "SHAPES_VOCABULARY",
    "SHAPE_NAMES",
    "SIZES",
    "SPLITS",
    "Sample",
    "ShapesDataset",
    "describe",
    "hard_negatives",
    "make_shapes_sample",
    "referents",
    "shapes",
]
