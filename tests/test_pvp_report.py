"""The notebook's tables over training seeds, on hand-made cards."""

import json

import numpy as np
import pandas as pd
import pytest

from qgnb.pvp import report
from qgnb.pvp.recipes import PVP_REGIMES, RECIPES


def pvp_card(mae, mae_object, params=10):
    scores = {"mae": mae, "mae_object": mae_object, "unparseable": 0.0}
    return {"eval": {"id": scores, "ood": scores}, "trainable_parameters": params,
            "train_seconds": 60.0, "steps": 100,
            "curve": [{"step": 100, "loss": 1.0, "mae": mae, "mae_object": mae_object}]}


def seg_card(inter, union):
    scores = {"ciou": sum(inter) / sum(union), "mean_iou": 0.5, "unparseable": 0.0,
              "intersection": inter, "union": union}
    return {"eval": {"id": scores, "ood": scores}, "trainable_parameters": 5,
            "train_seconds": 30.0, "steps": 50, "curve": []}


def seed(connector, adapted, seg_gain_inter):
    maes = {"pvp-connector": connector, "pvp-connector-lm": (6.0, 12.0),
            "pvp-connector-lm-vision": adapted}
    cards = {name: pvp_card(*maes[name]) for name in PVP_REGIMES.values()}
    cards["pvp-stage0"] = pvp_card(5.0, 10.0)
    cards["seg-frozen-encoder"] = seg_card([1, 1, 1, 1], [4, 4, 4, 4])
    cards["seg-pvp-encoder"] = seg_card(seg_gain_inter, [4, 4, 4, 4])
    assert set(cards) == set(RECIPES)
    return cards


CARDS = {0: seed((10.0, 30.0), (4.0, 12.0), [2, 2, 2, 2]),
         1: seed((8.0, 20.0), (5.0, 8.0), [2, 2, 1, 1]),
         2: seed((12.0, 40.0), (3.0, 10.0), [1, 1, 1, 1])}


def test_regime_ratios_are_per_seed_against_its_own_connector():
    scores = report.regime_scores(CARDS)
    adapted = scores[(scores["regime"] == "connector+lm+vision") & (scores["split"] == "id")]
    assert adapted["MAE / connector"].tolist() == [0.4, 0.625, 0.25]
    assert adapted["MAE object / connector"].tolist() == [0.4, 0.4, 0.25]


def test_distribution_is_median_and_range_over_seeds():
    summary = report.regime_summary(CARDS).set_index(["split", "regime"])
    row = summary.loc[("id", "connector+lm+vision")]
    assert (row["seeds"], row["MAE median"], row["MAE min"], row["MAE max"]) == (3, 4.0, 3.0, 5.0)
    assert row["MAE / connector median"] == 0.4 and row["MAE / connector max"] == 0.625


def test_segmentation_gain_per_seed_and_its_summary():
    gains = report.segmentation_gain(CARDS)
    ids = gains[gains["split"] == "id"]
    # cIoU frozen 4/16 = 25%; adapted 8/16, 6/16, 4/16.
    assert ids["cIoU gain"].tolist() == pytest.approx([25.0, 12.5, 0.0])
    summary = report.gain_summary(CARDS).set_index("split").loc["id"]
    assert summary["cIoU gain median"] == pytest.approx(12.5)
    assert summary["cIoU gain min"] == pytest.approx(0.0)


def test_findings_state_the_goals_from_the_numbers():
    lines = report.findings(CARDS)
    assert lines[0] == "Over 3 training seeds (median, range in brackets):"
    assert "all cells 0.40 (0.25-0.62)" in lines[1] and "object cells 0.40 (0.25-0.40)" in lines[1]
    assert lines[1].endswith("At most half in every seed: no.")  # seed 1: 0.625 on all cells
    assert "+12.5 (+0.0-+25.0) points" in lines[2]
    assert lines[2].endswith("at least 5 points in every seed: no.")


def test_reference_errors_pool_cells_and_single_out_objects():
    refs = report.reference_errors(n=3, grid=8).set_index("answer")
    assert refs.shape == (4, 2)
    # Objects differ from the background: the mean colour misses them more than the average.
    mean = refs.loc["image mean colour everywhere"]
    assert mean["MAE object"] > mean["MAE"] > 0
    assert np.isfinite(refs.to_numpy()).all()


def test_other_seeds_read_their_cards_and_share_stage0(tmp_path):
    folder = tmp_path / "seed-4"
    folder.mkdir()
    (tmp_path / "seed-9").mkdir()  # a seed still training: left out
    for name, info in CARDS[1].items():
        if name != "pvp-stage0":
            (folder / f"{name}.json").write_text(json.dumps(info))
    shipped = report.seed_cards(results=tmp_path / "none")
    cards = report.seed_cards(results=tmp_path)
    assert sorted(cards) == [0, 4]
    assert cards[4]["pvp-stage0"] == shipped[0]["pvp-stage0"]
    assert cards[4]["pvp-connector"] == CARDS[1]["pvp-connector"]


def test_stage_table_reads_recipes_and_median_minutes():
    table = report.stage_table(CARDS).set_index("checkpoint")
    assert table.loc["pvp-stage0", "image tokens"] == "oracle"
    assert table.loc["pvp-connector", "starts from"] == "pvp-stage0 (language model only)"
    assert table.loc["seg-pvp-encoder", "train minutes"] == 0.5
    assert pd.isna(table.loc["seg-pvp-encoder", "detail share"])
