"""`MapStore`: an on-disk store of maps keyed by what made them, that a killed run resumes from.

A map is valid only for the explainer, image and phrase that made it, so the store is keyed by
content, never by a sample's name:
- ``manifest.json`` holds the explainer's `fingerprint` (its config with a digest of its
  weights, processor and tokenizer). A run whose fingerprint differs is refused with a message
  that lists what differs: one store, one explainer.
- each map is stored under the key `map_key` ``(image digest, phrase)``: the same id with
  another phrase or another image is another key, so it is computed, never reused.
- ``batch-<sha256 of the file>.pt`` holds one finished batch (``keys``, ``ids``, ``phrases``,
  ``maps``). The name is the checksum: a file is verified when its maps are first read, and a
  corrupt or truncated one is named in a warning, set aside as ``corrupt-<name>`` and its
  maps are recomputed.

Concurrent runs on one store (two notebooks, the ranks of a sharded ``qgnb evaluate``) are
safe without a lock: every file is written under a temporary name unique to its writer
(``.tmp-<host>-<pid>-*``) and renamed into place atomically, batch names are their content's
checksum (two writers of the same maps write the same file), and the manifest is created with
``os.link``, which fails if another writer made it first (then its fingerprint is compared).
Opening a store removes only temporaries of dead processes on this host.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

FORMAT = 2
MANIFEST = "manifest.json"
TEMP_PREFIX = ".tmp-"


def _writer_tag() -> str:
    return f"{TEMP_PREFIX}{socket.gethostname()}-{os.getpid()}-"


def atomic_write(path: Path, write: Callable[[Any], None]) -> None:
    """Write ``path`` atomically: ``write(file)`` fills a temporary file in the same folder
    (named for this host and process), which is flushed, synced and renamed over ``path``.

    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> atomic_write(folder / "a.txt", lambda f: f.write(b"done"))
    >>> (folder / "a.txt").read_bytes(), sorted(p.name for p in folder.iterdir())
    (b'done', ['a.txt'])
    """
    temporary = _write_temporary(path.parent, write)
    try:
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _write_temporary(folder: Path, write: Callable[[Any], None]) -> Path:
    handle, name = tempfile.mkstemp(dir=folder, prefix=_writer_tag(), suffix=".part")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    return Path(name)


def image_digest(note: Any) -> str:
    """SHA-256 of a sample's image: of its file's bytes when the sample is a loader's record
    (``image_path``; no decoding needed), else of the PIL image's mode, size and pixels.

    >>> from PIL import Image
    >>> from qgnb.data import Sample
    >>> a = Sample("a", Image.new("RGB", (4, 4)), "x", [[0, 0, 2, 2]])
    >>> b = Sample("b", Image.new("RGB", (4, 4), "red"), "x", [[0, 0, 2, 2]])
    >>> image_digest(a) == image_digest(b)
    False
    """
    path = getattr(note, "image_path", None)
    if path is not None:
        try:
            data = Path(path).read_bytes()
        except OSError as error:
            where = getattr(note, "source", repr(note.id))
            raise FileNotFoundError(f"{where}: image {path} cannot be read ({error})") from error
        return "file:" + hashlib.sha256(data).hexdigest()
    image = note.image
    digest = hashlib.sha256(f"{image.mode} {image.size}\n".encode())
    digest.update(image.tobytes())
    return "pixels:" + digest.hexdigest()


def map_key(image: str, phrase: str) -> str:
    """The store's key of a map: a digest of the image digest and the phrase.

    >>> map_key("pixels:ab", "a cat") == map_key("pixels:ab", "a dog")
    False
    """
    return hashlib.sha256(json.dumps([image, phrase]).encode()).hexdigest()[:32]


def _plain_id(value: Any) -> Any:
    # numpy scalars are not loadable with weights_only=True: store ids as Python values.
    value = value.item() if hasattr(value, "item") and not isinstance(value, str) else value
    return value if isinstance(value, str | int | float) else str(value)


def _differences(stored: Any, current: Any, prefix: str = "") -> list[str]:
    if isinstance(stored, dict) and isinstance(current, dict):
        lines = []
        for key in sorted(set(stored) | set(current), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            if key not in stored:
                lines.append(f"{where}: absent in the store, {current[key]!r} in this run")
            elif key not in current:
                lines.append(f"{where}: {stored[key]!r} in the store, absent in this run")
            else:
                lines += _differences(stored[key], current[key], where)
        return lines
    if stored != current:
        return [f"{prefix}: {stored!r} in the store, {current!r} in this run"]
    return []


class MapStore:
    """Maps of one explainer (its `fingerprint`), keyed by image and phrase, in folder ``root``.

    >>> import tempfile
    >>> store = MapStore(tempfile.mkdtemp(), {"config": {"explainer": "demo", "layer": 6}})
    >>> keys = [map_key("pixels:1", "a cat"), map_key("pixels:1", "a dog")]
    >>> maps = [torch.zeros(2, 3), torch.ones(4, 4)]
    >>> path = store.save(keys, ["a", "b"], ["a cat", "a dog"], maps)
    >>> {key == keys[1]: tuple(m.shape) for key, m in store.get(keys).items()}
    {False: (2, 3), True: (4, 4)}
    """

    def __init__(self, root: str | Path, explainer: dict[str, Any]) -> None:
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise NotADirectoryError(f"map store {self.root} is a file, not a folder")
        self.explainer = json.loads(json.dumps(explainer, sort_keys=True, default=str))
        self.digest = hashlib.sha256(json.dumps(self.explainer, sort_keys=True).encode()
                                     ).hexdigest()
        self._where: dict[str, tuple[Path, int]] = {}
        self._batches: dict[Path, dict[str, Any]] = {}
        self._verified: set[Path] = set()
        self.root.mkdir(parents=True, exist_ok=True)
        self._claim_manifest()
        self._remove_dead_temporaries()
        for path in self.batch_files():
            self._index(path)

    def _claim_manifest(self) -> None:
        manifest = self.root / MANIFEST
        if not manifest.exists():
            text = json.dumps({"format": FORMAT, "explainer": self.explainer}, indent=1,
                              sort_keys=True)
            temporary = _write_temporary(self.root, lambda file: file.write(text.encode()))
            try:
                os.link(temporary, manifest)  # fails if another writer created it first
            except FileExistsError:
                pass
            finally:
                temporary.unlink(missing_ok=True)
        try:
            stored = json.loads(manifest.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"map store manifest {manifest} is unreadable ({error}); nothing "
                             "says which explainer made this store's maps: use a new folder, "
                             "or delete this one to start over") from error
        if not isinstance(stored, dict) or stored.get("format") != FORMAT:
            found = stored.get("format") if isinstance(stored, dict) else None
            raise ValueError(f"map store {self.root} has format {found!r}, this qgnb writes "
                             f"format {FORMAT} (maps keyed by image and phrase); its maps cannot "
                             "be checked: use a new folder, or delete this one to start over")
        differences = _differences(stored.get("explainer"), self.explainer)
        if differences:
            raise ValueError(f"map store {self.root} holds maps of another explainer; what "
                             "differs:\n  " + "\n  ".join(differences) + "\nUse a new store "
                             "folder, or delete this one to start over.")

    def _remove_dead_temporaries(self) -> None:
        # Another writer's temporary is never touched: only this host's, of processes gone.
        host = f"{TEMP_PREFIX}{socket.gethostname()}-"
        for leftover in self.root.glob(f"{host}*"):
            pid = leftover.name[len(host):].split("-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                leftover.unlink(missing_ok=True)

    def batch_files(self) -> list[Path]:
        """The batch files in the folder, sorted by name.

        >>> import tempfile
        >>> MapStore(tempfile.mkdtemp(), {"config": {}}).batch_files()
        []
        """
        return sorted(self.root.glob("batch-*.pt"))

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key: str) -> bool:
        return key in self._where

    def _index(self, path: Path) -> None:
        try:
            # Memory-mapped: only the keys are read now; maps are read from disk when used.
            batch = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            keys, maps = batch["keys"], batch["maps"]
            if len(keys) != len(maps):
                raise ValueError(f"{len(keys)} keys but {len(maps)} maps")
        except Exception as error:
            self._set_aside(path, f"unreadable: {type(error).__name__}: {error}")
            return
        if batch.get("explainer") != self.digest:
            raise ValueError(f"map store file {path} was made by another explainer than this "
                             f"store's manifest (digest {batch.get('explainer')!r}, the manifest "
                             f"{self.digest!r}); it was copied in from another store: remove it")
        self._batches[path] = batch
        for position, key in enumerate(keys):
            self._where[key] = (path, position)

    def _set_aside(self, path: Path, reason: str) -> None:
        aside = path.with_name(f"corrupt-{path.name}")
        try:
            os.replace(path, aside)
        except FileNotFoundError:  # another writer set it aside first
            pass
        warnings.warn(f"map store file {path} is corrupt ({reason}); set aside as {aside.name}; "
                      "its maps will be recomputed", stacklevel=3)
        for key in [k for k, (p, _) in self._where.items() if p == path]:
            del self._where[key]
        self._batches.pop(path, None)

    def _verify(self, path: Path) -> bool:
        if path in self._verified:
            return True
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if path.name != f"batch-{digest}.pt":
            self._set_aside(path, f"its checksum is {digest[:16]}..., its name says otherwise")
            return False
        self._verified.add(path)
        return True

    def get(self, keys: Sequence[str]) -> dict[str, torch.Tensor]:
        """The stored maps of those ``keys`` that the store holds, each file checked against
        its checksum first (a corrupt file is set aside with a warning; its maps are missing).
        """
        found = {}
        for key in keys:
            if key not in self._where:
                continue
            path, position = self._where[key]
            if self._verify(path):
                found[key] = self._batch(path)["maps"][position]
        return found

    def _batch(self, path: Path) -> dict[str, Any]:
        if path not in self._batches:  # written by this run: read back only when asked for
            self._batches[path] = torch.load(path, map_location="cpu", weights_only=True,
                                             mmap=True)
        return self._batches[path]

    def save(self, keys: Sequence[str], ids: Sequence[Any], phrases: Sequence[str],
             maps: Sequence[torch.Tensor]) -> Path:
        """Store one finished batch atomically under its checksum; returns the file's path."""
        if not len(keys) == len(ids) == len(phrases) == len(maps):
            raise ValueError(f"save: {len(keys)} keys, {len(ids)} ids, {len(phrases)} phrases "
                             f"and {len(maps)} maps; need one each")
        payload = {"explainer": self.digest, "keys": list(keys),
                   "ids": [_plain_id(i) for i in ids], "phrases": list(phrases),
                   "maps": [m.detach().to("cpu", torch.float32).clone() for m in maps]}
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        data = buffer.getvalue()
        path = self.root / f"batch-{hashlib.sha256(data).hexdigest()}.pt"
        atomic_write(path, lambda file: file.write(data))
        self._verified.add(path)  # not kept in memory: a long run would hold all its maps
        for position, key in enumerate(keys):
            self._where[key] = (path, position)
        return path

    def __repr__(self) -> str:
        return f"MapStore({str(self.root)!r}, {len(self)} maps)"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True
