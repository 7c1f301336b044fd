"""The PVP figures of qgnb.viz hold the numbers they are given."""

import numpy as np
import pandas as pd
import pytest

from qgnb.viz import pvp_curves, pvp_reconstructions, pvp_regime_errors, pvp_segmentation_gain


def test_reconstruction_panels_are_the_given_grids_in_order():
    targets = np.arange(2 * 2 * 2 * 3, dtype=np.uint8).reshape(2, 2, 2, 3)
    recon = {"connector": targets + 1, "connector+lm+vision": targets + 2}
    fig = pvp_reconstructions(targets, recon)
    assert len(fig.data) == 6
    np.testing.assert_array_equal(np.asarray(fig.data[0].z), targets[0])  # row 0: target
    np.testing.assert_array_equal(np.asarray(fig.data[2].z), targets[0] + 2)
    np.testing.assert_array_equal(np.asarray(fig.data[4].z), targets[1] + 1)  # row 1
    with pytest.raises(ValueError, match="'bad' has shape"):
        pvp_reconstructions(targets, {"bad": targets[:1]})


def test_regime_error_bars_span_the_seed_range_and_references_sit_at_their_values():
    summary = pd.DataFrame({
        "split": ["id", "id", "ood"], "regime": ["connector", "connector+lm", "connector"],
        "MAE median": [10.0, 5.0, 12.0], "MAE min": [9.0, 4.0, 12.0],
        "MAE max": [13.0, 5.5, 12.0], "MAE object median": [30.0, 12.0, 40.0],
        "MAE object min": [20.0, 11.0, 40.0], "MAE object max": [31.0, 15.0, 40.0]})
    refs = pd.DataFrame({"split": ["id", "ood"], "answer": ["image mean colour everywhere"] * 2,
                         "MAE": [14.0, 16.0], "MAE object": [50.0, 60.0]})
    fig = pvp_regime_errors(summary, refs)
    bars = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in bars] == ["connector", "connector+lm", "connector"]
    assert list(bars[1].y) == [5.0, 12.0]
    assert list(bars[1].error_y.array) == [0.5, 3.0]
    assert list(bars[1].error_y.arrayminus) == [1.0, 1.0]
    marks = [(t.x[0], t.y[0]) for t in fig.data if t.type == "scatter"]
    assert marks == [("all cells", 14.0), ("object cells", 50.0), ("all cells", 16.0),
                     ("object cells", 60.0)]


def test_curves_one_line_per_run_and_seed_coloured_by_run():
    curve = pd.DataFrame({"seed": [0, 0, 1, 0], "run": ["a", "a", "a", "b"],
                          "step": [100, 200, 100, 300], "MAE object": [9.0, 7.0, 8.0, 5.0]})
    fig = pvp_curves(curve)
    assert [t.name for t in fig.data] == ["a, seed 0", "a, seed 1", "b, seed 0"]
    assert list(fig.data[0].x) == [100, 200] and list(fig.data[0].y) == [9.0, 7.0]
    assert fig.data[0].line.color == fig.data[1].line.color != fig.data[2].line.color


def test_gain_markers_carry_their_intervals_and_the_goal_line():
    gains = pd.DataFrame({"seed": [0, 1, 0], "split": ["id", "id", "ood"],
                          "cIoU gain": [7.0, 3.0, -1.0], "low": [2.0, -1.0, -4.0],
                          "high": [9.0, 6.0, 1.0]})
    fig = pvp_segmentation_gain(gains, goal=5)
    ids = fig.data[0]
    assert ids.name == "id" and list(ids.x) == ["seed 0", "seed 1"]
    assert list(ids.error_y.array) == [2.0, 3.0] and list(ids.error_y.arrayminus) == [5.0, 4.0]
    assert sorted(shape.y0 for shape in fig.layout.shapes) == [0, 5]
