"""PVP's own frozen vision tower: a pinned copy of the zoo's ``shapes-clip`` vision tower.

Why a copy: the zoo retrains ``shapes-clip`` when its recipe improves, and a PVP checkpoint
whose tower is frozen stores no tower weights. Loading the frozen tower from the zoo would let
a zoo retraining silently change every PVP model. So PVP keeps its own copy
(``checkpoints/tower/``), made once by ``python -m qgnb.pvp.tower``, and checks its SHA-256
against ``TOWER_SHA256`` (and each card's ``tower_sha256``) on every load.
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from transformers import CLIPImageProcessor, CLIPVisionModel

TOWER_DIR = Path(__file__).resolve().parent / "checkpoints" / "tower"
# SHA-256 of tower/model.safetensors, pinned from the zoo's shapes-clip on 2026-11-30.
TOWER_SHA256 = "7a9a4c72df5cde1d9ecec1c0495059e759b088d476867f641b5d09743a9df93b"


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes.

    >>> import tempfile; p = Path(tempfile.mkdtemp()) / "x"; _ = p.write_bytes(b"abc")
    >>> file_sha256(p)[:16]
    'ba7816bf8f01cfea'
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def pinned_tower(directory: Path = TOWER_DIR, sha256: str | None = None
                 ) -> tuple[CLIPVisionModel, CLIPImageProcessor]:
    """The pinned vision tower and its image processor, after checking the weights' SHA-256
    against ``sha256`` (default ``TOWER_SHA256``); a mismatch is an error naming both hashes.

    >>> tower, processor = pinned_tower()
    >>> tower.config.hidden_size, processor.crop_size["height"]
    (96, 64)
    """
    directory = Path(directory)
    weights = directory / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"no pinned PVP vision tower at {weights}; "
                                f"pin one with `python -m qgnb.pvp.tower`")
    expected = sha256 or TOWER_SHA256
    found = file_sha256(weights)
    if found != expected:
        raise ValueError(f"{weights} has SHA-256 {found}, expected {expected}: the pinned tower "
                         f"changed; PVP checkpoints were trained on {expected}")
    tower = CLIPVisionModel.from_pretrained(directory)
    return tower.eval(), CLIPImageProcessor.from_pretrained(directory)


def pin_tower(name: str = "shapes-clip", directory: Path = TOWER_DIR) -> str:
    """Copy zoo model ``name``'s vision tower and image processor to ``directory``; returns
    the weights' SHA-256 (to be written into ``TOWER_SHA256``).

    >>> pin_tower()  # doctest: +SKIP
    """
    from qgnb.zoo import load_model

    clip, processor = load_model(name)
    clip.vision_model.save_pretrained(directory)  # a CLIPVisionModel of its own
    getattr(processor, "image_processor", processor).save_pretrained(directory)
    return file_sha256(Path(directory) / "model.safetensors")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Pin a zoo CLIP's vision tower for PVP.")
    parser.add_argument("--name", default="shapes-clip", help="zoo model to copy")
    args = parser.parse_args(argv)
    print(f"{TOWER_DIR}: sha256 {pin_tower(args.name)}")


if __name__ == "__main__":
    main()
