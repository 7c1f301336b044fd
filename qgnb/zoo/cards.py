"""Model cards: recompute every shipped model's held-out scores from its checkpoint.

``python -m qgnb.zoo.cards [NAME ...]`` evaluates each model the same way (nothing here
depends on the model beyond its family) and writes ``card.json`` plus the per-sample grounding
tables ``grounding_id.csv`` and ``grounding_ood.csv`` beside its checkpoint:

- held-out score on ``shapes("id", HELDOUT_N, EVAL_SEED)``: matching accuracy on balanced
  positive / hard-negative pairs (BLIP) or zero-shot expression retrieval (CLIP), see
  `qgnb.zoo.evaluation`; the same score on the first ``SLICE_N`` samples (the tests
  reproduce it);
- the reading rule's record (`qgnb.zoo.reading`: the rule, each candidate layer's validation
  PG accuracy, the chosen layer), which must have been applied first;
- the grounding summary (`qgnb.metrics.summarize`) of the model's explainer (read where the
  rule chose) on the first ``GROUNDING_N`` samples of ``id`` and of ``ood``, and its PG
  accuracy and uncertainty at each of ``LEVELS`` quantisation levels;
- PG accuracy of every candidate reading on the first ``BY_LAYER_N`` of those ``id`` samples
  (``by_layer``): what the verdict would have been, read elsewhere;
- for ``shapes-blip-amc``: paired bootstrap comparisons (`qgnb.metrics.compare`) against
  ``shapes-blip-base`` and ``shapes-blip-large`` on both splits.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
from pathlib import Path

import pandas as pd
import torch

from qgnb.data import shapes
from qgnb.data.records import read_json
from qgnb.explain.evaluate import evaluate
from qgnb.metrics import compare, summarize
from qgnb.zoo.configs import SPECS, spec
from qgnb.zoo.evaluation import heldout_score
from qgnb.zoo.explainers import explainer_for
from qgnb.zoo.models import checkpoint_dir, load_model
from qgnb.zoo.reading import candidates, explainer_at

EVAL_SEED = 0
HELDOUT_N = 1000
SLICE_N = 200
GROUNDING_N = 300
BY_LAYER_N = 150  # the first 150 of the grounding samples: every candidate layer is redrawn
GROUNDING_SPLITS = ("id", "ood")
# Quantisation levels of the prepared map before its top peaks are found (METRICS.md): the
# coarser, the more ties between peaks, the more "uncertain" PG verdicts.
LEVELS = (32, 64, 128, 256)
BOOTSTRAP = 2000
COMPARISONS = {"shapes-blip-amc": ("shapes-blip-base", "shapes-blip-large")}


def card(name: str) -> dict:
    """The stored card of zoo model ``name``: training data, steps, wall time, scores.

    >>> card("shapes-blip-base")["heldout"]["metric"]
    'itm_accuracy'
    >>> card("shapes-clip")["heldout"]["metric"]
    'retrieval_accuracy'
    """
    path = checkpoint_dir(name) / "card.json"
    if not path.is_file():
        raise FileNotFoundError(f"zoo model {name!r} has no card at {path}; "
                                f"run `python -m qgnb.zoo.cards {name}`")
    return read_json(path, f"zoo model {name!r} card")


def grounding_table(name: str, split: str) -> pd.DataFrame:
    """The per-sample grounding scores of model ``name`` on ``split`` stored beside its card.

    >>> grounding_table("shapes-blip-amc", "id").shape[0]
    300
    """
    path = checkpoint_dir(name) / f"grounding_{split}.csv"
    if not path.is_file():
        raise FileNotFoundError(f"no grounding table for {name!r} on {split!r} at {path}; "
                                f"run `python -m qgnb.zoo.cards {name}`")
    return pd.read_csv(path)


SUMMARY_METRICS = ("pg_accuracy", "pg_uncertainty", "mean_soft_iou", "mean_soft_dice",
                   "mean_wdp", "mean_io_ratio")


def summary_table(names: tuple[str, ...] = tuple(SPECS)) -> pd.DataFrame:
    """One row per model and split from the stored cards: held-out score and grounding summary.

    >>> table = summary_table()
    >>> table.index.names, len(table)  # four models, two splits
    (FrozenList(['model', 'split']), 8)
    >>> bool(0 <= table.loc[("shapes-blip-amc", "id"), "pg_accuracy"] <= 1)
    True
    """
    rows = []
    for name in names:
        stored = card(name)
        for split in GROUNDING_SPLITS:
            grounding = stored["grounding"][split]
            rows.append({"model": name, "split": split, "parameters": stored["parameters"],
                         "steps": stored["steps"],
                         "heldout_" + stored["heldout"]["metric"]: stored["heldout"]["value"],
                         **{metric: grounding[metric] for metric in SUMMARY_METRICS}})
    return pd.DataFrame(rows).set_index(["model", "split"])


def _plain(values: dict) -> dict:
    # JSON has no NaN: write None for a missing value.
    out = {}
    for key, value in values.items():
        value = value.item() if hasattr(value, "item") else value
        out[key] = None if isinstance(value, float) and math.isnan(value) else value
    return out


def compute_card(name: str) -> dict:
    """Evaluate model ``name`` from its checkpoint and write its card and grounding tables.

    >>> compute_card("shapes-clip")  # doctest: +SKIP
    """
    torch.set_num_threads(1)
    zoo_spec = spec(name)
    directory = checkpoint_dir(name)
    model, processor = load_model(name)
    family = zoo_spec.architecture.family
    training = read_json(directory / "training.json", f"zoo model {name!r} training record")
    heldout = shapes("id", HELDOUT_N, EVAL_SEED)
    metric = "retrieval_accuracy" if family == "clip" else "itm_accuracy"
    result = dict(training)
    result["heldout"] = {
        "metric": metric, "split": "id", "n": HELDOUT_N, "seed": EVAL_SEED,
        "value": heldout_score(model, processor, family, heldout),
        "slice_n": SLICE_N,
        "slice_value": heldout_score(model, processor, family, heldout[:SLICE_N]),
    }
    result["reading"] = read_json(directory / "reading.json", f"zoo model {name!r} reading")
    explainer = explainer_for(name, model, processor)
    result["explainer"] = explainer.config
    result["grounding"] = {"n": GROUNDING_N, "seed": EVAL_SEED}
    result["quantisation"] = {"levels": list(LEVELS)}
    for split in GROUNDING_SPLITS:
        samples = shapes(split, GROUNDING_N, EVAL_SEED)
        with tempfile.TemporaryDirectory() as store:  # maps drawn once, scored at each level
            tables = {levels: evaluate(explainer, samples, batch_size=50, store=store,
                                       levels=levels) for levels in LEVELS}
        tables[LEVELS[-1]].to_csv(directory / f"grounding_{split}.csv", index=False)
        result["grounding"][split] = _plain(summarize(tables[LEVELS[-1]]).to_dict())
        result["quantisation"][split] = {
            str(levels): {k: _plain(summarize(t).to_dict())[k]
                          for k in ("pg_accuracy", "pg_uncertainty", "pg_accuracy_certain")}
            for levels, t in tables.items()}
    samples = shapes("id", BY_LAYER_N, EVAL_SEED)
    result["by_layer"] = {"split": "id", "n": BY_LAYER_N, "seed": EVAL_SEED, "readings": [
        {"layer": r.layer, "tokens": r.tokens,
         **{k: _plain(summarize(table).to_dict())[k] for k in ("pg_accuracy", "pg_uncertainty")}}
        for r in candidates(name)
        for table in [evaluate(explainer_at(name, model, processor, r), samples, batch_size=50,
                               progress=False)]]}
    (directory / "card.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def compute_comparisons(name: str) -> dict:
    """Paired bootstrap comparisons of ``name`` against the models of ``COMPARISONS[name]``,
    stored in its card (``card["comparisons"][other][split][metric]``: diff and interval).

    >>> compute_comparisons("shapes-blip-amc")  # doctest: +SKIP
    """
    result = card(name)
    comparisons = {}
    for other in COMPARISONS.get(name, ()):
        comparisons[other] = {}
        for split in GROUNDING_SPLITS:
            table = compare(grounding_table(other, split), grounding_table(name, split),
                            n_boot=BOOTSTRAP, seed=EVAL_SEED)
            comparisons[other][split] = {
                metric: _plain(row.to_dict()) for metric, row in table.iterrows()
            }
    result["comparisons"] = comparisons
    (checkpoint_dir(name) / "card.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m qgnb.zoo.cards [NAME ...]`` (default: every trained model)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="zoo model names (default: all trained)")
    args = parser.parse_args(argv)
    names = args.names or [n for n in SPECS if (checkpoint_dir(n) / "training.json").is_file()]
    for name in names:
        computed = compute_card(name)
        print(name, computed["heldout"]["metric"], round(computed["heldout"]["value"], 4))
    for name in COMPARISONS:
        needed = (name, *COMPARISONS[name])
        if all(Path(checkpoint_dir(n) / "grounding_id.csv").is_file() for n in needed):
            compute_comparisons(name)


if __name__ == "__main__":
    main()
