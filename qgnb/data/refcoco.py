"""RefCOCO, RefCOCO+ and RefCOCOg in the ``refer`` layout (``refs(<split_by>).p`` + COCO JSON)."""

from __future__ import annotations

import pickle
from collections import Counter
from pathlib import Path
from typing import Any

from qgnb.data.records import (
    DegenerateBox,
    Record,
    RecordDataset,
    check_bad_boxes,
    checked_boxes,
    checked_polygons,
    numbers,
    read_json,
    require_file,
    take,
)

DATASETS = ("refcoco", "refcoco+", "refcocog")
# The two places the usual downloads put the COCO train2014 images, relative to the root.
IMAGE_FOLDERS = ("images/mscoco/images/train2014", "train2014")


class RefsUnpickler(pickle.Unpickler):
    """Reads ``refs(<split_by>).p`` without letting the file run code.

    refer's refs files hold only lists, dicts, strings and numbers, none of which needs a
    global; a pickle runs code only through a global it names (a function to call). So every
    global is refused, before anything is called.

    Example:
        >>> import io
        >>> RefsUnpickler(io.BytesIO(pickle.dumps([{"split": "testA", "ref_id": 1}]))).load()
        [{'split': 'testA', 'ref_id': 1}]
        >>> RefsUnpickler(io.BytesIO(b"cos\\nsystem\\n(S'echo hi'\\ntR.")).load()
        Traceback (most recent call last):
        ...
        _pickle.UnpicklingError: the file asks for os.system, which refer's refs format never holds
    """

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(
            f"the file asks for {module}.{name}, which refer's refs format never holds")


def read_refs(path: Path) -> list[dict[str, Any]]:
    """The refs of a ``refs(<split_by>).p`` file (Python 2 ``cPickle``), read safely.

    Strings load as ``str`` (plain ``pickle`` decoding, as refer's own ``REFER`` does). A file
    that is not a pickle of a list, or that asks for any Python object beyond lists, dicts,
    strings and numbers (which could run code), raises ``ValueError`` naming it; nothing in it
    is run.

    Example:
        >>> read_refs(Path("/data/refer/refcoco+/refs(unc).p"))  # doctest: +SKIP
        [{'sent_ids': [...], 'file_name': 'COCO_train2014_000000581857_16.jpg', ...}, ...]
    """
    try:
        with path.open("rb") as handle:
            refs = RefsUnpickler(handle).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError,
            AttributeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: not a readable refs pickle, refused ({error})") from None
    if not isinstance(refs, list):
        raise ValueError(f"{path}: expected a list of refs, got {type(refs).__name__}")
    return refs


def in_split(ref_split: str, split: str) -> bool:
    """Whether a ref whose ``split`` field is ``ref_split`` belongs to ``split``, by refer's
    ``REFER.getRefIds`` rule: ``"test"`` is every test split (testA and testB), ``"testA"``
    (B, C) every test split with that letter, anything else an exact match.

    Example:
        >>> in_split("testB", "test"), in_split("testAB", "testA"), in_split("val", "test")
        (True, True, False)
    """
    if split == "test":
        return "test" in ref_split
    if split in ("testA", "testB", "testC"):
        return ref_split.startswith("test") and split[-1] in ref_split[4:]
    return ref_split == split


def _image_path(root: Path, image: dict[str, Any], source: str) -> Path:
    name = image.get("file_name") or f"COCO_train2014_{image['id']:012d}.jpg"
    if not isinstance(name, str):
        raise ValueError(f"{source}: file_name {name!r} must be a string")
    candidates = [root / folder / name for folder in IMAGE_FOLDERS]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{source}: image not found at {' or '.join(map(str, candidates))}")


def _index(items: Any, what: str, path: Path) -> dict[int, dict[str, Any]]:
    """COCO ``images`` or ``annotations`` by their integer ``id``."""
    if not isinstance(items, list):
        raise ValueError(f"{path}: {what!r} must be a list, got {type(items).__name__}")
    return {take(item, "id", int, f"{path}: {what} {k}"): item for k, item in enumerate(items)}


