"""`OpenClipExplainer`: gScoreCAM (or GradCAM) on `open_clip` models, ResNets and ViTs alike.

gScoreCAM's headline model is OpenAI's RN50x16, which `transformers` cannot load; `open_clip`
loads OpenAI's and OpenCLIP's weight files, ResNet and ViT, from a local path. The recipe is
`ClipExplainer`'s (score = CLIP's image-text logit; images resized to the model's square input
without cropping, with the model's own normalisation; maps resized bicubically to each image).
The explained layer:

- ResNet (``ModifiedResNet``): stage ``layer`` of ``visual.layer1 .. layer4``, default the last
  (``layer4``), the layer gScoreCAM explains for CLIP's ResNets; its output is already
  ``(N, C, h, w)``.
- ViT: ``ln_1`` of ``visual.transformer.resblocks[layer]`` (default the last), as
  `ClipExplainer` takes ``layer_norm1`` for `transformers`' CLIP: its patch tokens feed the
  block's attention, so they receive gradient.

OpenAI's weights need the ``-quickgelu`` model names (``RN50x16-quickgelu``): open_clip only
knows that an OpenAI file wants QuickGELU from its name when it is given a path.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import open_clip
import torch
import torch.nn.functional as F
from PIL import Image
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from torch import nn
from torchvision import transforms

from qgnb.explain.clip import ClipExplainer

RESNET_STAGES = ("layer1", "layer2", "layer3", "layer4")


def is_resnet(model: nn.Module) -> bool:
    """Whether an open_clip model's image tower is a (modified) ResNet.

    >>> is_resnet(nn.Module())
    False
    """
    return all(hasattr(getattr(model, "visual", None), stage) for stage in RESNET_STAGES)


class OpenClipImageLogits(nn.Module):
    """``pixels -> logit_scale.exp() * unit image embedding`` of an open_clip model (see
    `qgnb.explain.clip.ClipImageLogits`)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model.logit_scale.exp() * self.model.encode_image(pixels, normalize=True)


class OpenClipExplainer(ClipExplainer):
    """`ClipExplainer` for an `open_clip` model and its tokenizer (module docstring).

    ``layer``: the ResNet stage (``-1``: ``layer4``) or the ViT block (``-1``: the last).

    >>> OpenClipExplainer.from_open_clip("no-such-model")
    Traceback (most recent call last):
    ...
    ValueError: open_clip has no model 'no-such-model' ...
    """

    def __init__(self, model: nn.Module, tokenizer: Any, *, method: str = "gscorecam",
                 topk: int = 300, layer: int = -1, masked_batch_size: int = 32,
                 device: str | torch.device | None = None, name: str | None = None) -> None:
        self.tokenizer = tokenizer
        super().__init__(model, None, method=method, topk=topk, layer=layer,
                         masked_batch_size=masked_batch_size, device=device, name=name)

    @staticmethod
    def _layer_count(model: nn.Module) -> int:
        if is_resnet(model):
            return len(RESNET_STAGES)
        return len(model.visual.transformer.resblocks)

    @classmethod
    def from_open_clip(cls, model_name: str, pretrained: str | Path | None = None, *,
                       method: str = "gscorecam", topk: int = 300, layer: int = -1,
                       device: str | torch.device | None = None) -> OpenClipExplainer:
        """Build open_clip's ``model_name`` with the weights file ``pretrained`` (``None``:
        random weights), offline; its tokenizer is open_clip's for that name."""
        if model_name not in open_clip.list_models():
            raise ValueError(f"open_clip has no model {model_name!r} (open_clip "
                             f"{open_clip.__version__}; e.g. RN50x16-quickgelu, ViT-B-16)")
        weights = None
        if pretrained is not None:
            path = Path(pretrained).expanduser()
            if not path.is_file():
                raise FileNotFoundError(
                    f"open_clip weights {path} do not exist (qgnb never downloads: pass the "
                    "path of a weights file, e.g. OpenAI's RN50x16.pt)")
            weights = str(path)
        model = open_clip.create_model(model_name, pretrained=weights, pretrained_text=False)
        name = f"{model_name}:{pretrained}" if pretrained is not None else model_name
        return cls(model.eval(), open_clip.get_tokenizer(model_name), method=method, topk=topk,
                   layer=layer, device=device, name=name)

    def _target(self) -> tuple[nn.Module, Any]:
        visual = self.model.visual
        if is_resnet(self.model):
            return getattr(visual, RESNET_STAGES[self.layer]), None
        height, width = visual.grid_size
        return (visual.transformer.resblocks[self.layer].ln_1,
                partial(vit_reshape_transform, height=height, width=width))

    def _pixels(self, images: list[Image.Image]) -> torch.Tensor:
        config = open_clip.get_model_preprocess_cfg(self.model)
        size = config["size"]
        size = (size, size) if isinstance(size, int) else tuple(size)
        transform = transforms.Compose([
            transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
            transforms.ToTensor(),
            transforms.Normalize(config["mean"], config["std"]),
        ])
        return torch.stack([transform(image.convert("RGB")) for image in images])

    def _text_embeddings(self, phrases: list[str]) -> torch.Tensor:
        return F.normalize(self.model.encode_text(self.tokenizer(phrases).to(self.device)),
                           dim=-1)

    def _image_logits(self) -> nn.Module:
        return OpenClipImageLogits(self.model)
