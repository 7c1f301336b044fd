"""What every explainer shares: the protocol, input checks, device choice, upsampling to images.

An explainer is a callable ``explainer(images, phrases) -> maps``: one heatmap per
(image, phrase) pair at the image's own resolution, a float tensor ``(N, H, W)`` when all
images share a size, else a list of ``(H_i, W_i)`` tensors.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
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

    ``config`` describes the explainer (class, checkpoint, recipe, layer, ...). With its
    ``model``, ``processor`` and ``tokenizer`` attributes (those it has) it is what
    `fingerprint` digests: two explainers with equal fingerprints must give equal maps.
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


# The attributes whose content, beside `config`, decides an explainer's maps. Listed once here
# so that every explainer (BLIP, ALBEF, CLIP, zoo, real checkpoints) is fingerprinted alike.
CONTENT_PARTS = ("model", "processor", "tokenizer")


def weights_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a module's class and state: every parameter's and buffer's name, dtype, shape
    and bytes. Equal digests mean equal weights, wherever the module was loaded from.

    >>> layer = torch.nn.Linear(2, 1)
    >>> copy = torch.nn.Linear(2, 1)
    >>> _ = copy.load_state_dict(layer.state_dict())
    >>> same = weights_digest(copy) == weights_digest(layer)
    >>> with torch.no_grad():
    ...     _ = copy.bias.add_(1e-6)
    >>> same, weights_digest(copy) == weights_digest(layer)
    (True, False)
    """
    digest = hashlib.sha256(f"{type(model).__module__}.{type(model).__qualname__}".encode())
    for name, tensor in model.state_dict().items():
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"\n{name} {flat.dtype} {tuple(tensor.shape)}\n".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def content_digest(part: Any, what: str = "part") -> str:
    """SHA-256 of what decides how ``part`` (a model, processor or tokenizer) behaves.

    A ``torch.nn.Module``: `weights_digest`. A tokenizer: its full serialised definition (fast
    tokenizers: vocabulary, normaliser, pre-tokeniser, post-processor) or else its vocabulary
    and settings. A `transformers` processor: the digests of its parts. Anything with
    ``to_dict`` (image processors, configs): that dict. Anything else raises ``ValueError``
    (``what`` names it): a map store cannot tell its maps apart.

    >>> from transformers import BlipImageProcessor
    >>> small = BlipImageProcessor(size={"height": 32, "width": 32})
    >>> content_digest(small) == content_digest(BlipImageProcessor())
    False
    """
    if isinstance(part, torch.nn.Module):
        return weights_digest(part)
    kind = f"{type(part).__module__}.{type(part).__qualname__}"
    if hasattr(part, "get_vocab"):
        backend = getattr(part, "backend_tokenizer", None)
        if backend is not None:
            settings = json.loads(backend.to_str())
            # Each call sets the backend's padding and truncation for that call: not content.
            settings.pop("padding", None)
            settings.pop("truncation", None)
        else:
            settings = {"vocab": part.get_vocab(), "init": part.init_kwargs}
        text = _canonical({"kind": kind, "tokenizer": settings,
                           "special": part.special_tokens_map,
                           "added": {str(k): str(v) for k, v in
                                     part.added_tokens_decoder.items()}})
    elif hasattr(part, "get_attributes"):  # a transformers processor: its parts
        text = _canonical({"kind": kind, **{name: content_digest(getattr(part, name), name)
                                            for name in part.get_attributes()}})
    elif hasattr(part, "to_dict"):
        text = _canonical({"kind": kind, "settings": part.to_dict()})
    else:
        raise ValueError(f"the explainer's {what} ({kind}) has no content qgnb can fingerprint "
                         "(not a torch module, tokenizer or processor); a map store cannot "
                         f"tell its maps from another {what}'s")
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(explainer: Any) -> dict[str, Any]:
    """What made an explainer's maps: its ``config`` and the `content_digest` of each of its
    `CONTENT_PARTS` (``model``, ``processor``, ``tokenizer``) that it has.

    The map store keys on this: a retrained checkpoint at the same path, another tokenizer or
    another image size all change it. An explainer without a ``config`` mapping (a lambda, a
    plain function) raises ``ValueError``: nothing says what made its maps.

    >>> class Centre:
    ...     config = {"explainer": "Centre", "radius": 2}
    ...     def __call__(self, images, phrases): ...
    >>> fingerprint(Centre())
    {'config': {'explainer': 'Centre', 'radius': 2}}
    >>> fingerprint(lambda images, phrases: None)
    Traceback (most recent call last):
    ...
    ValueError: explainer <lambda> has no `config` ...
    """
    config = getattr(explainer, "config", None)
    if not isinstance(config, Mapping):
        named = explainer if hasattr(explainer, "__qualname__") else type(explainer)
        raise ValueError(
            f"explainer {named.__qualname__} has no `config` (a dict that names everything "
            "its maps depend on), so a map store cannot tell its maps from another explainer's. "
            "Give it one (e.g. a class with `config = {\"explainer\": \"mine\", ...}`), or "
            "run without a store.")
    result: dict[str, Any] = {"config": json.loads(_canonical(dict(config)))}
    for name in CONTENT_PARTS:
        part = getattr(explainer, name, None)
        if part is not None:
            result[name] = content_digest(part, name)
    return result


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)
