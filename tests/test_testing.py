"""assert_no_regression: passes on equal or better tables, fails with a readable table on a
clearly worse one, and knows which metrics are better when lower."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from qgnb.metrics import METRIC_COLUMNS
from qgnb.testing import assert_no_regression, regression_table


def table(n: int = 4, **columns) -> pd.DataFrame:
    base = {name: [0.5] * n for name in METRIC_COLUMNS}
    return pd.DataFrame({"id": [f"s{i}" for i in range(n)], "flat": False, **base, **columns})


def noisy(seed: int, shift: float = 0.0, n: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    base = rng.random(n)
    new = np.clip(base + shift + rng.normal(0, 0.05, n), 0, 1)
    return table(n, soft_iou=new, io_ratio=new), table(n, soft_iou=base, io_ratio=base)


def test_equal_tables_pass() -> None:
    new, base = noisy(0)
    same = assert_no_regression(base, base)
    assert not same["regressed"].any() and (same["change"] == 0).all()
    assert set(same.index) == set(METRIC_COLUMNS)


def test_noise_without_a_shift_passes_and_a_clear_drop_fails() -> None:
    new, base = noisy(1)
    result = assert_no_regression(new, base, metrics=["soft_iou"])
    assert result.loc["soft_iou", "ci_low"] < 0 < result.loc["soft_iou", "ci_high"]
    worse, base = noisy(2, shift=-0.1)
    with pytest.raises(AssertionError, match="new grounds worse than baseline on soft_iou, "
                                             "io_ratio"):
        assert_no_regression(worse, base, metrics=["soft_iou", "io_ratio"])
    # A drop smaller than the margin is tolerated: about -0.1 against a margin of 0.2.
    assert not assert_no_regression(worse, base, metrics=["soft_iou"],
                                    margin=0.2)["regressed"].any()


def test_the_message_is_a_table_with_the_regressed_metrics_marked() -> None:
    base = table()
    new = table(soft_iou=[0.4] * 4, wdp=[0.6] * 4, io_ratio=[0.49] * 4)
    with pytest.raises(AssertionError) as error:
        assert_no_regression(new, base, metrics=["soft_iou", "wdp", "io_ratio", "pg_hit"],
                             margin=0.05)
    assert str(error.value) == (
        "new grounds worse than baseline on soft_iou, wdp (95% paired bootstrap interval of "
        "the change wholly below -0.05; change > 0 is better, the sign flipped for "
        "pg_uncertain, wdp):\n"
        "          baseline    new  change  ci_low  ci_high  n  regressed\n"
        "soft_iou    0.5000 0.4000 -0.1000 -0.1000  -0.1000  4  REGRESSED\n"
        "wdp         0.5000 0.6000 -0.1000 -0.1000  -0.1000  4  REGRESSED\n"
        "io_ratio    0.5000 0.4900 -0.0100 -0.0100  -0.0100  4           \n"
        "pg_hit      0.5000 0.5000  0.0000  0.0000   0.0000  4           ")


def test_lower_is_better_metrics_are_flipped() -> None:
    better = regression_table(table(wdp=[0.3] * 4, pg_uncertain=[0.0] * 4), table(),
                              metrics=["wdp", "pg_uncertain"])
    assert better["change"].tolist() == pytest.approx([0.2, 0.5])
    assert not better["regressed"].any()


def test_tables_from_files_and_run_folders(tmp_path: Path) -> None:
    worse, base = noisy(3, shift=-0.2)
    base.to_csv(tmp_path / "metrics.csv", index=False)
    worse.to_csv(tmp_path / "worse.csv", index=False)
    with pytest.raises(AssertionError, match="on soft_iou"):
        assert_no_regression(tmp_path / "worse.csv", tmp_path, metrics=["soft_iou"])
    with pytest.raises(FileNotFoundError, match="baseline: no score table at"):
        assert_no_regression(worse, tmp_path / "none.csv")


def test_bad_arguments_are_named() -> None:
    with pytest.raises(ValueError, match=r"metrics \['iou'\]: choose among"):
        assert_no_regression(table(), table(), metrics=["iou"])
    with pytest.raises(ValueError, match="margin must be >= 0, got -0.1"):
        assert_no_regression(table(), table(), margin=-0.1)
