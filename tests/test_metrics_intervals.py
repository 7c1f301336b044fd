"""qgnb.metrics.intervals: bootstrap intervals of means and of a correlation of group means."""

import numpy as np
import pandas as pd
import pytest

from qgnb.metrics.intervals import correlation_of_means, interval_table, mean_intervals


def test_mean_intervals_mean_and_count_leave_out_nan_rows():
    table = pd.DataFrame({"soft_iou": [0.2, np.nan, 0.4, 0.6], "pg_hit": [1.0, 0.0, 1.0, 1.0]})
    out = mean_intervals(table, ["soft_iou", "pg_hit"])
    assert out.loc["soft_iou", "mean"] == pytest.approx(0.4)
    assert out.loc["soft_iou", "n"] == 3
    assert out.loc["pg_hit", "mean"] == pytest.approx(0.75) and out.loc["pg_hit", "n"] == 4
    assert (out["low"] <= out["mean"]).all() and (out["mean"] <= out["high"]).all()


def test_mean_intervals_constant_column_has_zero_width_and_empty_column_is_nan():
    out = mean_intervals(pd.DataFrame({"a": [0.3] * 5, "b": [np.nan] * 5}), ["a", "b"])
    assert out.loc["a", ["mean", "low", "high"]].tolist() == pytest.approx([0.3, 0.3, 0.3])
    assert out.loc["b", "n"] == 0 and np.isnan(out.loc["b", "mean"])


def test_mean_intervals_match_the_normal_approximation_on_a_large_sample():
    values = np.random.default_rng(3).normal(1.0, 2.0, 4000)
    out = mean_intervals(pd.DataFrame({"v": values}), ["v"], n_resamples=2000)
    half = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # about 0.062
    assert out.loc["v", "high"] - out.loc["v", "mean"] == pytest.approx(half, rel=0.1)
    assert out.loc["v", "mean"] - out.loc["v", "low"] == pytest.approx(half, rel=0.1)


def test_mean_intervals_are_reproducible_and_name_missing_columns():
    table = pd.DataFrame({"v": np.random.default_rng(0).random(50)})
    assert mean_intervals(table, ["v"]).equals(mean_intervals(table, ["v"]))
    with pytest.raises(ValueError, match=r"columns \['io_ratio'\] not in \['v'\]"):
        mean_intervals(table, ["io_ratio"])


def test_interval_table_stacks_each_groups_intervals_in_order():
    a = pd.DataFrame({"pg_hit": [1.0, 0.0, 1.0, 1.0], "io_ratio": [0.9, 0.1, 0.7, 0.5]})
    b = pd.DataFrame({"pg_hit": [0.0, 0.0], "io_ratio": [0.2, np.nan]})
    out = interval_table({("amc", "id"): a, ("clip", "ood"): b}, ["pg_hit", "io_ratio"])
    assert out[["model", "split", "metric"]].values.tolist() == [
        ["amc", "id", "pg_hit"], ["amc", "id", "io_ratio"],
        ["clip", "ood", "pg_hit"], ["clip", "ood", "io_ratio"],
    ]
    assert out["mean"].tolist() == pytest.approx([0.75, 0.55, 0.0, 0.2])
    assert out["n"].tolist() == [4, 4, 2, 1]
    row = out.iloc[1]
    want = mean_intervals(a, ["io_ratio"]).loc["io_ratio"]
    assert (row["low"], row["high"]) == (want["low"], want["high"])
    with pytest.raises(ValueError, match=r"key \('amc',\) does not match names"):
        interval_table({("amc",): a}, ["pg_hit"])


def groups(means):
    """One table per group, rows spread around the given (x, y) means."""
    spread = np.array([-0.05, 0.0, 0.05])
    return {
        f"g{k}": pd.DataFrame({"x": mx + spread, "y": my - spread})
        for k, (mx, my) in enumerate(means)
    }


def test_correlation_of_means_is_pearson_r_of_the_group_means():
    means = [(0.1, 0.3), (0.4, 0.5), (0.8, 0.6), (0.6, 0.9)]
    out = correlation_of_means(groups(means), "x", "y", n_resamples=500)
    expected = np.corrcoef(*np.array(means).T)[0, 1]  # 0.7825...
    assert out["r"] == pytest.approx(expected) and out["groups"] == 4
    assert out["low"] <= out["r"] <= out["high"] <= 1.0


def test_correlation_of_means_ignores_nan_rows_and_checks_input():
    tables = groups([(0.1, 0.1), (0.5, 0.4), (0.9, 0.95)])
    tables["g0"].loc[3] = [np.nan, 100.0]  # a flat map's row: must not move g0's means
    out = correlation_of_means(tables, "x", "y", n_resamples=200)
    assert out["r"] == pytest.approx(np.corrcoef([0.1, 0.5, 0.9], [0.1, 0.4, 0.95])[0, 1])
    with pytest.raises(ValueError, match="at least 3 groups, got 2"):
        correlation_of_means(dict(list(tables.items())[:2]), "x", "y")
    with pytest.raises(ValueError, match="group 'g0' has no column 'z'"):
        correlation_of_means(tables, "x", "z")

