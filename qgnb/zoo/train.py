"""Train a zoo model from its fixed seed: ``python -m qgnb.zoo.train NAME``.

Stages (see `qgnb.zoo.configs.Recipe`): ``itc`` (contrastive warm-up; identical phrases are
positives), ``itm`` (contrastive + image-text matching, one negative phrase per scene: a hard
negative that changes one attribute or the relation, sometimes another scene's phrase), and
``amc`` (matching + contrastive + attention mask consistency on the GradCAM map read where the
reading rule reads the model it starts from, `qgnb.zoo.reading`). A recipe with an
``attribute_weight`` or ``relation_weight`` also trains linear heads that name each object's
shape and size and each pair's relations from the vision tower (`qgnb.zoo.attributes`), and a
CLIP recipe with a ``layout_weight`` a readout of each object's centre from the image
embedding; they are dropped at save. The model, heads, optimizer and log are saved every
``SAVE_EVERY`` steps under ``runs/zoo/NAME/``; a rerun resumes from there. The finished
checkpoint, its training log (CSV) and ``training.json`` go to ``qgnb/zoo/checkpoints/NAME/``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from qgnb.explain.base import upsample_to_images
from qgnb.explain.cross_attention import cross_attention_gradcam
from qgnb.zoo.attributes import AttributeHeads
from qgnb.zoo.batches import Batch, ScenePool, draw_batch, scene_pool
from qgnb.zoo.configs import Recipe, ZooSpec, spec
from qgnb.zoo.losses import amc_loss, itc_loss, itm_loss
from qgnb.zoo.models import checkpoint_dir, load_model, new_model, save_checkpoint
from qgnb.zoo.reading import Reading, stored_reading

SAVE_EVERY = 200
LOG_EVERY = 25
TEMPERATURE = 0.07
RUNS = Path("runs") / "zoo"
LOSSES = ("itc", "itm", "amc", "attribute", "relation", "layout")
ACCURACIES = ("itm_accuracy", "shape_accuracy")
LOG_COLUMNS = ("step", "stage", "learning_rate", *LOSSES, *ACCURACIES, "seconds")


def learning_rate(zoo_spec: ZooSpec, step: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak at the last step.

    >>> round(learning_rate(spec("shapes-clip"), 0), 8)
    5e-06
    """
    recipe = zoo_spec.recipe
    if step < recipe.warmup_steps:
        return recipe.learning_rate * (step + 1) / recipe.warmup_steps
    progress = (step - recipe.warmup_steps) / max(1, zoo_spec.total_steps - recipe.warmup_steps)
    return recipe.learning_rate * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


def stage_at(zoo_spec: ZooSpec, step: int) -> str:
    """The stage that step ``step`` belongs to.

    >>> stage_at(spec("shapes-blip-base"), 0)
    'itc'
    """
    end = 0
    for stage, steps in zoo_spec.recipe.stages:
        end += steps
        if step < end:
            return stage
    raise ValueError(f"step {step} is past the last step {end - 1} of {zoo_spec.name}")


