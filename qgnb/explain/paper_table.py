"""The Q-GroundCAM paper's table from the user's own files: four models x four test sets.

Rows are model x data set, columns every Q-GroundCAM metric as a mean with its bootstrap 95%
interval over samples (`qgnb.metrics.intervals.mean_intervals`). The models, each by the
recipe of the code behind the paper's number:

- ``CLIP-gScoreCAM``: OpenAI's RN50x16 through open_clip (``RN50x16-quickgelu``), gScoreCAM on
  the last visual stage, the 300 channels with the largest mean gradient.
- ``BLIP-base``, ``BLIP-large``: `transformers` folders of BLIP's COCO retrieval (ITM)
  checkpoints, LAVIS' text-localization recipe (``"lavis"`` in `qgnb.explain.recipes`).
- ``ALBEF-AMC``: AMC's checkpoint file, AMC's grounding recipe (``"amc"``); its BERT tokenizer
  is ``bert-base-uncased``'s, which BLIP-base's folder also holds (BLIP only adds [DEC] and
  [ENC], which captions never contain), so that folder is used unless one is given.

The data sets: RefCOCO+ testA and testB (`qgnb.data.load_refcoco`), Flickr30k Entities test
(`load_flickr30k_entities`), SpatialSense test (`load_spatialsense`). Each (model, data set)
run writes its maps to its own map store folder, so a killed run resumes where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

if TYPE_CHECKING:
    import torch

    from qgnb.data import Sample

# The explainers, the data loaders and qgnb.metrics.intervals (torch, transformers, scipy) are
# imported where they are used: saying what the table needs, without files, then takes seconds.

# The paper's columns, in its order, named as qgnb's score table names them.
PAPER_METRICS = ("pg_accuracy", "pg_uncertainty", "pg_accuracy_certain", "soft_iou",
                 "soft_dice", "hard_iou", "hard_dice", "wdp", "io_ratio")
MODELS = ("CLIP-gScoreCAM", "BLIP-base", "BLIP-large", "ALBEF-AMC")
DATASETS = ("RefCOCO+ testA", "RefCOCO+ testB", "Flickr30k test", "SpatialSense test")
CLIP_MODEL = "RN50x16-quickgelu"
CLIP_TOPK = 300


@dataclass(frozen=True)
class PaperPaths:
    """Where the user's files are: four checkpoints and three data roots.

    ``bert_tokenizer``: ALBEF-AMC's tokenizer folder (``None``: BLIP-base's folder).
    """

    clip_rn50x16: str
    blip_base: str
    blip_large: str
    albef_amc: str
    refcoco_root: str
    flickr30k_root: str
    spatialsense_root: str
    bert_tokenizer: str | None = None


# What each path must hold, and how to get it (printed when it is missing).
NEEDS = {
    "clip_rn50x16": ("file", "OpenAI's RN50x16.pt (the CLIP repository's model list; or "
                             "open_clip's 'RN50x16' / 'openai' weights)"),
    "blip_base": ("folder", "huggingface-cli download Salesforce/blip-itm-base-coco "
                            "--local-dir <this folder>"),
    "blip_large": ("folder", "huggingface-cli download Salesforce/blip-itm-large-coco "
                             "--local-dir <this folder>"),
    "albef_amc": ("file", "AMC's checkpoint (the uvavision/AMC-grounding README links it)"),
    "refcoco_root": ("folder", "refcoco+/refs(unc).p, refcoco+/instances.json (the refer "
                               "toolkit's download) and COCO train2014 images"),
    "flickr30k_root": ("folder", "test.txt, Annotations/, Sentences/ (Flickr30k Entities) and "
                                 "flickr30k-images/"),
    "spatialsense_root": ("folder", "annotations.json and images/ (SpatialSense)"),
    "bert_tokenizer": ("folder", "huggingface-cli download google-bert/bert-base-uncased "
                                 "--local-dir <this folder>"),
}
# Which paths each model and each data set needs.
MODEL_NEEDS = {"CLIP-gScoreCAM": ("clip_rn50x16",), "BLIP-base": ("blip_base",),
               "BLIP-large": ("blip_large",), "ALBEF-AMC": ("albef_amc", "bert_tokenizer")}
DATASET_NEEDS = {"RefCOCO+ testA": ("refcoco_root",), "RefCOCO+ testB": ("refcoco_root",),
                 "Flickr30k test": ("flickr30k_root",),
                 "SpatialSense test": ("spatialsense_root",)}


def _path(paths: PaperPaths, name: str) -> str | None:
    if name == "bert_tokenizer" and not paths.bert_tokenizer:
        return paths.blip_base
    return getattr(paths, name)


def _local(paths: PaperPaths, name: str) -> Path:
    """The path of parameter ``name`` with ``~`` expanded (paths are printed as given)."""
    return Path(_path(paths, name)).expanduser()


def _present(path: str | None, kind: str) -> bool:
    if not path:
        return False
    where = Path(path).expanduser()
    return where.is_file() if kind == "file" else where.is_dir()


def requirements(paths: PaperPaths) -> pd.DataFrame:
    """One row per path the table needs: ``parameter``, ``path``, ``kind``, ``present`` and
    ``how`` to get it when missing.

    >>> paths = PaperPaths(*["/nowhere"] * 7)
    >>> table = requirements(paths)
    >>> table["present"].any(), len(table)
    (np.False_, 8)
    """
    rows = []
    for field in fields(PaperPaths):
        kind, how = NEEDS[field.name]
        path = _path(paths, field.name)
        present = _present(path, kind)
        rows.append({"parameter": field.name, "path": path, "kind": kind, "present": present,
                     "how": "" if present else how})
    return pd.DataFrame(rows)


def runnable(paths: PaperPaths) -> list[tuple[str, str]]:
    """The (model, data set) pairs whose files are all present, in the paper's order.

    >>> runnable(PaperPaths(*["/nowhere"] * 7))
    []
    """
    present = set(requirements(paths).query("present")["parameter"])
    return [(model, dataset) for model in MODELS for dataset in DATASETS
            if set(MODEL_NEEDS[model]) <= present and set(DATASET_NEEDS[dataset]) <= present]


def build_explainer(model: str, paths: PaperPaths,
                    device: str | torch.device | None = None) -> Any:
    """The explainer of one of `MODELS`, from the user's files, by its paper recipe."""
    from qgnb.explain import AlbefExplainer, BlipExplainer, ClipExplainer

    if model == "CLIP-gScoreCAM":
        return ClipExplainer.from_open_clip(CLIP_MODEL, _local(paths, "clip_rn50x16"),
                                            topk=CLIP_TOPK, device=device)
    if model in ("BLIP-base", "BLIP-large"):
        folder = _local(paths, "blip_base" if model == "BLIP-base" else "blip_large")
        return BlipExplainer.from_pretrained(folder, device=device)
    if model == "ALBEF-AMC":
        return AlbefExplainer.from_checkpoint(_local(paths, "albef_amc"),
                                              _local(paths, "bert_tokenizer"), device=device)
    raise ValueError(f"unknown model {model!r}; expected one of {MODELS}")


