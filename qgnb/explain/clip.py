"""CLIP maps by gScoreCAM (or plain GradCAM), built on pytorch-grad-cam's CAM machinery.

gScoreCAM (Chen et al., 2022): rank the channels of a vision layer by their mean gradient of
the image-text score, keep the top ``k``, and weight those channels ScoreCAM-style: each
channel's activation, upsampled and scaled to [0, 1], masks the input image; the softmax of
the masked images' scores are the channel weights. The score is CLIP's image-text logit
(``logit_scale.exp() * cosine``), the quantity the softmax of ScoreCAM was designed for.

The layer is ``layer_norm1`` of vision block ``layer`` (default the last): its patch tokens
feed the block's attention, so they receive gradient (the last block's *output* patch tokens
do not: only [CLS] reaches the projection).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.base_cam import BaseCAM
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from torch import nn
from transformers import CLIPModel, CLIPProcessor

from qgnb.explain.base import (
    Maps,
    check_pairs,
    choose_device,
    eval_mode,
    frozen_parameters,
    image_sizes,
    load_pretrained,
    upsample_to_images,
)

METHODS = ("gscorecam", "gradcam")
HUB_EXAMPLE = "openai/clip-vit-base-patch16"


class ImageTextSimilarity:
    """pytorch-grad-cam target: the score of image embedding(s) against one text embedding.

    >>> ImageTextSimilarity(torch.tensor([1.0, 0.0]))(torch.tensor([[2.0, 5.0], [3.0, 1.0]]))
    tensor([2., 3.])
    """

    def __init__(self, text_embedding: torch.Tensor) -> None:
        self.text_embedding = text_embedding

    def __call__(self, image_embedding: torch.Tensor) -> torch.Tensor:
        return (image_embedding * self.text_embedding).sum(dim=-1)


class ClipImageLogits(nn.Module):
    """``pixel_values -> logit_scale.exp() * unit image embedding``: with a unit text embedding
    as the `ImageTextSimilarity` target, the score is CLIP's image-text logit.

    >>> from transformers import CLIPConfig, CLIPModel
    >>> cfg = CLIPConfig(text_config={"hidden_size": 16, "intermediate_size": 32,
    ...     "num_hidden_layers": 1, "num_attention_heads": 2}, vision_config={"hidden_size": 16,
    ...     "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
    ...     "image_size": 16, "patch_size": 8}, projection_dim=8)
    >>> ClipImageLogits(CLIPModel(cfg))(torch.zeros(1, 3, 16, 16)).shape
    torch.Size([1, 8])
    """

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        embedding = self.model.get_image_features(pixel_values=pixel_values).pooler_output
        return self.model.logit_scale.exp() * F.normalize(embedding, dim=-1)


def masked_input_weights(model: nn.Module, image: torch.Tensor, activations: torch.Tensor,
                         target: Any, batch_size: int = 32) -> torch.Tensor:
    """ScoreCAM channel weights of one image: softmax over channels of the target's score on
    the image masked by each channel's activation (bilinear to image size, scaled to [0, 1]).

    Written here rather than calling ScoreCAM's own method, which prints a progress bar per
    image and moves every score to the CPU one at a time; the tests hold the two equal.

    >>> weights = masked_input_weights(lambda x: x.flatten(1), torch.ones(1, 2, 2),
    ...     torch.rand(3, 1, 1), lambda out: out.sum(-1))
    >>> weights.shape, float(weights.sum())
    (torch.Size([3]), 1.0)
    """
    with torch.no_grad():
        upsampled = F.interpolate(activations[None], size=image.shape[-2:], mode="bilinear",
                                  align_corners=True)[0]  # as torch.nn.UpsamplingBilinear2d
        flat = upsampled.flatten(1)
        lows = flat.min(dim=1).values[:, None, None]
        highs = flat.max(dim=1).values[:, None, None]
        masks = (upsampled - lows) / (highs - lows + 1e-8)
        scores = torch.cat([
            target(model(image[None] * masks[start:start + batch_size, None]))
            for start in range(0, masks.shape[0], batch_size)
        ])
        return torch.softmax(scores.float(), dim=0)


class GScoreCAM(BaseCAM):
    """gScoreCAM: ScoreCAM weights on the ``topk`` channels with the largest mean gradient;
    the other channels get weight 0. With ``topk`` >= the channel count it is ScoreCAM.

    >>> model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 36, 2))
    >>> cam = GScoreCAM(model, [model[0]], topk=2)
    >>> cam(torch.rand(1, 3, 6, 6), [lambda out: out[0]]).shape
    (1, 6, 6)
    """

    def __init__(self, model: nn.Module, target_layers: list[nn.Module],
                 reshape_transform: Any = None, topk: int = 300, batch_size: int = 32) -> None:
        super().__init__(model, target_layers, reshape_transform=reshape_transform)
        if topk < 1:
            self.activations_and_grads.release()
            raise ValueError(f"topk must be at least 1, got {topk}")
        self.topk = topk
        self.batch_size = batch_size

    def get_cam_weights(self, input_tensor: torch.Tensor, target_layer: nn.Module,
                        targets: list[Any], activations: np.ndarray,
                        grads: np.ndarray) -> np.ndarray:
        importance = grads.mean(axis=(2, 3))
        keep = min(self.topk, importance.shape[1])
        top = np.argsort(-importance, axis=1, kind="stable")[:, :keep]
        weights = np.zeros(importance.shape, dtype=np.float32)
        activations_tensor = torch.from_numpy(activations).to(self.device)
        for i, target in enumerate(targets):
            channels = torch.from_numpy(top[i]).to(self.device)
            weights[i, top[i]] = masked_input_weights(
                self.model, input_tensor[i], activations_tensor[i, channels], target,
                self.batch_size).cpu().numpy()
        return weights


class ClipExplainer:
    """Maps from a `transformers` CLIPModel by gScoreCAM (default) or plain GradCAM.

    Images are resized to the model's square input without cropping (so the map covers the
    whole image), explained with pytorch-grad-cam (which scales each map to [0, 1] at input
    size) with the model in eval mode and its parameters frozen (gradients flow to the
    input instead: no ``.grad`` is left behind), then resized bicubically to each image's size.
    ``masked_batch_size``: masked images per forward pass in gScoreCAM's weighting.

    >>> ClipExplainer.from_pretrained("/no/such/clip")
    Traceback (most recent call last):
    ...
    FileNotFoundError: CLIP model '/no/such/clip' not found ...
    """

    def __init__(self, model: CLIPModel, processor: CLIPProcessor, *, method: str = "gscorecam",
                 topk: int = 300, layer: int = -1, masked_batch_size: int = 32,
                 device: str | torch.device | None = None, name: str | None = None) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        count = self._layer_count(model)
        if not -count <= layer < count:
            raise ValueError(f"vision layer {layer} does not exist: the model has {count}")
        self.model = model
        self.processor = processor
        self.method = method
        self.topk = topk
        self.layer = layer
        self.masked_batch_size = masked_batch_size
        config = getattr(model, "config", None)
        self.name = name or getattr(config, "name_or_path", "") or type(model).__name__
        self.to(device)

    @staticmethod
    def _layer_count(model: nn.Module) -> int:
        """How many vision layers ``layer`` can index (transformers: the encoder blocks)."""
        return len(model.vision_model.encoder.layers)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, *, method: str = "gscorecam",
                        topk: int = 300, layer: int = -1,
                        device: str | torch.device | None = None) -> ClipExplainer:
        """Load a CLIP checkpoint and its processor from a folder or the HF cache, offline.

        >>> ClipExplainer.from_pretrained("openai/no-such-clip")
        Traceback (most recent call last):
        ...
        FileNotFoundError: CLIP model 'openai/no-such-clip' not found ...
        """
        model = load_pretrained(CLIPModel, name_or_path, "CLIP model", HUB_EXAMPLE)
        processor = load_pretrained(CLIPProcessor, name_or_path, "CLIP processor", HUB_EXAMPLE)
        return cls(model, processor, method=method, topk=topk, layer=layer, device=device,
                   name=str(name_or_path))

    @classmethod
    def from_open_clip(cls, model_name: str, pretrained: str | Path | None = None, *,
                       method: str = "gscorecam", topk: int = 300, layer: int = -1,
                       device: str | torch.device | None = None) -> ClipExplainer:
        """An `open_clip` model (OpenAI's or OpenCLIP's, ResNet or ViT) from a local weights
        file, explained by gScoreCAM; see `qgnb.explain.openclip.OpenClipExplainer`.

        >>> ClipExplainer.from_open_clip("RN50x16-quickgelu", "/no/such/RN50x16.pt")
        Traceback (most recent call last):
        ...
        FileNotFoundError: open_clip weights /no/such/RN50x16.pt do not exist ...
        """
        from qgnb.explain.openclip import OpenClipExplainer

        return OpenClipExplainer.from_open_clip(model_name, pretrained, method=method,
                                                topk=topk, layer=layer, device=device)

    @property
    def config(self) -> dict[str, Any]:
        """What determines the maps (the map store refuses to mix different configs)."""
        config = {"explainer": type(self).__name__, "model": self.name, "method": self.method,
                  "layer": self.layer}
        if self.method == "gscorecam":
            config["topk"] = self.topk
        return config

    def to(self, device: str | torch.device | None) -> ClipExplainer:
        """Move the model to ``device`` (``None``: CUDA when available); returns ``self``."""
        self.device = choose_device(device)
        self.model.to(self.device)
        return self

    def _target(self) -> tuple[nn.Module, Any]:
        """The explained layer and the reshape of its output to ``(N, C, h, w)``."""
        vision = self.model.config.vision_config
        side = vision.image_size // vision.patch_size
        layer = self.model.vision_model.encoder.layers[self.layer].layer_norm1
        return layer, partial(vit_reshape_transform, height=side, width=side)

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        size = self.model.config.vision_config.image_size
        return self.processor.image_processor(
            images, do_center_crop=False, size={"height": size, "width": size},
            return_tensors="pt")["pixel_values"]

    def _text_embeddings(self, phrases: list[str]) -> torch.Tensor:
        text = self.processor.tokenizer(phrases, padding=True, truncation=True,
                                        return_tensors="pt").to(self.device)
        return self.model.get_text_features(**text).pooler_output

    def _image_logits(self) -> nn.Module:
        return ClipImageLogits(self.model)

    def _cam(self) -> BaseCAM:
        layer, reshape = self._target()
        wrapper = self._image_logits()
        if self.method == "gradcam":
            cam = GradCAM(wrapper, [layer], reshape_transform=reshape)
        else:
            cam = GScoreCAM(wrapper, [layer], reshape_transform=reshape, topk=self.topk,
                            batch_size=self.masked_batch_size)
        cam.compute_input_gradient = True  # gradients reach the layer with parameters frozen
        return cam

    def __call__(self, images: Sequence[Image.Image], phrases: Sequence[str]) -> Maps:
        check_pairs(images, phrases)
        pixels = self._pixels(list(images)).to(self.device)
        with eval_mode(self.model), frozen_parameters(self.model):
            with torch.no_grad():
                text_embeddings = F.normalize(self._text_embeddings(list(phrases)), dim=-1)
            cam = self._cam()
            # Not `with cam:` -- BaseCAM.__exit__ swallows IndexErrors and returns None.
            try:
                grids = cam(pixels, [ImageTextSimilarity(t) for t in text_embeddings])
            finally:
                cam.activations_and_grads.release()
        return upsample_to_images(torch.from_numpy(grids).to(self.device), image_sizes(images))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({self.name!r}, method={self.method!r}, "
                f"topk={self.topk})")