class PhraseTokens:
    """The processor's tokenizer with a cache: each distinct phrase is tokenized once.

    (The tokenizer costs more per batch than a training step of these small models.)

    >>> from qgnb.zoo.models import new_processor
    >>> PhraseTokens(new_processor("blip"))(["the circle", "the red circle"])["attention_mask"]
    tensor([[1, 1, 1, 1, 0],
            [1, 1, 1, 1, 1]])
    """

    def __init__(self, processor) -> None:
        self.tokenizer = processor.tokenizer
        self.cache: dict[str, list[int]] = {}

    def __call__(self, phrases: list[str]) -> dict[str, torch.Tensor]:
        for phrase in phrases:
            if phrase not in self.cache:
                self.cache[phrase] = self.tokenizer(phrase, truncation=True)["input_ids"]
        rows = [self.cache[phrase] for phrase in phrases]
        width = max(len(row) for row in rows)
        input_ids = torch.full((len(rows), width), self.tokenizer.pad_token_id)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):  # right padding, as the tokenizer pads
            input_ids[i, : len(row)] = torch.tensor(row)
            attention_mask[i, : len(row)] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class PixelValues:
    """The processor's pixel values of pool images with a cache: each scene is processed once.

    (Processing 64 images costs about as much as a third of a training step; a batch is the
    stack of its scenes' cached rows, the same tensor the processor returns for the batch.)

    >>> from qgnb.zoo.models import new_processor
    >>> from qgnb.zoo.batches import scene_pool
    >>> pool = scene_pool("train", 3, 0)
    >>> pixels = PixelValues(new_processor("blip"), pool)
    >>> tuple(pixels([2, 0, 2]).shape), len(pixels.cache)
    ((3, 3, 64, 64), 2)
    """

    def __init__(self, processor, pool: ScenePool) -> None:
        self.image_processor = processor.image_processor
        self.pool = pool
        self.cache: dict[int, torch.Tensor] = {}

    def __call__(self, indices: list[int]) -> torch.Tensor:
        new = list(dict.fromkeys(i for i in indices if i not in self.cache))
        if new:
            values = self.image_processor([self.pool.images[i] for i in new],
                                          return_tensors="pt")["pixel_values"]
            self.cache.update(zip(new, values, strict=True))
        return torch.stack([self.cache[i] for i in indices])


def _attribute_losses(heads: AttributeHeads | None, image_embeds: torch.Tensor, batch: Batch,
                      zoo_spec: ZooSpec) -> dict:
    # The tower's last hidden states without [CLS]: one token per patch, row-major.
    if heads is None:
        return {}
    recipe = zoo_spec.recipe
    found = heads(image_embeds[:, 1:], batch.metas, recipe.image_size, recipe.patch_size)
    losses = {"attribute": recipe.attribute_weight * found["attribute"],
              "shape_accuracy": found["shape_accuracy"]}
    if "relation" in found:
        losses["relation"] = recipe.relation_weight * found["relation"]
    return losses


def _blip_losses(model, pixel_values: torch.Tensor, tokens: PhraseTokens, batch: Batch,
                 stage: str, zoo_spec: ZooSpec, heads: AttributeHeads | None = None,
                 reading: Reading | None = None) -> dict:
    positives = tokens(batch.phrases)
    image_embeds = model.vision_model(pixel_values=pixel_values).last_hidden_state
    text_embeds = model.text_encoder(**positives).last_hidden_state
    image_features = F.normalize(model.vision_proj(image_embeds[:, 0]), dim=-1)
    text_features = F.normalize(model.text_proj(text_embeds[:, 0]), dim=-1)
    losses = {"itc": itc_loss(image_features, text_features, batch.same_text(), TEMPERATURE),
              **_attribute_losses(heads, image_embeds, batch, zoo_spec)}
    if stage == "itc":
        return losses
    pairs = tokens(batch.phrases + batch.negatives)
    both = torch.cat([image_embeds, image_embeds])
    hidden = model.text_encoder(**pairs, encoder_hidden_states=both,
                                encoder_attention_mask=torch.ones(both.shape[:2],
                                                                  dtype=torch.long))
    logits = model.itm_head(hidden.last_hidden_state[:, 0])
    matches = torch.arange(len(logits)) < len(batch.phrases)
    losses["itm"] = itm_loss(logits, matches)
    losses["itm_accuracy"] = ((logits[:, 1] > logits[:, 0]) == matches).float().mean()
    if stage == "amc":
        if reading is None:
            raise ValueError("the amc stage needs the reading (layer, token rows) it trains")
        recipe = zoo_spec.recipe
        grids = cross_attention_gradcam(model, pixel_values, positives["input_ids"],
                                        positives["attention_mask"], layer=reading.layer,
                                        tokens=reading.tokens, create_graph=True)
        maps = upsample_to_images(grids, [tuple(batch.regions.shape[1:])] * len(grids))
        losses["amc"] = recipe.amc_weight * amc_loss(maps, batch.regions, recipe.amc_margin,
                                                     recipe.amc_share_weight)
    return losses


