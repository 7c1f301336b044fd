"""The paper's table: what it needs, the layout with intervals, resuming from the map stores."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from qgnb.data import Sample
from qgnb.explain import evaluate
from qgnb.explain.paper_table import (
    PAPER_METRICS,
    PaperPaths,
    build_explainer,
    format_paper_table,
    load_dataset,
    paper_rows,
    requirements,
    run_paper_table,
    runnable,
    store_folder,
    with_certain_hits,
)
from qgnb.metrics.intervals import mean_intervals


def paths_under(root: Path) -> PaperPaths:
    return PaperPaths(clip_rn50x16=str(root / "RN50x16.pt"), blip_base=str(root / "blip-base"),
                      blip_large=str(root / "blip-large"), albef_amc=str(root / "amc.pth"),
                      refcoco_root=str(root / "refer"), flickr30k_root=str(root / "flickr"),
                      spatialsense_root=str(root / "spatialsense"))


def test_requirements_say_what_is_missing_and_where(tmp_path: Path) -> None:
    paths = paths_under(tmp_path)
    table = requirements(paths)
    assert not table["present"].any()
    row = table.set_index("parameter").loc["blip_base"]
    assert row["path"] == str(tmp_path / "blip-base") and row["kind"] == "folder"
    assert "Salesforce/blip-itm-base-coco" in row["how"]
    # ALBEF-AMC's tokenizer defaults to BLIP-base's folder.
    assert table.set_index("parameter").loc["bert_tokenizer", "path"] == paths.blip_base
    assert runnable(paths) == []

    (tmp_path / "blip-base").mkdir()
    (tmp_path / "refer").mkdir()
    (tmp_path / "amc.pth").write_bytes(b"")
    (tmp_path / "RN50x16.pt").mkdir()  # a folder where a file is needed does not count
    assert runnable(paths) == [(m, d) for m in ("BLIP-base", "ALBEF-AMC")
                               for d in ("RefCOCO+ testA", "RefCOCO+ testB")]
    table = requirements(paths).set_index("parameter")
    assert table.loc["blip_base", "how"] == "" and not table.loc["clip_rn50x16", "present"]


class Counting:
    """A toy explainer: a bright square at a fixed place; counts the images it explains."""

    def __init__(self, corner: int) -> None:
        self.corner = corner
        self.calls = 0
        self.config = {"explainer": "square", "corner": corner}

    def __call__(self, images, phrases):
        self.calls += len(images)
        maps = torch.zeros(len(images), 12, 12)
        maps[:, self.corner:self.corner + 4, self.corner:self.corner + 4] = 1.0
        return maps


def toy_data(name: str) -> list[Sample]:
    rng = np.random.default_rng(len(name))
    samples = []
    for i in range(6):
        x, y = (int(v) for v in rng.integers(0, 8, size=2))
        samples.append(Sample(f"{name}-{i}", Image.new("RGB", (12, 12)), f"thing {i}",
                              [[x, y, x + 4, y + 4]]))
    return samples


def test_run_equals_direct_scoring_and_resumes(tmp_path: Path) -> None:
    explainers = {"early": Counting(0), "late": Counting(6)}
    runs = [(m, d) for m in explainers for d in ("one", "three")]
    rows = run_paper_table(runs, explainers.__getitem__, toy_data, tmp_path, batch_size=4,
                           progress=False, n_resamples=200)
    assert list(rows.index) == runs
    assert [metric for metric, stat in rows.columns if stat == "mean"] == list(PAPER_METRICS)
    for model, dataset in runs:
        table = evaluate(Counting(explainers[model].corner), toy_data(dataset), progress=False)
        assert (rows.loc[(model, dataset), ("n", "")], rows.loc[(model, dataset), ("n_flat", "")]
                ) == (6, 0)
        hits = table["pg_hit"].to_numpy()
        assert rows.loc[(model, dataset), ("pg_accuracy", "mean")] == pytest.approx(hits.mean())
        expected = mean_intervals(with_certain_hits(table), PAPER_METRICS, n_resamples=200)
        for metric in ("io_ratio", "wdp"):
            got = rows.loc[(model, dataset), [(metric, s) for s in ("mean", "low", "high")]]
            np.testing.assert_allclose(got.to_numpy(dtype=float),
                                       expected.loc[metric, ["mean", "low", "high"]]
                                       .to_numpy(dtype=float))
    assert {m: e.calls for m, e in explainers.items()} == {"early": 12, "late": 12}
    assert store_folder(tmp_path, "early", "one").is_dir()

    again = {"early": Counting(0), "late": Counting(6)}
    resumed = run_paper_table(runs, again.__getitem__, toy_data, tmp_path, batch_size=4,
                              progress=False, n_resamples=200)
    pd.testing.assert_frame_equal(resumed, rows)
    assert {m: e.calls for m, e in again.items()} == {"early": 0, "late": 0}
    short = run_paper_table(runs[:1], again.__getitem__, toy_data, tmp_path / "short",
                            limit=2, progress=False, n_resamples=200)
    assert short.loc[runs[0], ("n", "")] == 2


def test_certain_accuracy_and_text_layout() -> None:
    table = pd.DataFrame({"pg_hit": [1.0, 0.0, 1.0, np.nan],
                          "pg_uncertain": [0.0, 1.0, 1.0, np.nan],
                          "soft_iou": [0.2, 0.4, 0.6, np.nan], "soft_dice": 0.5,
                          "hard_iou": 0.5, "hard_dice": 0.5, "wdp": 0.25, "io_ratio": 0.75,
                          "flat": [False, False, False, True]})
    rows = paper_rows({("m", "d"): table}, n_resamples=200)
    row = rows.loc[("m", "d")]
    assert row[("pg_accuracy", "mean")] == pytest.approx(2 / 3)
    assert row[("pg_uncertainty", "mean")] == pytest.approx(2 / 3)
    assert row[("pg_accuracy_certain", "mean")] == 1.0
    assert row[("soft_iou", "mean")] == pytest.approx(0.4)
    assert (row[("n", "")], row[("n_flat", "")]) == (4, 1)
    text = format_paper_table(rows, digits=2).loc[("m", "d")]
    assert text["wdp"] == "0.25 [0.25, 0.25]" and text["n"] == 4
    with pytest.raises(ValueError, match="no score tables"):
        paper_rows({})


def test_builders_use_the_paper_recipes(tmp_path: Path) -> None:
    from test_explain_recipes import lavis_depth_blip
    from test_explain_tiny import blip_processor

    lavis_depth_blip().save_pretrained(tmp_path / "blip-base")
    blip_processor(tmp_path / "blip-base", 384).save_pretrained(tmp_path / "blip-base")
    explainer = build_explainer("BLIP-base", paths_under(tmp_path), device="cpu")
    assert explainer.config["recipe"] == "lavis" and explainer.config["layer"] == 7
    with pytest.raises(ValueError, match="unknown model 'BLIP-huge'"):
        build_explainer("BLIP-huge", paths_under(tmp_path))
    with pytest.raises(ValueError, match="unknown data set 'COCO'"):
        load_dataset("COCO", paths_under(tmp_path))
    with pytest.raises(FileNotFoundError, match="refs"):
        load_dataset("RefCOCO+ testB", paths_under(tmp_path))
