"""A zoo recipe variant, trained beside the shipped checkpoint and scored with its errors by kind.

Trains zoo model NAME with its recipe changed as asked (``--set key=value``, e.g.
``negatives_per_scene=8``; ``--steps`` rescales the last stage), into
``build/zoo-variant/VARIANT/`` (the shipped checkpoint is untouched; a killed run resumes from
``build/zoo-variant/runs``). Then scores it on held-out ``id`` scenes from a seed no shipped
figure uses (``--eval-seed``), with the held-out score of the bars and, per kind of hard
negative (colour, shape, size, relation), the share of negatives it takes for a match (BLIP)
or ranks at or above the true phrase (CLIP); relational phrases are scored apart. Results go to
``experiments/zoo_variant_results/VARIANT.json``.

    python experiments/zoo_variant.py shapes-clip --set negatives_per_scene=8
    python experiments/zoo_variant.py shapes-blip-base --shipped   # score the shipped model only
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import torch

from qgnb.data import shapes
from qgnb.data.shapes import COLOURS, SHAPE_NAMES, SIZES, hard_negatives
from qgnb.zoo import configs, models
from qgnb.zoo import train as zoo_train
from qgnb.zoo.evaluation import heldout_score, match_probabilities, phrase_similarities

RESULTS = Path(__file__).resolve().parent / "zoo_variant_results"
BUILD = Path("build/zoo-variant")


def kind_of_change(phrase: str, negative: str) -> str:
    """Which attribute a hard negative changes (the first differing word that names one)."""
    words, other = phrase.split(), negative.split()
    changed = [b for a, b in zip(words, other, strict=False) if a != b]
    for word in changed if len(words) == len(other) else other:
        if word in COLOURS:
            return "colour"
        if word in SHAPE_NAMES:
            return "shape"
        if word in SIZES:
            return "size"
    return "relation"


@torch.no_grad()
def errors_by_kind(model, processor, family: str, samples) -> dict:
    """Per kind of hard negative, the share taken for a match (BLIP: P(match) > 0.5) or
    ranked at or above the true phrase (CLIP); and the positives' hit rate, relational or not."""
    taken: dict[str, list[bool]] = {}
    positives: dict[str, list[bool]] = {"relational": [], "plain": []}
    for sample in samples:
        negatives = hard_negatives(sample.meta)
        phrases = [sample.phrase, *negatives]
        if family == "clip":
            similarity = phrase_similarities(model, processor, sample.image, phrases).tolist()
            wins = [s >= similarity[0] for s in similarity[1:]]
            positive = not any(wins)
        else:
            p = match_probabilities(model, processor, [sample.image] * len(phrases), phrases)
            wins = (p[1:] > 0.5).tolist()
            positive = bool(p[0] > 0.5)
        for negative, win in zip(negatives, wins, strict=True):
            taken.setdefault(kind_of_change(sample.phrase, negative), []).append(win)
        positives["relational" if sample.meta["relation"] else "plain"].append(positive)
    out = {f"negatives taken, {k}": round(sum(v) / len(v), 4) for k, v in sorted(taken.items())}
    out.update({f"negatives, {k}": len(v) for k, v in sorted(taken.items())})
    what = "ranked first" if family == "clip" else "matched"
    out.update({f"positives {what}, {k}": round(sum(v) / max(len(v), 1), 4)
                for k, v in positives.items()})
    out.update({f"positives, {k}": len(v) for k, v in positives.items()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recipe field to change (repeatable)")
    parser.add_argument("--steps", type=int, default=None, help="steps of the last stage")
    parser.add_argument("--shipped", action="store_true", help="score the shipped model only")
    parser.add_argument("--eval-seed", type=int, default=777)
    parser.add_argument("--eval-n", type=int, default=400)
    args = parser.parse_args()
    zoo_spec = configs.spec(args.name)
    changes = {}
    for item in args.set:
        key, value = item.split("=", 1)
        kind = type(getattr(zoo_spec.recipe, key))
        changes[key] = kind(float(value)) if kind in (int, float) else kind(value)
    if args.steps is not None:
        stages = list(zoo_spec.recipe.stages)
        stages[-1] = (stages[-1][0], args.steps)
        changes["stages"] = tuple(stages)
    if args.shipped:
        variant = f"{args.name}-shipped"
        model, processor = models.load_model(args.name)
        training = json.loads((models.checkpoint_dir(args.name) / "training.json").read_text())
    else:
        variant = args.name + "".join(f"-{k}{v}" for k, v in sorted(changes.items())
                                      if k != "stages")
        variant += f"-last{args.steps}" if args.steps else ""
        directory = zoo_train.train(args.name, runs=BUILD / "runs" / variant,
                                    recipe=replace(zoo_spec.recipe, **changes),
                                    directory=BUILD / variant)
        model, processor = models.load_checkpoint(directory, zoo_spec.architecture.family)
        training = json.loads((directory / "training.json").read_text())
    torch.set_num_threads(1)
    model.eval()
    samples = shapes("id", args.eval_n, seed=args.eval_seed)
    family = zoo_spec.architecture.family
    result = {"variant": variant, "changes": {k: str(v) for k, v in changes.items()},
              "eval": f"shapes('id', {args.eval_n}, seed={args.eval_seed})",
              "heldout_score": heldout_score(model, processor, family, samples),
              **errors_by_kind(model, processor, family, samples),
              "wall_seconds": training["wall_seconds"], "steps": training["steps"]}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{variant}.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
