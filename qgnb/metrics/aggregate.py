"""Aggregates of a score table: the data-set summary and the paired comparison of two models."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from qgnb.metrics.batched import METRIC_COLUMNS


def summarize(table: pd.DataFrame) -> pd.Series:
    """Summary of a :func:`qgnb.metrics.score` table over its non-flat samples.

    ``pg_accuracy`` (mean PG hit), ``pg_uncertainty`` (fraction of uncertain samples),
    ``pg_accuracy_certain`` (PG accuracy over the certain samples alone; NaN if none),
    ``mean_soft_iou``, ``mean_soft_dice``, ``mean_hard_iou``, ``mean_hard_dice``,
    ``mean_wdp``, ``mean_io_ratio``, ``n_flat`` (flat maps, left out of every mean) and ``n``
    (all samples). The means are NaN when every sample is flat.

    >>> t = pd.DataFrame({"pg_hit": [1.0, 0.0, np.nan], "pg_uncertain": [0.0, 1.0, np.nan],
    ...                   "soft_iou": [0.5, 0.1, np.nan], "soft_dice": [0.6, 0.2, np.nan],
    ...                   "hard_iou": [0.5, 0.0, np.nan], "hard_dice": [0.6, 0.0, np.nan],
    ...                   "wdp": [0.0, 0.2, np.nan], "io_ratio": [0.9, 0.3, np.nan],
    ...                   "flat": [False, False, True]})
    >>> s = summarize(t)
    >>> s.pg_accuracy, s.pg_uncertainty, s.pg_accuracy_certain, s.n_flat, s.n
    (0.5, 0.5, 1.0, 1, 3)
    """
    _check_columns(table, "table")
    flat = _flags(table["flat"], "table")
    scored = table[~flat]
    certain = scored[scored["pg_uncertain"] == 0]
    values = {
        "pg_accuracy": _mean(scored["pg_hit"]),
        "pg_uncertainty": _mean(scored["pg_uncertain"]),
        "pg_accuracy_certain": _mean(certain["pg_hit"]),
    }
    for name in ("soft_iou", "soft_dice", "hard_iou", "hard_dice", "wdp", "io_ratio"):
        values[f"mean_{name}"] = _mean(scored[name])
    values["n_flat"] = int(flat.sum())
    values["n"] = len(table)
    return pd.Series(values, dtype=object).rename("summary")


def compare(table_a: pd.DataFrame, table_b: pd.DataFrame, *, n_boot: int = 2000,
            seed: int = 0) -> pd.DataFrame:
    """Paired comparison of two score tables of the same samples: model b minus model a.

    Rows are paired by ``id`` when both tables have one (the id sets must match), by position
    when neither has (the lengths must match); a table with ``id`` is never paired by position
    with one without. Samples flat in either table are dropped from both.
    Per metric: ``mean_a``, ``mean_b``, ``diff`` (mean of ``b - a`` over the pairs) and the
    95% interval ``ci_low``, ``ci_high`` of a percentile bootstrap over samples
    (``scipy.stats.bootstrap``, ``n_boot`` resamples, seeded), and ``n`` pairs used.

    >>> a = pd.DataFrame({m: [0.0, 0.5, 1.0, 0.5] for m in METRIC_COLUMNS} | {"flat": False})
    >>> b = a.copy(); b[list(METRIC_COLUMNS)] += 0.25
    >>> compare(a, b).loc["soft_iou", ["diff", "ci_low", "ci_high"]].tolist()
    [0.25, 0.25, 0.25]
    """
    _check_columns(table_a, "table_a")
    _check_columns(table_b, "table_b")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    a, b = _pair(table_a, table_b)
    keep = ~(_flags(a["flat"], "table_a").to_numpy() | _flags(b["flat"], "table_b").to_numpy())
    rng = np.random.default_rng(seed)
    rows = {}
    for name in METRIC_COLUMNS:
        va = a[name].to_numpy(dtype=float)[keep]
        vb = b[name].to_numpy(dtype=float)[keep]
        diff = vb - va
        if len(diff) == 0:
            low = high = np.nan
        elif np.all(diff == diff[0]):
            # scipy cannot resample constant data; every resample has this mean.
            low = high = float(diff[0])
        else:
            ci = stats.bootstrap((diff,), np.mean, n_resamples=n_boot, method="percentile",
                                 confidence_level=0.95, rng=rng).confidence_interval
            low, high = float(ci.low), float(ci.high)
        rows[name] = {"mean_a": _mean(pd.Series(va)), "mean_b": _mean(pd.Series(vb)),
                      "diff": _mean(pd.Series(diff)), "ci_low": low, "ci_high": high,
                      "n": int(len(diff))}
    return pd.DataFrame.from_dict(rows, orient="index")


def _pair(table_a: pd.DataFrame, table_b: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    if "id" in table_a.columns and "id" in table_b.columns:
        for name, t in (("table_a", table_a), ("table_b", table_b)):
            dup = t["id"][t["id"].duplicated()]
            if len(dup):
                raise ValueError(f"{name}: id {dup.iloc[0]!r} appears more than once")
        only_a = set(table_a["id"]) - set(table_b["id"])
        only_b = set(table_b["id"]) - set(table_a["id"])
        if only_a or only_b:
            raise ValueError(f"the tables score different samples: ids only in table_a "
                             f"{sorted(only_a, key=str)[:5]}, only in table_b "
                             f"{sorted(only_b, key=str)[:5]}")
        b = table_b.set_index("id").loc[table_a["id"]].reset_index()
        return table_a.reset_index(drop=True), b
    if "id" in table_a.columns or "id" in table_b.columns:
        has, lacks = ("table_a", "table_b") if "id" in table_a.columns else ("table_b", "table_a")
        raise ValueError(f"{has} has an id column and {lacks} has none: pairing them by position "
                         f"could pair different samples; give {lacks} its ids (or drop both)")
    if len(table_a) != len(table_b):
        raise ValueError(f"the tables have {len(table_a)} and {len(table_b)} rows; without an "
                         "id column they are paired by position, so lengths must match")
    return table_a.reset_index(drop=True), table_b.reset_index(drop=True)


def _check_columns(table: pd.DataFrame, name: str) -> None:
    missing = [c for c in (*METRIC_COLUMNS, "flat") if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the score columns {missing}; make it with "
                         "qgnb.metrics.score")


def _mean(values: pd.Series) -> float:
    values = values.astype(float)
    return float(values.mean()) if values.notna().any() else float("nan")


def _flags(column: pd.Series, name: str) -> pd.Series:
    # `astype(bool)` would read the string "False" as True: accept only booleans (or 0/1).
    if pd.api.types.is_bool_dtype(column):
        return column.astype(bool)
    if pd.api.types.is_numeric_dtype(column) and column.isin([0, 1]).all():
        return column.astype(bool)
    bad = column[~column.isin([0, 1, True, False]) | column.isna()]
    shown = bad.iloc[0] if len(bad) else column.iloc[0]
    row = bad.index[0] if len(bad) else column.index[0]
    shown = shown.item() if hasattr(shown, "item") else shown  # np.float64(nan) -> nan
    raise ValueError(f"{name}: column 'flat' must hold booleans (or 0/1), got {shown!r} "
                     f"({type(shown).__name__}) in row {row!r}; a CSV read back with "
                     "pandas.read_csv keeps True/False as booleans")