def load_dataset(dataset: str, paths: PaperPaths) -> Sequence[Sample]:
    """One of `DATASETS` from the user's data roots."""
    from qgnb.data import load_flickr30k_entities, load_refcoco, load_spatialsense

    if dataset.startswith("RefCOCO+"):
        return load_refcoco(_local(paths, "refcoco_root"), "refcoco+", dataset.split()[-1])
    if dataset == "Flickr30k test":
        return load_flickr30k_entities(_local(paths, "flickr30k_root"), "test")
    if dataset == "SpatialSense test":
        return load_spatialsense(_local(paths, "spatialsense_root"), "test")
    raise ValueError(f"unknown data set {dataset!r}; expected one of {DATASETS}")


def with_certain_hits(table: pd.DataFrame) -> pd.DataFrame:
    """The score table with ``pg_accuracy_certain``: ``pg_hit`` where the peak is certain,
    NaN elsewhere (its mean is PG accuracy over the certain samples), and the PG columns named
    as the paper's aggregates.

    >>> t = pd.DataFrame({"pg_hit": [1.0, 0.0], "pg_uncertain": [0.0, 1.0]})
    >>> with_certain_hits(t)["pg_accuracy_certain"].tolist()
    [1.0, nan]
    """
    out = table.rename(columns={"pg_hit": "pg_accuracy", "pg_uncertain": "pg_uncertainty"})
    out["pg_accuracy_certain"] = out["pg_accuracy"].where(out["pg_uncertainty"] == 0, np.nan)
    return out


