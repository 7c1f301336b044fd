"""Cross-attention GradCAM: the one core that the BLIP and ALBEF-style explainers share.

The LAVIS/ALBEF recipe. Run the image-text matching (ITM) head with the attention
probabilities of one text-to-image cross-attention layer captured; take the gradient of the
ITM logit for "match" (class 1, before any softmax, as LAVIS' ``compute_gradcam`` and ALBEF's
grounding code do) with respect to those probabilities; weight each probability by its
gradient clamped at zero; drop the image [CLS] column; average over heads and over the chosen
text-token rows (padding excluded); reshape the patch columns to the patch grid.

Which token rows (``tokens``):
- ``"all"`` (default): every non-padding row, [CLS] and [SEP] included, as ALBEF and the AMC
  fine-tuning average them. It works in every layer: in the last cross-attention layer only
  the [CLS] row reaches the ITM head, so there the word rows get no gradient at all (a test
  pins this; on a small trained BLIP their map had PG accuracy 0.00, the [CLS] row's 0.45).
- ``"words"``: the phrase's word rows only (positions 1 .. length-2, no [CLS], no [SEP]): the
  "average over tokens" map that LAVIS returns; use an earlier layer with it.
- ``"cls"``: the [CLS] (BLIP's [ENC]) row alone, LAVIS' other map.

Which layer and rows a published number used, together with its first token, caption cleaning
and input size, is a named recipe in `qgnb.explain.recipes` (LAVIS' for BLIP: layer 7,
``"words"``; AMC's for ALBEF: layer 8, ``"all"``).

A model plugs in through a `CrossAttentionRoute`: how to reach cross-attention layer ``k`` (a
module whose forward output holds the probabilities) and how to get the ITM logits.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from qgnb.explain.base import (
    Maps,
    check_pairs,
    choose_device,
    eval_mode,
    frozen_parameters,
    image_sizes,
    square_grid,
    upsample_to_images,
)

TOKEN_CHOICES = ("all", "words", "cls")


def _second_item(output: Any) -> torch.Tensor:
    return output[1]


@dataclass(frozen=True)
class CrossAttentionRoute:
    """How the core reaches a model's cross-attention probabilities and its ITM logits.

    - ``layers(model)``: the sequence of cross-attention modules, indexed by ``layer``
      (``None`` for a layer without cross-attention, such as ALBEF's text-only layers).
    - ``itm_logits(model, pixel_values, input_ids, attention_mask)``: ``(N, 2)`` logits,
      class 1 = "the phrase matches the image".
    - ``probabilities(output)``: the ``(N, heads, tokens, 1 + patches)`` attention
      probabilities inside the layer module's forward output (default: ``output[1]``).

    >>> BLIP_ROUTE.probabilities((None, "probs"))
    'probs'
    """

    layers: Callable[[nn.Module], Any]
    itm_logits: Callable[[nn.Module, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    probabilities: Callable[[Any], torch.Tensor] = _second_item


def _blip_layers(model: nn.Module) -> list[nn.Module]:
    return [layer.crossattention.self for layer in model.text_encoder.encoder.layer]


def _blip_itm_logits(model: nn.Module, pixel_values: torch.Tensor, input_ids: torch.Tensor,
                     attention_mask: torch.Tensor) -> torch.Tensor:
    return model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask,
                 use_itm_head=True).itm_score


# transformers' BlipForImageTextRetrieval: BlipTextSelfAttention returns (context, probabilities).
BLIP_ROUTE = CrossAttentionRoute(layers=_blip_layers, itm_logits=_blip_itm_logits)


def resolve_layer(route: CrossAttentionRoute, model: nn.Module, layer: int) -> nn.Module:
    """The cross-attention module number ``layer`` (negative counts from the end).

    >>> from transformers import BlipConfig, BlipForImageTextRetrieval
    >>> cfg = BlipConfig(text_config={"num_hidden_layers": 2, "hidden_size": 32,
    ...     "num_attention_heads": 2, "intermediate_size": 64},
    ...     vision_config={"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
    ...     "intermediate_size": 64, "image_size": 32, "patch_size": 16})
    >>> type(resolve_layer(BLIP_ROUTE, BlipForImageTextRetrieval(cfg), -1)).__name__
    'BlipTextSelfAttention'
    """
    layers = route.layers(model)
    if not -len(layers) <= layer < len(layers):
        raise ValueError(
            f"cross-attention layer {layer} does not exist: the model has {len(layers)} "
            f"text layers (valid: {-len(layers)} .. {len(layers) - 1})"
        )
    if layers[layer] is None:
        with_cross = [k for k, module in enumerate(layers) if module is not None]
        raise ValueError(f"text layer {layer} has no cross-attention; layers with it: "
                         f"{with_cross}")
    return layers[layer]


def token_weights(attention_mask: torch.Tensor, tokens: str = "all") -> torch.Tensor:
    """``(N, L)`` weights over text-token rows that sum to 1 per sample; padding gets 0.

    ``attention_mask`` must be right-padded (ones, then zeros), as BERT-style tokenizers pad.

    >>> token_weights(torch.tensor([[1, 1, 1, 1, 0]]), "words")
    tensor([[0.0000, 0.5000, 0.5000, 0.0000, 0.0000]])
    """
    if tokens not in TOKEN_CHOICES:
        raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {tokens!r}")
    mask = attention_mask.to(torch.float32)
    lengths = attention_mask.sum(dim=1)
    positions = torch.arange(mask.shape[1], device=mask.device)
    right_padded = positions[None, :] < lengths[:, None]
    bad = torch.nonzero((right_padded != attention_mask.bool()).any(dim=1)).flatten().tolist()
    if bad:
        raise ValueError(f"sample {bad[0]}: attention mask {attention_mask[bad[0]].tolist()} is "
                         "not right-padded (ones then zeros)")
    if tokens == "all":
        weights = mask
    elif tokens == "cls":
        weights = (positions[None, :] == 0).to(torch.float32).expand_as(mask)
    else:
        weights = ((positions[None, :] >= 1) & (positions[None, :] < lengths[:, None] - 1))
        weights = weights.to(torch.float32)
    counts = weights.sum(dim=1, keepdim=True)
    empty = torch.nonzero(counts.flatten() == 0).flatten().tolist()
    if empty:
        raise ValueError(f"sample {empty[0]}: no {tokens!r} token rows "
                         f"(token count {int(lengths[empty[0]])})")
    return weights / counts


@contextmanager
def capture_probabilities(module: nn.Module,
                          route: CrossAttentionRoute) -> Iterator[list[torch.Tensor]]:
    """Hooks on ``module`` that collect its attention probabilities into the yielded list.

    The probabilities always carry autograd history, even for a frozen model: a pre-hook
    marks the layer's input as requiring grad when nothing upstream does (it is then a
    constant, so this changes no value). Hooks are removed on exit.

    >>> layer = torch.nn.Linear(2, 2)
    >>> route = CrossAttentionRoute(layers=None, itm_logits=None, probabilities=lambda o: o)
    >>> with torch.no_grad(), capture_probabilities(layer, route) as captured:
    ...     _ = layer(torch.ones(1, 2))
    >>> len(captured)
    1
    """
    captured: list[torch.Tensor] = []

    def track_input(_module: nn.Module, args: tuple) -> tuple | None:
        if args and isinstance(args[0], torch.Tensor) and not args[0].requires_grad:
            return (args[0].detach().requires_grad_(True), *args[1:])
        return None

    def keep_output(_module: nn.Module, _args: tuple, output: Any) -> None:
        captured.append(route.probabilities(output))

    handles = [module.register_forward_pre_hook(track_input),
               module.register_forward_hook(keep_output)]
    try:
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def cross_attention_gradcam(
    model: nn.Module,
    pixel_values: torch.Tensor,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    layer: int,
    tokens: str = "all",
    create_graph: bool = False,
    route: CrossAttentionRoute = BLIP_ROUTE,
) -> torch.Tensor:
    """GradCAM on cross-attention layer ``layer``: ``(N, h, w)`` maps on the image patch grid.

    ``attention * grad.clamp(min=0)`` of the ITM "match" logit, without the image [CLS] column,
    averaged over heads and over the ``tokens`` rows (see the module docstring), reshaped to
    the square patch grid. The model is run as it is (train or eval mode: the caller decides).
    With ``create_graph=True`` the map stays differentiable with respect to the model's
    parameters (for losses on GradCAM maps, such as AMC); otherwise it is detached.

    >>> from transformers import BlipConfig, BlipForImageTextRetrieval
    >>> cfg = BlipConfig(text_config={"num_hidden_layers": 2, "hidden_size": 32,
    ...     "num_attention_heads": 2, "intermediate_size": 64},
    ...     vision_config={"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
    ...     "intermediate_size": 64, "image_size": 32, "patch_size": 8})
    >>> model = BlipForImageTextRetrieval(cfg).eval()
    >>> maps = cross_attention_gradcam(model, torch.randn(2, 3, 32, 32),
    ...     torch.tensor([[101, 7, 102], [101, 9, 102]]), torch.ones(2, 3, dtype=torch.long),
    ...     layer=-1)
    >>> maps.shape
    torch.Size([2, 4, 4])
    """
    weights = token_weights(attention_mask, tokens)
    module = resolve_layer(route, model, layer)
    with torch.enable_grad(), capture_probabilities(module, route) as captured:
        logits = route.itm_logits(model, pixel_values, input_ids, attention_mask)
    if len(captured) != 1:
        raise RuntimeError(f"cross-attention layer {layer} ran {len(captured)} times in one "
                           "forward pass; expected exactly once")
    probs = captured[0]
    if logits.dim() != 2 or logits.shape[1] < 2:
        raise ValueError(f"ITM logits must have shape (N, 2), got {tuple(logits.shape)}")
    (grads,) = torch.autograd.grad(logits[:, 1].sum(), probs, create_graph=create_graph)
    cams = probs[..., 1:] * grads[..., 1:].clamp(min=0)  # (N, heads, tokens, patches)
    per_token = cams.mean(dim=1)
    per_patch = torch.einsum("nl,nlp->np", weights.to(per_token.dtype), per_token)
    grid = square_grid(per_patch)
    return grid if create_graph else grid.detach()


Preprocess = Callable[[list[Image.Image], list[str]], Mapping[str, torch.Tensor]]


class CrossAttentionExplainer:
    """Explainer for any model with text-to-image cross-attention layers and an ITM head.

    ``preprocess(images, phrases)`` gives ``pixel_values``, ``input_ids`` and a right-padded
    ``attention_mask``; ``route`` tells `cross_attention_gradcam` where the layers and the ITM
    logits are. ``explainer(images, phrases)`` runs the core in eval mode with the parameters
    frozen (so autograd records only the layers after the explained one; both are restored
    after) and upsamples each patch-grid map bicubically to its image's size.
    `BlipExplainer` and `AlbefExplainer` are this class with their own preprocessing and route.

    >>> from transformers import BlipConfig, BlipForImageTextRetrieval
    >>> cfg = BlipConfig(text_config={"num_hidden_layers": 1, "hidden_size": 32,
    ...     "num_attention_heads": 2, "intermediate_size": 64},
    ...     vision_config={"num_hidden_layers": 1, "hidden_size": 32, "num_attention_heads": 2,
    ...     "intermediate_size": 64, "image_size": 32, "patch_size": 8})
    >>> def preprocess(images, phrases):
    ...     return {"pixel_values": torch.zeros(len(images), 3, 32, 32),
    ...             "input_ids": torch.tensor([[101, 7, 102]] * len(images)),
    ...             "attention_mask": torch.ones(len(images), 3, dtype=torch.long)}
    >>> explainer = CrossAttentionExplainer(BlipForImageTextRetrieval(cfg), preprocess,
    ...     route=BLIP_ROUTE, layer=0, device="cpu")
    >>> explainer([Image.new("RGB", (20, 10))], ["a cat"]).shape
    torch.Size([1, 10, 20])
    """

    def __init__(self, model: nn.Module, preprocess: Preprocess, *, route: CrossAttentionRoute,
                 layer: int, tokens: str = "all", device: str | torch.device | None = None,
                 name: str | None = None) -> None:
        resolve_layer(route, model, layer)
        if tokens not in TOKEN_CHOICES:
            raise ValueError(f"tokens must be one of {TOKEN_CHOICES}, got {tokens!r}")
        self.model = model
        self.preprocess = preprocess
        self.route = route
        self.layer = layer
        self.tokens = tokens
        config = getattr(model, "config", None)
        self.name = name or getattr(config, "name_or_path", "") or type(model).__name__
        self.to(device)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        return {"explainer": type(self).__name__, "model": self.name, "layer": self.layer,
                "tokens": self.tokens}

    def to(self, device: str | torch.device | None) -> CrossAttentionExplainer:
        """Move the model to ``device`` (``None``: CUDA when available); returns ``self``."""
        self.device = choose_device(device)
        self.model.to(self.device)
        return self

    def __call__(self, images: Sequence[Image.Image], phrases: Sequence[str]) -> Maps:
        check_pairs(images, phrases)
        batch = {key: value.to(self.device)
                 for key, value in self.preprocess(list(images), list(phrases)).items()}
        with eval_mode(self.model), frozen_parameters(self.model):
            grids = cross_attention_gradcam(
                self.model, batch["pixel_values"], batch["input_ids"], batch["attention_mask"],
                layer=self.layer, tokens=self.tokens, route=self.route)
        return upsample_to_images(grids, image_sizes(images))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, layer={self.layer}, "
                f"tokens={self.tokens!r})")
