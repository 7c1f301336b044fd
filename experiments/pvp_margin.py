"""Pushing the margin: the regimes with other step counts or an encoder learning rate of their own.

Starts from the shared ``pvp-stage0`` (copied, so the shipped checkpoints are untouched),
trains ``pvp-connector`` and ``pvp-connector-lm-vision`` with the recipe changed as asked, and
writes the held-out errors (all cells / object cells, ``id`` and ``ood``) and their ratio to
``experiments/pvp_margin_results/NAME.json``. A finished variant is skipped; a killed one
resumes (``build/pvp-margin/work``).

    python experiments/pvp_margin.py --seed 0 --regime-steps 1200
    python experiments/pvp_margin.py --seed 0 --vision-lr 3e-4
    python experiments/pvp_margin.py --seed 0 --detail-share 0.75
"""

from __future__ import annotations

import argparse
import json
import shutil
from dataclasses import replace
from pathlib import Path

from qgnb.pvp import recipes
from qgnb.pvp.train import seed_root, train

RESULTS = Path(__file__).resolve().parent / "pvp_margin_results"
REGIMES = ("pvp-connector", "pvp-connector-lm-vision")


def variant(seed: int, regime_steps: int | None, vision_lr: float | None,
            detail_share: float | None = None) -> dict:
    """Train the two regimes of one variant of seed ``seed`` from the shared stage 0; return
    the scores. Unset settings take the recipe's (the name says the detail share used)."""
    detail_share = recipes.REGIME_DETAIL_SHARE if detail_share is None else detail_share
    name = (f"seed{seed}-steps{regime_steps or recipes.REGIME_STEPS}"
            f"-visionlr{vision_lr if vision_lr is not None else 'same'}-detail{detail_share}")
    root = Path("build/pvp-margin") / name
    if not (root / "pvp-stage0").is_dir():
        # Stage 0 is trained once (seed 0) and shared by every seed (recipes.py).
        shared = recipes.RECIPES["pvp-stage0"].shared_across_seeds
        shutil.copytree(seed_root(0 if shared else seed) / "pvp-stage0", root / "pvp-stage0")
    for regime in REGIMES:
        r = recipes.RECIPES[regime]
        recipes.RECIPES[regime] = replace(
            r, steps=regime_steps or r.steps, vision_learning_rate=vision_lr,
            detail_share=detail_share)
    cards = {regime: train(regime, root, Path("build/pvp-margin/work") / name, seed=seed,
                           results=None) for regime in REGIMES}
    base, adapted = (cards[r]["eval"] for r in REGIMES)
    out = {"variant": name, "seed": seed, "regime_steps": regime_steps, "vision_lr": vision_lr,
           "detail_share": detail_share,
           "command": f"python experiments/pvp_margin.py --seed {seed}"
                      + (f" --regime-steps {regime_steps}" if regime_steps else "")
                      + (f" --vision-lr {vision_lr}" if vision_lr is not None else "")
                      + f" --detail-share {detail_share}"}
    for split in ("id", "ood"):
        for key in ("mae", "mae_object"):
            out[f"{split} {key} connector"] = base[split][key]
            out[f"{split} {key} adapted"] = adapted[split][key]
            out[f"{split} {key} ratio"] = adapted[split][key] / base[split][key]
    out["train_seconds"] = {r: c["train_seconds"] for r, c in cards.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--regime-steps", type=int, default=None)
    parser.add_argument("--vision-lr", type=float, default=None)
    parser.add_argument("--detail-share", type=float, default=None,
                        help="share of the regimes' queries on object cells "
                             "(default: recipes.REGIME_DETAIL_SHARE)")
    args = parser.parse_args()
    result = variant(args.seed, args.regime_steps, args.vision_lr, args.detail_share)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{result['variant']}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
