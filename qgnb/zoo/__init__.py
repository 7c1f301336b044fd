"""qgnb.zoo: small models trained on the synthetic benchmark, shipped as checkpoints.

``load(name)`` (long name ``load_explainer``) returns a ready explainer (its map read where
`qgnb.zoo.reading`'s rule chose), ``load_model(name)`` the model and its processor (as
``qgnb.pvp.load_model`` returns a PVP model with its own), ``card(name)`` what the model was
trained on, where its map is read and its held-out scores. ``MODEL_NAMES`` lists the models;
``python -m qgnb.zoo.train NAME`` retrains one, ``python -m qgnb.zoo.reading NAME`` applies
the reading rule to it, ``python -m qgnb.zoo.cards`` re-evaluates them (docs/zoo.md).
"""

from __future__ import annotations

import torch

from qgnb.zoo.cards import card, grounding_table
from qgnb.zoo.configs import SPECS, spec
from qgnb.zoo.explainers import explainer_for
from qgnb.zoo.models import checkpoint_dir, load_model

MODEL_NAMES = tuple(SPECS)


def load(name: str, device: str | torch.device | None = "cpu"):
    """A ready explainer (``explainer(images, phrases) -> maps``) around zoo model ``name``.

    >>> from qgnb.data import shapes
    >>> sample = shapes("id", 1)[0]
    >>> load("shapes-blip-base")([sample.image], [sample.phrase]).shape  # doctest: +SKIP
    torch.Size([1, 64, 64])
    """
    return explainer_for(name, *load_model(name), device=device)


# The name that says what comes back; `load` stays, short, for `qgnb.evaluate(zoo.load(name), ...)`.
load_explainer = load


__all__ = ["MODEL_NAMES", "SPECS", "card", "checkpoint_dir", "grounding_table", "load",
           "load_explainer", "load_model", "spec"]
