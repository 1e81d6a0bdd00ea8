"""Bad input gets a one-line error and exit status 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import torch

from carscope.commands.cli import main
from carscope.crawler.dataset import IMAGES_COLUMNS, write_table
from tests.datasets import make_tiny_dataset

FAST = ["--arch", "tinynet", "--img-size", "32", "--epochs", "1", "--workers", "0", "--threads", "1", "--no-progress"]


def _run(capsys, *argv) -> str:
    code = main(["train", *argv])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err and err[-1].startswith("carscope train: error: ")
    return err[-1]


def test_empty_dataset(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data", n_classes=2, per_class=0, interior_per_class=0)
    msg = _run(capsys, "view", "--data", str(data), "--out", str(tmp_path / "run"), *FAST)
    assert "no images" in msg or "no usable" in msg


def test_missing_dataset(tmp_path, capsys):
    assert "does not exist" in _run(capsys, "view", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r"))


def test_missing_columns(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data", n_classes=2, per_class=3, interior_per_class=3)
    images = pd.read_parquet(data / "images.parquet").drop(columns=["view_hint"])
    write_table(images, data / "images.parquet", columns={k: v for k, v in IMAGES_COLUMNS.items() if k != "view_hint"})
    assert "view_hint" in _run(capsys, "view", "--data", str(data), "--out", str(tmp_path / "run"), *FAST)


def test_one_image_in_a_class_is_dropped_by_name(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "data", n_classes=2, per_class=6, interior_per_class=0,
                             class_sizes={1: 1})
    code = main(["train", "model", "--data", str(data), "--out", str(tmp_path / "run"), *FAST])
    err = capsys.readouterr().err
    assert code == 2
    assert "2023_make1_model1 (1)" in err  # the warning and the error name the class and its count
    assert err.strip().splitlines()[-1].startswith("carscope train: error: need at least 2 classes")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_device_cuda_without_gpu(tiny_data, tmp_path, capsys):
    msg = _run(capsys, "view", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--device", "cuda", *FAST)
    assert "no CUDA GPU" in msg


def test_existing_run_needs_resume_or_overwrite(view_run, tiny_data, capsys):
    _, run_dir = view_run
    assert "--resume" in _run(capsys, "view", "--data", str(tiny_data), "--out", str(run_dir), *FAST)


def test_resume_of_nothing(tiny_data, tmp_path, capsys):
    msg = _run(capsys, "view", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--resume")
    assert "no run to continue" in msg


def test_bad_weights_file(tiny_data, tmp_path, capsys):
    bad = tmp_path / "w.pt"
    torch.save({"conv.weight": torch.zeros(3)}, bad)
    msg = _run(capsys, "view", "--data", str(tiny_data), "--out", str(tmp_path / "run"), "--weights", str(bad), *FAST)
    assert "do not match" in msg


def test_cli_subprocess_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "carscope", "train", "view", "--data", str(tmp_path / "nope"),
                           "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
