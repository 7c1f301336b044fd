"""Train a shipped PVP checkpoint from its recipe: ``python -m qgnb.pvp.train NAME``.

Resumable: every ``eval_every`` steps the run saves model, optimizer, scheduler, step and curve
to ``--work`` and a restarted run continues from there. Each step draws its images and query
cells from ``numpy.random.default_rng([seed, step])``, so a resumed run sees the same batches.
The curve records the training loss and the held-out reconstruction error (PVP) or cIoU
(segmentation) as steps go by.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from qgnb.data.shapes import SHAPES_VOCABULARY, shapes
from qgnb.pvp.batch import pixel_values, query_tensors
from qgnb.pvp.cards import CHECKPOINTS, checkpoint_dir, load_directory, save
from qgnb.pvp.model import TinyVLM, build_vlm, vision_tower
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


def _initial_model(r: Recipe, root: Path):
    """Model, tokenizer, processor and the parent's card (lineage) to start ``r`` from."""
    if r.init is not None:
        model, tokenizer, processor = load_directory(checkpoint_dir(r.init, root))
        parent = _load_card(root, r.init)
        return model, tokenizer, processor, parent
    tokenizer = build_tokenizer(SHAPES_VOCABULARY, r.grid if r.lookup == "wired" else 0)
    tower, processor = vision_tower(r.vision)
    torch.manual_seed(r.seed)
    model = build_vlm(r.lookup, tower, tokenizer, r.grid, r.lm_hidden, r.lm_layers, r.lm_heads)
    parent = {"vision": r.vision, "vision_adapted": False, "stages": []}
    return model, tokenizer, processor, parent


def _load_card(root: Path, name: str) -> dict[str, Any]:
    return json.loads((checkpoint_dir(name, root) / "card.json").read_text())


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


