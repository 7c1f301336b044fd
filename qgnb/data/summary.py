"""`summary`: a small table describing a data set (counts, phrase lengths, box sizes)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from qgnb.data.records import Record
from qgnb.data.sample import Sample

COLUMNS = (
    "dataset",
    "split",
    "samples",
    "images",
    "boxes_per_sample",
    "words_mean",
    "words_min",
    "words_max",
    "box_area_p10",
    "box_area_median",
    "box_area_p90",
)


def _entries(dataset: Iterable[Sample]) -> Iterable[Sample | Record]:
    # Loader datasets keep their parsed records: summarising them opens no image.
    records = getattr(dataset, "records", None)
    return records if records is not None else dataset


def _image_size(entry: Sample | Record) -> tuple[int, int]:
    if isinstance(entry, Record):
        return entry.image_size
    return tuple(entry.meta.get("image_size", entry.image.size))


def summary(dataset: Iterable[Sample]) -> pd.DataFrame:
    """One row per ``(dataset, split)``: counts, phrase lengths and box areas.

    ``dataset`` and ``split`` come from each sample's ``meta`` (``"?"`` where absent).
    ``images`` counts distinct ``meta["image_id"]`` (the sample id when absent); ``words_*``
    describe phrase lengths in words; ``box_area_*`` are the 10th, 50th and 90th percentiles
    of each box's area as a fraction of its image. Values are rounded to 4 decimals so that
    printed tables are stable.

    Example:
        >>> from qgnb.data import shapes
        >>> table = summary(shapes("id", n=20))
        >>> table["dataset"][0], table["split"][0], int(table["samples"][0])
        ('shapes', 'id', 20)
    """
    groups: dict[tuple[str, str], dict[str, list[Any]]] = {}
    for entry in _entries(dataset):
        key = (str(entry.meta.get("dataset", "?")), str(entry.meta.get("split", "?")))
        group = groups.setdefault(key, {"images": [], "words": [], "boxes": [], "areas": []})
        width, height = _image_size(entry)
        group["images"].append(entry.meta.get("image_id", entry.id))
        group["words"].append(len(entry.phrase.split()))
        group["boxes"].append(len(entry.boxes))
        group["areas"] += [
            (x2 - x1) * (y2 - y1) / (width * height) for x1, y1, x2, y2 in entry.boxes
        ]
    rows = []
    for (name, split), group in groups.items():
        words, areas = np.array(group["words"]), np.array(group["areas"])
        p10, p50, p90 = np.percentile(areas, [10, 50, 90])
        rows.append(
            {
                "dataset": name,
                "split": split,
                "samples": len(words),
                "images": len(set(group["images"])),
                "boxes_per_sample": float(np.mean(group["boxes"])),
                "words_mean": float(words.mean()),
                "words_min": int(words.min()),
                "words_max": int(words.max()),
                "box_area_p10": float(p10),
                "box_area_median": float(p50),
                "box_area_p90": float(p90),
            }
        )
    return pd.DataFrame(rows, columns=list(COLUMNS)).round(4)
