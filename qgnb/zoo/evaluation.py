"""Held-out scores of the zoo's models: image-text matching and expression retrieval.

- Matching (BLIP): each held-out sample gives one positive pair (its image, its phrase) and
  one negative pair (its image, a hard negative: the phrase with one attribute or the relation
  changed so that it refers to nothing in the scene, drawn with a fixed seed per sample).
  Accuracy over the balanced pairs; "match" when P(match) > 0.5.
- Retrieval (CLIP, zero-shot): each held-out image against its expression and all of that
  expression's hard negatives; a hit when the true expression has the highest similarity.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from qgnb.data.sample import Sample
from qgnb.data.shapes import hard_negatives

NEGATIVE_SEED = 12345


def matching_pairs(samples: Sequence[Sample]) -> tuple[list[int], list[str], list[bool]]:
    """Balanced pairs: (sample index, phrase, is a match), a positive then a negative each.

    >>> from qgnb.data import shapes
    >>> index, phrases, labels = matching_pairs(shapes("id", 2))
    >>> index, labels
    ([0, 0, 1, 1], [True, False, True, False])
    """
    index, phrases, labels = [], [], []
    for i, sample in enumerate(samples):
        negatives = hard_negatives(sample.meta)
        if not negatives:
            raise ValueError(f"sample {sample.id}: no hard negative for {sample.phrase!r}")
        rng = np.random.default_rng([NEGATIVE_SEED, i])
        index += [i, i]
        phrases += [sample.phrase, negatives[int(rng.integers(len(negatives)))]]
        labels += [True, False]
    return index, phrases, labels


@torch.no_grad()
def match_probabilities(model, processor, images, phrases: Sequence[str]) -> torch.Tensor:
    """P(match) of the BLIP ITM head for each (image, phrase) pair.

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    """
    inputs = processor(images=list(images), text=list(phrases), padding=True, truncation=True,
                       return_tensors="pt")
    logits = model(input_ids=inputs["input_ids"], pixel_values=inputs["pixel_values"],
                   attention_mask=inputs["attention_mask"], use_itm_head=True).itm_score
    return logits.softmax(dim=1)[:, 1]


def matching_accuracy(model, processor, samples: Sequence[Sample], batch_size: int = 100) -> float:
    """Image-text matching accuracy of a BLIP model on balanced pairs of ``samples``.

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    >>> matching_accuracy(*load_model("shapes-blip-base"), shapes("id", 200))  # doctest: +SKIP
    """
    index, phrases, labels = matching_pairs(samples)
    images = [sample.image for sample in samples]
    correct = 0
    for start in tqdm(range(0, len(phrases), batch_size), desc="matching", leave=False):
        chunk = range(start, min(start + batch_size, len(phrases)))
        probabilities = match_probabilities(model, processor, [images[index[k]] for k in chunk],
                                            [phrases[k] for k in chunk])
        decided = (probabilities > 0.5).tolist()
        correct += sum(d == labels[k] for d, k in zip(decided, chunk, strict=True))
    return correct / len(phrases)


@torch.no_grad()
def retrieval_accuracy(model, processor, samples: Sequence[Sample]) -> float:
    """Zero-shot retrieval accuracy of a CLIP model: the true expression ranked first among
    itself and its hard negatives.

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    >>> retrieval_accuracy(*load_model("shapes-clip"), shapes("id", 200))  # doctest: +SKIP
    """
    hits = 0
    for sample in tqdm(samples, desc="retrieval", leave=False):
        candidates = [sample.phrase, *hard_negatives(sample.meta)]
        hits += int(phrase_similarities(model, processor, sample.image, candidates)
                    .argmax()) == 0
    return hits / len(samples)


@torch.no_grad()
def image_embeddings(model, processor, images) -> torch.Tensor:
    """A CLIP model's L2-normalised embeddings of ``images``, (N, D).

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    """
    pixels = processor(images=list(images), return_tensors="pt")["pixel_values"]
    return F.normalize(model.get_image_features(pixel_values=pixels).pooler_output, dim=-1)


@torch.no_grad()
def phrase_embeddings(model, processor, phrases: Sequence[str]) -> torch.Tensor:
    """A CLIP model's L2-normalised embeddings of ``phrases``, (N, D).

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    """
    tokens = processor(text=list(phrases), padding=True, truncation=True, return_tensors="pt")
    return F.normalize(model.get_text_features(input_ids=tokens["input_ids"],
                                               attention_mask=tokens["attention_mask"])
                       .pooler_output, dim=-1)


def phrase_similarities(model, processor, image, phrases: Sequence[str]) -> torch.Tensor:
    """Cosine similarity of a CLIP model's embedding of ``image`` to each of ``phrases``.

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    """
    return phrase_embeddings(model, processor, phrases) @ image_embeddings(
        model, processor, [image])[0]


def heldout_score(model, processor, family: str, samples: Sequence[Sample]) -> float:
    """The held-out bar's score: matching accuracy (BLIP) or retrieval accuracy (CLIP).

    >>> from qgnb.zoo import load_model  # doctest: +SKIP
    """
    if family == "clip":
        return retrieval_accuracy(model, processor, samples)
    return matching_accuracy(model, processor, samples)
