"""The ``qgnb`` command: evaluate a model on a data set, resumably and sharded; compare two runs.

    qgnb evaluate MODEL DATA --out DIR [--batch-size 16] [--device cuda] [--family blip]
                                       [--recipe NAME]
    torchrun --nproc-per-node K -m qgnb evaluate MODEL DATA --out DIR
    qgnb compare DIR_A DIR_B [--n-boot 2000] [--seed 0]

``evaluate`` writes ``DIR/metrics.csv`` (`qgnb.evaluate`'s table, one row per phrase, sorted
by ``id``), ``DIR/summary.json`` (`qgnb.metrics.summarize`), ``DIR/run.json`` (which model on
which data) and keeps the maps in the content-keyed store ``DIR/maps`` (`MapStore`): a killed
run started again recomputes no finished batch. Under ``torchrun`` (torch.distributed; gloo,
which also runs on CPU) rank ``r`` of ``K`` explains batches ``r, r + K, ...`` of the very
batches a one-process run makes, each rank writes its maps into the shared store, and rank 0
gathers the tables and writes the files, identical to a one-process run. See ``docs/cli.md``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from qgnb.data import load_flickr30k_entities, load_refcoco, load_spatialsense, shapes
from qgnb.data.sample import Sample
from qgnb.explain.base import Explainer, choose_device
from qgnb.explain.evaluate import BatchShard, evaluate
from qgnb.explain.store import atomic_write
from qgnb.metrics import compare, summarize

DATA_FORMS = ("shapes:SPLIT:N[:SEED]", "refcoco:ROOT:DATASET:SPLIT", "flickr30k:ROOT:SPLIT",
              "spatialsense:ROOT:SPLIT")
FAMILIES = ("blip", "clip", "albef")
RUN_FILE = "run.json"


class UsageError(ValueError):
    """Bad input on the command line: printed as ``qgnb: error: ...``, exit status 2."""


def parse_data(spec: str) -> tuple[str, Sequence[Sample]]:
    """The canonical form of a data spec (roots absolute, the seed spelled out) and its data.

    >>> name, data = parse_data("shapes:id:3")
    >>> name, len(data)
    ('shapes:id:3:0', 3)
    >>> parse_data("coco:/x")
    Traceback (most recent call last):
    ...
    qgnb.cli.UsageError: unknown data spec 'coco:/x'; expected one of shapes:SPLIT:N[:SEED], ...
    """
    kind, _, rest = spec.partition(":")
    if kind == "shapes":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not all(p.lstrip("-").isdigit() for p in parts[1:]):
            raise UsageError(f"data spec {spec!r}: expected shapes:SPLIT:N[:SEED] with integer "
                             "N and SEED, e.g. shapes:id:120:5")
        split, n, seed = parts[0], int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
        return f"shapes:{split}:{n}:{seed}", shapes(split, n, seed)
    if kind == "refcoco":
        parts = rest.rsplit(":", 2)
        if len(parts) != 3:
            raise UsageError(f"data spec {spec!r}: expected refcoco:ROOT:DATASET:SPLIT, e.g. "
                             "refcoco:/data/refer:refcoco+:testA")
        root = _data_root(parts[0], spec)
        return f"refcoco:{root}:{parts[1]}:{parts[2]}", load_refcoco(root, parts[1], parts[2])
    if kind in ("flickr30k", "spatialsense"):
        parts = rest.rsplit(":", 1)
        if len(parts) != 2:
            raise UsageError(f"data spec {spec!r}: expected {kind}:ROOT:SPLIT")
        root = _data_root(parts[0], spec)
        load = load_flickr30k_entities if kind == "flickr30k" else load_spatialsense
        return f"{kind}:{root}:{parts[1]}", load(root, parts[1])
    raise UsageError(f"unknown data spec {spec!r}; expected one of {', '.join(DATA_FORMS)}")


def _data_root(root: str, spec: str) -> Path:
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise UsageError(f"data spec {spec!r}: the data folder {path} does not exist")
    return path


def load_explainer(model: str, *, family: str | None = None, recipe: str | None = None,
                   tokenizer: str | None = None,
                   device: str | torch.device | None = None) -> tuple[str, Explainer]:
    """The canonical name of ``model`` (a zoo name, or an absolute checkpoint path) and its
    explainer. A checkpoint folder's family is read from its ``config.json`` unless given; a
    checkpoint file is an ALBEF/AMC file, read with the BERT ``tokenizer`` folder. ``recipe``
    goes to BLIP's ``from_pretrained`` or ALBEF's ``from_checkpoint`` (CLIP has none).

    >>> load_explainer("no-such-model")
    Traceback (most recent call last):
    ...
    qgnb.cli.UsageError: unknown model 'no-such-model': not a zoo model ...
    """
    from qgnb import zoo

    if model in zoo.MODEL_NAMES:
        if family is not None or recipe is not None:
            raise UsageError(f"zoo model {model!r} has its own family and recipe; --family and "
                             "--recipe are for checkpoint folders and files")
        return model, zoo.load(model, device=choose_device(device))
    path = Path(model).expanduser().resolve()
    if not path.exists():
        raise UsageError(f"unknown model {model!r}: not a zoo model ({', '.join(zoo.MODEL_NAMES)})"
                         f" and no checkpoint folder or file at {path}")
    family = family or _family_of(path)
    options = {"recipe": recipe} if recipe is not None else {}
    if family == "blip":
        from qgnb.explain.blip import BlipExplainer

        return str(path), BlipExplainer.from_pretrained(path, device=device, **options)
    if family == "clip":
        from qgnb.explain.clip import ClipExplainer

        if recipe is not None:
            raise UsageError(f"model {path}: CLIP checkpoints have no --recipe")
        return str(path), ClipExplainer.from_pretrained(path, device=device)
    from qgnb.explain.albef import AlbefExplainer

    if tokenizer is None:
        raise UsageError(f"model {path}: an ALBEF/AMC checkpoint needs --tokenizer, a folder "
                         "with bert-base-uncased's tokenizer")
    return str(path), AlbefExplainer.from_checkpoint(path, tokenizer, device=device, **options)


def _family_of(path: Path) -> str:
    if path.is_file():
        return "albef"
    config = path / "config.json"
    if not config.is_file():
        raise UsageError(f"checkpoint folder {path} has no config.json; pass --family "
                         f"({', '.join(FAMILIES)})")
    try:
        model_type = json.loads(config.read_text()).get("model_type", "")
    except ValueError as error:
        raise UsageError(f"{config} is not valid JSON ({error})") from error
    family = next((f for f in FAMILIES if model_type.startswith(f)), None)
    if family is None:
        raise UsageError(f"{config}: model_type {model_type!r} is none of {FAMILIES}; pass "
                         "--family")
    return family


def prepare_output(out: Path, run: dict[str, Any]) -> None:
    """Check that ``out`` can hold this run (a folder, empty or of the same model and data) and
    record the run in ``out/run.json``.

    >>> import tempfile
    >>> out = Path(tempfile.mkdtemp()) / "run"
    >>> prepare_output(out, {"model": "m", "data": "shapes:id:3:0"})
    >>> prepare_output(out, {"model": "n", "data": "shapes:id:3:0"})
    Traceback (most recent call last):
    ...
    qgnb.cli.UsageError: output folder ... holds a run of model 'm' on 'shapes:id:3:0'; ...
    """
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; the output must be a folder")
    recorded = out / RUN_FILE
    if recorded.is_file():
        try:
            before = json.loads(recorded.read_text())
        except ValueError as error:
            raise UsageError(f"{recorded} is unreadable ({error}); use another --out") from error
        if before != run:
            raise UsageError(f"output folder {out} holds a run of model {before.get('model')!r} "
                             f"on {before.get('data')!r}; this run is model {run['model']!r} on "
                             f"{run['data']!r}. Its maps must not mix: use another --out")
        return
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(run, indent=1, sort_keys=True) + "\n"
    atomic_write(recorded, lambda file: file.write(text.encode()))


def run_evaluate(args: argparse.Namespace) -> int:
    """``qgnb evaluate``: see the module docstring."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("gloo")  # gloo: CPU tensors and objects, with or without GPUs
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = args.device
    if device in (None, "cuda") and torch.cuda.is_available():
        device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}"  # one GPU a rank
    try:
        out = Path(args.out).expanduser().resolve()
        data_name, data = parse_data(args.data)
        if len(data) == 0:
            raise UsageError(f"data spec {args.data!r} gives no samples")
        model_name, explainer = load_explainer(args.model, family=args.family,
                                               recipe=args.recipe, tokenizer=args.tokenizer,
                                               device=device)
        prepare_output(out, {"model": model_name, "family": args.family,
                             "recipe": args.recipe, "tokenizer": args.tokenizer,
                             "data": data_name})
        share = BatchShard(data, rank=rank, world=world, batch_size=args.batch_size)
        table, failure = None, None
        try:
            if len(share):
                table = evaluate(explainer, share, batch_size=args.batch_size,
                                 store=out / "maps", progress=rank == 0 and not args.no_progress)
        except (ValueError, FileNotFoundError) as error:
            if world == 1:
                raise
            failure = f"rank {rank}: {error}"  # gathered, so that no rank waits for it forever
        results = [(table, failure)]
        if world > 1:
            results = [None] * world if rank == 0 else None
            dist.gather_object((table, failure), results, dst=0)
            if failure is not None:
                raise ValueError(failure)
        if rank == 0:
            failures = [f for _, f in results if f is not None]
            if failures:
                raise ValueError("; ".join(failures))
            write_results(out, [t for t, _ in results if t is not None])
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def write_results(out: Path, tables: list[pd.DataFrame]) -> pd.DataFrame:
    """Merge per-rank tables (sorted by ``id``) into ``out/metrics.csv`` and ``summary.json``.

    >>> import tempfile
    >>> from qgnb.metrics import METRIC_COLUMNS
    >>> part = pd.DataFrame({"id": ["b", "a"], "phrase": ["x", "y"], "flat": [False, False],
    ...                      **{m: [1.0, 0.0] for m in METRIC_COLUMNS}})
    >>> write_results(Path(tempfile.mkdtemp()), [part])["id"].tolist()
    ['a', 'b']
    """
    table = pd.concat(tables, ignore_index=True).sort_values("id", kind="stable")
    table = table.reset_index(drop=True)
    text = table.to_csv(index=False)
    atomic_write(out / "metrics.csv", lambda file: file.write(text.encode()))
    summary = {key: _json_value(value) for key, value in summarize(table).items()}
    summary_text = json.dumps(summary, indent=1) + "\n"
    atomic_write(out / "summary.json", lambda file: file.write(summary_text.encode()))
    return table


