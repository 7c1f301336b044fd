"""The map store keyed by content: what made a map decides whether it is reused, stored files
are checked, concurrent writers are safe, and nothing unscorable is stored."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from qgnb.data import Sample
from qgnb.explain import evaluate
from qgnb.explain.base import fingerprint
from qgnb.explain.store import MapStore

TESTS = Path(__file__).parent


class Pointer:
    """Map: 1 at the pixel the phrase names ("at X Y"), 0 elsewhere; logs the phrases asked."""

    config = {"explainer": "Pointer"}

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, images, phrases):
        self.calls.append(list(phrases))
        maps = []
        for image, phrase in zip(images, phrases, strict=True):
            x, y = (int(v) for v in phrase.split()[1:3])
            point = torch.zeros(image.height, image.width)
            point[y, x] = 1.0
            maps.append(point)
        return maps


def scenes(phrase: str, n: int = 4, seed: int = 0, ids=None) -> list[Sample]:
    """``n`` 8x8 noise images, box [1, 1, 4, 4] (pixels 1..3), the same phrase for each."""
    rng = np.random.default_rng(seed)
    ids = ids if ids is not None else [f"s{i}" for i in range(n)]
    return [Sample(i, Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)), phrase,
                   [[1, 1, 4, 4]]) for i in ids]


def run(explainer, data, store: Path) -> pd.DataFrame:
    return evaluate(explainer, data, batch_size=2, store=store, progress=False)


def test_same_ids_with_other_phrases_get_the_new_phrases_maps(tmp_path: Path) -> None:
    inside, outside = scenes("at 2 2"), scenes("at 6 6")  # hard negatives: same ids and images
    first = Pointer()
    assert run(first, inside, tmp_path)["pg_hit"].tolist() == [1.0] * 4
    negatives = Pointer()
    assert run(negatives, outside, tmp_path)["pg_hit"].tolist() == [0.0] * 4
    assert negatives.calls == [["at 6 6"] * 2] * 2
    again = Pointer()
    assert run(again, inside, tmp_path)["pg_hit"].tolist() == [1.0] * 4
    assert again.calls == []


def test_same_ids_from_another_data_set_are_recomputed(tmp_path: Path) -> None:
    run(Pointer(), scenes("at 2 2", seed=0), tmp_path)
    other = Pointer()
    run(other, scenes("at 2 2", seed=1), tmp_path)  # same ids and phrase, other pixels
    assert sum(len(c) for c in other.calls) == 4


class Weighted:
    """A map scaled by a model's weight: retraining the model changes the maps."""

    config = {"explainer": "Weighted", "checkpoint": "/models/same/path"}

    def __init__(self, value: float) -> None:
        self.model = torch.nn.Linear(1, 1, bias=False)
        torch.nn.init.constant_(self.model.weight, value)

    def __call__(self, images, phrases):
        return [self.model.weight[0, 0].detach() * torch.ones(i.height, i.width) for i in images]


def test_retrained_weights_at_the_same_path_are_refused(tmp_path: Path) -> None:
    run(Weighted(1.0), scenes("at 2 2"), tmp_path)
    with pytest.raises(ValueError, match=r"holds maps of another explainer; what differs:\n"
                                         r"  model: '[0-9a-f]{64}' in the store, "
                                         r"'[0-9a-f]{64}' in this run"):
        run(Weighted(2.0), scenes("at 2 2"), tmp_path)
    run(Weighted(1.0), scenes("at 2 2"), tmp_path)  # the same weights are welcome


def test_explainers_without_a_config_cannot_use_a_store(tmp_path: Path) -> None:
    def ones(images, phrases):
        return [torch.ones(i.height, i.width) for i in images]

    for plain in (ones, lambda images, phrases: ones(images, phrases)):
        with pytest.raises(ValueError, match=r"has no `config` .* or run without a store"):
            run(plain, scenes("at 2 2"), tmp_path)
    assert evaluate(ones, scenes("at 2 2"), progress=False).shape[0] == 4  # no store: fine


def test_numpy_integer_ids_resume(tmp_path: Path) -> None:
    data = scenes("at 2 2", ids=[np.int64(i) for i in range(5)])
    table = run(Pointer(), data, tmp_path)
    again = Pointer()
    resumed = run(again, data, tmp_path)
    assert again.calls == []
    pd.testing.assert_frame_equal(resumed, table)
    assert resumed["id"].tolist() == list(range(5))


