"""What every explainer shares: the protocol, input checks, device choice, upsampling to images.

An explainer is a callable ``explainer(images, phrases) -> maps``: one heatmap per
(image, phrase) pair at the image's own resolution, a float tensor ``(N, H, W)`` when all
images share a size, else a list of ``(H_i, W_i)`` tensors.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch
import torch.nn.functional as F
from PIL import Image

Maps = torch.Tensor | list[torch.Tensor]


@runtime_checkable
class Explainer(Protocol):
    """``explainer(images, phrases) -> maps`` at image resolution (see the module docstring).

    ``config`` describes the explainer (class, checkpoint, layer, ...): the map store keys its
    runs on it, so two explainers with equal configs must give equal maps.
    """

    config: dict[str, Any]

    def __call__(self, images: Sequence[Image.Image], phrases: Sequence[str]) -> Maps: ...


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` as a ``torch.device``; ``None`` picks CUDA when available, else the CPU.

    >>> choose_device("cpu")
    device(type='cpu')
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def check_pairs(images: Sequence[Image.Image], phrases: Sequence[str]) -> None:
    """Raise ``ValueError`` unless ``images`` and ``phrases`` are equally long, non-empty lists
    of PIL images and non-empty strings; the message names the offending index.

    >>> from PIL import Image
    >>> check_pairs([Image.new("RGB", (4, 4))], ["a red square"])
    """
    if isinstance(phrases, str):
        raise ValueError("phrases must be a list of strings, one per image, got a single string")
    if len(images) != len(phrases):
        raise ValueError(f"got {len(images)} images but {len(phrases)} phrases; need one each")
    if len(images) == 0:
        raise ValueError("got no images to explain")
    for i, (image, phrase) in enumerate(zip(images, phrases, strict=True)):
        if not isinstance(image, Image.Image):
            raise ValueError(f"image {i}: expected a PIL.Image.Image, got {type(image).__name__}")
        if not isinstance(phrase, str) or not phrase.strip():
            raise ValueError(f"phrase {i}: expected a non-empty string, got {phrase!r}")


def square_grid(patch_values: torch.Tensor) -> torch.Tensor:
    """Reshape ``(N, P)`` per-patch values to the ``(N, s, s)`` patch grid, ``s * s == P``.

    >>> square_grid(torch.arange(8.0).view(2, 4)).shape
    torch.Size([2, 2, 2])
    """
    n, p = patch_values.shape
    side = int(round(p**0.5))
    if side * side != p:
        raise ValueError(f"{p} image patches do not form a square grid")
    return patch_values.reshape(n, side, side)


def upsample_to_images(grids: torch.Tensor, sizes: Sequence[tuple[int, int]]) -> Maps:
    """Bicubic upsampling of ``(N, h, w)`` patch-grid maps to each image's ``(height, width)``.

    Returns one ``(N, H, W)`` tensor when all sizes agree, else a list of ``(H_i, W_i)`` maps.
    Bicubic, as the ALBEF/AMC evaluation does; it can overshoot slightly below zero, which the
    metrics' ReLU removes.

    >>> upsample_to_images(torch.ones(2, 3, 3), [(6, 9), (6, 9)]).shape
    torch.Size([2, 6, 9])
    """
    if grids.dim() != 3 or grids.shape[0] != len(sizes):
        raise ValueError(f"need (N, h, w) grids for {len(sizes)} sizes, got {tuple(grids.shape)}")
    maps = [
        F.interpolate(grid[None, None], size=size, mode="bicubic", align_corners=False)[0, 0]
        for grid, size in zip(grids, sizes, strict=True)
    ]
    if len(set(sizes)) == 1:
        return torch.stack(maps)
    return maps


def image_sizes(images: Sequence[Image.Image]) -> list[tuple[int, int]]:
    """``(height, width)`` of each PIL image (PIL's own ``size`` is ``(width, height)``).

    >>> from PIL import Image
    >>> image_sizes([Image.new("RGB", (5, 3))])
    [(3, 5)]
    """
    return [(image.height, image.width) for image in images]


@contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Put ``model`` in eval mode inside the block (no dropout), restoring its mode after.

    >>> layer = torch.nn.Dropout(0.5)
    >>> with eval_mode(layer):
    ...     layer.training
    False
    >>> layer.training
    True
    """
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def load_pretrained(loader: Any, name_or_path: str | Path, what: str, example: str) -> Any:
    """``loader.from_pretrained(name_or_path, local_files_only=True)``, or a FileNotFoundError
    that says where it looked (the folder, the Hugging Face cache) and how to get the files.

    >>> from transformers import AutoConfig
    >>> load_pretrained(AutoConfig, "/no/such/blip", "BLIP model", "Salesforce/blip-itm-base-coco")
    Traceback (most recent call last):
    ...
    FileNotFoundError: BLIP model '/no/such/blip' not found ...
    """
    try:
        return loader.from_pretrained(str(name_or_path), local_files_only=True)
    except (OSError, ValueError) as error:
        from huggingface_hub.constants import HF_HUB_CACHE

        folder = Path(name_or_path).expanduser().resolve()
        raise FileNotFoundError(
            f"{what} {str(name_or_path)!r} not found (qgnb never downloads): looked in the folder "
            f"{folder} ({'exists' if folder.exists() else 'missing'}) and in the Hugging Face "
            f"cache {HF_HUB_CACHE}. To get it, on a machine with network run `huggingface-cli "
            f"download {example}` (the repository id you need) and copy the cache folder, or "
            f"pass a folder written by save_pretrained. ({type(error).__name__}: {error})"
        ) from error


@contextmanager
def frozen_parameters(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Turn off ``requires_grad`` on every parameter inside the block, restoring each after.

    For inference-time GradCAM: autograd then records only what the explained tensor needs,
    not the whole forward pass (less memory, faster), and leaves no ``.grad`` behind.

    >>> layer = torch.nn.Linear(2, 2)
    >>> with frozen_parameters(layer):
    ...     layer.weight.requires_grad
    False
    >>> layer.weight.requires_grad
    True
    """
    flags = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
    for parameter, _ in flags:
        parameter.requires_grad_(False)
    try:
        yield model
    finally:
        for parameter, flag in flags:
            parameter.requires_grad_(flag)
