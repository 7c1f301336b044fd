"""Tables for notebook 04, read from the cards (no training; decoding only in ``reconstructions``
and the probe).

Every shipped figure is reported over training seeds: seed 0's cards are the shipped
checkpoints', the other seeds' cards are stored in ``qgnb/pvp/results/seed-S/`` (written by
``python -m qgnb.pvp.train NAME --seed S``). Distributions are given as median and range.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from qgnb.data import shapes
from qgnb.pvp.cards import CHECKPOINTS, card, load
from qgnb.pvp.model import vision_tower
from qgnb.pvp.probe import probe_errors
from qgnb.pvp.queries import mask_grid, target_grid
from qgnb.pvp.recipes import PVP_REGIMES, RECIPES, SEGMENTATION_MODELS
from qgnb.pvp.reconstruct import reconstruct
from qgnb.pvp.segmentation import ciou_gain
from qgnb.pvp.train import RESULTS


def seed_cards(root: Path = CHECKPOINTS, results: Path = RESULTS) -> dict[int, dict[str, dict]]:
    """Every trained seed's cards: ``{seed: {checkpoint name: card}}``, seed 0 from the shipped
    checkpoints, the others from ``results/seed-S/NAME.json`` (stage 0, shared by every seed,
    from the shipped checkpoint). Only seeds with every recipe count (a seed still training is
    left out).

    >>> sorted(seed_cards())[:1]
    [0]
    """
    seeds = {0: {name: card(name, root) for name in RECIPES}}
    for folder in sorted(Path(results).glob("seed-*")):
        paths = {name: folder / f"{name}.json" for name, r in RECIPES.items()
                 if not r.shared_across_seeds}
        if all(p.is_file() for p in paths.values()):
            named = {name: json.loads(p.read_text()) for name, p in paths.items()}
            seeds[int(folder.name.split("-")[1])] = {**seeds[0], **named}
    return seeds


def regime_scores(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """One row per seed, split and regime: trainable parameters, held-out MAE (0-255) over all
    cells and over object cells, its ratio to the connector-only regime of the same seed, and
    the share of unparseable answers.

    >>> regime_scores().columns.tolist()[:4]
    ['seed', 'split', 'regime', 'trainable parameters']
    """
    cards = seed_cards() if cards is None else cards
    rows = []
    for seed, named in cards.items():
        for split in ("id", "ood"):
            base = named[PVP_REGIMES["connector"]]["eval"][split]
            for regime, name in PVP_REGIMES.items():
                scores = named[name]["eval"][split]
                rows.append({"seed": seed, "split": split, "regime": regime,
                             "trainable parameters": named[name]["trainable_parameters"],
                             "MAE": scores["mae"], "MAE object": scores["mae_object"],
                             "MAE / connector": scores["mae"] / base["mae"],
                             "MAE object / connector": scores["mae_object"] / base["mae_object"],
                             "unparseable": scores["unparseable"]})
    return pd.DataFrame(rows)


def distribution(table: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Median, minimum and maximum of ``columns`` over seeds within each group of ``by``, and
    the number of seeds; columns ``<name> median``, ``<name> min``, ``<name> max``.

    >>> t = pd.DataFrame({"g": ["a", "a", "a"], "x": [1.0, 5.0, 2.0]})
    >>> distribution(t, ["g"], ["x"]).to_dict("records")
    [{'g': 'a', 'seeds': 3, 'x median': 2.0, 'x min': 1.0, 'x max': 5.0}]
    """
    groups = table.groupby(by, sort=False)
    out = groups.size().rename("seeds").reset_index()
    for column in columns:
        stats_ = groups[column].agg(["median", "min", "max"])
        stats_.columns = [f"{column} {s}" for s in stats_.columns]
        out = out.merge(stats_.reset_index(), on=by)
    return out