class Broken(Pointer):
    """Pointer whose maps are NaN while ``broken`` is set (the same config either way)."""

    broken = True

    def __call__(self, images, phrases):
        maps = super().__call__(images, phrases)
        return [m * float("nan") for m in maps] if self.broken else maps


def test_a_nan_batch_is_never_stored(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="NaN"):
        run(Broken(), scenes("at 2 2"), tmp_path)
    assert list(tmp_path.glob("batch-*")) == []
    fixed = Broken()
    fixed.broken = False
    assert run(fixed, scenes("at 2 2"), tmp_path)["pg_hit"].tolist() == [1.0] * 4
    assert sum(len(c) for c in fixed.calls) == 4


def stored_batches(root: Path) -> list[Path]:
    return sorted(root.glob("batch-*.pt"))


def test_a_truncated_file_is_named_set_aside_and_recomputed(tmp_path: Path) -> None:
    table = run(Pointer(), scenes("at 2 2"), tmp_path)
    victim = stored_batches(tmp_path)[0]
    victim.write_bytes(victim.read_bytes()[:200])
    again = Pointer()
    with pytest.warns(UserWarning, match=rf"map store file {victim} is corrupt \(unreadable"):
        resumed = run(again, scenes("at 2 2"), tmp_path)
    assert sum(len(c) for c in again.calls) == 2
    assert (tmp_path / f"corrupt-{victim.name}").is_file()
    pd.testing.assert_frame_equal(resumed, table)


def test_a_changed_byte_fails_the_checksum_and_is_recomputed(tmp_path: Path) -> None:
    table = run(Pointer(), scenes("at 2 2"), tmp_path)
    victim = stored_batches(tmp_path)[1]
    data = bytearray(victim.read_bytes())
    last = data.rfind(b"\x00\x00\x80\x3f")  # a stored 1.0 (float32, little-endian)
    data[last + 3] = 0x40  # now 2.0: still a readable file, a wrong map
    victim.write_bytes(bytes(data))
    again = Pointer()
    with pytest.warns(UserWarning, match=rf"{victim.name} is corrupt \(its checksum is"):
        resumed = run(again, scenes("at 2 2"), tmp_path)
    assert sum(len(c) for c in again.calls) == 2
    pd.testing.assert_frame_equal(resumed, table)


def test_old_or_unreadable_manifests_are_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text(json.dumps({"format": 1, "config": {}}))
    with pytest.raises(ValueError, match="has format 1, this qgnb writes format 2"):
        MapStore(tmp_path, fingerprint(Pointer()))
    (tmp_path / "manifest.json").write_text('{"format": 2, "expl')
    with pytest.raises(ValueError, match=rf"manifest {tmp_path / 'manifest.json'} is unreadable"):
        MapStore(tmp_path, fingerprint(Pointer()))
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
        MapStore(afile, fingerprint(Pointer()))


def test_opening_a_store_keeps_other_writers_temporaries(tmp_path: Path) -> None:
    MapStore(tmp_path, fingerprint(Pointer()))
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    host = socket.gethostname()
    live = tmp_path / f".tmp-{host}-{os.getpid()}-abc.part"
    elsewhere = tmp_path / ".tmp-another-host-1-abc.part"
    dead = tmp_path / f".tmp-{host}-{finished.pid}-abc.part"
    for path in (live, elsewhere, dead):
        path.write_bytes(b"half a batch")
    MapStore(tmp_path, fingerprint(Pointer()))
    assert live.exists() and elsewhere.exists() and not dead.exists()


WRITER = """
import sys
sys.path.insert(0, {tests!r})
from test_explain_evaluate import Brightness, samples
from qgnb.explain import evaluate
explainer = Brightness(delay=0.1)
evaluate(explainer, samples(), batch_size=2, store={store!r}, progress=False)
print(sum(explainer.calls))
"""