def _json_value(value: Any) -> Any:
    value = value.item() if hasattr(value, "item") else value
    return None if isinstance(value, float) and math.isnan(value) else value  # JSON has no NaN


def read_run(folder: str) -> pd.DataFrame:
    """The ``metrics.csv`` of a ``qgnb evaluate`` output folder.

    >>> read_run("/no/such/run")
    Traceback (most recent call last):
    ...
    qgnb.cli.UsageError: /no/such/run has no metrics.csv; make it with `qgnb evaluate ...
    """
    path = Path(folder) / "metrics.csv"
    if not path.is_file():
        raise UsageError(f"{folder} has no metrics.csv; make it with `qgnb evaluate ... --out "
                         f"{folder}`")
    return pd.read_csv(path)


def run_compare(args: argparse.Namespace) -> int:
    """``qgnb compare``: print B minus A per metric with its bootstrap interval."""
    result = compare(read_run(args.dir_a), read_run(args.dir_b), n_boot=args.n_boot,
                     seed=args.seed)
    print(f"B = {args.dir_b} minus A = {args.dir_a}: paired differences, 95% bootstrap "
          f"intervals ({args.n_boot} resamples, seed {args.seed})")
    print(result.round(4).to_string())
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The ``qgnb`` argument parser (subcommands ``evaluate`` and ``compare``)."""
    parser = argparse.ArgumentParser(prog="qgnb", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("evaluate", help="explain and score every phrase of a data set")
    run.add_argument("model", help="a zoo model name, or a checkpoint folder or file")
    run.add_argument("data", help="one of " + ", ".join(DATA_FORMS))
    run.add_argument("--out", required=True, help="output folder (resumed if it exists)")
    run.add_argument("--batch-size", type=int, default=16)
    run.add_argument("--device", default=None,
                     help="cpu, cuda or cuda:N (default: CUDA when available, one GPU a rank)")
    run.add_argument("--family", choices=FAMILIES, default=None,
                     help="checkpoint family (default: read from the folder's config.json)")
    run.add_argument("--recipe", default=None, help="map recipe of a checkpoint's family")
    run.add_argument("--tokenizer", default=None,
                     help="BERT tokenizer folder of an ALBEF/AMC checkpoint file")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(handler=run_evaluate)
    pair = commands.add_parser("compare", help="paired differences of two evaluate runs")
    pair.add_argument("dir_a", help="output folder of the baseline run (A)")
    pair.add_argument("dir_b", help="output folder of the run compared with it (B)")
    pair.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples")
    pair.add_argument("--seed", type=int, default=0)
    pair.set_defaults(handler=run_compare)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qgnb`` command line; returns the exit status (2 for bad input).

    >>> main(["evaluate", "shapes-blip-amc", "kitti:/data", "--out", "/tmp/x"])
    2
    """
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, FileNotFoundError, NotADirectoryError, ValueError) as error:
        print(f"qgnb {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
