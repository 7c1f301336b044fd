"""`evaluate`: an explainer's maps over a data set, scored by `qgnb.metrics.score`, resumably;
`BatchShard`: one process's share of the batches, for runs sharded over processes."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from tqdm.auto import tqdm

from qgnb.data import Sample
from qgnb.explain.base import Explainer, choose_device, fingerprint
from qgnb.explain.store import MapStore, image_digest, map_key
from qgnb.metrics import score


def _annotation(dataset: Sequence[Sample], index: int) -> Any:
    # Loaders' RecordDatasets keep id, phrase and boxes in `records`: no image is decoded for
    # a batch that the store already holds (its file is only hashed for the store's key).
    records = getattr(dataset, "records", None)
    return records[index] if records is not None else dataset[index]


def evaluate(explainer: Explainer, dataset: Sequence[Sample], *, batch_size: int = 16,
             store: str | Path | None = None, device: str | torch.device | None = None,
             progress: bool = True, **metric_kwargs: Any) -> pd.DataFrame:
    """Explain every sample of ``dataset`` and score the maps: one row per sample.

    The table is `qgnb.metrics.score`'s (``id`` first, then ``phrase``, then the metrics);
    ``metric_kwargs`` (``tol``, ``nms_window``, ``levels``, ``threshold``) go to it. With
    ``store=PATH`` each finished batch of maps is scored, then written atomically to that
    folder (see `MapStore`; a batch whose maps cannot be scored, NaN say, is never stored). The
    store is keyed by content: a run started again with the same explainer (`fingerprint`:
    config, weights, processor, tokenizer) reuses the maps of the same image and phrase and
    computes the rest; another explainer is refused. ``device``: when given, the explainer moves
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
    map_store = MapStore(store, fingerprint(explainer)) if store is not None else None
    seconds = {"explain": 0.0, "metrics": 0.0, "store": 0.0}
    tables = []
    with tqdm(total=len(dataset), unit="map", disable=not progress, desc="evaluate") as bar:
        for start in range(0, len(dataset), batch_size):
            indices = list(range(start, min(start + batch_size, len(dataset))))
            notes = [_annotation(dataset, i) for i in indices]
            keys: list[str] = []
            stored: dict[str, torch.Tensor] = {}
            if map_store is not None:
                begin = time.perf_counter()
                keys = [map_key(image_digest(note), note.phrase) for note in notes]
                stored = map_store.get(keys)
                seconds["store"] += time.perf_counter() - begin
            todo = [i for k, i in enumerate(indices) if not keys or keys[k] not in stored]
            fresh: dict[int, torch.Tensor] = {}
            if todo:
                begin = time.perf_counter()
                fresh = _explain(explainer, dataset, todo)
                seconds["explain"] += time.perf_counter() - begin
            begin = time.perf_counter()
            maps = []
            for k, (i, note) in enumerate(zip(indices, notes, strict=True)):
                image_map = fresh[i] if i in fresh else stored[keys[k]]
                if i not in fresh:
                    _check_shape(i, note, image_map, f"the store {store}")
                maps.append(image_map.to(metrics_device or image_map.device))
            if len({tuple(m.shape) for m in maps}) == 1:
                maps = torch.stack(maps)
            # Scored before stored: maps the metrics refuse (NaN, say) never reach the store.
            table = score(maps, [note.boxes for note in notes], ids=[note.id for note in notes],
                          **metric_kwargs)
            table.insert(1, "phrase", [note.phrase for note in notes])
            tables.append(table)
            seconds["metrics"] += time.perf_counter() - begin
            if map_store is not None and todo:
                begin = time.perf_counter()
                done = [k for k, i in enumerate(indices) if i in fresh]
                map_store.save([keys[k] for k in done], [notes[k].id for k in done],
                               [notes[k].phrase for k in done], [fresh[indices[k]] for k in done])
                seconds["store"] += time.perf_counter() - begin
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


class BatchShard(Sequence[Sample]):
    """The batches of ``dataset`` (in `evaluate`'s batches of ``batch_size``) numbered
    ``rank``, ``rank + world``, ``rank + 2 * world``, ...: one process's share of a sharded run.

    `evaluate` on a shard with the same ``batch_size`` sees exactly the batches a one-process
    run sees (only the last batch of the data set may be short, and it stays last), so every
    map and score equals the one-process run's. Annotation ``records`` pass through.

    >>> shard = BatchShard(list("abcdefg"), rank=1, world=2, batch_size=2)
    >>> list(shard), shard.indices
    (['c', 'd', 'g'], [2, 3, 6])
    """

    def __init__(self, dataset: Sequence[Sample], *, rank: int, world: int,
                 batch_size: int) -> None:
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1} (world size {world})")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.dataset = dataset
        self.indices = [i for start in range(rank * batch_size, len(dataset), world * batch_size)
                        for i in range(start, min(start + batch_size, len(dataset)))]
        base = getattr(dataset, "records", None)
        if base is not None:
            self.records = [base[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, item: int) -> Sample:
        return self.dataset[self.indices[item]]