def test_two_writers_on_one_new_store_both_finish(tmp_path: Path) -> None:
    from test_explain_evaluate import Brightness, expected_table, samples

    store = tmp_path / "store"
    code = WRITER.format(tests=str(TESTS), store=str(store))
    writers = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "OMP_NUM_THREADS": "1"}) for _ in range(2)]
    results = [writer.communicate(timeout=900) for writer in writers]
    for writer, (out, err) in zip(writers, results, strict=True):
        assert writer.returncode == 0, err
        assert int(out) <= 10
    assert not list(store.glob(".tmp-*"))
    reader = Brightness()
    table = evaluate(reader, samples(), batch_size=2, store=store, progress=False)
    assert reader.calls == []
    pd.testing.assert_frame_equal(table, expected_table(samples()))


def test_zoo_explainers_fingerprint_their_weights_and_preprocessing() -> None:
    from qgnb.zoo.explainers import explainer_for
    from qgnb.zoo.models import load_model

    blip = explainer_for("shapes-blip-amc", *load_model("shapes-blip-amc"))
    before = fingerprint(blip)
    sample = scenes("at 2 2", n=1)[0]
    blip([sample.image] * 2, ["the red circle", "a big blue square left of the cross"])
    assert fingerprint(blip) == before  # a call sets the tokenizer's padding: not content
    reloaded = explainer_for("shapes-blip-amc", *load_model("shapes-blip-amc"))
    assert fingerprint(blip) == fingerprint(reloaded)
    assert set(fingerprint(blip)) == {"config", "model", "processor"}
    with torch.no_grad():
        next(reloaded.model.parameters()).view(-1)[0] += 1e-3
    assert fingerprint(reloaded)["model"] != fingerprint(blip)["model"]
    other = explainer_for("shapes-blip-amc", *load_model("shapes-blip-amc"))
    other.processor.image_processor.size = {"height": 32, "width": 32}
    assert fingerprint(other)["processor"] != fingerprint(blip)["processor"]
    words = explainer_for("shapes-blip-amc", *load_model("shapes-blip-amc"))
    words.processor.tokenizer.add_tokens(["hexagon"])
    assert fingerprint(words)["processor"] != fingerprint(blip)["processor"]


def test_racing_openers_of_two_configs_never_mix(tmp_path: Path) -> None:
    import threading

    other = Pointer()
    other.config = {"explainer": "Pointer", "radius": 3}
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def open_store(explainer) -> None:
        barrier.wait()
        try:
            MapStore(tmp_path, fingerprint(explainer))
            outcomes.append(json.dumps(explainer.config))
        except ValueError as error:
            assert "holds maps of another explainer" in str(error)
            outcomes.append("refused")

    threads = [threading.Thread(target=open_store, args=(e,))
               for e in [Pointer(), other] * 4]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = {o for o in outcomes if o != "refused"}
    assert len(winners) == 1 and outcomes.count("refused") == 4
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert json.dumps(manifest["explainer"]["config"]) == winners.pop()


def test_loader_records_are_keyed_by_their_image_files(tmp_path: Path) -> None:
    from qgnb.data import load_spatialsense

    def relation(key: str, subject: str) -> dict:
        return {"_id": key, "predicate": "on", "label": True,
                "subject": {"x": 1, "y": 1, "name": subject, "bbox": [1, 4, 1, 4]},
                "object": {"x": 1, "y": 1, "name": "table", "bbox": [0, 8, 0, 8]}}

    images = [{"url": f"nyu/{name}.png", "height": 8, "width": 8, "split": "test",
               "annotations": [relation(name, "cup")]} for name in ("a", "b")]
    (tmp_path / "annotations.json").write_text(json.dumps(images))
    (tmp_path / "images/nyu").mkdir(parents=True)
    for name in ("a", "b"):
        Image.new("RGB", (8, 8), "red").save(tmp_path / f"images/nyu/{name}.png")

    class Counting:
        config = {"explainer": "Counting"}

        def __init__(self) -> None:
            self.n = 0

        def __call__(self, images, phrases):
            self.n += len(images)
            return [torch.from_numpy(np.asarray(i, np.float32).mean(axis=-1)) for i in images]

    data = load_spatialsense(tmp_path, "test")
    first, again, changed = Counting(), Counting(), Counting()
    run(first, data, tmp_path / "store")
    run(again, load_spatialsense(tmp_path, "test"), tmp_path / "store")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "images/nyu/b.png")
    run(changed, load_spatialsense(tmp_path, "test"), tmp_path / "store")
    assert (first.n, again.n, changed.n) == (2, 0, 1)
