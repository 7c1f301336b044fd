"""IO ratio against Quantus' RelevanceMassAccuracy (quantus 0.6, a test-only dependency)."""

import numpy as np
import quantus
import torch

from qgnb.metrics import box_mask, score


def check_io_ratio_matches_quantus(maps, boxes):
    masks = np.stack([box_mask(b, *maps.shape[1:]) for b in boxes])[:, None].astype(float)
    metric = quantus.RelevanceMassAccuracy(disable_warnings=True)
    theirs = metric(model=None, x_batch=np.zeros_like(maps[:, None]),
                    y_batch=np.zeros(len(maps), dtype=int),
                    a_batch=np.maximum(maps, 0)[:, None], s_batch=masks)
    ours = score(maps, boxes)["io_ratio"].to_numpy()
    np.testing.assert_allclose(ours, np.asarray(theirs, dtype=float), rtol=1e-5)


def test_io_ratio_equals_quantus_relevance_mass_accuracy():
    rng = np.random.default_rng(0)
    maps = rng.random((6, 12, 17)).astype(np.float32)
    maps[2] -= 0.5   # negative values: qgnb applies the ReLU, so Quantus gets relu(map)
    boxes = [[[2, 3, 9, 8]], [[0, 0, 4, 4], [6, 6, 17, 11]], [[5, 1, 6, 2]],
             [[-1, -1, 30, 30]], [[3, 3, 4, 10]], [[10.2, 0.4, 15.7, 11.9]]]
    check_io_ratio_matches_quantus(maps, boxes)


def test_io_ratio_equals_quantus_on_hand_made_case():
    # relu(A) = [[0, 1, 2, 0], [0, .5, 1, 0], [0, 0, 0, .5]], box -> rows 0-1, cols 1-2: 4.5/5.
    maps = np.array([[[0.0, 1.0, 2.0, 0.0], [-3.0, 0.5, 1.0, 0.0], [0.0, 0.0, 0.0, 0.5]]])
    check_io_ratio_matches_quantus(maps, [[[1, 0, 3, 2]]])
    assert score(torch.tensor(maps), [[[1, 0, 3, 2]]])["io_ratio"].item() == 0.9