def load_refcoco(
    root: str | Path, dataset: str = "refcoco+", split: str = "testA", split_by: str = "unc",
    bad_boxes: str = "skip",
) -> RecordDataset:
    """Load a RefCOCO-family split as it lies on disk after the ``refer`` downloads.

    Reads ``root/<dataset>/refs(<split_by>).p`` (written by Python 2 ``cPickle``; read by
    :func:`read_refs`, which runs nothing in the file) and ``root/<dataset>/instances.json``
    (COCO format). Refs are chosen as refer's ``REFER.getRefIds(split=...)`` does
    (:func:`in_split`): ``testA`` and ``testB`` for RefCOCO and RefCOCO+ with
    ``split_by="unc"``, ``test`` for their union, ``val``/``test`` for RefCOCOg ``umd``. There
    is one sample per sentence (phrase ``sentence["sent"]``), id
    ``<dataset>/<the ref's split>/<ref_id>/<sent_id>`` (the same whichever split selected it);
    its one box is the referred COCO annotation's ``bbox`` ``[x, y, w, h]`` as ``[x, y, x + w,
    y + h]``. Images are read from ``root/images/mscoco/images/train2014/`` or
    ``root/train2014/`` (either works) and converted to RGB (some COCO images are grayscale).
    ``mask`` is the annotation's polygon ``segmentation`` rasterised at pixel centres (``None``
    for run-length encoded masks).

    A box that is malformed in the data set itself (zero width or height, or outside its
    image) leaves its ref's sentences out, counted in ``dataset.skipped["bad_box"]``;
    ``bad_boxes="raise"`` raises instead. Raises ``FileNotFoundError`` for a missing file and
    ``ValueError`` naming the file and the record for an unknown dataset or split, a file that
    does not parse, or a record with a missing field or a value of the wrong type (a ``bbox``
    of strings included).

    Example:
        >>> load_refcoco("/data/refer", "refcoco+", "testA")  # doctest: +SKIP
        RecordDataset(5726 samples, skipped={'bad_box': 0})
    """
    if dataset not in DATASETS:
        raise ValueError(f"load_refcoco: unknown dataset {dataset!r}; expected one of {DATASETS}")
    check_bad_boxes(bad_boxes, "load_refcoco")
    root = Path(root)
    refs_path = require_file(root / dataset / f"refs({split_by}).p", f"{dataset} refs")
    instances_path = require_file(root / dataset / "instances.json", f"{dataset} instances")
    refs = read_refs(refs_path)
    instances = read_json(instances_path, f"{dataset} instances")
    if not isinstance(instances, dict):
        raise ValueError(f"{instances_path}: expected a COCO object, got "
                         f"{type(instances).__name__}")
    images = _index(take(instances, "images", list, str(instances_path)), "images",
                    instances_path)
    annotations = _index(take(instances, "annotations", list, str(instances_path)),
                         "annotations", instances_path)

    splits = {take(ref, "split", str, f"{refs_path}: ref {k}") for k, ref in enumerate(refs)}
    if not any(in_split(name, split) for name in splits):
        raise ValueError(f"{refs_path}: unknown split {split!r}; this file has {sorted(splits)}"
                         + (" (and 'test', their union)" if any("test" in n for n in splits)
                            else ""))
    records = []
    skipped: Counter[str] = Counter({"bad_box": 0})
    for k, ref in enumerate(refs):
        if not in_split(ref["split"], split):
            continue
        ref_id = take(ref, "ref_id", int, f"{refs_path}: ref {k}")
        source = f"{refs_path}: ref_id {ref_id}"
        ann_id, image_id = take(ref, "ann_id", int, source), take(ref, "image_id", int, source)
        sentences = take(ref, "sentences", list, source)
        if ann_id not in annotations:
            raise ValueError(f"{source}: ann_id {ann_id} is not in {instances_path}")
        if image_id not in images:
            raise ValueError(f"{source}: image_id {image_id} is not in {instances_path}")
        image = images[image_id]
        image_source = f"{instances_path}: image {image_id}"
        size = (take(image, "width", int, image_source), take(image, "height", int, image_source))
        ann_source = f"{instances_path}: annotation {ann_id} (ref_id {ref_id})"
        x, y, w, h = numbers(take(annotations[ann_id], "bbox", list, ann_source), 4, ann_source,
                             "bbox [x, y, w, h]")
        try:
            boxes = checked_boxes([[x, y, x + w, y + h]], size, ann_source)
        except DegenerateBox:
            if bad_boxes == "raise":
                raise
            skipped["bad_box"] += len(sentences)
            continue
        segmentation = annotations[ann_id].get("segmentation")
        polygons = None if segmentation is None else checked_polygons(segmentation, ann_source)
        path = _image_path(root, image, source)
        for n, sentence in enumerate(sentences):
            sent_id = take(sentence, "sent_id", int, f"{source} sentence {n}")
            where = f"{source} sentence {sent_id}"
            meta = {
                "dataset": dataset,
                "split": split,
                "ref_split": ref["split"],
                "image_id": image_id,
                "image_size": size,
                "ref_id": ref_id,
                "ann_id": ann_id,
                "sent_id": sent_id,
                "category_id": ref.get("category_id"),
            }
            records.append(
                Record(
                    f"{dataset}/{ref['split']}/{ref_id}/{sent_id}",
                    path,
                    take(sentence, "sent", str, where),
                    boxes,
                    size,
                    where,
                    meta,
                    polygons,
                )
            )
    return RecordDataset(records, dict(skipped))
