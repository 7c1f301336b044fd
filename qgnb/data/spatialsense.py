"""SpatialSense: spatial relations with subject and object boxes (``annotations.json``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from qgnb.data.records import (
    DegenerateBox,
    Record,
    RecordDataset,
    check_bad_boxes,
    checked_boxes,
    is_number,
    numbers,
    read_json,
    require_file,
    take,
)

SPLITS = ("train", "valid", "test")
GROUNDS = ("subject", "object")
# The spellings of a relation's label: JSON booleans, the 0/1 that the official loader's
# float cast reads the same way, and the strings of converted copies of the file.
LABELS = {"true": True, "false": False}


def label_value(label: Any, source: str) -> bool:
    """A relation's ``label`` as a bool: ``True``/``1``/``"true"`` (any case) are true,
    ``False``/``0``/``"false"`` false; anything else raises ``ValueError`` naming ``source``.

    Example:
        >>> [label_value(label, "relation r1") for label in (True, 1, "True", 0, "false")]
        [True, True, True, False, False]
    """
    if isinstance(label, bool):
        return label
    if is_number(label) and label in (0, 1):
        return label == 1
    if isinstance(label, str) and label.strip().lower() in LABELS:
        return LABELS[label.strip().lower()]
    raise ValueError(f"{source}: label {label!r} is not true or false (expected a boolean, "
                     "0/1 or 'true'/'false')")


def _image_path(root: Path, url: str) -> Path:
    folder = "flickr" if url.startswith("http") else "nyu"
    return root / "images" / folder / url.rstrip("/").rsplit("/", 1)[-1]


def _box(relation: dict[str, Any], entity: str, size: tuple[int, int], where: str) -> list[float]:
    source = f"{where} {entity}"
    y0, y1, x0, x1 = numbers(take(take(relation, entity, dict, where), "bbox", list, source), 4,
                             source, "bbox [y0, y1, x0, x1]")
    # Far edges exclusive, so these are already continuous xyxy units.
    return checked_boxes([[x0, y0, x1, y1]], size, source)[0]


def load_spatialsense(
    root: str | Path, split: str = "test", ground: str = "subject", bad_boxes: str = "skip"
) -> RecordDataset:
    """Load a SpatialSense split: one sample per true relation, grounding its subject.

    Reads ``root/annotations.json`` (a list of images, each with ``url``, ``width``,
    ``height``, ``split`` and ``annotations``). A sample is a relation whose ``label`` is true
    (false ones are counted in ``dataset.skipped["label_false"]``). The file holds JSON
    booleans; ``1``/``0`` (which the official loader's float cast reads as true/false) and the
    strings ``"true"``/``"false"`` (any case) are read the same way, and any other label
    raises (:func:`label_value`). The phrase is the whole relation ``"<subject> <predicate>
    <object>"`` and the box is the subject's (``ground="object"`` grounds the object
    instead). We chose the full relation rather than the bare name because an image often has
    several instances of a noun ("cup") and the relation says which one is meant; the
    explainer is asked where the whole phrase is and is scored on the grounded entity, so the
    phrase's own words pick it out. ``bbox`` is ``[y0, y1, x0, x1]`` with exclusive far edges,
    so the box is ``[x0, y0, x1, y1]``. Images are ``root/images/flickr/<last url part>`` for
    http(s) URLs, else ``root/images/nyu/<last url part>``. ``meta`` has the ``predicate``,
    ``subject`` and ``object`` names, ``ground`` and the other entity's box (``other_box``).

    A relation with a box that is malformed in the data set itself (zero height or width,
    inverted, or outside its image; subject or object) is left out and counted in
    ``dataset.skipped["bad_box"]``, where the official loader carries on; ``bad_boxes=
    "raise"`` raises instead. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` naming the file and the record for an unknown split, a file that does not
    parse, or a record with a missing field or a value of the wrong type.

    Example:
        >>> load_spatialsense("/data/spatialsense", "test")  # doctest: +SKIP
        RecordDataset(1811 samples, skipped={'label_false': ..., 'bad_box': ...})
    """
    if split not in SPLITS:
        raise ValueError(f"load_spatialsense: unknown split {split!r}; expected one of {SPLITS}")
    if ground not in GROUNDS:
        raise ValueError(f"load_spatialsense: ground must be one of {GROUNDS}, got {ground!r}")
    check_bad_boxes(bad_boxes, "load_spatialsense")
    root = Path(root)
    path = root / "annotations.json"
    images = read_json(path, "SpatialSense annotations")
    if not isinstance(images, list):
        raise ValueError(f"{path}: expected a list of images, got {type(images).__name__}")
    other = GROUNDS[1 - GROUNDS.index(ground)]
    records: list[Record] = []
    skipped: Counter[str] = Counter({"label_false": 0, "bad_box": 0})
    for k, image in enumerate(images):
        source = f"{path}: image {k}"
        if take(image, "split", str, source) != split:
            continue
        url = take(image, "url", str, source)
        image_path = require_file(_image_path(root, url), f"{source}: image")
        size = (take(image, "width", int, source), take(image, "height", int, source))
        for r, relation in enumerate(take(image, "annotations", list, source)):
            relation_id = relation.get("_id", r) if isinstance(relation, dict) else r
            if not isinstance(relation_id, str | int) or isinstance(relation_id, bool):
                raise ValueError(f"{source} relation {r}: field '_id' must be a string, got "
                                 f"{relation_id!r}")
            where = f"{source} ({image_path.name}) relation {relation_id}"
            if not label_value(take(relation, "label", object, where), where):
                skipped["label_false"] += 1
                continue
            subject = take(take(relation, "subject", dict, where), "name", str, f"{where} subject")
            obj = take(take(relation, "object", dict, where), "name", str, f"{where} object")
            predicate = take(relation, "predicate", str, where)
            try:
                box = _box(relation, ground, size, where)
                other_box = _box(relation, other, size, where)
            except DegenerateBox:
                if bad_boxes == "raise":
                    raise
                skipped["bad_box"] += 1
                continue
            meta = {
                "dataset": "spatialsense",
                "split": split,
                "image_id": image_path.name,
                "image_size": size,
                "relation_id": relation_id,
                "predicate": predicate,
                "subject": subject,
                "object": obj,
                "ground": ground,
                "other_box": other_box,
            }
            records.append(
                Record(
                    f"spatialsense/{split}/{relation_id}",
                    image_path,
                    f"{subject} {predicate} {obj}",
                    [box],
                    size,
                    where,
                    meta,
                )
            )
    return RecordDataset(records, dict(skipped))
