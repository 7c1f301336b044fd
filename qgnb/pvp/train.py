"""Train a shipped PVP checkpoint from its recipe: ``python -m qgnb.pvp.train NAME [--seed S]``.

Resumable: every ``eval_every`` steps the run saves model, optimizer, scheduler, step and curve
to ``--work`` (atomically: written beside, then renamed), and a restarted run continues from
there, after checking that the saved state was made by the same recipe (``--fresh`` starts
over). Each step draws its images and query cells from ``numpy.random.default_rng([seed,
stage, step])``, so a resumed run sees the same batches. The curve records the training loss
and the held-out reconstruction errors (PVP) or cIoU (segmentation) as steps go by.

Seeds: ``--seed S`` trains with seed ``S`` (fresh weights and batches). Seed 0 writes the
shipped checkpoints; another seed writes its checkpoints under ``build/pvp-seeds`` and copies
each card (the evaluations the notebook reads) to ``qgnb/pvp/results/seed-S``. Stage 0 is
trained once (seed 0) and every seed starts from it.
"""

from __future__ import annotations

import argparse
import shutil
import time
import zlib
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from qgnb.data.shapes import SHAPES_VOCABULARY, shapes
from qgnb.pvp.batch import pixel_values, query_tensors
from qgnb.pvp.cards import CHECKPOINTS, card, checkpoint_dir, load_directory, save
from qgnb.pvp.model import WiredVLM, build_vlm, vision_tower
from qgnb.pvp.queries import (
    mask_grid,
    reconstruct_cells,
    reconstruct_queries,
    segmentation_cells,
    segmentation_queries,
    target_grid,
)
from qgnb.pvp.recipes import Recipe, recipe
from qgnb.pvp.reconstruct import reconstruction_error
from qgnb.pvp.regimes import apply_regime, trainable_parameters
from qgnb.pvp.segmentation import ciou, intersections_unions, mean_iou, predict_masks
from qgnb.pvp.tokenizer import build_tokenizer

CURVE_IMAGES = 8  # held-out "id" images scored along the way
CHECK = {"split": "id", "n": 2, "seed": 7}  # the fixed slice each card's error is checked on
EVAL = {"n": 48, "seed": 0}  # held-out images for the card's reported figures
RESULTS = Path(__file__).resolve().parent / "results"  # other seeds' cards
SEED_CHECKPOINTS = Path("build/pvp-seeds")  # other seeds' checkpoints (not shipped)


def seed_root(seed: int) -> Path:
    """Where seed ``seed``'s checkpoints go: the shipped folder for seed 0.

    >>> seed_root(0) == CHECKPOINTS, seed_root(2).name
    (True, 'seed-2')
    """
    return CHECKPOINTS if seed == 0 else SEED_CHECKPOINTS / f"seed-{seed}"


def stage_seed(r: Recipe, name: str) -> list[int]:
    """The entropy of a run's random draws: its seed and a stable code of its name, so that
    the stages of one seed draw different batches and weights.

    >>> stage_seed(recipe("pvp-connector"), "pvp-connector") == [0, 3371406657]
    True
    """
    return [r.seed, zlib.crc32(name.encode())]


