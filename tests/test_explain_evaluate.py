"""evaluate and the map store: scores equal to qgnb.metrics.score, resumption, atomic writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import qgnb
from qgnb.data import Sample
from qgnb.explain import evaluate
from qgnb.explain.store import atomic_write
from qgnb.metrics import score

TESTS = Path(__file__).parent


class Brightness:
    """Map = the image's mean channel: deterministic, cheap, optionally slow; logs its calls."""

    config = {"explainer": "Brightness"}

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.calls: list[int] = []

    def __call__(self, images, phrases):
        self.calls.append(len(images))
        time.sleep(self.delay)
        return [torch.from_numpy(np.asarray(image, np.float32).mean(axis=-1)) for image in images]


class WrongSize:
    config = {"explainer": "WrongSize"}

    def __call__(self, images, phrases):
        return [torch.ones(3, 3)] * len(images)


def samples(n: int = 10) -> list[Sample]:
    rng = np.random.default_rng(7)
    sizes = [(8, 6)] * (n - 2) + [(5, 9), (7, 7)]
    return [Sample(f"s{i}", Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)),
                   f"phrase {i}", [[1, 1, 4, 3]]) for i, (w, h) in enumerate(sizes)]


def expected_table(data: list[Sample], **kwargs) -> pd.DataFrame:
    table = score(Brightness()([s.image for s in data], []), [s.boxes for s in data],
                  ids=[s.id for s in data], **kwargs)
    table.insert(1, "phrase", [s.phrase for s in data])
    return table


def test_evaluate_equals_score_on_the_maps() -> None:
    data = samples()
    for batch_size in (1, 3, 16):
        table = evaluate(Brightness(), data, batch_size=batch_size, progress=False)
        pd.testing.assert_frame_equal(table, expected_table(data))
    tolerant = evaluate(Brightness(), data, batch_size=4, progress=False, tol=2, levels=None)
    pd.testing.assert_frame_equal(tolerant, expected_table(data, tol=2, levels=None))
    assert list(tolerant.columns[:2]) == ["id", "phrase"]
    assert set(tolerant.attrs["seconds"]) == {"explain", "metrics", "store"}


def test_qgnb_evaluate_is_this_evaluate() -> None:
    assert qgnb.evaluate is evaluate


def test_store_resumes_without_recomputing(tmp_path: Path) -> None:
    data = samples()
    first = Brightness()
    pd.testing.assert_frame_equal(evaluate(first, data, batch_size=3, store=tmp_path,
                                           progress=False), expected_table(data))
    assert first.calls == [3, 3, 3, 1] and len(list(tmp_path.glob("batch-*.pt"))) == 4
    again = Brightness()
    pd.testing.assert_frame_equal(evaluate(again, data, batch_size=4, store=tmp_path,
                                           progress=False), expected_table(data))
    assert again.calls == []
    sorted(tmp_path.glob("batch-*.pt"))[0].unlink()  # lose one batch of 3 (or 1) maps
    partly = Brightness()
    pd.testing.assert_frame_equal(evaluate(partly, data, batch_size=4, store=tmp_path,
                                           progress=False), expected_table(data))
    assert sum(partly.calls) in (1, 3)


def test_store_refuses_another_config(tmp_path: Path) -> None:
    evaluate(Brightness(), samples(3), store=tmp_path, progress=False)
    other = Brightness()
    other.config = {"explainer": "Brightness", "layer": 8}
    with pytest.raises(ValueError, match="holds maps of another explainer; what differs:\n"
                                         "  config.layer: absent in the store, 8 in this run"):
        evaluate(other, samples(3), store=tmp_path, progress=False)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def crash(file) -> None:
        file.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "batch-x.pt", crash)
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        evaluate(Brightness(), samples(3), batch_size=0)
    with pytest.raises(ValueError, match="returned 1 maps for 3 samples"):
        evaluate(lambda images, phrases: [torch.ones(6, 8)], samples(3), progress=False)


CHILD = """
import sys
sys.path.insert(0, {tests!r})
from test_explain_evaluate import Brightness, samples
from qgnb.explain import evaluate
evaluate(Brightness(delay=0.4), samples(), batch_size=2, store={store!r}, progress=False)
"""


def test_killed_run_resumes(tmp_path: Path) -> None:
    store = tmp_path / "store"
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(tests=str(TESTS),
                                                                 store=str(store))],
                             env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 600  # a loaded machine can take minutes to import torch
    while not list(store.glob("batch-*.pt")):
        assert child.poll() is None, "the child run ended before writing a batch"
        assert time.monotonic() < deadline, "no batch file within 600 s"
        time.sleep(0.02)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    finished = len(list(store.glob("batch-*.pt")))
    assert 1 <= finished < 5, f"{finished} of 5 batches done before the kill"
    resumed = Brightness()
    table = evaluate(resumed, samples(), batch_size=2, store=store, progress=False)
    assert sum(resumed.calls) == 10 - 2 * finished
    pd.testing.assert_frame_equal(table, expected_table(samples()))


def test_same_ids_with_resized_images_are_recomputed(tmp_path: Path) -> None:
    data = samples(2)
    evaluate(Brightness(), data, store=tmp_path, progress=False)
    resized = [Sample(s.id, s.image.resize((10, 6)), s.phrase, s.boxes) for s in data]
    again = Brightness()
    table = evaluate(again, resized, store=tmp_path, progress=False)
    assert again.calls == [2]
    pd.testing.assert_frame_equal(table, expected_table(resized))


def test_repeated_ids_without_store_keep_their_own_maps() -> None:
    data = samples(4)
    data[1].id = "s0"  # same id, different image: each row still scores its own map
    pd.testing.assert_frame_equal(evaluate(Brightness(), data, batch_size=4, progress=False),
                                  expected_table(data))


def test_wrong_map_size_from_explainer_is_named_and_not_stored(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"sample 0 \('s0'\): the map from the explainer is "
                                         r"\(3, 3\), the image is \(6, 8\)"):
        evaluate(WrongSize(), samples(3), store=tmp_path, progress=False)
    assert not list(tmp_path.glob("batch-*"))


def test_progress_bar_counts_maps(capsys: pytest.CaptureFixture) -> None:
    evaluate(Brightness(), samples(5), batch_size=2, device="cpu")
    err = capsys.readouterr().err
    assert "evaluate: 100%" in err and "5/5" in err