def _clip_losses(model, pixel_values: torch.Tensor, tokens: PhraseTokens, batch: Batch,
                 zoo_spec: ZooSpec, heads: AttributeHeads | None = None) -> dict:
    texts = tokens(batch.phrases + batch.negatives)
    # `get_image_features`, unrolled so that the tower's hidden states reach the heads.
    vision = model.vision_model(pixel_values=pixel_values)
    image_features = F.normalize(model.visual_projection(vision.pooler_output), dim=-1)
    text_features = F.normalize(model.get_text_features(**texts).pooler_output, dim=-1)
    size = len(batch.phrases)
    positives = text_features[:size]
    negatives = text_features[size:].reshape(-1, size, text_features.shape[1])  # (K, B, D)
    losses = {"itc": itc_loss(image_features, positives, batch.same_text(), TEMPERATURE),
              **_attribute_losses(heads, vision.last_hidden_state, batch, zoo_spec)}
    if zoo_spec.recipe.layout_weight > 0:
        losses["layout"] = zoo_spec.recipe.layout_weight * heads.layout_loss(image_features,
                                                                             batch.metas)
    # Each image also against its own hard negatives (phrases one change away) in one softmax.
    candidates = torch.cat([positives[None], negatives])  # (1 + K, B, D)
    pair_logits = (candidates * image_features[None]).sum(2).t() / TEMPERATURE  # (B, 1 + K)
    losses["itm"] = F.cross_entropy(pair_logits, torch.zeros(size, dtype=torch.long))
    losses["itm_accuracy"] = (pair_logits.argmax(1) == 0).float().mean()
    return losses


def _initial_model(zoo_spec: ZooSpec):
    if zoo_spec.recipe.init_from is not None:
        return load_model(zoo_spec.recipe.init_from)
    return new_model(zoo_spec, seed=zoo_spec.recipe.seed)


def train(name: str, *, fresh: bool = False, runs: Path = RUNS, recipe: Recipe | None = None,
          directory: Path | None = None) -> Path:
    """Train zoo model ``name`` by its recipe, resuming from ``runs/zoo/NAME`` unless ``fresh``.

    An experiment passes ``recipe`` (trained instead of the shipped one) and ``directory``
    (where the checkpoint goes instead of the package's, which stays untouched). Returns the
    checkpoint directory it wrote.

    >>> train("shapes-clip")  # doctest: +SKIP
    """
    zoo_spec = spec(name) if recipe is None else replace(spec(name), recipe=recipe)
    recipe = zoo_spec.recipe
    torch.set_num_threads(recipe.threads)
    model, processor = _initial_model(zoo_spec)
    model.train()
    heads = None
    if recipe.attribute_weight > 0 or recipe.relation_weight > 0 or recipe.layout_weight > 0:
        torch.manual_seed(recipe.seed)
        layout_dim = zoo_spec.architecture.embed_dim if recipe.layout_weight > 0 else None
        heads = AttributeHeads(zoo_spec.architecture.hidden, layout_dim).train()
    trained = [*model.parameters(), *(heads.parameters() if heads is not None else ())]
    optimizer = torch.optim.AdamW(trained, lr=recipe.learning_rate, weight_decay=0.01)
    reading = None
    if any(stage == "amc" for stage, _ in recipe.stages):
        if recipe.init_from is None:
            raise ValueError(f"{name}: an amc stage needs init_from (the reading is that "
                             "model's)")
        reading = stored_reading(recipe.init_from)
    state_file = runs / name / "resume.pt"
    start, log, elapsed = 0, [], 0.0
    if state_file.is_file() and not fresh:
        state = torch.load(state_file, weights_only=False)
        if state["spec"] != asdict(zoo_spec):
            raise ValueError(f"{state_file} was saved for another recipe; rerun with --fresh")
        model.load_state_dict(state["model"])
        if heads is not None:
            heads.load_state_dict(state["heads"])
        optimizer.load_state_dict(state["optimizer"])
        start, log, elapsed = state["step"], state["log"], state["seconds"]
    pool = scene_pool("train", recipe.train_scenes, recipe.seed, recipe.image_size)
    tokens = PhraseTokens(processor)
    pixels = PixelValues(processor, pool)
    sums: dict[str, float] = {}
    counts: dict[str, int] = {}
    began = time.perf_counter() - elapsed
    progress = tqdm(range(start, zoo_spec.total_steps), desc=name, initial=start,
                    total=zoo_spec.total_steps)
    for step in progress:
        stage = stage_at(zoo_spec, step)
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(zoo_spec, step)
        batch = draw_batch(pool, recipe.batch_size, recipe.seed, step,
                           recipe.negatives_per_scene, recipe.relation_share)
        if zoo_spec.architecture.family == "clip":
            losses = _clip_losses(model, pixels(batch.indices), tokens, batch, zoo_spec, heads)
        else:
            losses = _blip_losses(model, pixels(batch.indices), tokens, batch, stage, zoo_spec,
                                  heads, reading)
        total = sum(v for k, v in losses.items() if k in LOSSES)
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        for key, value in losses.items():
            sums[key] = sums.get(key, 0.0) + float(value.detach())
            counts[key] = counts.get(key, 0) + 1
        if (step + 1) % LOG_EVERY == 0:
            row = {"step": step + 1, "stage": stage, "learning_rate": learning_rate(zoo_spec, step),
                   "seconds": round(time.perf_counter() - began, 1)}
            row.update({k: sums[k] / counts[k] if k in sums else float("nan")
                        for k in (*LOSSES, *ACCURACIES)})
            log.append(row)
            sums, counts = {}, {}
            progress.set_postfix({k: f"{row[k]:.3f}" for k in (*LOSSES, *ACCURACIES)
                                  if not math.isnan(row[k])})
        if (step + 1) % SAVE_EVERY == 0 or step + 1 == zoo_spec.total_steps:
            _save_state(state_file, zoo_spec, model, heads, optimizer, step + 1, log,
                        time.perf_counter() - began)
    seconds = time.perf_counter() - began
    return _write_checkpoint(zoo_spec, model, processor, pool, log, seconds, reading,
                             directory or checkpoint_dir(name))


