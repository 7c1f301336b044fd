"""SpatialSense: spatial relations with subject and object boxes (``annotations.json``)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from qgnb.data.records import Record, RecordDataset, checked_boxes, read_json, require_file

SPLITS = ("train", "valid", "test")
GROUNDS = ("subject", "object")


def _field(record: Any, key: str, source: str) -> Any:
    try:
        return record[key]
    except (KeyError, TypeError):
        raise ValueError(f"{source}: malformed record, no {key!r} field") from None


def _image_path(root: Path, url: str) -> Path:
    folder = "flickr" if url.startswith("http") else "nyu"
    return root / "images" / folder / url.rstrip("/").rsplit("/", 1)[-1]


def _box(entity: dict[str, Any], size: tuple[int, int], source: str) -> list[float]:
    bbox = _field(entity, "bbox", source)
    if len(bbox) != 4:
        raise ValueError(f"{source}: bbox {bbox} must be [y0, y1, x0, x1]")
    y0, y1, x0, x1 = bbox  # far edges exclusive, so these are already continuous xyxy units
    return checked_boxes([[x0, y0, x1, y1]], size, source)[0]


def load_spatialsense(
    root: str | Path, split: str = "test", ground: str = "subject"
) -> RecordDataset:
    """Load a SpatialSense split: one sample per true relation, grounding its subject.

    Reads ``root/annotations.json`` (a list of images, each with ``url``, ``width``,
    ``height``, ``split`` and ``annotations``). A sample is a relation with ``label: true``
    (false ones are counted in ``dataset.skipped["label_false"]``). The phrase is the whole
    relation ``"<subject> <predicate> <object>"`` and the box is the subject's (``ground=
    "object"`` grounds the object instead). We chose the full relation rather than the bare
    name because an image often has several instances of a noun ("cup") and the relation
    says which one is meant; the explainer is asked where the whole phrase is and is scored
    on the grounded entity, so the phrase's own words pick it out. ``bbox`` is ``[y0, y1,
    x0, x1]`` with exclusive far edges, so the box is ``[x0, y0, x1, y1]``. Images are
    ``root/images/flickr/<last url part>`` for http(s) URLs, else
    ``root/images/nyu/<last url part>``. ``meta`` has the ``predicate``, ``subject`` and
    ``object`` names, ``ground`` and the other entity's box (``other_box``).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and the
    record for an unknown split, a malformed record, or a box outside its image.

    Example:
        >>> load_spatialsense("/data/spatialsense", "test")  # doctest: +SKIP
        RecordDataset(1811 samples, skipped={'label_false': ...})
    """
    if split not in SPLITS:
        raise ValueError(f"load_spatialsense: unknown split {split!r}; expected one of {SPLITS}")
    if ground not in GROUNDS:
        raise ValueError(f"load_spatialsense: ground must be one of {GROUNDS}, got {ground!r}")
    root = Path(root)
    path = root / "annotations.json"
    images = read_json(path, "SpatialSense annotations")
    if not isinstance(images, list):
        raise ValueError(f"{path}: expected a list of images, got {type(images).__name__}")
    other = GROUNDS[1 - GROUNDS.index(ground)]
    records: list[Record] = []
    skipped: Counter[str] = Counter({"label_false": 0})
    for k, image in enumerate(images):
        source = f"{path}: image {k}"
        if _field(image, "split", source) != split:
            continue
        url = _field(image, "url", source)
        image_path = require_file(_image_path(root, url), f"{source}: image")
        size = (int(_field(image, "width", source)), int(_field(image, "height", source)))
        for r, relation in enumerate(_field(image, "annotations", source)):
            relation_id = relation.get("_id", r) if isinstance(relation, dict) else r
            where = f"{source} ({image_path.name}) relation {relation_id}"
            if _field(relation, "label", where) is not True:
                skipped["label_false"] += 1
                continue
            subject = _field(_field(relation, "subject", where), "name", where)
            obj = _field(_field(relation, "object", where), "name", where)
            predicate = _field(relation, "predicate", where)
            box = _box(relation[ground], size, f"{where} {ground}")
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
                "other_box": _box(relation[other], size, f"{where} {other}"),
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
