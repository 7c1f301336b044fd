"""`MapStore`: an on-disk store of finished batches of maps that a killed run resumes from.

Layout of a store folder:
- ``manifest.json``: the explainer's ``config``; a store refuses a run with another config.
- ``batch-<hash of its ids>.pt``: one finished batch, ``{"ids": [...], "maps": [tensor, ...]}``.

Every file is written to a temporary name in the same folder (``.tmp-*``), flushed to disk and
then renamed over its final name with ``os.replace``, which is atomic: a reader sees a whole
batch file or none. Temporaries left by a killed run are never read and are removed when the
store is opened again (one writer per store at a time).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

FORMAT = 1
MANIFEST = "manifest.json"


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically: ``write(file)`` fills a temporary file in the same folder,
    which is flushed, synced and renamed over ``path``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.txt", lambda f: f.write(b"done"))
    >>> (folder / "a.txt").read_bytes(), sorted(p.name for p in folder.iterdir())
    (b'done', ['a.txt'])
    """
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _as_json(value: Any) -> Any:
    return json.loads(json.dumps(value, sort_keys=True, default=str))


class MapStore:
    """Finished batches of maps of one explainer configuration, in folder ``root``.

    >>> import tempfile
    >>> store = MapStore(tempfile.mkdtemp(), {"explainer": "demo", "layer": 6})
    >>> path = store.save(["a", "b"], [torch.zeros(2, 3), torch.ones(4, 4)])
    >>> {k: tuple(v.shape) for k, v in store.load().items()}
    {'a': (2, 3), 'b': (4, 4)}
    """

    def __init__(self, root: str | Path, config: dict[str, Any]) -> None:
        self.root = Path(root)
        self.config = _as_json(config)
        self.root.mkdir(parents=True, exist_ok=True)
        manifest = self.root / MANIFEST
        if manifest.exists():
            stored = json.loads(manifest.read_text())
            if stored.get("format") != FORMAT or stored.get("config") != self.config:
                raise ValueError(
                    f"map store {self.root} holds maps of another run: {stored.get('config')} "
                    f"(format {stored.get('format')}); this run is {self.config} (format "
                    f"{FORMAT}). Use a new store folder, or delete this one to start over."
                )
        else:
            text = json.dumps({"format": FORMAT, "config": self.config}, indent=1, sort_keys=True)
            atomic_write(manifest, lambda file: file.write(text.encode()))
        for leftover in self.root.glob(".tmp-*"):
            leftover.unlink(missing_ok=True)

    def batch_files(self) -> list[Path]:
        """The finished batch files, sorted by name."""
        return sorted(self.root.glob("batch-*.pt"))

    def load(self) -> dict[Any, torch.Tensor]:
        """Every stored map by sample id (CPU tensors, memory-mapped from the batch files)."""
        maps: dict[Any, torch.Tensor] = {}
        for path in self.batch_files():
            try:
                # Memory-mapped: a large store is read from disk as its maps are used.
                batch = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
                ids, stored = batch["ids"], batch["maps"]
            except Exception as error:
                raise ValueError(f"map store file {path} is unreadable ({error}); delete it to "
                                 "recompute its batch") from error
            if len(ids) != len(stored):
                raise ValueError(f"map store file {path}: {len(ids)} ids but {len(stored)} maps")
            maps.update(zip(ids, stored, strict=True))
        return maps

    def save(self, ids: Sequence[Any], maps: Sequence[torch.Tensor]) -> Path:
        """Store one finished batch atomically; returns the batch file's path."""
        if len(ids) != len(maps):
            raise ValueError(f"save: {len(ids)} ids but {len(maps)} maps")
        key = hashlib.sha1(json.dumps(list(ids), default=str).encode()).hexdigest()[:16]
        path = self.root / f"batch-{key}.pt"
        payload = {"ids": list(ids),
                   "maps": [m.detach().to("cpu", torch.float32).clone() for m in maps]}
        atomic_write(path, lambda file: torch.save(payload, file))
        return path

    def __repr__(self) -> str:
        return f"MapStore({str(self.root)!r}, {len(self.batch_files())} batches)"
