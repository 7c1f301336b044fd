"""Regression checks for your own model: ``assert_no_regression`` inside pytest or a notebook.

    from qgnb.testing import assert_no_regression

    def test_new_checkpoint_grounds_no_worse():
        new = qgnb.evaluate(my_explainer, qgnb.data.shapes("id", 300, 5))
        assert_no_regression(new, "baseline/metrics.csv", margin=0.02)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from qgnb.metrics import METRIC_COLUMNS, compare

# Metrics where a smaller value is the better grounding (METRICS.md); the rest: larger.
LOWER_IS_BETTER = ("pg_uncertain", "wdp")


def _table(value: pd.DataFrame | str | Path, name: str) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    path = Path(value)
    if path.is_dir():
        path = path / "metrics.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{name}: no score table at {path} (give a DataFrame, a CSV "
                                "file, or a `qgnb evaluate` output folder)")
    return pd.read_csv(path)


def regression_table(new: pd.DataFrame | str | Path, baseline: pd.DataFrame | str | Path, *,
                     metrics: Sequence[str] = METRIC_COLUMNS, margin: float = 0.0,
                     n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Per metric: ``baseline`` and ``new`` means over the pairs, ``change`` (new minus
    baseline, sign flipped for `LOWER_IS_BETTER` metrics, so a positive change is always
    better), its 95% paired bootstrap interval ``ci_low``, ``ci_high`` (`qgnb.metrics.compare`),
    ``n`` pairs and ``regressed``: the whole interval lies below ``-margin``.

    >>> base = pd.DataFrame({"id": ["a", "b"], "flat": False,
    ...                      **{m: [0.5, 0.5] for m in METRIC_COLUMNS}})
    >>> worse = base.assign(wdp=[0.7, 0.7])
    >>> row = regression_table(worse, base, metrics=["wdp"]).loc["wdp"]
    >>> round(float(row["change"]), 4), bool(row["regressed"])
    (-0.2, True)
    """
    unknown = [m for m in metrics if m not in METRIC_COLUMNS]
    if unknown or not metrics:
        raise ValueError(f"metrics {list(metrics)}: choose among {list(METRIC_COLUMNS)}")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin!r}")
    paired = compare(_table(baseline, "baseline"), _table(new, "new"), n_boot=n_boot,
                     seed=seed).loc[list(metrics)]
    sign = pd.Series([-1.0 if m in LOWER_IS_BETTER else 1.0 for m in metrics], index=metrics)
    # `+ 0.0` turns the -0.0 of a flipped zero into 0.0 for the printed table.
    low, high = paired["ci_low"] * sign + 0.0, paired["ci_high"] * sign + 0.0
    result = pd.DataFrame({
        "baseline": paired["mean_a"], "new": paired["mean_b"],
        "change": paired["diff"] * sign + 0.0,
        "ci_low": low.where(sign > 0, high), "ci_high": high.where(sign > 0, low),
        "n": paired["n"],
    })
    result["regressed"] = result["ci_high"] < -margin
    return result


def assert_no_regression(new: pd.DataFrame | str | Path, baseline: pd.DataFrame | str | Path,
                         *, metrics: Sequence[str] = METRIC_COLUMNS, margin: float = 0.0,
                         n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Raise ``AssertionError`` when ``new`` grounds worse than ``baseline`` on any of
    ``metrics``: the 95% paired bootstrap interval of the change (`regression_table`) lies
    wholly below ``-margin``. The message is the table, regressed metrics marked. Returns the
    table when nothing regressed. ``new`` and ``baseline``: `qgnb.evaluate` tables of the same
    samples (paired by ``id``), CSV files, or ``qgnb evaluate`` output folders.

    >>> base = pd.DataFrame({"id": ["a", "b"], "flat": False,
    ...                      **{m: [0.5, 0.5] for m in METRIC_COLUMNS}})
    >>> assert_no_regression(base, base)["regressed"].any()
    np.False_
    >>> assert_no_regression(base.assign(io_ratio=[0.3, 0.3]), base, metrics=["io_ratio"])
    Traceback (most recent call last):
    ...
    AssertionError: new grounds worse than baseline on io_ratio ...
    """
    table = regression_table(new, baseline, metrics=metrics, margin=margin, n_boot=n_boot,
                             seed=seed)
    if table["regressed"].any():
        shown = table.assign(regressed=table["regressed"].map({True: "REGRESSED", False: ""}))
        raise AssertionError(
            f"new grounds worse than baseline on {', '.join(table.index[table['regressed']])} "
            f"(95% paired bootstrap interval of the change wholly below -{margin:g}; change > 0 "
            f"is better, the sign flipped for {', '.join(LOWER_IS_BETTER)}):\n"
            + shown.to_string(float_format=lambda v: f"{v:.4f}"))
    return table
