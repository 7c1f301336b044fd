"""gScoreCAM and ClipExplainer on a tiny random CLIP, held against pytorch-grad-cam."""

from __future__ import annotations

import math
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM, ScoreCAM
from pytorch_grad_cam.utils.reshape_transforms import vit_reshape_transform
from test_explain_tiny import PHRASES, clip_model, clip_processor, noise_images
from torch import nn

from qgnb.explain.clip import ClipExplainer, ClipImageLogits, GScoreCAM, ImageTextSimilarity


@pytest.fixture(scope="module")
def tiny() -> tuple:
    processor = clip_processor()
    return clip_model(vocab_size=len(processor.tokenizer)), processor


def one_by_one_conv() -> nn.Module:
    conv = nn.Conv2d(1, 1, 1)
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    return nn.Sequential(conv, nn.Flatten())


def test_gscorecam_weights_by_hand() -> None:
    # Scores are the sums of the [0, 1]-scaled masks: 2 (channel 0) and 3 (channel 2); the
    # mean gradients 0.5, -1, 2 keep channels 2 and 0; channel 1 gets weight 0.
    model = one_by_one_conv()
    activations = np.array([[[[0, 1], [0, 1]], [[5, 5], [5, 0]], [[4, 4], [4, 2]]]], np.float32)
    grads = np.stack([np.full((2, 2), g, np.float32) for g in (0.5, -1.0, 2.0)])[None]
    cam = GScoreCAM(model, [model[0]], topk=2)
    weights = cam.get_cam_weights(torch.ones(1, 1, 2, 2), model[0], [lambda out: out.sum(-1)],
                                  activations, grads)
    e2, e3 = math.exp(2), math.exp(3)
    np.testing.assert_allclose(weights, [[e2 / (e2 + e3), 0.0, e3 / (e2 + e3)]], rtol=1e-5)


def test_gscorecam_rejects_topk_zero() -> None:
    model = one_by_one_conv()
    with pytest.raises(ValueError, match="topk must be at least 1, got 0"):
        GScoreCAM(model, [model[0]], topk=0)


def clip_inputs(model, processor, images, phrases) -> tuple:
    pixels = processor.image_processor(images, return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        text = model.get_text_features(**processor.tokenizer(phrases, padding=True,
                                                             return_tensors="pt")).pooler_output
    targets = [ImageTextSimilarity(t) for t in torch.nn.functional.normalize(text, dim=-1)]
    return pixels, targets


def run_cam(cam_class, model, pixels, targets, **kwargs) -> np.ndarray:
    layer = model.vision_model.encoder.layers[-1].layer_norm1
    cam = cam_class(ClipImageLogits(model), [layer],
                    reshape_transform=partial(vit_reshape_transform, height=4, width=4), **kwargs)
    try:
        return cam(pixels, targets)
    finally:
        cam.activations_and_grads.release()


def test_gscorecam_with_all_channels_is_scorecam(tiny) -> None:
    model, processor = tiny
    pixels, targets = clip_inputs(model, processor, noise_images([(32, 32)] * 2), PHRASES[:2])
    reference = run_cam(ScoreCAM, model, pixels, targets)
    for topk in (32, 1000):  # hidden size 32: both keep every channel
        got = run_cam(GScoreCAM, model, pixels, targets, topk=topk)
        np.testing.assert_allclose(got, reference, rtol=1e-4, atol=1e-5)
    assert reference.max() == pytest.approx(1.0)
    fewer = run_cam(GScoreCAM, model, pixels, targets, topk=3)
    assert np.abs(fewer - reference).max() > 1e-3


def test_explainer_equals_library_at_input_size(tiny) -> None:
    # Images already at the model's 32x32 input size: bicubic resizing to 32x32 is the identity.
    model, processor = tiny
    images = noise_images([(32, 32)] * 2)
    pixels, targets = clip_inputs(model, processor, images, PHRASES[:2])
    for method, cam_class in (("gscorecam", ScoreCAM), ("gradcam", GradCAM)):
        explainer = ClipExplainer(model, processor, method=method, device="cpu")
        expected = torch.from_numpy(run_cam(cam_class, model, pixels, targets))
        torch.testing.assert_close(explainer(images, PHRASES[:2]), expected, rtol=1e-4,
                                   atol=1e-5)


def test_explainer_shapes_batching_and_sizes(tiny) -> None:
    model, processor = tiny
    explainer = ClipExplainer(model, processor, topk=8, device="cpu")
    images = noise_images([(40, 30), (40, 30), (40, 30)], seed=3)
    batched = explainer(images, PHRASES)
    assert batched.shape == (3, 30, 40) and torch.isfinite(batched).all()
    for i in range(3):
        torch.testing.assert_close(explainer(images[i:i + 1], PHRASES[i:i + 1])[0], batched[i],
                                   rtol=1e-4, atol=1e-5)
    mixed = explainer(noise_images([(40, 30), (20, 50)]), PHRASES[:2])
    assert [m.shape for m in mixed] == [(30, 40), (50, 20)]
    assert all(p.grad is None for p in model.parameters())


def test_explainer_options_and_errors(tiny) -> None:
    model, processor = tiny
    with pytest.raises(ValueError, match="method must be one of"):
        ClipExplainer(model, processor, method="scorecam")
    with pytest.raises(ValueError, match="vision layer 5 does not exist"):
        ClipExplainer(model, processor, layer=5)
    config = ClipExplainer(model, processor, method="gradcam", device="cpu").config
    assert config == {"explainer": "ClipExplainer", "model": "CLIPModel", "method": "gradcam",
                      "layer": -1}


def test_from_pretrained_round_trip(tiny, tmp_path: Path) -> None:
    model, processor = tiny
    model.save_pretrained(tmp_path)
    processor.save_pretrained(tmp_path)
    images = noise_images([(32, 32)])
    loaded = ClipExplainer.from_pretrained(tmp_path, method="gradcam", device="cpu")
    expected = ClipExplainer(model, processor, method="gradcam", device="cpu")(images, ["a"])
    torch.testing.assert_close(loaded(images, ["a"]), expected)
    with pytest.raises(FileNotFoundError, match="Hugging Face cache"):
        ClipExplainer.from_pretrained(tmp_path / "missing")
