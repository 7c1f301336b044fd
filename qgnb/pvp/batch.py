"""Turn ``(prompt, answer)`` text pairs into padded token tensors for the tiny VLM."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image

from qgnb.pvp.model import IGNORE
from qgnb.pvp.tokenizer import PVPTokenizer


def query_tensors(
    tokenizer: PVPTokenizer, queries: Sequence[Sequence[tuple[str, str]]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``ids``, ``attention_mask`` and ``labels`` (each ``B x Q x T``) for ``Q`` queries per
    image. A sequence is prompt, answer, ``<eos>``, right-padded; only the answer and
    ``<eos>`` are labelled (``IGNORE`` elsewhere), so the loss scores answer tokens only.

    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> tok = build_tokenizer([])
    >>> ids, mask, labels = query_tensors(tok, [[("loc:", "1")]])
    >>> tok.tokenizer.decode(ids[0, 0].tolist()), labels[0, 0].tolist()
    ('loc : 1 <eos>', [-100, -100, 14, 2])
    """
    counts = {len(q) for q in queries}
    if len(counts) != 1:
        raise ValueError(f"every image needs the same number of queries, got counts {counts}")
    rows = []
    for image_queries in queries:
        for prompt, answer in image_queries:
            p, a = tokenizer.encode(prompt), tokenizer.encode(answer) + [tokenizer.eos_id]
            rows.append((p + a, [IGNORE] * len(p) + a))
    length = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), length), tokenizer.pad_id, dtype=torch.long)
    labels = torch.full((len(rows), length), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(rows), length), dtype=torch.long)
    for k, (row_ids, row_labels) in enumerate(rows):
        ids[k, : len(row_ids)] = torch.tensor(row_ids)
        labels[k, : len(row_labels)] = torch.tensor(row_labels)
        mask[k, : len(row_ids)] = 1
    shape = (len(queries), counts.pop(), length)
    return ids.reshape(shape), mask.reshape(shape), labels.reshape(shape)


def prompt_tensor(tokenizer: PVPTokenizer, prompts: Sequence[str]) -> torch.Tensor:
    """``Q x T`` ids of prompts that must all have the same token length (one image's queries).

    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> prompt_tensor(build_tokenizer([]), ["loc: [1,2]", "loc: [3,4]"]).shape
    torch.Size([2, 7])
    """
    encoded = [tokenizer.encode(p) for p in prompts]
    lengths = {len(e) for e in encoded}
    if len(lengths) != 1:
        raise ValueError(f"prompts must have one token length, got lengths {sorted(lengths)}")
    return torch.tensor(encoded, dtype=torch.long)


def pixel_values(processor, images: Sequence[Image.Image]) -> torch.Tensor:
    """The vision tower's input for PIL images, through the tower's image processor.

    >>> from qgnb.pvp.model import random_vision_tower
    >>> pixel_values(random_vision_tower()[1], [Image.new("RGB", (64, 64))]).shape
    torch.Size([1, 3, 64, 64])
    """
    arrays = [np.array(image.convert("RGB")) for image in images]
    return processor(images=arrays, return_tensors="pt")["pixel_values"]