def _initial_model(r: Recipe, name: str, root: Path, shared_root: Path):
    """Model, tokenizer, processor and the parent's card (lineage) to start ``r`` from."""
    def reseed() -> None:
        torch.manual_seed(int(np.random.SeedSequence(stage_seed(r, name)).generate_state(1)[0]))

    if r.init_from is None:
        reseed()
        tokenizer = build_tokenizer(SHAPES_VOCABULARY, r.grid)
        tower, processor = vision_tower(r.vision)
        model = build_vlm(tower, tokenizer, r.grid, r.lm_hidden, r.lm_layers, r.lm_heads,
                          r.image_source)
        parent = {"vision": r.vision, "vision_adapted": False, "stages": [], "grid": r.grid,
                  "lm": {"hidden": r.lm_hidden, "layers": r.lm_layers, "heads": r.lm_heads}}
        return model, tokenizer, processor, parent
    if recipe(r.init_from).shared_across_seeds:
        root = shared_root
    directory = checkpoint_dir(r.init_from, root)
    if not (directory / "card.json").is_file():
        raise FileNotFoundError(f"{name} starts from {r.init_from}, which has no checkpoint at "
                                f"{directory}; train it first (`python -m qgnb.pvp.train "
                                f"{r.init_from}" + ("`)" if recipe(r.init_from).shared_across_seeds
                                                     else f" --seed {r.seed}`)"))
    parent = card(r.init_from, root)
    model, tokenizer, processor = load_directory(directory)
    if r.init_lm_only:
        tower, processor = vision_tower(parent["vision"])
        lm = parent["lm"]
        reseed()
        fresh = build_vlm(tower, tokenizer, parent["grid"], lm["hidden"], lm["layers"],
                          lm["heads"], r.image_source)
        fresh.lm.load_state_dict(model.lm.state_dict())
        model = fresh
        parent = {**parent, "vision_adapted": False}
    return model, tokenizer, processor, parent


def _batch_queries(r: Recipe, samples, rng: np.random.Generator) -> list[list[tuple[str, str]]]:
    """The step's ``(prompt, answer)`` pairs, ``queries_per_image`` per sample."""
    out = []
    for sample in samples:
        if r.task == "pvp":
            cells = reconstruct_cells(target_grid(sample.image, r.grid), r.queries_per_image,
                                      rng, r.detail_share)
            out.append(reconstruct_queries(sample.image, r.grid, cells))
        else:
            grid_mask = mask_grid(sample.mask, r.grid)
            cells = segmentation_cells(grid_mask, r.queries_per_image, rng)
            out.append(segmentation_queries(sample.phrase, grid_mask, cells))
    return out


def optimiser(model: WiredVLM, learning_rate: float, warmup_steps: int, total: int,
              vision_learning_rate: float | None = None):
    """The trainable parameters, AdamW (no weight decay) over them, and a cosine schedule with
    linear warm-up over ``total`` steps: the settings of every PVP run. A trainable vision
    tower gets ``vision_learning_rate`` when given.

    >>> from qgnb.pvp.model import random_vision_tower
    >>> model = build_vlm(random_vision_tower()[0], build_tokenizer([], locations=8), 8)
    >>> _, opt, _ = optimiser(model, 1e-3, 10, 100, vision_learning_rate=1e-4)
    >>> [group["initial_lr"] for group in opt.param_groups]
    [0.001, 0.0001]
    """
    params = [p for p in model.parameters() if p.requires_grad]
    vision = {id(p) for p in model.vision.parameters()}
    groups = [{"params": [p for p in params if id(p) not in vision]}]
    if vision_learning_rate is not None and any(id(p) in vision for p in params):
        groups.append({"params": [p for p in params if id(p) in vision],
                       "lr": vision_learning_rate})
    else:
        groups[0]["params"] = params
    optimizer = torch.optim.AdamW(groups, lr=learning_rate, weight_decay=0.0)
    return params, optimizer, get_cosine_schedule_with_warmup(optimizer, warmup_steps, total)


