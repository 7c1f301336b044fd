"""`evaluate`: an explainer's maps over a data set, scored by `qgnb.metrics.score`, resumably."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from qgnb.data import Sample
from qgnb.explain.base import Explainer, choose_device
from qgnb.explain.store import MapStore
from qgnb.metrics import score


def explainer_config(explainer: Any) -> dict[str, Any]:
    """The explainer's ``config`` (what the map store keys runs on), or for a plain callable
    without one its qualified name.

    >>> def brightness(images, phrases): ...
    >>> explainer_config(brightness)
    {'explainer': 'qgnb.explain.evaluate.brightness'}
    """
    config = getattr(explainer, "config", None)
    if config is not None:
        return dict(config)
    named = explainer if hasattr(explainer, "__qualname__") else type(explainer)
    return {"explainer": f"{named.__module__}.{named.__qualname__}"}


def _annotation(dataset: Sequence[Sample], index: int) -> Any:
    # Loaders' RecordDatasets keep id, phrase and boxes in `records`: no image is opened for
    # a batch that the store already holds.
    records = getattr(dataset, "records", None)
    return records[index] if records is not None else dataset[index]


def evaluate(explainer: Explainer, dataset: Sequence[Sample], *, batch_size: int = 16,
             store: str | Path | None = None, device: str | torch.device | None = None,
             progress: bool = True, **metric_kwargs: Any) -> pd.DataFrame:
    """Explain every sample of ``dataset`` and score the maps: one row per sample.

    The table is `qgnb.metrics.score`'s (``id`` first, then ``phrase``, then the metrics);
    ``metric_kwargs`` (``tol``, ``nms_window``, ``levels``, ``threshold``) go to it. With
    ``store=PATH`` each finished batch of maps is written atomically to that folder (see
    `MapStore`): a run that was killed and is started again with the same explainer config
    computes only the samples it had not stored. ``device``: when given, the explainer moves
    there (``explainer.to(device)``) and the metrics run there; by default the explainer stays
    where it was built (its own default is CUDA when available) and the metrics run on the
    maps' device. ``table.attrs["seconds"]`` holds the time spent explaining, scoring and
    storing.

    >>> import torch
    >>> from PIL import Image
    >>> from qgnb.data import Sample
    >>> def centre(images, phrases):  # a map peaked at the image centre
    ...     return torch.tensor([[0., 0, 0], [0, 1, 0], [0, 0, 0]]).expand(len(images), 3, 3)
    >>> data = [Sample("a", Image.new("RGB", (3, 3)), "the middle", [[1, 1, 2, 2]])]
    >>> table = evaluate(centre, data, progress=False)
    >>> row = table.iloc[0]
    >>> row["id"], row["phrase"], float(row["pg_hit"]), float(row["io_ratio"])
    ('a', 'the middle', 1.0, 1.0)
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if len(dataset) == 0:
        raise ValueError("evaluate: the data set is empty")
    metrics_device = None
    if device is not None:
        metrics_device = choose_device(device)
        if hasattr(explainer, "to"):
            explainer.to(metrics_device)
    map_store = MapStore(store, explainer_config(explainer)) if store is not None else None
    stored = map_store.load() if map_store is not None else {}
    seen: dict[Any, int] = {}
    seconds = {"explain": 0.0, "metrics": 0.0, "store": 0.0}
    tables = []
    with tqdm(total=len(dataset), unit="map", disable=not progress, desc="evaluate") as bar:
        for start in range(0, len(dataset), batch_size):
            indices = list(range(start, min(start + batch_size, len(dataset))))
            notes = [_annotation(dataset, i) for i in indices]
            if map_store is not None:
                for i, note in zip(indices, notes, strict=True):
                    if note.id in seen:
                        raise ValueError(f"sample {i}: id {note.id!r} repeats sample "
                                         f"{seen[note.id]}; a map store needs unique sample ids")
                    seen[note.id] = i
            todo = [i for i, note in zip(indices, notes, strict=True) if note.id not in stored]
            fresh: dict[int, torch.Tensor] = {}
            if todo:
                begin = time.perf_counter()
                fresh = _explain(explainer, dataset, todo)
                seconds["explain"] += time.perf_counter() - begin
                if map_store is not None:
                    begin = time.perf_counter()
                    map_store.save([notes[i - start].id for i in todo], list(fresh.values()))
                    seconds["store"] += time.perf_counter() - begin
            begin = time.perf_counter()
            maps = []
            for i, note in zip(indices, notes, strict=True):
                image_map = fresh[i] if i in fresh else stored[note.id]
                if i not in fresh:
                    _check_shape(i, note, image_map, f"the store {store}")
                maps.append(image_map.to(metrics_device or image_map.device))
            if len({tuple(m.shape) for m in maps}) == 1:
                maps = torch.stack(maps)
            table = score(maps, [note.boxes for note in notes], ids=[note.id for note in notes],
                          **metric_kwargs)
            table.insert(1, "phrase", [note.phrase for note in notes])
            tables.append(table)
            seconds["metrics"] += time.perf_counter() - begin
            bar.update(len(notes))
    result = pd.concat(tables, ignore_index=True)
    result.attrs["seconds"] = seconds
    return result


def _explain(explainer: Explainer, dataset: Sequence[Sample],
             indices: list[int]) -> dict[int, torch.Tensor]:
    """Maps of the samples at ``indices``, checked against their images' sizes."""
    samples = [dataset[i] for i in indices]
    maps = explainer([s.image for s in samples], [s.phrase for s in samples])
    if len(maps) != len(samples):
        raise ValueError(f"samples {indices[0]}..{indices[-1]}: the explainer returned "
                         f"{len(maps)} maps for {len(samples)} samples")
    for i, sample, image_map in zip(indices, samples, maps, strict=True):
        _check_shape(i, sample, image_map, "the explainer")
    if any(m.is_cuda for m in maps):
        torch.cuda.synchronize()  # so that the time is the explainer's, not the metrics'
    return dict(zip(indices, maps, strict=True))


def _check_shape(index: int, note: Any, image_map: torch.Tensor, source: str) -> None:
    width, height = note.image_size if hasattr(note, "image_size") else note.image.size
    if tuple(image_map.shape) != (height, width):
        raise ValueError(f"sample {index} ({note.id!r}): the map from {source} is "
                         f"{tuple(image_map.shape)}, the image is {(height, width)} "
                         "(height, width)")
