"""gScoreCAM on open_clip ResNet and ViT models, random and tiny, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from pytorch_grad_cam import ScoreCAM
from test_explain_tiny import PHRASES, noise_images

from qgnb.explain.clip import ClipExplainer, ImageTextSimilarity
from qgnb.explain.openclip import OpenClipExplainer, OpenClipImageLogits

TEXT = {"context_length": 16, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}
TINY = {
    # ModifiedResNet: layer4 has width * 32 = 128 channels on a 2 x 2 grid at 64 px.
    "qgnb-tiny-rn": {"embed_dim": 16, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1],
                                                    "width": 4, "patch_size": None},
                     "text_cfg": TEXT},
    "qgnb-tiny-vit": {"embed_dim": 16, "vision_cfg": {"image_size": 32, "layers": 2,
                                                     "width": 32, "head_width": 16,
                                                     "patch_size": 8},
                      "text_cfg": TEXT},
}
SIZES = {"qgnb-tiny-rn": 64, "qgnb-tiny-vit": 32}
CHANNELS = {"qgnb-tiny-rn": 128, "qgnb-tiny-vit": 32}


@pytest.fixture(scope="module", autouse=True)
def tiny_configs(tmp_path_factory: pytest.TempPathFactory) -> None:
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, config in TINY.items():
        (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder)


def random_explainer(name: str, **kwargs) -> OpenClipExplainer:
    torch.manual_seed(0)
    return ClipExplainer.from_open_clip(name, device="cpu", **kwargs)


@pytest.mark.parametrize("name", sorted(TINY))
def test_all_channels_equal_pytorch_grad_cam_scorecam(name: str) -> None:
    explainer = random_explainer(name, topk=CHANNELS[name])
    side = SIZES[name]
    images = noise_images([(side, side)] * 2, seed=2)  # at input size: the resize is exact
    maps = explainer(images, PHRASES[:2])

    model = explainer.model
    pixels = explainer._pixels(images)
    with torch.no_grad():
        text = torch.nn.functional.normalize(
            model.encode_text(explainer.tokenizer(PHRASES[:2])), dim=-1)
    if name == "qgnb-tiny-rn":
        layer, reshape = model.visual.layer4, None
    else:
        from functools import partial

        from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
        layer = model.visual.transformer.resblocks[-1].ln_1
        reshape = partial(vit_reshape_transform, height=4, width=4)
    cam = ScoreCAM(OpenClipImageLogits(model), [layer], reshape_transform=reshape)
    try:
        expected = cam(pixels, [ImageTextSimilarity(t) for t in text])
    finally:
        cam.activations_and_grads.release()
    assert expected.max() == pytest.approx(1.0)
    np.testing.assert_allclose(maps.numpy(), expected, rtol=1e-4, atol=1e-5)
    fewer = random_explainer(name, topk=2)(images, PHRASES[:2])
    assert (fewer - maps).abs().max() > 1e-3


@pytest.mark.parametrize("name", sorted(TINY))
def test_weights_file_round_trip_and_sizes(name: str, tmp_path: Path) -> None:
    explainer = random_explainer(name, topk=8)
    torch.save(explainer.model.state_dict(), tmp_path / "weights.pt")
    torch.manual_seed(1)  # another random init, replaced by the file's weights
    loaded = ClipExplainer.from_open_clip(name, tmp_path / "weights.pt", topk=8, device="cpu")
    images = noise_images([(40, 30), (21, 50)], seed=5)
    maps = loaded(images, PHRASES[:2])
    assert [tuple(m.shape) for m in maps] == [(30, 40), (50, 21)]
    for got, expected in zip(maps, explainer(images, PHRASES[:2]), strict=True):
        torch.testing.assert_close(got, expected)
    assert loaded.config == {"explainer": "OpenClipExplainer",
                             "model": f"{name}:{tmp_path / 'weights.pt'}",
                             "method": "gscorecam", "layer": -1, "topk": 8}
    assert all(p.grad is None for p in loaded.model.parameters())


def test_open_clip_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="qgnb never downloads"):
        ClipExplainer.from_open_clip("qgnb-tiny-rn", tmp_path / "RN50x16.pt")
    with pytest.raises(ValueError, match="vision layer 4 does not exist: the model has 4"):
        random_explainer("qgnb-tiny-rn", layer=4)
    early = random_explainer("qgnb-tiny-rn", method="gradcam", layer=2)
    assert early._target()[0] is early.model.visual.layer3
    assert early(noise_images([(64, 64)]), ["a"]).shape == (1, 64, 64)
