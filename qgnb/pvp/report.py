"""Tables for notebook 04, read from the shipped checkpoints' cards (no training, no decoding)."""

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
from qgnb.pvp.queries import target_grid
from qgnb.pvp.recipes import PVP_REGIMES, RECIPES
from qgnb.pvp.reconstruct import reconstruct
from qgnb.pvp.segmentation import ciou_gain

SEGMENTATION_MODELS = {"frozen encoder": "seg-frozen-encoder",
                       "PVP-adapted encoder": "seg-pvp-encoder"}


def regime_table(split: str = "id", root: Path = CHECKPOINTS) -> pd.DataFrame:
    """One row per PVP regime: what it trains, trainable parameters, steps, and the held-out
    error per channel (0-255), their mean and the share of unparseable answers.

    >>> regime_table().columns[:3].tolist()  # doctest: +SKIP
    ['regime', 'trainable parameters', 'steps']
    """
    rows = []
    for regime, name in PVP_REGIMES.items():
        info = card(name, root)
        scores = info["eval"][split]
        rows.append({"regime": regime, "trainable parameters": info["trainable_parameters"],
                     "steps": info["steps"], "MAE r": scores["mae_r"], "MAE g": scores["mae_g"],
                     "MAE b": scores["mae_b"], "MAE": scores["mae"],
                     "unparseable": scores["unparseable"]})
    return pd.DataFrame(rows)


def curve_table(root: Path = CHECKPOINTS) -> pd.DataFrame:
    """The held-out error along training: stage 1, then each regime (steps counted from the
    start of stage 1), long format ``regime, step, MAE, loss``.

    >>> curve_table().columns.tolist()  # doctest: +SKIP
    ['regime', 'step', 'MAE', 'loss']
    """
    stage1 = card("pvp-stage1", root)
    rows = [{"regime": "stage 1 (connector+lm)", "step": p["step"], "MAE": p["mae"],
             "loss": p["loss"]} for p in stage1["curve"]]
    for regime, name in PVP_REGIMES.items():
        rows += [{"regime": regime, "step": stage1["steps"] + p["step"], "MAE": p["mae"],
                  "loss": p["loss"]} for p in card(name, root)["curve"]]
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


def segmentation_table(root: Path = CHECKPOINTS) -> pd.DataFrame:
    """cIoU and mean IoU (in %) of the two segmentation models on ``id`` and ``ood``.

    >>> segmentation_table().shape  # doctest: +SKIP
    (4, 5)
    """
    rows = []
    for label, name in SEGMENTATION_MODELS.items():
        info = card(name, root)
        for split, scores in info["eval"].items():
            rows.append({"model": label, "split": split, "cIoU": 100 * scores["ciou"],
                         "mean IoU": 100 * scores["mean_iou"],
                         "unparseable": scores["unparseable"]})
    return pd.DataFrame(rows)


def segmentation_gain(root: Path = CHECKPOINTS) -> pd.DataFrame:
    """cIoU gain (points) of the PVP-adapted encoder over the frozen one, per split, with a
    95% paired bootstrap interval over the held-out samples.

    >>> segmentation_gain().columns.tolist()  # doctest: +SKIP
    ['split', 'cIoU gain', 'low', 'high']
    """
    frozen, adapted = (card(name, root)["eval"] for name in SEGMENTATION_MODELS.values())
    rows = []
    for split in frozen:
        a, b = frozen[split], adapted[split]
        gain = ciou_gain(np.array(a["intersection"]), np.array(a["union"]),
                         np.array(b["intersection"]), np.array(b["union"]))
        rows.append({"split": split, "cIoU gain": 100 * gain["gain"], "low": 100 * gain["low"],
                     "high": 100 * gain["high"]})
    return pd.DataFrame(rows)


def stage_table(root: Path = CHECKPOINTS) -> pd.DataFrame:
    """Every shipped checkpoint: task, regime, start point, steps, trainable parameters and
    training time (seconds, 1 thread).

    >>> stage_table().shape[0]  # doctest: +SKIP
    6
    """
    rows = []
    for name, r in RECIPES.items():
        info = card(name, root)
        rows.append({"checkpoint": name, "task": r.task, "trains": r.regime,
                     "starts from": r.init or "scratch", "steps": info["steps"],
                     "trainable parameters": info["trainable_parameters"],
                     "train seconds": info["train_seconds"]})
    return pd.DataFrame(rows)


