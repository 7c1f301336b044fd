"""Does adapting the encoder let the wired PVP model learn to reconstruct? It depends on the seed.

The shipped ``WiredVLM`` at the 8x8 patch grid, written as the lookup probe's
``WiredLookupVLM`` with the ``shapes-clip`` tower's last hidden state through an MLP
(96 -> 128 -> 64) as content, trained from scratch on shapes scenes for STEPS steps with
``qgnb.pvp.lookup.run`` (stage 1's optimiser and batch settings), the vision tower frozen or
adapted. Prints the held-out MAE (16 training-distribution scenes), the MAE of answering each
image's mean colour, and the loss curve. Kept exactly as it was run, because the outcome
depends on the exact initialisation (the model is built in this order and then seeded draws
follow), so any rewrite would be a new seed.

    python experiments/pvp_lookup/adapt_seeds.py adapt 1000 0   # MAE 6.8 vs 16.6: learnt
    python experiments/pvp_lookup/adapt_seeds.py adapt 1000 1   # MAE 12.8 vs 12.6: not learnt
    python experiments/pvp_lookup/adapt_seeds.py adapt 3000 1   # MAE 10.8 vs 12.6, loss 1.23
    python experiments/pvp_lookup/adapt_seeds.py frozen 3000 1  # MAE 11.3 vs 12.6, loss 1.28

(Run at commit 940c104; the tower is now PVP's pinned copy of the same ``shapes-clip``.)

About 6 minutes per 1,000 steps on one thread (``OMP_NUM_THREADS=1``).
"""

import dataclasses
import sys

import lookup  # this folder's module: the script's folder is on sys.path
import torch
from torch import nn

from qgnb.data.shapes import shapes
from qgnb.pvp.model import lm_config
from qgnb.pvp.tower import pinned_tower

ADAPT = sys.argv[1] == "adapt"
STEPS = int(sys.argv[2])
SEED = int(sys.argv[3]) if len(sys.argv) > 3 else 0
lookup.SETTINGS = dataclasses.replace(lookup.SETTINGS, grid=8)
pool = shapes("train", 100_000, 0)
# The probe's "mosaics" become shapes scenes drawn from the training pool.
lookup.mosaic = lambda level, rng, size=64: pool[int(rng.integers(len(pool)))].image


class WiredClip(lookup.WiredLookupVLM):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_connector = nn.Sequential(nn.Linear(96, 128), nn.GELU(), nn.Linear(128, 64))

    def image_tokens(self, pv):
        content = self.clip_connector(self.vision(pixel_values=pv).last_hidden_state[:, 1:])
        b, n = content.shape[:2]
        return torch.cat([self.patch_codes.expand(b, -1, -1), torch.zeros(b, n, 32), content],
                         -1)


def build(features, seed=0):
    tok = lookup.location_tokenizer(8)
    tower, proc = pinned_tower()
    torch.manual_seed(seed)
    model = WiredClip(tower, lm_config(tok.vocab_size, tok.eos_id), 8, tok.number_ids)
    model.wire(tok)
    model.vision.requires_grad_(ADAPT)
    return model, tok, proc


lookup.build = build
result = lookup.run("oracle", 8, STEPS, seed=SEED)  # "oracle" passes the name check only
print({"adapt": ADAPT, "steps": STEPS, "seed": SEED, "mae": round(result["mae"], 2),
       "mean_colour_mae": round(result["mean_colour_mae"], 2),
       "loss": [round(p["loss"], 3) for p in result["curve"]]})
