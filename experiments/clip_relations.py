"""Where CLIP's relation failure lives: the text side, the image side, or both.

On ``id`` scenes of a seed no other figure uses whose phrase says "left of" or "right of":
- text: cosine of the true phrase's embedding to the same phrase with the relation swapped,
  against its cosine to phrases that change an attribute instead;
- image: cosine of the image embedding to the embedding of the mirrored image;
- use: similarity of the true phrase minus the swapped phrase, on the image (should be > 0)
  and on the mirrored image, where the swapped phrase is the true one (should be < 0).
A model that reads relations flips the sign; one that ignores them prefers the same phrase on
both. Results go to ``experiments/zoo_variant_results/NAME-relations.json``.

    python experiments/clip_relations.py            # the shipped shapes-clip
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from PIL import ImageOps

from qgnb.data import shapes
from qgnb.data.shapes import hard_negatives
from qgnb.zoo import load_model
from qgnb.zoo.evaluation import image_embeddings, phrase_embeddings

RESULTS = Path(__file__).resolve().parent / "zoo_variant_results"
SWAP = {"left of": "right of", "right of": "left of"}


@torch.no_grad()
def probe(model, processor, samples) -> dict:
    """The three measurements above on ``samples`` (each with a left/right phrase)."""
    swapped_cos, attribute_cos, mirror_cos, margin, mirrored_margin = [], [], [], [], []
    for sample in samples:
        relation = sample.meta["relation"][0]
        swapped = sample.phrase.replace(relation, SWAP[relation])
        # Hard negatives that keep the relation: they change an attribute of the target.
        changed = [n for n in hard_negatives(sample.meta) if relation in n][:3]
        text = phrase_embeddings(model, processor, [sample.phrase, swapped, *changed])
        swapped_cos.append(float(text[0] @ text[1]))
        attribute_cos += [float(text[0] @ t) for t in text[2:]]
        image = image_embeddings(model, processor, [sample.image, ImageOps.mirror(sample.image)])
        mirror_cos.append(float(image[0] @ image[1]))
        margin.append(float(image[0] @ text[0] - image[0] @ text[1]))
        mirrored_margin.append(float(image[1] @ text[0] - image[1] @ text[1]))
    margin, mirrored_margin = np.array(margin), np.array(mirrored_margin)
    return {
        "phrases": len(samples),
        "text cos, relation swapped": round(float(np.mean(swapped_cos)), 4),
        "text cos, attribute changed": round(float(np.mean(attribute_cos)), 4),
        "image cos, mirrored image": round(float(np.mean(mirror_cos)), 4),
        "true minus swapped, mean": round(float(margin.mean()), 4),
        "true minus swapped, share > 0": round(float(np.mean(margin > 0)), 3),
        "on mirrored images, mean": round(float(mirrored_margin.mean()), 4),
        "on mirrored images, share < 0": round(float(np.mean(mirrored_margin < 0)), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", default="shapes-clip")
    parser.add_argument("--seed", type=int, default=778)
    parser.add_argument("--scenes", type=int, default=1500, help="id scenes searched")
    args = parser.parse_args()
    torch.set_num_threads(1)
    model, processor = load_model(args.name)
    model.eval()
    samples = [s for s in shapes("id", args.scenes, seed=args.seed)
               if s.meta["relation"] and s.meta["relation"][0] in SWAP]
    result = {"model": args.name,
              "scenes": f"shapes('id', {args.scenes}, seed={args.seed}), left/right phrases",
              **probe(model, processor, samples)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}-relations.json").write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
