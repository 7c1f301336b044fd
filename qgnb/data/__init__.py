"""qgnb.data: grounding samples ``(id, image, phrase, boxes[, mask])``.

The synthetic benchmark (:func:`shapes`) works on any machine; the loaders read the real
evaluation sets in their usual on-disk formats.
"""

from qgnb.data.flickr30k import load_flickr30k_entities
from qgnb.data.records import Record, RecordDataset
from qgnb.data.refcoco import load_refcoco
from qgnb.data.sample import Sample
from qgnb.data.shapes import (
    COLOURS,
    HELD_OUT_PAIRS,
    ID_BACKGROUNDS,
    OOD_BACKGROUNDS,
    RELATIONS,
    SHAPE_NAMES,
    SHAPES_SPLITS,
    SHAPES_VOCABULARY,
    SIZES,
    ShapesDataset,
    describe,
    hard_negatives,
    make_shapes_sample,
    referents,
    shapes,
)
from qgnb.data.spatialsense import load_spatialsense
from qgnb.data.summary import summary

__all__ = [
    "COLOURS",
    "HELD_OUT_PAIRS",
    "ID_BACKGROUNDS",
    "OOD_BACKGROUNDS",
    "RELATIONS",
    "SHAPES_VOCABULARY",
    "SHAPE_NAMES",
    "SIZES",
    "SHAPES_SPLITS",
    "Record",
    "RecordDataset",
    "Sample",
    "ShapesDataset",
    "describe",
    "hard_negatives",
    "load_flickr30k_entities",
    "load_refcoco",
    "load_spatialsense",
    "make_shapes_sample",
    "referents",
    "shapes",
    "summary",
]
