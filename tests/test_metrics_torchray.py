"""The pointing game at tol=15 against TorchRay's rule (torchray.benchmark.pointing_game).

TorchRay is not a dependency; its rule is restated below from its source
(``PointingGame.evaluate``): a hit when a mask pixel lies at squared index distance
``< tolerance**2`` from the point.
"""

import numpy as np

from qgnb.metrics import box_mask, score


def torchray_hit(mask: np.ndarray, point_uv: tuple[int, int], tolerance: int) -> bool:
    """TorchRay's rule, `torchray.benchmark.pointing_game.PointingGame.evaluate`, restated:
    a hit when some mask pixel lies at squared index distance < tolerance**2 from the point
    ``(u, v) = (column, row)``."""
    v, u = np.meshgrid(np.arange(mask.shape[0]), np.arange(mask.shape[1]), indexing="ij")
    accept = (v - point_uv[1]) ** 2 + (u - point_uv[0]) ** 2 < tolerance**2
    return bool((mask & accept).any())


def check_pointing_game_matches_torchray(h, w, peak, boxes, tol=15):
    a = np.zeros((h, w), dtype=np.float32)
    a[peak] = 1.0
    ours = score(a[None], [boxes], tol=tol)["pg_hit"].item()
    theirs = torchray_hit(box_mask(boxes, h, w), (peak[1], peak[0]), tol)
    assert ours == float(theirs), (peak, boxes, ours, theirs)


def test_pointing_game_tol15_matches_torchray_on_hand_made_cases():
    box = [[20, 20, 40, 30]]          # pixels rows 20-29, columns 20-39
    cases = [
        (25, 30),   # inside
        (6, 30),    # 14 rows above the first row: hit
        (4, 30),    # 16 rows above: miss
        (25, 53),   # 14 columns right of the last column (39): hit
        (10, 10),   # corner offset (10, 10): 14.1, hit
        (9, 9),     # corner offset (11, 11): 15.6, miss
        (45, 60),   # far: miss
    ]
    for peak in cases:
        check_pointing_game_matches_torchray(64, 64, peak, box)
    # Two boxes: the nearest pixel of either counts.
    check_pointing_game_matches_torchray(64, 64, (50, 5), [[0, 0, 4, 4], [10, 40, 20, 60]])
    check_pointing_game_matches_torchray(64, 64, (50, 5), [[0, 0, 4, 4], [10, 45, 20, 60]])
    # A box that reaches past the image: both use the clipped mask.
    check_pointing_game_matches_torchray(32, 32, (10, 20), [[-10, -10, 8, 8]])


def test_pointing_game_differs_from_torchray_only_at_exact_distance_tol():
    # Offset (15, 0) from the box: distance 15. qgnb counts "<= tol": a hit;
    # TorchRay counts "< tolerance": a miss. The only kind of disagreement.
    box = [[20, 20, 40, 30]]          # pixels rows 20-29, columns 20-39
    mask = box_mask(box, 64, 64)
    for peak in [(5, 30), (25, 54), (44, 27), (8, 8)]:   # offsets (15,0), (0,15), (15,0), (12,12)
        a = np.zeros((64, 64), dtype=np.float32)
        a[peak] = 1.0
        expected = peak != (8, 8)     # (12, 12) is 16.97 px away: both miss
        assert score(a[None], [box], tol=15)["pg_hit"].item() == float(expected)
        assert not torchray_hit(mask, (peak[1], peak[0]), 15)
    # Everywhere else on a grid of peak positions the verdicts agree.
    rows, cols = np.mgrid[0:64:3, 0:64:3]
    for r, c in zip(rows.ravel(), cols.ravel(), strict=True):
        v, u = np.nonzero(mask)
        if ((v - r) ** 2 + (u - c) ** 2).min() != 15**2:
            check_pointing_game_matches_torchray(64, 64, (int(r), int(c)), box)