def paper_rows(tables: Mapping[tuple[str, str], pd.DataFrame], *, n_resamples: int = 2000,
               seed: int = 0) -> pd.DataFrame:
    """The paper's layout from score tables keyed by (model, data set): one row per key
    (index ``model``, ``dataset``), columns ``(metric, mean | low | high)`` for every
    `PAPER_METRICS` entry, then ``n`` (samples) and ``n_flat`` (flat maps, left out of every
    mean).

    >>> t = pd.DataFrame({"pg_hit": [1.0, 0.0], "pg_uncertain": [0.0, 0.0], "soft_iou": 0.5,
    ...     "soft_dice": 0.5, "hard_iou": 0.5, "hard_dice": 0.5, "wdp": 0.1, "io_ratio": 0.8,
    ...     "flat": False})
    >>> float(paper_rows({("m", "d"): t}).loc[("m", "d"), ("pg_accuracy", "mean")])
    0.5
    """
    from qgnb.metrics.intervals import mean_intervals

    rows = {}
    for key, table in tables.items():
        scores = with_certain_hits(table)
        flat = scores["flat"].astype(bool)
        intervals = mean_intervals(scores[~flat], PAPER_METRICS, n_resamples=n_resamples,
                                   seed=seed)
        row = {(metric, stat): intervals.loc[metric, stat] for metric in PAPER_METRICS
               for stat in ("mean", "low", "high")}
        row[("n", "")] = len(table)
        row[("n_flat", "")] = int(flat.sum())
        rows[key] = row
    if not rows:
        raise ValueError("paper_rows: no score tables given")
    out = pd.DataFrame.from_dict(rows, orient="index")
    out.columns = pd.MultiIndex.from_tuples(out.columns)
    out.index = pd.MultiIndex.from_tuples(out.index, names=["model", "dataset"])
    return out


def format_paper_table(rows: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """`paper_rows` as text: ``mean [low, high]`` per metric, plus ``n``.

    >>> rows = pd.DataFrame({("wdp", "mean"): [0.1234], ("wdp", "low"): [0.1],
    ...     ("wdp", "high"): [0.15], ("n", ""): [7], ("n_flat", ""): [0]})
    >>> format_paper_table(rows).iloc[0].to_dict()
    {'wdp': '0.123 [0.100, 0.150]', 'n': 7, 'n_flat': 0}
    """
    out = pd.DataFrame(index=rows.index)
    metrics = dict.fromkeys(metric for metric, stat in rows.columns if stat)
    for metric in metrics:
        out[metric] = [f"{m:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]" for m, lo, hi in
                       zip(rows[(metric, "mean")], rows[(metric, "low")],
                           rows[(metric, "high")], strict=True)]
    out["n"] = [int(n) for n in rows[("n", "")]]
    out["n_flat"] = [int(n) for n in rows[("n_flat", "")]]
    return out


def store_folder(store_root: str | Path, model: str, dataset: str) -> Path:
    """The map store folder of one run: ``store_root/<model>/<data set>`` (spaces to ``_``).

    >>> store_folder("runs/paper", "BLIP-base", "RefCOCO+ testA").as_posix()
    'runs/paper/BLIP-base/RefCOCO+_testA'
    """
    return Path(store_root) / model.replace(" ", "_") / dataset.replace(" ", "_")


def run_paper_table(runs: Sequence[tuple[str, str]],
                    explainers: Callable[[str], Any],
                    datasets: Callable[[str], Sequence[Sample]],
                    store_root: str | Path, *, batch_size: int = 16, limit: int | None = None,
                    progress: bool = True, n_resamples: int = 2000) -> pd.DataFrame:
    """Evaluate every (model, data set) of ``runs`` and lay the results out as the paper.

    ``explainers(model)`` and ``datasets(name)`` build each one once (a model's explainer is
    reused across data sets); each run's maps go to `store_folder`, so rerunning after a kill
    computes only the maps not yet stored. ``limit``: the first ``limit`` samples of each data
    set (a quick look). A progress bar counts runs; `qgnb.explain.evaluate` shows one per run.

    >>> import tempfile
    >>> import torch
    >>> from PIL import Image
    >>> from qgnb.data import Sample
    >>> class Centre:  # a map store needs a config naming what the maps depend on
    ...     config = {"explainer": "centre"}
    ...     def __call__(self, images, phrases):
    ...         return torch.tensor([[0., 0, 0], [0, 1, 0], [0, 0, 0]]).expand(len(images), 3, 3)
    >>> centre = Centre()
    >>> data = [Sample("a", Image.new("RGB", (3, 3)), "the middle", [[1, 1, 2, 2]])]
    >>> rows = run_paper_table([("centre", "toy")], lambda m: centre, lambda d: data,
    ...                        tempfile.mkdtemp(), progress=False)
    >>> float(rows.loc[("centre", "toy"), ("pg_accuracy", "mean")])
    1.0
    """
    from qgnb.explain import evaluate

    built: dict[str, Any] = {}
    loaded: dict[str, Sequence[Sample]] = {}
    tables = {}
    for model, dataset in tqdm(runs, desc="paper table", unit="run", disable=not progress):
        if model not in built:
            built[model] = explainers(model)
        if dataset not in loaded:
            loaded[dataset] = datasets(dataset)
        data = loaded[dataset]
        if limit is not None:
            data = data[:limit]
        tables[(model, dataset)] = evaluate(built[model], data, batch_size=batch_size,
                                            store=store_folder(store_root, model, dataset),
                                            progress=progress)
    return paper_rows(tables, n_resamples=n_resamples)
