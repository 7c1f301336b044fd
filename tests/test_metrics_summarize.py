"""summarize on hand-made score tables."""

import numpy as np
import pandas as pd
import pytest

from qgnb.metrics import METRIC_COLUMNS, summarize

nan = float("nan")


def table(**columns):
    n = len(next(iter(columns.values())))
    base = {name: [0.5] * n for name in METRIC_COLUMNS} | {"flat": [False] * n}
    return pd.DataFrame(base | columns)


def check_summary(t, expected):
    got = summarize(t)
    for name, value in expected.items():
        if isinstance(value, float) and np.isnan(value):
            assert np.isnan(got[name]), name
        else:
            assert got[name] == pytest.approx(value), name


def test_summarize_by_hand():
    t = table(pg_hit=[1.0, 1.0, 0.0, 1.0, nan], pg_uncertain=[0.0, 1.0, 0.0, 1.0, nan],
              soft_iou=[0.2, 0.4, 0.6, 0.8, nan], wdp=[0.1, 0.0, 0.2, 0.1, nan],
              flat=[False, False, False, False, True])
    check_summary(t, {"pg_accuracy": 0.75, "pg_uncertainty": 0.5, "pg_accuracy_certain": 0.5,
                      "mean_soft_iou": 0.5, "mean_wdp": 0.1, "mean_soft_dice": 0.5,
                      "n_flat": 1, "n": 5})


def test_summarize_all_flat_and_no_certain():
    check_summary(table(pg_hit=[nan], pg_uncertain=[nan], flat=[True]),
                  {"pg_accuracy": nan, "mean_io_ratio": nan, "n_flat": 1, "n": 1})
    check_summary(table(pg_hit=[1.0], pg_uncertain=[1.0]),
                  {"pg_accuracy": 1.0, "pg_uncertainty": 1.0, "pg_accuracy_certain": nan})


def test_summarize_refuses_a_flat_column_of_strings():
    # astype(bool) would make every row flat: "False" is a non-empty string.
    with pytest.raises(ValueError, match="column 'flat' must hold booleans .*got 'False' "
                                         r"\(str\) in row 0"):
        summarize(table(pg_hit=[1.0, 0.0], flat=["False", "True"]))
    with pytest.raises(ValueError, match=r"got nan \(float\) in row 1"):
        summarize(table(pg_hit=[1.0, 0.0], flat=[0.0, nan]))


def test_summarize_reads_flat_as_booleans_or_zero_one():
    check_summary(table(pg_hit=[1.0, 0.0], flat=[0, 1]), {"pg_accuracy": 1.0, "n_flat": 1})
    check_summary(table(pg_hit=[1.0, 0.0], flat=[False, True]), {"pg_accuracy": 1.0,
                                                                 "n_flat": 1})
