"""`Sample`: one grounding example (image, phrase, the boxes the phrase refers to)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image


@dataclass(eq=False)  # identity equality: comparing images and masks field by field is ill-defined
class Sample:
    """A phrase grounded in an RGB image by one or more ``xyxy`` boxes (and maybe a mask).

    Boxes are in continuous pixel units: pixel ``(i, j)`` (row ``i``, column ``j``) covers
    ``[j, j+1] x [i, i+1]``, so a box ``[x1, y1, x2, y2]`` covering whole pixels has integer
    corners and the full image is ``[0, 0, width, height]``. ``mask``, when given, is a boolean
    ``height x width`` array. ``meta`` carries anything else (split, scene, source record).

    Example:
        >>> from PIL import Image
        >>> s = Sample("a", Image.new("RGB", (8, 6)), "the box", [[1, 2, 5, 6]])
        >>> s.boxes
        [[1.0, 2.0, 5.0, 6.0]]
    """

    id: str
    image: Image.Image
    phrase: str
    boxes: list[list[float]]
    mask: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        where = f"sample {self.id!r}"
        if not isinstance(self.image, Image.Image):
            raise ValueError(f"{where}: image must be a PIL.Image.Image, got {type(self.image)}")
        if self.image.mode != "RGB":
            raise ValueError(f"{where}: image mode is {self.image.mode!r}, expected 'RGB'")
        if not isinstance(self.phrase, str) or not self.phrase.strip():
            raise ValueError(f"{where}: phrase must be a non-empty string, got {self.phrase!r}")
        width, height = self.image.size
        if len(self.boxes) == 0:
            raise ValueError(f"{where}: needs at least one box, got none")
        boxes = []
        for k, box in enumerate(self.boxes):
            if len(box) != 4:
                raise ValueError(f"{where}: box {k} {list(box)} must have 4 numbers (xyxy)")
            x1, y1, x2, y2 = (float(v) for v in box)
            if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
                raise ValueError(f"{where}: box {k} {list(box)} has a non-finite coordinate")
            if x2 <= x1:
                raise ValueError(f"{where}: box {k} {list(box)} has x2 <= x1")
            if y2 <= y1:
                raise ValueError(f"{where}: box {k} {list(box)} has y2 <= y1")
            if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
                raise ValueError(
                    f"{where}: box {k} {list(box)} lies outside the {width}x{height} image"
                )
            boxes.append([x1, y1, x2, y2])
        self.boxes = boxes
        if self.mask is not None:
            mask = np.asarray(self.mask)
            if mask.dtype != bool:
                raise ValueError(f"{where}: mask dtype is {mask.dtype}, expected bool")
            if mask.shape != (height, width):
                raise ValueError(
                    f"{where}: mask shape {mask.shape} does not match the image ({height}, {width})"
                )
            self.mask = mask
