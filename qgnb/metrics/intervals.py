"""Statistics the notebooks report: bootstrap intervals of means, and of a correlation of means.

Both use ``scipy.stats.bootstrap`` (percentile intervals, a fixed seed) so that two runs print
the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats


def mean_intervals(
    table: pd.DataFrame,
    columns: Sequence[str],
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Mean of each column with a bootstrap percentile interval; NaN rows (flat maps) left out.

    Returns one row per column: ``mean``, ``low``, ``high`` and ``n`` (the rows used).

    >>> df = pd.DataFrame({"pg_hit": [1.0, 1.0, 1.0], "wdp": [0.1, float("nan"), 0.3]})
    >>> mean_intervals(df, ["pg_hit", "wdp"]).round(3).to_dict("index")["pg_hit"]
    {'mean': 1.0, 'low': 1.0, 'high': 1.0, 'n': 3}
    """
    missing = [c for c in columns if c not in table]
    if missing:
        raise ValueError(f"mean_intervals: columns {missing} not in {list(table.columns)}")
    rows = {}
    for k, column in enumerate(columns):
        values = table[column].to_numpy(dtype=float)
        values = values[~np.isnan(values)]
        if len(values) == 0:
            rows[column] = {"mean": np.nan, "low": np.nan, "high": np.nan, "n": 0}
            continue
        if np.all(values == values[0]):
            # scipy warns and returns NaN for a degenerate sample; every resample has this mean.
            low = high = float(values[0])
        else:
            res = stats.bootstrap(
                (values,), np.mean, confidence_level=confidence, n_resamples=n_resamples,
                method="percentile", rng=np.random.default_rng(seed + k),
            )
            low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
        rows[column] = {"mean": float(values.mean()), "low": low, "high": high, "n": len(values)}
    out = pd.DataFrame.from_dict(rows, orient="index")
    out["n"] = out["n"].astype(int)
    return out


def interval_table(
    tables: Mapping[tuple[str, ...], pd.DataFrame],
    columns: Sequence[str],
    *,
    names: Sequence[str] = ("model", "split"),
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`mean_intervals` of every table, stacked: one row per (group, column).

    ``tables`` maps a key tuple (one value per entry of ``names``) to a score table. The
    result has the ``names`` columns, ``metric``, ``mean``, ``low``, ``high`` and ``n``, in
    the order of ``tables`` then ``columns``, ready for :func:`qgnb.viz.interval_bars`.

    >>> t = pd.DataFrame({"io_ratio": [0.5, 0.5]})
    >>> row = interval_table({("base", "id"): t}, ["io_ratio"]).to_dict("records")[0]
    >>> row["model"], row["split"], row["metric"], row["mean"], row["low"], row["n"]
    ('base', 'id', 'io_ratio', 0.5, 0.5, 2)
    """
    parts = []
    for key, table in tables.items():
        if len(key) != len(names):
            raise ValueError(f"interval_table: key {key!r} does not match names {list(names)}")
        part = mean_intervals(table, columns, confidence=confidence, n_resamples=n_resamples,
                              seed=seed).rename_axis("metric").reset_index()
        for name, value in reversed(list(zip(names, key, strict=True))):
            part.insert(0, name, value)
        parts.append(part)
    if not parts:
        raise ValueError("interval_table: no tables given")
    return pd.concat(parts, ignore_index=True)


def correlation_of_means(
    tables: Mapping[str, pd.DataFrame],
    x: str,
    y: str,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict[str, float]:
    """Pearson correlation, across groups, of each group's mean ``x`` and mean ``y``.

    Each group is one table (say one model on one split). The interval is a bootstrap over
    samples: each resample draws every group's rows with replacement, independently, and
    recomputes the groups' means and their correlation, so it says how far sampling noise in
    the means could move r. Rows where ``x`` or ``y`` is NaN are left out. Returns ``r``,
    ``low``, ``high`` and ``groups``.

    >>> t = {g: pd.DataFrame({"a": [v, v], "b": [2 * v, 2 * v]}) for g, v in [("p", 0.1),
    ...      ("q", 0.5), ("r", 0.9)]}
    >>> {k: round(v, 3) for k, v in correlation_of_means(t, "a", "b").items()}
    {'r': 1.0, 'low': 1.0, 'high': 1.0, 'groups': 3}
    """
    if len(tables) < 3:
        raise ValueError(f"correlation_of_means: needs at least 3 groups, got {len(tables)}")
    pairs = []
    for name, table in tables.items():
        for column in (x, y):
            if column not in table:
                raise ValueError(f"correlation_of_means: group {name!r} has no column {column!r}")
        xy = table[[x, y]].to_numpy(dtype=float)
        xy = xy[~np.isnan(xy).any(axis=1)]
        if len(xy) == 0:
            raise ValueError(f"correlation_of_means: group {name!r} has no rows with {x} and {y}")
        pairs.append(xy)

    def r_of(*indices: np.ndarray) -> float:
        means = np.array([xy[idx].mean(axis=0) for xy, idx in zip(pairs, indices, strict=True)])
        if np.ptp(means[:, 0]) == 0 or np.ptp(means[:, 1]) == 0:
            return np.nan
        return float(np.corrcoef(means[:, 0], means[:, 1])[0, 1])

    # Resampling row indices (not values) keeps each row's x and y together.
    indices = tuple(np.arange(len(xy)) for xy in pairs)
    r = r_of(*indices)
    res = stats.bootstrap(
        indices, r_of, vectorized=False, paired=False, confidence_level=confidence,
        n_resamples=n_resamples, method="percentile", rng=np.random.default_rng(seed),
    )
    return {
        "r": r,
        "low": float(res.confidence_interval.low),
        "high": float(res.confidence_interval.high),
        "groups": len(pairs),
    }
