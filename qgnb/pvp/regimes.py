"""The three tuning regimes of the PVP study: which parts of the tiny VLM are trained."""

from __future__ import annotations

from torch import nn

# Regime name -> the parts of the VLM it trains; everything else is frozen. "connector" means
# the model's ``CONNECTOR_PARTS`` (the MLP).
REGIMES: dict[str, tuple[str, ...]] = {
    "connector": ("connector",),
    "connector+lm": ("connector", "lm"),
    "connector+lm+vision": ("connector", "lm", "vision"),
}


def apply_regime(model: nn.Module, regime: str) -> nn.Module:
    """Freeze every parameter of ``model`` except those of the regime's submodules.

    >>> from qgnb.pvp.model import build_vlm, random_vision_tower
    >>> from qgnb.pvp.tokenizer import build_tokenizer
    >>> model = build_vlm(random_vision_tower()[0], build_tokenizer([], locations=8), 8)
    >>> model = apply_regime(model, "connector")
    >>> trainable_parameters(model) == sum(p.numel() for p in model.connector.parameters())
    True
    """
    if regime not in REGIMES:
        raise ValueError(f"unknown regime {regime!r}; expected one of {list(REGIMES)}")
    model.requires_grad_(False)
    for part in REGIMES[regime]:
        for name in model.CONNECTOR_PARTS if part == "connector" else (part,):
            getattr(model, name).requires_grad_(True)  # a module or a single Parameter
    return model


def trainable_parameters(model: nn.Module) -> int:
    """The number of parameters that receive gradients (shared tensors counted once).

    >>> from torch import nn
    >>> trainable_parameters(nn.Linear(3, 2))
    8
    """
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