def _save_state(state_file: Path, zoo_spec: ZooSpec, model, heads: AttributeHeads | None,
                optimizer, step: int, log: list, seconds: float) -> None:
    state_file.parent.mkdir(parents=True, exist_ok=True)
    partial = state_file.with_suffix(".partial")
    torch.save({"spec": asdict(zoo_spec), "model": model.state_dict(),
                "heads": heads.state_dict() if heads is not None else None,
                "optimizer": optimizer.state_dict(), "step": step, "log": log,
                "seconds": seconds}, partial)
    partial.replace(state_file)  # atomic: a kill during the write keeps the previous state


def _write_checkpoint(zoo_spec: ZooSpec, model, processor, pool: ScenePool, log: list,
                      seconds: float, reading: Reading | None, directory: Path) -> Path:
    model.eval()
    save_checkpoint(model, processor, directory)
    with open(directory / "training_log.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=LOG_COLUMNS)
        writer.writeheader()
        for row in log:
            writer.writerow({k: (round(v, 5) if isinstance(v, float) else v)
                             for k, v in row.items()})
    training = {
        "name": zoo_spec.name,
        "family": zoo_spec.architecture.family,
        "notes": zoo_spec.notes,
        "data": {"split": "train", "n": len(pool), "seed": zoo_spec.recipe.seed},
        "architecture": asdict(zoo_spec.architecture),
        "recipe": asdict(zoo_spec.recipe),
        "steps": zoo_spec.total_steps,
        "amc_reading": asdict(reading) if reading is not None else None,
        "wall_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    (directory / "training.json").write_text(json.dumps(training, indent=2) + "\n")
    return directory


def main(argv: list[str] | None = None) -> None:
    """Command line: ``python -m qgnb.zoo.train NAME [--fresh]``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", help="zoo model name, e.g. shapes-blip-base")
    parser.add_argument("--fresh", action="store_true", help="ignore a saved partial run")
    args = parser.parse_args(argv)
    print(train(args.name, fresh=args.fresh))


if __name__ == "__main__":
    main()