def optimiser(model: TinyVLM, learning_rate: float, warmup_steps: int, total: int):
    """The trainable parameters, AdamW (no weight decay) over them, and a cosine schedule with
    linear warm-up over ``total`` steps: the settings of every PVP run."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    return params, optimizer, get_cosine_schedule_with_warmup(optimizer, warmup_steps, total)


def optimise_step(model: TinyVLM, params, optimizer, scheduler, pixels: torch.Tensor,
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


def evaluate(r: Recipe, model: TinyVLM, tokenizer, processor, split: str, n: int, seed: int,
             progress: bool = False) -> dict[str, float]:
    """Held-out figures: reconstruction errors (PVP), or cIoU, mean IoU and the per-sample
    intersections and unions at grid resolution (segmentation), on ``shapes(split, n, seed)``.

    >>> from qgnb.pvp.model import lm_config, random_vision_tower
    >>> tok = build_tokenizer(SHAPES_VOCABULARY); tower, processor = random_vision_tower()
    >>> model = TinyVLM(tower, lm_config(tok.vocab_size, tok.eos_id), grid=4)
    >>> evaluate(recipe("seg-frozen-encoder"), model, tok, processor, "id", 2, 0)["union"]
    ... # doctest: +ELLIPSIS
    [...]
    """
    samples = [s for s in shapes(split, n, seed)]
    if r.task == "pvp":
        return reconstruction_error(model, tokenizer, processor, [s.image for s in samples],
                                    progress=progress)
    masks, unparseable = predict_masks(model, tokenizer, processor, samples, progress)
    targets = [mask_grid(s.mask, model.grid) for s in samples]
    inter, union = intersections_unions(masks, targets)
    return {"ciou": ciou(masks, targets), "mean_iou": mean_iou(masks, targets),
            "unparseable": unparseable, "intersection": inter.tolist(), "union": union.tolist()}


def train(name: str, root: Path = CHECKPOINTS, work: Path = Path("build/pvp-work"),
          steps: int | None = None, vision: str | None = None) -> dict[str, Any]:
    """Train checkpoint ``name`` from its recipe, save it under ``root``, return its card.

    ``steps`` overrides the recipe's step count and ``vision`` its vision tower source (e.g.
    ``"random:0"``), both for trials; a checkpoint with an ``init`` inherits its parent's tower.

    >>> train("pvp-stage1")  # doctest: +SKIP
    """
    r = recipe(name)
    if vision is not None:
        r = replace(r, vision=vision)
    total = steps if steps is not None else r.steps
    torch.set_num_threads(1)
    model, tokenizer, processor, parent = _initial_model(r, root)
    apply_regime(model, r.regime)
    params, optimizer, scheduler = optimiser(model, r.learning_rate, r.warmup_steps, total)
    resume = Path(work) / f"{name}.pt"
    start, curve, elapsed = 0, [], 0.0
    if resume.is_file():
        state = torch.load(resume, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        start, curve, elapsed = state["step"], state["curve"], state["elapsed"]
    train_set = shapes("train", r.train_images, r.seed)
    t0, losses = time.time() - elapsed, []
    for step in tqdm(range(start, total), desc=name, initial=start, total=total):
        rng = np.random.default_rng([r.seed, step])
        samples = [train_set[int(i)] for i in rng.choice(len(train_set), r.images_per_step,
                                                          replace=False)]
        tensors = query_tensors(tokenizer, _batch_queries(r, samples, rng))
        losses.append(optimise_step(model, params, optimizer, scheduler,
                                    pixel_values(processor, [s.image for s in samples]), *tensors))
        if (step + 1) % r.eval_every == 0 or step + 1 == total:
            scores = evaluate(r, model, tokenizer, processor, "id", CURVE_IMAGES, 1)
            point = {"step": step + 1, "loss": float(np.mean(losses)),
                     **{k: v for k, v in scores.items() if not isinstance(v, list)}}
            curve.append(point)
            tqdm.write(f"{name} {point}")
            losses = []
            resume.parent.mkdir(parents=True, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step + 1, "curve": curve,
                        "elapsed": time.time() - t0}, resume)
    wall = time.time() - t0
    info = {
        "name": name, "command": f"python -m qgnb.pvp.train {name}", "recipe": asdict(r),
        "steps": total, "vision": parent["vision"],
        "vision_adapted": parent["vision_adapted"] or "vision" in r.regime.split("+"),
        "stages": [*parent["stages"], {"name": name, "task": r.task, "regime": r.regime,
                                       "steps": total}],
        "grid": r.grid if r.init is None else parent["grid"],
        "lookup": r.lookup if r.init is None else parent["lookup"],
        "lm": {"hidden": r.lm_hidden if r.init is None else parent["lm"]["hidden"],
               "layers": r.lm_layers if r.init is None else parent["lm"]["layers"],
               "heads": r.lm_heads if r.init is None else parent["lm"]["heads"]},
        "trainable_parameters": trainable_parameters(model),
        "total_parameters": sum(p.numel() for p in model.parameters()),
        "train_seconds": round(wall, 1), "threads": 1, "curve": curve,
    }
    directory = checkpoint_dir(name, root)
    save(model, tokenizer, {**info, "check": {}, "eval": {}}, directory)
    # Scores come from the saved-and-reloaded model, exactly what users (and tests) load.
    model, tokenizer, processor = load_directory(directory)
    info["eval"] = {split: evaluate(r, model, tokenizer, processor, split, EVAL["n"],
                                    EVAL["seed"], progress=True) for split in ("id", "ood")}
    info["check"] = {**CHECK, **evaluate(r, model, tokenizer, processor, CHECK["split"],
                                         CHECK["n"], CHECK["seed"])}
    save(model, tokenizer, info, directory)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+", help="checkpoint names (see qgnb.pvp.recipes)")
    parser.add_argument("--root", type=Path, default=CHECKPOINTS, help="checkpoints folder")
    parser.add_argument("--work", type=Path, default=Path("build/pvp-work"),
                        help="where resumable training state is kept")
    parser.add_argument("--steps", type=int, default=None, help="override the step count")
    parser.add_argument("--vision", default=None,
                        help="override the vision tower source, e.g. random:0 or zoo:shapes-clip")
    args = parser.parse_args(argv)
    for name in args.names:
        info = train(name, args.root, args.work, args.steps, args.vision)
        print(name, {"eval": info["eval"], "seconds": info["train_seconds"]})


if __name__ == "__main__":
    main()
