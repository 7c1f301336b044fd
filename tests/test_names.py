"""One name, one meaning: ``load_model`` gives a model with its input processing in both the zoo
and PVP layers, ``zoo.load_explainer`` an explainer; the short ``load`` names keep working."""

import torch

from qgnb import pvp, zoo
from qgnb.data import shapes
from qgnb.pvp.model import WiredVLM


def test_zoo_load_explainer_is_zoo_load_and_returns_maps_at_image_size():
    assert zoo.load_explainer is zoo.load
    sample = shapes("id", 1)[0]
    maps = zoo.load_explainer("shapes-blip-base")([sample.image], [sample.phrase])
    assert tuple(maps.shape) == (1, 64, 64) and torch.isfinite(maps).all()


def test_load_model_returns_the_model_first_in_both_layers():
    model, processor = zoo.load_model("shapes-clip")
    assert type(model).__name__ == "CLIPModel" and callable(processor)
    assert pvp.load_model is pvp.load
    model, tokenizer, processor = pvp.load_model("pvp-connector")
    assert isinstance(model, WiredVLM) and not model.training
    assert tokenizer.decode(tokenizer.encode("[1,2,3]")).replace(" ", "") == "[1,2,3]"
