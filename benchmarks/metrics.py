"""Speed of qgnb.metrics.score on two textures, as ratios measured within one run.

Two stacks of maps of 384x384, one to three boxes each: *smooth*, GradCAM-like maps (a 24x24
grid of peaky random activations upsampled bicubically, as the explainers do, so with small
negative overshoots), and *noisy*, ``torch.rand(n, 384, 384) ** 4`` (about 70 pixels a map
tie at the top quantisation level, the case that used to run a dense NMS). For each: the
time of ``score``, of one ``maps.sum()`` over the same stack, their ratio (goal: at most 10
on both), the speedup over the per-sample numpy reference (timed on a subset and scaled),
and whether ``score`` equals the reference on that subset.

    python benchmarks/metrics.py [--n 256] [--size 384] [--reference-n 16] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from qgnb.metrics import score
from qgnb.metrics.reference import reference_score

TEXTURES = ("smooth", "noisy")


def make_inputs(texture: str, n: int, size: int, device: str, seed: int = 0):
    """``n`` maps of ``size x size`` of one texture and one to three random boxes per map."""
    gen = torch.Generator().manual_seed(seed)
    if texture == "smooth":
        grid = torch.rand(n, 1, 24, 24, generator=gen) ** 4
        maps = F.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)[:, 0]
    else:
        maps = torch.rand(n, size, size, generator=gen) ** 4
    rng = np.random.default_rng(seed)
    boxes = []
    for _ in range(n):
        sample = []
        for _ in range(rng.integers(1, 4)):
            x1, y1 = rng.uniform(-0.1 * size, 0.8 * size, 2)
            w, h = rng.uniform(0.1 * size, 0.6 * size, 2)
            sample.append([x1, y1, x1 + w, y1 + h])
        boxes.append(sample)
    return maps.contiguous().to(device), boxes


def best_of(fn, repeats: int) -> tuple[float, float]:
    """Smallest wall time and smallest CPU time (this process) of ``repeats`` calls. CPU time
    is the steadier figure on a machine shared with other jobs; the two agree on an idle one.
    """
    walls, cpus = [], []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return min(walls), min(cpus)


def equal_to_reference(table, maps: np.ndarray, boxes: list) -> bool:
    """Whether each row of ``table`` equals the reference's: the same hits, uncertainty and
    peak counts, the other columns within float rounding."""
    for i, (a, b) in enumerate(zip(maps, boxes, strict=False)):
        expected = reference_score(a, b, tol=15)
        row = table.iloc[i]
        if int(row["n_top_peaks"]) != expected["n_top_peaks"]:
            return False
        for name in ("pg_hit", "pg_uncertain"):
            if row[name] != expected[name]:
                return False
        for name in ("soft_iou", "soft_dice", "hard_iou", "hard_dice", "wdp", "io_ratio"):
            if not np.isclose(row[name], expected[name], rtol=1e-5, atol=1e-7):
                return False
    return True


def run_texture(texture: str, args: argparse.Namespace) -> str:
    """Time one texture, print its rows, and return its verdict line."""
    maps, boxes = make_inputs(texture, args.n, args.size, args.device)
    score(maps[:8], boxes[:8])  # warm-up
    t_sum = best_of(lambda: maps.sum(), args.repeats * 4)
    t_score = best_of(lambda: score(maps, boxes, tol=15), args.repeats)
    sub = maps[: args.reference_n].cpu().numpy()
    pairs = list(zip(sub, boxes, strict=False))

    def reference() -> None:
        for a, b in tqdm(pairs, desc="reference", leave=False):
            reference_score(a, b, tol=15)

    t_ref = tuple(t / len(sub) * args.n for t in best_of(reference, 1))
    equal = equal_to_reference(score(maps[: len(sub)], boxes[: len(sub)], tol=15), sub, boxes)
    for name, (wall, cpu) in [("maps.sum()", t_sum), ("score", t_score),
                              (f"reference (from {len(sub)}, scaled)", t_ref)]:
        print(f"{texture:8s} {name:34s} {wall:8.3f} {cpu:8.3f} {wall / t_sum[0]:7.1f} "
              f"{cpu / t_sum[1]:7.1f}")
    return (f"{texture}: score / sum wall {t_score[0] / t_sum[0]:.1f}, cpu "
            f"{t_score[1] / t_sum[1]:.1f} (goal <= 10); speedup over reference cpu "
            f"{t_ref[1] / t_score[1]:.0f}x; equal to the reference on {len(sub)} maps: {equal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--reference-n", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device "
          f"{args.device}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"{args.n} maps of {args.size}x{args.size} per texture")
    print(f"{'texture':8s} {'what':34s} {'wall s':>8s} {'cpu s':>8s} {'x sum':>7s} {'x sum':>7s}")
    print(f"{'':8s} {'':34s} {'':>8s} {'':>8s} {'(wall)':>7s} {'(cpu)':>7s}")
    verdicts = [run_texture(texture, args) for texture in TEXTURES]
    print("\n".join(verdicts))


if __name__ == "__main__":
    main()