def optimise_step(model: WiredVLM, params, optimizer, scheduler, pixels: torch.Tensor,
                  ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> float:
    """One training step on a batch (gradients clipped to norm 1); returns the loss."""
    model.train()
    loss, _ = model(pixels, ids, mask, labels)
    optimizer.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    scheduler.step()
    return loss.item()


def evaluate(r: Recipe, model: WiredVLM, tokenizer, processor, split: str, n: int, seed: int,
             progress: bool = False) -> dict[str, float]:
    """Held-out figures: reconstruction errors over all cells and over object cells (PVP), or
    cIoU, mean IoU and the per-sample intersections and unions at grid resolution
    (segmentation), on ``shapes(split, n, seed)``.

    >>> from qgnb.pvp.model import random_vision_tower
    >>> tok = build_tokenizer(SHAPES_VOCABULARY, 8); tower, processor = random_vision_tower()
    >>> model = build_vlm(tower, tok, 8)
    >>> evaluate(recipe("seg-frozen-encoder"), model, tok, processor, "id", 2, 0)["union"]
    ... # doctest: +ELLIPSIS
    [...]
    """
    samples = [s for s in shapes(split, n, seed)]
    if r.task == "pvp":
        return reconstruction_error(model, tokenizer, processor, [s.image for s in samples],
                                    [s.mask for s in samples], progress=progress)
    masks, unparseable = predict_masks(model, tokenizer, processor, samples, progress)
    targets = [mask_grid(s.mask, model.grid) for s in samples]
    inter, union = intersections_unions(masks, targets)
    return {"ciou": ciou(masks, targets), "mean_iou": mean_iou(masks, targets),
            "unparseable": unparseable, "intersection": inter.tolist(), "union": union.tolist()}


def train(name: str, root: Path | None = None, work: Path = Path("build/pvp-work"),
          steps: int | None = None, vision: str | None = None, seed: int = 0,
          fresh: bool = False, results: Path | None = RESULTS,
          shared_root: Path | None = None) -> dict[str, Any]:
    """Train checkpoint ``name`` from its recipe with seed ``seed``, save it under ``root``
    (default ``seed_root(seed)``), return its card; for a seed other than 0 the card is also
    copied to ``results/seed-S/NAME.json`` (unless ``results`` is None). A checkpoint shared
    across seeds (stage 0) is trained with seed 0 only and started from in ``shared_root``
    (default: ``root`` for seed 0, else seed 0's folder).

    ``steps`` overrides the recipe's step count and ``vision`` its vision tower source (e.g.
    ``"random:0"``), both for trials; a checkpoint with ``init_from`` inherits its parent's
    tower. A saved state in ``work`` from another recipe is an error unless ``fresh``.

    >>> train("pvp-stage0")  # doctest: +SKIP
    """
    r = replace(recipe(name), seed=seed)
    if r.shared_across_seeds and seed != 0:
        raise ValueError(f"{name} is trained once, with seed 0, and shared by every seed; "
                         f"train it without --seed")
    if vision is not None:
        r = replace(r, vision=vision)
    root = seed_root(seed) if root is None else Path(root)
    if shared_root is None:
        shared_root = root if seed == 0 else seed_root(0)
    total = steps if steps is not None else r.steps
    torch.set_num_threads(1)
    model, tokenizer, processor, parent = _initial_model(r, name, root, shared_root)
    apply_regime(model, r.regime)
    params, optimizer, scheduler = optimiser(model, r.learning_rate, r.warmup_steps, total,
                                             r.vision_learning_rate)
    resume = Path(work) / f"seed-{seed}" / f"{name}.pt"
    identity = {"recipe": asdict(r), "steps": total}
    start, curve, elapsed = 0, [], 0.0
    if resume.is_file() and not fresh:
        state = torch.load(resume, weights_only=False)
        if state.get("identity") != identity:
            raise ValueError(f"{resume} was saved by another recipe ({state.get('identity')}, "
                             f"now {identity}); rerun with --fresh to start over")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, curve, elapsed = state["step"], state["curve"], state["elapsed"]
    train_set = shapes("train", r.train_images, r.seed)
    curve_set = shapes("id", CURVE_IMAGES, 1)
    t0, losses = time.time() - elapsed, []
    for step in tqdm(range(start, total), desc=name, initial=start, total=total):
        rng = np.random.default_rng([*stage_seed(r, name), step])
        samples = [train_set[int(i)] for i in rng.choice(len(train_set), r.images_per_step,
                                                          replace=False)]
        tensors = query_tensors(tokenizer, _batch_queries(r, samples, rng))
        losses.append(optimise_step(model, params, optimizer, scheduler,
                                    pixel_values(processor, [s.image for s in samples]), *tensors))
        if (step + 1) % r.eval_every == 0 or step + 1 == total:
            scores = _curve_scores(r, model, tokenizer, processor, curve_set)
            point = {"step": step + 1, "loss": float(np.mean(losses)), **scores}
            curve.append(point)
            tqdm.write(f"{name} {point}")
            losses = []
            _save_state(resume, {"identity": identity, "model": model.state_dict(),
                                 "optimizer": optimizer.state_dict(),
                                 "scheduler": scheduler.state_dict(), "step": step + 1,
                                 "curve": curve, "elapsed": time.time() - t0})
    wall = time.time() - t0
    info = {
        "name": name, "command": f"python -m qgnb.pvp.train {name}" + (
            f" --seed {seed}" if seed else ""), "recipe": asdict(r), "seed": seed,
        "steps": total, "vision": parent["vision"],
        "vision_adapted": parent["vision_adapted"] or "vision" in r.regime.split("+"),
        "stages": [*parent["stages"], {"name": name, "task": r.task, "regime": r.regime,
                                       "steps": total}],
        "grid": parent["grid"], "image_source": r.image_source, "lm": parent["lm"],
        "trainable_parameters": trainable_parameters(model),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(wall, 1), "threads": 1, "curve": curve,
    }
    directory = checkpoint_dir(name, root)
    save(model, tokenizer, {**info, "check": {}, "eval": {}}, directory)
    # Scores come from the saved-and-reloaded model, exactly what users (and tests) load.
    model, tokenizer, processor = load_directory(directory)
    info = card(name, root)
    info["eval"] = {split: evaluate(r, model, tokenizer, processor, split, EVAL["n"],
                                    EVAL["seed"], progress=True) for split in ("id", "ood")}
    info["check"] = {**CHECK, **evaluate(r, model, tokenizer, processor, CHECK["split"],
                                         CHECK["n"], CHECK["seed"])}
    save(model, tokenizer, info, directory)
    if seed and results is not None:
        (Path(results) / f"seed-{seed}").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(directory / "card.json", Path(results) / f"seed-{seed}" / f"{name}.json")
    return info


def _curve_scores(r: Recipe, model: WiredVLM, tokenizer, processor, samples
                  ) -> dict[str, float]:
    """The held-out scores recorded along training (no per-sample lists)."""
    if r.task == "pvp":
        return reconstruction_error(model, tokenizer, processor, [s.image for s in samples],
                                    [s.mask for s in samples])
    masks, unparseable = predict_masks(model, tokenizer, processor, samples)
    targets = [mask_grid(s.mask, model.grid) for s in samples]
    return {"ciou": ciou(masks, targets), "mean_iou": mean_iou(masks, targets),
            "unparseable": unparseable}


def _save_state(path: Path, state: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    torch.save(state, partial)
    partial.replace(path)  # atomic: a kill during the write keeps the previous state


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="checkpoint names (see qgnb.pvp.recipes)")
    parser.add_argument("--seed", type=int, default=0,
                        help="training seed (0: the shipped checkpoints)")
    parser.add_argument("--root", type=Path, default=None,
                        help="checkpoints folder (default: shipped for seed 0, else build/)")
    parser.add_argument("--work", type=Path, default=Path("build/pvp-work"),
                        help="where resumable training state is kept")
    parser.add_argument("--steps", type=int, default=None, help="override the step count")
    parser.add_argument("--vision", default=None,
                        help="override the vision tower source, e.g. random:0 or pinned")
    parser.add_argument("--fresh", action="store_true",
                        help="ignore saved training state and start over")
    args = parser.parse_args(argv)
    for name in args.names:
        info = train(name, args.root, args.work, args.steps, args.vision, args.seed, args.fresh)
        print(name, {split: {k: v for k, v in scores.items() if not isinstance(v, list)}
                     for split, scores in info["eval"].items()},
              {"seconds": info["train_seconds"]})


if __name__ == "__main__":
    main()
