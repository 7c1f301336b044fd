"""Annotation records read from disk, and the lazy sequence that turns them into samples.

The real-data loaders parse their annotation files into :class:`Record` objects (cheap: no
pixels) and return a :class:`RecordDataset`, which opens an image only when its sample is
indexed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from PIL import Image

from qgnb.data.sample import Sample

# Annotation tools round box corners; an overshoot up to this many pixels past the image edge
# is clipped, anything more is reported as bad input.
EDGE_TOLERANCE = 1.0


@dataclass(frozen=True)
class Record:
    """One annotated phrase; ``source`` says which file and record it came from (for errors).

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


def checked_boxes(
    boxes: Sequence[Sequence[float]], image_size: tuple[int, int], source: str
) -> list[list[float]]:
    """Validate ``xyxy`` boxes against a ``(width, height)`` image, clipping tiny overshoots.

    Raises ``ValueError`` naming ``source`` for a malformed, non-finite, empty or inverted box,
    or one that reaches more than ``EDGE_TOLERANCE`` pixels outside the image.

    Example:
        >>> checked_boxes([[-0.5, 0, 10.4, 5]], (10, 10), "file.json: record 3")
        [[0.0, 0.0, 10.0, 5.0]]
    """
    width, height = image_size
    result = []
    for box in boxes:
        if len(box) != 4:
            raise ValueError(f"{source}: box {list(box)} must have 4 numbers")
        try:
            x1, y1, x2, y2 = (float(v) for v in box)
        except (TypeError, ValueError):
            raise ValueError(f"{source}: box {list(box)} is not numeric") from None
        if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
            raise ValueError(f"{source}: box {list(box)} has a non-finite coordinate")
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"{source}: box {[x1, y1, x2, y2]} is empty or inverted")
        if (
            min(x1, y1) < -EDGE_TOLERANCE
            or x2 > width + EDGE_TOLERANCE
            or y2 > height + EDGE_TOLERANCE
        ):
            raise ValueError(
                f"{source}: box {[x1, y1, x2, y2]} lies outside the {width}x{height} image"
            )
        clipped = [max(x1, 0.0), max(y1, 0.0), min(x2, float(width)), min(y2, float(height))]
        if clipped[2] <= clipped[0] or clipped[3] <= clipped[1]:
            raise ValueError(f"{source}: box {[x1, y1, x2, y2]} is empty inside the image")
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


def load_sample(record: Record) -> Sample:
    """Open ``record``'s image (converted to RGB) and build its :class:`Sample`.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "im.png"
        >>> Image.new("L", (8, 8)).save(path)
        >>> record = Record("x/1", path, "a dog", [[0, 0, 4, 4]], (8, 8), "a.json: 1")
        >>> load_sample(record).image.mode
        'RGB'
    """
    path = require_file(record.image_path, f"{record.source}: image")
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    if image.size != tuple(record.image_size):
        raise ValueError(
            f"{record.source}: image {path} is {image.size[0]}x{image.size[1]}, "
            f"but the annotation says {record.image_size[0]}x{record.image_size[1]}"
        )
    try:
        return Sample(record.id, image, record.phrase, record.boxes, None, dict(record.meta))
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
