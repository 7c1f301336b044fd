"""compare (paired bootstrap) on hand-made score tables."""

import numpy as np
import pandas as pd
import pytest

from qgnb.metrics import METRIC_COLUMNS, compare

nan = float("nan")


def table(**columns):
    n = len(next(iter(columns.values())))
    base = {name: [0.5] * n for name in METRIC_COLUMNS} | {"flat": [False] * n}
    return pd.DataFrame(base | columns)


def test_compare_interval_contains_true_difference():
    rng = np.random.default_rng(0)
    a = rng.random(400)
    b = a + 0.1 + rng.normal(0, 0.05, 400)   # true paired difference 0.1
    result = compare(table(soft_iou=a), table(soft_iou=b)).loc["soft_iou"]
    assert result["diff"] == pytest.approx(np.mean(b - a))
    assert result["ci_low"] < 0.1 < result["ci_high"]
    assert result["ci_high"] - result["ci_low"] < 0.03   # 4 * 0.05 / sqrt(400) = 0.01
    assert result["mean_a"] == pytest.approx(a.mean()) and result["n"] == 400


def test_compare_excludes_zero_on_clear_shift_and_includes_it_without():
    rng = np.random.default_rng(1)
    a = rng.integers(0, 2, 200).astype(float)
    shifted = compare(table(pg_hit=a), table(pg_hit=np.maximum(a, rng.random(200) < 0.3)))
    assert shifted.loc["pg_hit", "ci_low"] > 0
    same = compare(table(pg_hit=a), table(pg_hit=rng.permutation(a)))
    assert same.loc["pg_hit", "ci_low"] < 0 < same.loc["pg_hit", "ci_high"]


def test_compare_seeded_reruns_identical_and_seed_matters():
    rng = np.random.default_rng(2)
    a, b = table(wdp=rng.random(50)), table(wdp=rng.random(50))
    pd.testing.assert_frame_equal(compare(a, b, seed=3), compare(a, b, seed=3))
    assert compare(a, b, seed=3).loc["wdp", "ci_low"] != compare(a, b, seed=4).loc["wdp",
                                                                                  "ci_low"]


def test_compare_pairs_by_id_and_drops_flat_pairwise():
    a = table(io_ratio=[0.1, 0.2, 0.3, nan], flat=[False, False, False, True])
    a.insert(0, "id", ["w", "x", "y", "z"])
    # b lists the same samples in another order; "y" is flat in b.
    b = table(io_ratio=[0.9, 0.4, nan, 0.6], flat=[False, False, True, False])
    b.insert(0, "id", ["x", "w", "y", "z"])
    row = compare(a, b).loc["io_ratio"]
    # pairs w: 0.1 -> 0.4, x: 0.2 -> 0.9
    assert row["n"] == 2 and row["diff"] == pytest.approx((0.3 + 0.7) / 2)
    assert row["mean_a"] == pytest.approx(0.15) and row["mean_b"] == pytest.approx(0.65)


def test_compare_rejects_unpaired_tables():
    a, b = table(wdp=[0.1, 0.2]), table(wdp=[0.1])
    with pytest.raises(ValueError, match="2 and 1 rows"):
        compare(a, b)
    a.insert(0, "id", ["p", "q"])
    b.insert(0, "id", ["p"])
    with pytest.raises(ValueError, match=r"only in table_a \['q'\]"):
        compare(a, b)
    with pytest.raises(ValueError, match="lacks the score columns"):
        compare(a.drop(columns="wdp"), a)


def test_compare_refuses_to_pair_a_table_with_ids_by_position():
    a, b = table(wdp=[0.1, 0.2]), table(wdp=[0.2, 0.1])
    b.insert(0, "id", ["q", "p"])
    with pytest.raises(ValueError, match="table_b has an id column and table_a has none"):
        compare(a, b)
    with pytest.raises(ValueError, match="table_a has an id column and table_b has none"):
        compare(b, a)


def test_compare_refuses_a_flat_column_of_strings():
    a = table(wdp=[0.1, 0.2], flat=["False", "False"])
    with pytest.raises(ValueError, match="table_a: column 'flat' must hold booleans .*"
                                         "got 'False' \\(str\\) in row 0"):
        compare(a, table(wdp=[0.2, 0.1]))
