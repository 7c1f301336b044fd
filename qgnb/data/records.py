"""Annotation records read from disk, and the lazy sequence that turns them into samples.

The real-data loaders parse their annotation files into :class:`Record` objects (cheap: no
pixels) and return a :class:`RecordDataset`, which opens an image only when its sample is
indexed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

import numpy as np
from PIL import Image
from skimage.draw import polygon2mask

from qgnb.data.sample import Sample

# Annotation tools round box corners; an overshoot up to this many pixels past the image edge
# is clipped, anything more is reported as bad input.
EDGE_TOLERANCE = 1.0
# What a loader does with a box that is malformed in the data set itself (empty, inverted,
# outside its image): leave its phrase out and count it (``skipped["bad_box"]``), or raise.
BAD_BOX_POLICIES = ("skip", "raise")


class DegenerateBox(ValueError):
    """A well-formed box whose geometry is wrong: empty, inverted, or outside its image."""


def check_bad_boxes(bad_boxes: str, loader: str) -> None:
    """Raise ``ValueError`` unless ``bad_boxes`` is one of ``BAD_BOX_POLICIES``.

    Example:
        >>> check_bad_boxes("keep", "load_refcoco")
        Traceback (most recent call last):
        ...
        ValueError: load_refcoco: bad_boxes must be one of ('skip', 'raise'), got 'keep'
    """
    if bad_boxes not in BAD_BOX_POLICIES:
        raise ValueError(f"{loader}: bad_boxes must be one of {BAD_BOX_POLICIES}, got "
                         f"{bad_boxes!r}")


def is_number(value: Any) -> bool:
    """Whether an annotation value is a real number (``True`` and ``"3"`` are not).

    Example:
        >>> is_number(3), is_number(2.5), is_number(True), is_number("3")
        (True, True, False, False)
    """
    return isinstance(value, int | float) and not isinstance(value, bool)


_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", dict: "an object",
               bool: "a boolean"}


def take(record: Any, key: str, kind: type, source: str) -> Any:
    """``record[key]``, checked to be of type ``kind`` (``int`` excludes ``bool``).

    Raises ``ValueError`` naming ``source``, the field and the offending value when the record
    is not a mapping, lacks the field, or holds another type.

    Example:
        >>> take({"id": 3}, "id", int, "a.json: image 0")
        3
        >>> take({"id": "3"}, "id", int, "a.json: image 0")
        Traceback (most recent call last):
        ...
        ValueError: a.json: image 0: field 'id' must be an integer, got '3' (str)
    """
    if not isinstance(record, dict):
        raise ValueError(f"{source}: malformed record, expected an object with a {key!r} "
                         f"field, got {type(record).__name__}")
    if key not in record:
        raise ValueError(f"{source}: malformed record, no {key!r} field")
    value = record[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ValueError(f"{source}: field {key!r} must be {_TYPE_NAMES.get(kind, kind.__name__)}"
                         f", got {value!r} ({type(value).__name__})")
    return value


def numbers(value: Any, count: int, source: str, what: str) -> list[float]:
    """``value`` as a list of ``count`` floats; anything else (strings included) is refused.

    Example:
        >>> numbers([1, 2.5, 3, 4], 4, "a.json: annotation 7", "bbox")
        [1.0, 2.5, 3.0, 4.0]
        >>> numbers(["1", "2", "3", "4"], 4, "a.json: annotation 7", "bbox")
        Traceback (most recent call last):
        ...
        ValueError: a.json: annotation 7: bbox ['1', '2', '3', '4'] must be 4 numbers
    """
    if not isinstance(value, list | tuple) or len(value) != count or not all(
            is_number(v) for v in value):
        raise ValueError(f"{source}: {what} {value!r} must be {count} numbers")
    return [float(v) for v in value]


@dataclass(frozen=True)
class Record:
    """One annotated phrase; ``source`` says which file and record it came from (for errors).

    ``polygons`` (``[x1, y1, x2, y2, ...]`` outlines in pixel units, as in COCO), when given,
    become the sample's mask.

    Example:
        >>> r = Record("x/1", Path("im.jpg"), "a dog", [[0.0, 0.0, 4.0, 4.0]], (8, 8), "a.json: 1")
        >>> r.image_size
        (8, 8)
    """

    id: str
    image_path: Path
    phrase: str
    boxes: list[list[float]]
    image_size: tuple[int, int]
    source: str
    meta: dict[str, Any] = field(default_factory=dict)
    polygons: list[list[float]] | None = None


def polygon_mask(polygons: Sequence[Sequence[float]], image_size: tuple[int, int]) -> np.ndarray:
    """Boolean ``height x width`` mask of the pixels whose centres lie inside any polygon.

    Each polygon is ``[x1, y1, x2, y2, ...]`` in continuous pixel units (COCO's
    ``segmentation``); pixel ``(i, j)`` is inside when its centre ``(j + 0.5, i + 0.5)`` is.

    Example:
        >>> polygon_mask([[2, 2, 6, 2, 6, 5, 2, 5]], (8, 8)).sum()  # 4 columns x 3 rows
        np.int64(12)
    """
    width, height = image_size
    mask = np.zeros((height, width), dtype=bool)
    for polygon in polygons:
        corners = np.asarray(polygon, dtype=float).reshape(-1, 2)
        # polygon2mask tests integer (row, col) points: shift so it tests pixel centres.
        mask |= polygon2mask((height, width), corners[:, ::-1] - 0.5)
    return mask


def checked_polygons(segmentation: Any, source: str) -> list[list[float]] | None:
    """COCO ``segmentation`` polygons as float lists, or ``None`` for run-length encodings.

    Example:
        >>> checked_polygons([[0, 0, 4, 0, 4, 4]], "instances.json: annotation 1")
        [[0.0, 0.0, 4.0, 0.0, 4.0, 4.0]]
    """
    if isinstance(segmentation, dict):
        return None
    if not isinstance(segmentation, list) or not segmentation:
        raise ValueError(f"{source}: segmentation must be a list of polygons or an RLE dict")
    polygons = []
    for polygon in segmentation:
        if not isinstance(polygon, list) or len(polygon) < 6 or len(polygon) % 2:
            raise ValueError(f"{source}: polygon {polygon} must list >= 3 (x, y) points")
        polygons.append(numbers(polygon, len(polygon), source, "polygon"))
    return polygons


def checked_boxes(
    boxes: Sequence[Sequence[float]], image_size: tuple[int, int], source: str
) -> list[list[float]]:
    """Validate ``xyxy`` boxes against a ``(width, height)`` image, clipping tiny overshoots.

    Raises ``ValueError`` naming ``source`` for a malformed or non-finite box, and its subclass
    ``DegenerateBox`` for an empty or inverted box or one that reaches more than
    ``EDGE_TOLERANCE`` pixels outside the image (a defect of the data set, which loaders may
    skip).

    Example:
        >>> checked_boxes([[-0.5, 0, 10.4, 5]], (10, 10), "file.json: record 3")
        [[0.0, 0.0, 10.0, 5.0]]
    """
    width, height = image_size
    result = []
    for box in boxes:
        x1, y1, x2, y2 = numbers(box, 4, source, "box")
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ValueError(f"{source}: box {list(box)} has a non-finite coordinate")
        if x2 <= x1 or y2 <= y1:
            raise DegenerateBox(f"{source}: box {[x1, y1, x2, y2]} is empty or inverted")
        if (
            min(x1, y1) < -EDGE_TOLERANCE
            or x2 > width + EDGE_TOLERANCE
            or y2 > height + EDGE_TOLERANCE
        ):
            raise DegenerateBox(
                f"{source}: box {[x1, y1, x2, y2]} lies outside the {width}x{height} image"
            )
        clipped = [max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise DegenerateBox(f"{source}: box {[x1, y1, x2, y2]} is empty inside the image")
        result.append(clipped)
    if not result:
        raise ValueError(f"{source}: no boxes")
    return result


def require_file(path: Path, what: str) -> Path:
    """Return ``path`` if it is a file, else raise ``FileNotFoundError`` saying what is missing.

    Example:
        >>> require_file(Path(__file__), "this module").name
        'records.py'
    """
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def read_json(path: Path, what: str) -> Any:
    """Parse the JSON file ``path``; a missing file or invalid JSON gets an error naming it.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = (Path(folder) / "a.json").write_text("[1, 2]")
        ...     read_json(Path(folder) / "a.json", "a list")
        [1, 2]
    """
    text = read_text(path, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON, truncated or corrupt ({error})") from None


def read_text(path: Path, what: str) -> str:
    """The UTF-8 text of ``path``; a missing file or bytes that are not UTF-8 get an error
    naming it (and the byte offset).

    Example:
        >>> "class Record" in read_text(Path(__file__), "this module")
        True
    """
    require_file(path, what)
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text at byte {error.start} ({error.reason}); "
                         f"is this the {what}?") from None


def load_sample(record: Record) -> Sample:
    """Open ``record``'s image (converted to RGB) and build its :class:`Sample`.

    An image that cannot be decoded (truncated, not an image) raises ``ValueError`` naming the
    record, the sample id and the image path.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "im.png"
        >>> Image.new("L", (8, 8)).save(path)
        >>> record = Record("x/1", path, "a dog", [[0, 0, 4, 4]], (8, 8), "a.json: 1")
        >>> load_sample(record).image.mode
        'RGB'
    """
    path = require_file(record.image_path, f"{record.source}: image")
    try:
        with Image.open(path) as opened:
            image = opened.convert("RGB")  # decodes every pixel: a truncated file fails here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{record.source}: sample {record.id!r}: image {path} cannot be read "
                         f"({type(error).__name__}: {error})") from None
    if image.size != tuple(record.image_size):
        raise ValueError(
            f"{record.source}: image {path} is {image.size[0]}x{image.size[1]}, "
            f"but the annotation says {record.image_size[0]}x{record.image_size[1]}"
        )
    mask = None if record.polygons is None else polygon_mask(record.polygons, record.image_size)
    try:
        return Sample(record.id, image, record.phrase, record.boxes, mask, dict(record.meta))
    except ValueError as error:
        raise ValueError(f"{record.source}: {error}") from error


class RecordDataset(Sequence[Sample]):
    """A sequence of samples built from records, each image opened when it is indexed.

    ``records`` holds the parsed annotations (no pixels); ``skipped`` counts annotations the
    loader left out, by reason. Slicing returns another ``RecordDataset``.

    Example:
        >>> data = RecordDataset([], {"nobndbox": 2})
        >>> len(data), data.skipped
        (0, {'nobndbox': 2})
    """

    def __init__(self, records: list[Record], skipped: dict[str, int] | None = None) -> None:
        self.records = records
        self.skipped = dict(skipped or {})

    def __len__(self) -> int:
        return len(self.records)

    @overload
    def __getitem__(self, item: int) -> Sample: ...

    @overload
    def __getitem__(self, item: slice) -> RecordDataset: ...

    def __getitem__(self, item: int | slice) -> Sample | RecordDataset:
        if isinstance(item, slice):
            return RecordDataset(self.records[item], self.skipped)
        return load_sample(self.records[item])

    def __repr__(self) -> str:
        return f"RecordDataset({len(self)} samples, skipped={self.skipped})"