def probe_table(train_images: int = 400, test_images: int = 100, root: Path = CHECKPOINTS
                ) -> pd.DataFrame:
    """Linear read-out error (0-255) of the cells under each patch, on held-out ``id`` scenes:
    from raw pixels, a random tower, the frozen ``shapes-clip`` tower and the tower adapted by
    PVP (``pvp-connector-lm-vision``).

    >>> probe_table(40, 10).shape  # doctest: +SKIP
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
    """Errors (0-255, mean over channels) of answers that need no localisation or only coarse
    localisation, on the scenes the cards are scored on: every cell answered with the image's
    mean or median colour, and the grid blurred to blocks 2x and 4x coarser (box filter, then
    repeated). ``grid`` defaults to the shipped models' grid (stage 1's card).

    >>> reference_errors(n=2, grid=16).shape
    (4, 2)
    """
    grid = grid or card("pvp-stage1", root)["grid"]
    targets = [target_grid(s.image, grid).astype(float) for s in shapes(split, n, seed)]

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
    return pd.DataFrame({"answer": list(answers),
                         "MAE": [float(np.mean([np.abs(a - t).mean()
                                                for a, t in zip(v, targets, strict=True)]))
                                 for v in answers.values()]})


LEVEL_NAMES = {1: "1x1 (one colour: reading only)", 2: "2x2 (quadrants)", 4: "4x4",
               16: "16x16 (every cell)"}


def lookup_table(root: Path = CHECKPOINTS / "lookup") -> pd.DataFrame:
    """The lookup probe's shipped runs (``qgnb.pvp.lookup``): per image-token source and mosaic
    level: the training loss over the last 100 steps (``lookup.CHANCE_LOSS`` is chance), the
    held-out MAE, the MAE of answering the image's mean colour, and their difference (what
    looking the location up gained).

    >>> lookup_table().columns.tolist()  # doctest: +SKIP
    ['image tokens', 'mosaic blocks', 'steps', 'final loss', 'MAE', 'mean-colour MAE', 'gain']
    """
    paths = sorted(Path(root).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no lookup-probe results in {root}; run python -m qgnb.pvp.lookup")
    rows = []
    for path in paths:
        r = json.loads(path.read_text())
        rows.append({"image tokens": r["features"], "level": r["level"],
                     "mosaic blocks": LEVEL_NAMES.get(r["level"], f"{r['level']}x{r['level']}"),
                     "steps": r["steps"], "final loss": r["curve"][-1]["loss"],
                     "MAE": r["mae"], "mean-colour MAE": r["mean_colour_mae"],
                     "gain": r["mean_colour_mae"] - r["mae"]})
    table = pd.DataFrame(rows).sort_values(["image tokens", "level", "steps"],
                                           ascending=[False, True, True])
    return table.drop(columns="level").reset_index(drop=True)


def lookup_curves(root: Path = CHECKPOINTS / "lookup") -> pd.DataFrame:
    """The lookup probe's training-loss curves, long format: one row per run and logged step
    (the loss averaged over the 100 steps before it), with the run's ``image tokens``, ``mosaic
    blocks`` and a ``run`` label.

    >>> lookup_curves().columns.tolist()  # doctest: +SKIP
    ['image tokens', 'mosaic blocks', 'run', 'step', 'loss']
    """
    rows = []
    for path in sorted(Path(root).glob("*.json")):
        r = json.loads(path.read_text())
        blocks = LEVEL_NAMES.get(r["level"], f"{r['level']}x{r['level']}")
        label = f"{r['features']}, {r['level']}x{r['level']}, {r['steps']} steps"
        rows += [{"image tokens": r["features"], "mosaic blocks": blocks, "run": label,
                  "step": p["step"], "loss": p["loss"]} for p in r["curve"]]
    if not rows:
        raise FileNotFoundError(f"no lookup-probe results in {root}; run python -m qgnb.pvp.lookup")
    return pd.DataFrame(rows)
