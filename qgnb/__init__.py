"""qgnb: measure how well vision-language models ground phrases in images and see image detail.

Layers (each imports only the ones above it): ``qgnb.data`` -> ``qgnb.metrics`` ->
``qgnb.explain`` -> ``qgnb.zoo`` -> ``qgnb.pvp`` -> ``qgnb.viz`` / ``qgnb.widgets``.
"""

__version__ = "0.1.0"


def __getattr__(name: str):
    # `qgnb.evaluate` is re-exported lazily so that `import qgnb` stays cheap (no torch import).
    if name == "evaluate":
        from qgnb.explain import evaluate

        return evaluate
    raise AttributeError(f"module 'qgnb' has no attribute {name!r}")