def regime_summary(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """Per split and regime, over seeds: median and range of the MAE over all cells and over
    object cells, and of their ratios to connector-only.

    >>> regime_summary().columns.tolist()[:3]
    ['split', 'regime', 'seeds']
    """
    return distribution(regime_scores(cards), ["split", "regime"],
                        ["MAE", "MAE object", "MAE / connector", "MAE object / connector"])


def curve_table(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """The held-out error along training (8 ``id`` scenes every 100 steps), every seed: stage 0
    on oracle tokens, then each regime on the tower (steps counted from the start of stage 0),
    long format ``seed, run, step, MAE, MAE object, loss``.

    >>> curve_table().columns.tolist()
    ['seed', 'run', 'step', 'MAE', 'MAE object', 'loss']
    """
    cards = seed_cards() if cards is None else cards
    rows = []
    for seed, named in cards.items():
        stage0 = named["pvp-stage0"]
        runs = [("stage 0 (oracle tokens)", stage0, 0)] + [
            (regime, named[name], stage0["steps"]) for regime, name in PVP_REGIMES.items()]
        rows += [{"seed": seed, "run": run, "step": offset + p["step"], "MAE": p["mae"],
                  "MAE object": p["mae_object"], "loss": p["loss"]}
                 for run, info, offset in runs for p in info["curve"]]
    return pd.DataFrame(rows)


def reconstructions(images: list[Image.Image], root: Path = CHECKPOINTS
                    ) -> dict[str, np.ndarray]:
    """``N x grid x grid x 3`` reconstructions per regime (unparseable cells black), decoded
    now from the shipped checkpoints.

    >>> sorted(reconstructions([Image.new("RGB", (64, 64))]))  # doctest: +SKIP
    ['connector', 'connector+lm', 'connector+lm+vision']
    """
    out = {}
    for regime, name in PVP_REGIMES.items():
        model, tokenizer, processor = load(name, root)
        out[regime] = reconstruct(model, tokenizer, processor, images)[0]
    return out


def segmentation_scores(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """cIoU and mean IoU (in %) of the two segmentation models per seed and split.

    >>> segmentation_scores().columns.tolist()
    ['seed', 'model', 'split', 'cIoU', 'mean IoU', 'unparseable']
    """
    cards = seed_cards() if cards is None else cards
    rows = []
    for seed, named in cards.items():
        for label, name in SEGMENTATION_MODELS.items():
            for split, scores in named[name]["eval"].items():
                rows.append({"seed": seed, "model": label, "split": split,
                             "cIoU": 100 * scores["ciou"], "mean IoU": 100 * scores["mean_iou"],
                             "unparseable": scores["unparseable"]})
    return pd.DataFrame(rows)


def segmentation_gain(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """cIoU gain (points) of the PVP-adapted encoder over the frozen one, per seed and split,
    with a 95% paired bootstrap interval over the held-out samples.

    >>> segmentation_gain().columns.tolist()
    ['seed', 'split', 'cIoU gain', 'low', 'high']
    """
    cards = seed_cards() if cards is None else cards
    rows = []
    for seed, named in cards.items():
        frozen, adapted = (named[name]["eval"] for name in SEGMENTATION_MODELS.values())
        for split in frozen:
            a, b = frozen[split], adapted[split]
            gain = ciou_gain(np.array(a["intersection"]), np.array(a["union"]),
                             np.array(b["intersection"]), np.array(b["union"]))
            rows.append({"seed": seed, "split": split, "cIoU gain": 100 * gain["gain"],
                         "low": 100 * gain["low"], "high": 100 * gain["high"]})
    return pd.DataFrame(rows)


def stage_table(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """Every shipped checkpoint: task, image tokens, what it trains, where it starts, steps,
    share of queries on objects, trainable parameters, and the median training time over
    seeds (minutes, one thread).

    >>> stage_table().shape[0]
    6
    """
    cards = seed_cards() if cards is None else cards
    rows = []
    for name, r in RECIPES.items():
        start = r.init_from or "scratch"
        if r.init_lm_only:
            start = f"{r.init_from} (language model only)"
        rows.append({"checkpoint": name, "task": r.task, "image tokens": r.image_source,
                     "trains": r.regime, "starts from": start, "steps": r.steps,
                     "detail share": r.detail_share if r.task == "pvp" else None,
                     "trainable parameters": cards[0][name]["trainable_parameters"],
                     "train minutes": float(np.median([named[name]["train_seconds"]
                                                       for named in cards.values()])) / 60})
    return pd.DataFrame(rows)


def probe_table(train_images: int = 400, test_images: int = 100, root: Path = CHECKPOINTS
                ) -> pd.DataFrame:
    """Linear read-out error (0-255) of the cells under each patch, on held-out ``id`` scenes:
    from raw pixels, a random tower, the frozen pinned ``shapes-clip`` tower and the tower
    adapted by PVP (``pvp-connector-lm-vision``).

    >>> probe_table(20, 5).shape
    (4, 2)
    """
    adapted = load(PVP_REGIMES["connector+lm+vision"], root)
    frozen = load(PVP_REGIMES["connector+lm"], root)
    towers = {"random tower": vision_tower("random:0"),
              "shapes-clip tower (frozen)": (frozen[0].vision, frozen[2]),
              "PVP-adapted tower": (adapted[0].vision, adapted[2])}
    train = [s.image for s in shapes("train", train_images, seed=5)]
    test = [s.image for s in shapes("id", test_images, seed=5)]
    errors = probe_errors(towers, train, test, grid=adapted[0].grid)
    return pd.DataFrame({"features": list(errors), "probe MAE": list(errors.values())})


def reference_errors(split: str = "id", n: int = 48, seed: int = 0, grid: int | None = None,
                     root: Path = CHECKPOINTS) -> pd.DataFrame:
    """Errors (0-255, mean over channels) over all cells and over object cells of answers that
    need no localisation or only coarse localisation, on the scenes the cards are scored on:
    every cell answered with the image's mean or median colour, and the grid blurred to blocks
    2x and 4x coarser (box filter, then repeated). ``grid`` defaults to the shipped models'
    grid (stage 0's card).

    >>> reference_errors(n=2, grid=16).columns.tolist()
    ['answer', 'MAE', 'MAE object']
    """
    grid = grid or card("pvp-stage0", root)["grid"]
    samples = list(shapes(split, n, seed))
    targets = [target_grid(s.image, grid).astype(float) for s in samples]
    objects = [mask_grid(s.mask, grid) for s in samples]

    def blurred(t: np.ndarray, cells: int) -> np.ndarray:
        coarse = Image.fromarray(t.astype(np.uint8)).resize((cells, cells), Image.Resampling.BOX)
        return np.asarray(coarse.resize((grid, grid), Image.Resampling.NEAREST), float)

    answers = {
        "image mean colour everywhere": [np.broadcast_to(t.reshape(-1, 3).mean(0), t.shape)
                                         for t in targets],
        "image median colour everywhere": [np.broadcast_to(np.median(t.reshape(-1, 3), 0),
                                                           t.shape) for t in targets],
        f"{grid // 4}x{grid // 4} blocks (4x coarser)": [blurred(t, grid // 4) for t in targets],
        f"{grid // 2}x{grid // 2} blocks (2x coarser)": [blurred(t, grid // 2) for t in targets],
    }
    # Pooled over cells, as the models' errors are (reconstruction_error).
    def pooled(answer: list[np.ndarray], where: list[np.ndarray]) -> float:
        return float(np.concatenate([np.abs(a - t)[w] for a, t, w in
                                     zip(answer, targets, where, strict=True)]).mean())

    everywhere = [np.ones((grid, grid), bool)] * len(targets)
    return pd.DataFrame({"answer": list(answers),
                         "MAE": [pooled(v, everywhere) for v in answers.values()],
                         "MAE object": [pooled(v, objects) for v in answers.values()]})


def gain_summary(cards: dict[int, dict[str, dict]] | None = None) -> pd.DataFrame:
    """Per split, over seeds: median and range of the segmentation cIoU gain (points), and how
    many seeds' 95% intervals lie wholly above zero.

    >>> gain_summary().columns.tolist()[:3]
    ['split', 'seeds', 'cIoU gain median']
    """
    gains = segmentation_gain(cards)
    out = distribution(gains, ["split"], ["cIoU gain"])
    above = gains.assign(above=gains["low"] > 0).groupby("split", sort=False)["above"].sum()
    return out.assign(**{"seeds with interval above 0": out["split"].map(above).astype(int)})


def findings(cards: dict[int, dict[str, dict]] | None = None) -> list[str]:
    """"What we found", as sentences computed from the cards: per split, the adapted encoder's
    MAE as a share of connector-only's (all cells, object cells), connector+lm's, and the
    segmentation gain, each as median and range over seeds, against the study's goals (at most
    half the error; at least 5 cIoU points).

    >>> findings()[0].startswith("Over ")
    True
    """
    cards = seed_cards() if cards is None else cards
    summary = regime_summary(cards).set_index(["split", "regime"])
    gains = gain_summary(cards).set_index("split")

    def spread(row: pd.Series, column: str, fmt: str = "{:.2f}") -> str:
        return (f"{fmt.format(row[f'{column} median'])} "
                f"({fmt.format(row[f'{column} min'])}-{fmt.format(row[f'{column} max'])})")

    lines = [f"Over {len(cards)} training seeds (median, range in brackets):"]
    for split in ("id", "ood"):
        adapted = summary.loc[(split, "connector+lm+vision")]
        lm = summary.loc[(split, "connector+lm")]
        met = all(adapted[f"{c} / connector max"] <= 0.5 for c in ("MAE", "MAE object"))
        lines.append(
            f"- {split}: adapted encoder / connector-only MAE: all cells "
            f"{spread(adapted, 'MAE / connector')}, object cells "
            f"{spread(adapted, 'MAE object / connector')}; connector+lm: "
            f"{spread(lm, 'MAE / connector')} and {spread(lm, 'MAE object / connector')}. "
            f"At most half in every seed: {'yes' if met else 'no'}.")
        gain = gains.loc[split]
        lines.append(
            f"- {split}: segmentation cIoU gain of the PVP-adapted encoder "
            f"{spread(gain, 'cIoU gain', '{:+.1f}')} points; interval above 0 in "
            f"{int(gain['seeds with interval above 0'])} of {int(gain['seeds'])} seeds; at least 5 "
            f"points "
            f"in every seed: {'yes' if gain['cIoU gain min'] >= 5 else 'no'}.")
    return lines
