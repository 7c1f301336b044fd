"""RefCOCO, RefCOCO+ and RefCOCOg in the ``refer`` layout (``refs(<split_by>).p`` + COCO JSON)."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from qgnb.data.records import (
    Record,
    RecordDataset,
    checked_boxes,
    checked_polygons,
    read_json,
    require_file,
)

DATASETS = ("refcoco", "refcoco+", "refcocog")
# The two places the usual downloads put the COCO train2014 images, relative to the root.
IMAGE_FOLDERS = ("images/mscoco/images/train2014", "train2014")


def _image_path(root: Path, image: dict[str, Any], source: str) -> Path:
    name = image.get("file_name") or f"COCO_train2014_{image['id']:012d}.jpg"
    candidates = [root / folder / name for folder in IMAGE_FOLDERS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{source}: image not found at {' or '.join(map(str, candidates))}")


def _field(record: dict[str, Any], key: str, source: str) -> Any:
    try:
        return record[key]
    except (KeyError, TypeError):
        raise ValueError(f"{source}: malformed record, no {key!r} field") from None


def load_refcoco(
    root: str | Path, dataset: str = "refcoco+", split: str = "testA", split_by: str = "unc"
) -> RecordDataset:
    """Load a RefCOCO-family split as it lies on disk after the ``refer`` downloads.

    Reads ``root/<dataset>/refs(<split_by>).p`` (written by Python 2 ``cPickle``; plain
    ``pickle.load``) and ``root/<dataset>/instances.json`` (COCO format). A ref belongs to the
    split when its ``split`` field equals ``split`` (``testA`` and ``testB`` for RefCOCO and
    RefCOCO+ with ``split_by="unc"``; ``val``/``test`` for RefCOCOg ``umd``). There is one
    sample per sentence (phrase ``sentence["sent"]``); its one box is the referred COCO
    annotation's ``bbox`` ``[x, y, w, h]`` as ``[x, y, x + w, y + h]``. Images are read from
    ``root/images/mscoco/images/train2014/`` or ``root/train2014/`` (either works) and
    converted to RGB (some COCO images are grayscale). ``mask`` is the annotation's polygon
    ``segmentation`` rasterised at pixel centres (``None`` for run-length encoded masks).

    Raises ``FileNotFoundError`` for a missing file and ``ValueError`` naming the file and the
    record for an unknown dataset or split, a malformed record, or a box outside its image.

    Example:
        >>> load_refcoco("/data/refer", "refcoco+", "testA")  # doctest: +SKIP
        RecordDataset(5726 samples, skipped={})
    """
    if dataset not in DATASETS:
        raise ValueError(f"load_refcoco: unknown dataset {dataset!r}; expected one of {DATASETS}")
    root = Path(root)
    refs_path = require_file(root / dataset / f"refs({split_by}).p", f"{dataset} refs")
    instances_path = require_file(root / dataset / "instances.json", f"{dataset} instances")
    try:
        with refs_path.open("rb") as handle:
            refs = pickle.load(handle)
    except (pickle.UnpicklingError, EOFError, ValueError) as error:
        raise ValueError(f"{refs_path}: not a readable pickle ({error})") from error
    instances = read_json(instances_path, f"{dataset} instances")
    if not isinstance(refs, list):
        raise ValueError(f"{refs_path}: expected a list of refs, got {type(refs).__name__}")
    images = {img["id"]: img for img in _field(instances, "images", str(instances_path))}
    annotations = {a["id"]: a for a in _field(instances, "annotations", str(instances_path))}

    splits = {_field(ref, "split", f"{refs_path}: ref {k}") for k, ref in enumerate(refs)}
    if split not in splits:
        raise ValueError(f"{refs_path}: unknown split {split!r}; this file has {sorted(splits)}")
    records = []
    for k, ref in enumerate(refs):
        if ref["split"] != split:
            continue
        ref_id = _field(ref, "ref_id", f"{refs_path}: ref {k}")
        source = f"{refs_path}: ref_id {ref_id}"
        ann_id, image_id = _field(ref, "ann_id", source), _field(ref, "image_id", source)
        if ann_id not in annotations:
            raise ValueError(f"{source}: ann_id {ann_id} is not in {instances_path}")
        if image_id not in images:
            raise ValueError(f"{source}: image_id {image_id} is not in {instances_path}")
        image = images[image_id]
        size = (int(image["width"]), int(image["height"]))
        ann_source = f"{instances_path}: annotation {ann_id} (ref_id {ref_id})"
        bbox = _field(annotations[ann_id], "bbox", ann_source)
        if len(bbox) != 4:
            raise ValueError(f"{ann_source}: bbox {bbox} must be [x, y, w, h]")
        x, y, w, h = bbox
        boxes = checked_boxes([[x, y, x + w, y + h]], size, ann_source)
        segmentation = annotations[ann_id].get("segmentation")
        polygons = None if segmentation is None else checked_polygons(segmentation, ann_source)
        path = _image_path(root, image, source)
        for sentence in _field(ref, "sentences", source):
            sent_id = _field(sentence, "sent_id", source)
            meta = {
                "dataset": dataset,
                "split": split,
                "image_id": image_id,
                "image_size": size,
                "ref_id": ref_id,
                "ann_id": ann_id,
                "sent_id": sent_id,
                "category_id": ref.get("category_id"),
            }
            phrase = _field(sentence, "sent", f"{source} sentence {sent_id}")
            records.append(
                Record(
                    f"{dataset}/{split}/{ref_id}/{sent_id}",
                    path,
                    phrase,
                    boxes,
                    size,
                    f"{source} sentence {sent_id}",
                    meta,
                    polygons,
                )
            )
    return RecordDataset(records)
