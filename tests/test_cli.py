"""The `qgnb` command: outputs equal to `qgnb.evaluate`, sharded runs equal to one process,
resumption without recomputation, and bad input named."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from importlib import import_module
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

import qgnb
from qgnb import zoo
from qgnb.cli import UsageError, main, parse_data
from qgnb.data import shapes
from qgnb.explain.blip import BlipExplainer
from qgnb.metrics import summarize

ROOT = Path(__file__).resolve().parent.parent
MUST_SHOW = ["shapes-blip-amc", "shapes:id:120:5"]


def python_table(model: str, n: int, seed: int) -> pd.DataFrame:
    """`qgnb.evaluate` in Python, rows sorted by id, as read back from a CSV."""
    table = qgnb.evaluate(zoo.load(model), shapes("id", n, seed), batch_size=16, progress=False)
    table = table.sort_values("id", kind="stable").reset_index(drop=True)
    return pd.read_csv(io.StringIO(table.to_csv(index=False)))


def command(*args: str) -> list[str]:
    return [sys.executable, *args]


def test_sharded_run_equals_one_process_and_python(tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one, two = tmp_path / "A", tmp_path / "B"
    subprocess.run(command("-m", "qgnb", "evaluate", *MUST_SHOW, "--out", str(one),
                           "--no-progress"), check=True, env=env, timeout=600)
    subprocess.run(command("-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
                           "2", "-m", "qgnb", "evaluate", *MUST_SHOW, "--out", str(two),
                           "--no-progress"), check=True, env=env, timeout=600)
    assert (one / "metrics.csv").read_bytes() == (two / "metrics.csv").read_bytes()
    assert (one / "summary.json").read_bytes() == (two / "summary.json").read_bytes()
    written = pd.read_csv(one / "metrics.csv")
    pd.testing.assert_frame_equal(written, python_table("shapes-blip-amc", 120, 5))
    assert list(written.columns) == list(qgnb.evaluate(zoo.load("shapes-blip-amc"),
                                                       shapes("id", 1), progress=False).columns)
    summary = json.loads((one / "summary.json").read_text())
    assert summary == pytest.approx(summarize(written).to_dict())
    # Both ranks wrote their share of the maps: the same content-named files as one process.
    assert sorted(p.name for p in (one / "maps").glob("batch-*.pt")) == \
        sorted(p.name for p in (two / "maps").glob("batch-*.pt"))
    assert len(list((two / "maps").glob("batch-*.pt"))) == 8


def test_killed_run_recomputes_no_finished_phrase(tmp_path: Path, monkeypatch) -> None:
    explained: list[str] = []
    real_call = BlipExplainer.__call__

    def counting(self, images, phrases):
        if len(explained) >= 8 and crash:  # killed while the third batch is being explained
            raise KeyboardInterrupt
        explained.extend(phrases)
        return real_call(self, images, phrases)

    monkeypatch.setattr(BlipExplainer, "__call__", counting)
    args = ["evaluate", "shapes-blip-amc", "shapes:id:12:5", "--out", str(tmp_path),
            "--batch-size", "4", "--no-progress"]
    crash = True
    with pytest.raises(KeyboardInterrupt):
        main(args)
    assert len(explained) == 8 and not (tmp_path / "metrics.csv").exists()
    crash = False
    assert main(args) == 0
    assert len(explained) == 12  # only the 4 phrases of the unfinished batch were explained
    monkeypatch.undo()
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "metrics.csv"),
                                  python_table("shapes-blip-amc", 12, 5))


def error_of(args: list[str], capsys) -> str:
    assert main(args) == 2
    return capsys.readouterr().err


def test_bad_input_is_named(tmp_path: Path, capsys) -> None:
    out = str(tmp_path / "run")
    assert "unknown model 'shapes-blip-xl': not a zoo model (shapes-clip" in error_of(
        ["evaluate", "shapes-blip-xl", "shapes:id:4", "--out", out], capsys)
    assert "unknown data spec 'kitti:/data'; expected one of shapes:SPLIT:N[:SEED]" in error_of(
        ["evaluate", "shapes-blip-amc", "kitti:/data", "--out", out], capsys)
    assert "expected shapes:SPLIT:N[:SEED] with integer N and SEED" in error_of(
        ["evaluate", "shapes-blip-amc", "shapes:id:many", "--out", out], capsys)
    missing = tmp_path / "no-refer"
    assert f"the data folder {missing} does not exist" in error_of(
        ["evaluate", "shapes-blip-amc", f"refcoco:{missing}:refcoco+:testA", "--out", out],
        capsys)
    assert f"no checkpoint folder or file at {missing}" in error_of(
        ["evaluate", str(missing), "shapes:id:4", "--out", out], capsys)
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    assert f"--out {afile} is a file" in error_of(
        ["evaluate", "shapes-blip-amc", "shapes:id:4", "--out", str(afile)], capsys)
    assert "has its own family and recipe" in error_of(
        ["evaluate", "shapes-blip-amc", "shapes:id:4", "--out", out, "--family", "blip"], capsys)
    assert "an ALBEF/AMC checkpoint needs --tokenizer" in error_of(
        ["evaluate", str(afile), "shapes:id:4", "--out", out], capsys)
    clip = str(zoo.checkpoint_dir("shapes-clip"))
    assert "CLIP checkpoints have no --recipe" in error_of(
        ["evaluate", clip, "shapes:id:4", "--out", out, "--recipe", "lavis"], capsys)
    assert f"{tmp_path / 'none'} has no metrics.csv" in error_of(
        ["compare", str(tmp_path / "none"), out], capsys)


def test_a_run_folder_refuses_another_model_or_data_set(tmp_path: Path, capsys) -> None:
    out = str(tmp_path)
    assert main(["evaluate", "shapes-blip-amc", "shapes:id:4:5", "--out", out,
                 "--no-progress"]) == 0
    assert (f"output folder {tmp_path} holds a run of model 'shapes-blip-amc' on "
            "'shapes:id:4:5'; this run is model 'shapes-blip-base' on 'shapes:id:4:5'"
            ) in error_of(["evaluate", "shapes-blip-base", "shapes:id:4:5", "--out", out], capsys)
    assert "this run is model 'shapes-blip-amc' on 'shapes:ood:4:5'" in error_of(
        ["evaluate", "shapes-blip-amc", "shapes:ood:4:5", "--out", out], capsys)
    # The store itself refuses another explainer, even when run.json is gone.
    (tmp_path / "run.json").unlink()
    message = error_of(["evaluate", "shapes-blip-base", "shapes:id:4:5", "--out", out], capsys)
    assert "holds maps of another explainer; what differs:" in message
    assert "config.model: 'shapes-blip-amc' in the store, 'shapes-blip-base' in this run" in \
        message


def test_compare_prints_paired_differences(tmp_path: Path, capsys) -> None:
    for name in ("shapes-blip-base", "shapes-blip-amc"):
        assert main(["evaluate", name, "shapes:id:24:5", "--out", str(tmp_path / name),
                     "--no-progress"]) == 0
    capsys.readouterr()
    a, b = str(tmp_path / "shapes-blip-base"), str(tmp_path / "shapes-blip-amc")
    assert main(["compare", a, b, "--n-boot", "200"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith(f"B = {b} minus A = {a}: paired differences")
    table_a, table_b = pd.read_csv(Path(a) / "metrics.csv"), pd.read_csv(Path(b) / "metrics.csv")
    diff = round(float((table_b["soft_iou"] - table_a["soft_iou"]).mean()), 4)
    row = next(line for line in printed.splitlines() if line.startswith("soft_iou"))
    assert float(row.split()[3]) == pytest.approx(diff, abs=1e-4)


def test_a_checkpoint_folder_is_read_with_its_family(tmp_path: Path) -> None:
    folder = zoo.checkpoint_dir("shapes-clip")
    assert main(["evaluate", str(folder), "shapes:id:3", "--out", str(tmp_path),
                 "--device", "cpu", "--no-progress"]) == 0
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["model"] == str(folder) and pd.read_csv(tmp_path / "metrics.csv").shape[0] == 3


def test_console_script_and_module_entry_point() -> None:
    project = (ROOT / "pyproject.toml").read_text()  # tomllib is Python 3.11+; we support 3.10
    assert '[project.scripts]\nqgnb = "qgnb.cli:main"\n' in project
    assert import_module("qgnb.cli").main is main
    assert "sys.exit(main())" in (ROOT / "qgnb" / "__main__.py").read_text()


def test_real_data_specs_name_their_folders(tmp_path: Path) -> None:
    relation = {"_id": "r1", "predicate": "on", "label": True,
                "subject": {"x": 1, "y": 1, "name": "cup", "bbox": [1, 4, 1, 4]},
                "object": {"x": 1, "y": 1, "name": "table", "bbox": [0, 8, 0, 8]}}
    (tmp_path / "annotations.json").write_text(json.dumps([
        {"url": "nyu/a.png", "height": 8, "width": 8, "split": "test",
         "annotations": [relation]}]))
    (tmp_path / "images/nyu").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "images/nyu/a.png")
    name, data = parse_data(f"spatialsense:{tmp_path}/./:test")
    assert name == f"spatialsense:{tmp_path}:test" and [s.phrase for s in data] == ["cup on table"]
    with pytest.raises(UsageError, match="expected refcoco:ROOT:DATASET:SPLIT"):
        parse_data(f"refcoco:{tmp_path}")
    with pytest.raises(UsageError, match="expected flickr30k:ROOT:SPLIT"):
        parse_data("flickr30k:test")
