"""A real tiny trained run (`carscope train`, not the fixture's hand-made checkpoints) exports and proves itself."""

from __future__ import annotations

import json

import pytest

import carscope.train.engine  # noqa: F401  (an import error here must fail, not skip)
from carscope.commands.cli import main

from .conftest import make_dataset


@pytest.mark.slow
def test_export_of_carscope_train_runs(tmp_path, capsys):
    data = make_dataset(tmp_path / "dataset")
    common = ["--data", str(data), "--arch", "tinynet", "--img-size", "32", "--epochs", "2", "--batch-size", "16",
              "--device", "cpu", "--workers", "0", "--threads", "1", "--no-progress"]
    assert main(["train", "view", "--out", str(tmp_path / "view"), *common]) == 0
    assert main(["train", "model", "--out", str(tmp_path / "model"), "--view-run", str(tmp_path / "view"),
                 *common]) == 0
    capsys.readouterr()
    out = tmp_path / "bundle"
    code = main(["export", "--view-run", str(tmp_path / "view"), "--model-run", str(tmp_path / "model"),
                 "--data", str(data), "--out", str(out), "--int8", "--force"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    meta = json.loads((out / "bundle.json").read_text())
    from carscope.train.checkpoint import load_run

    for key in ("view", "model"):
        state = load_run(tmp_path / key)
        entry = meta["models"][key]
        assert entry["labels"] == state["labels"] and entry["temperature"] == pytest.approx(state["temperature"])
        assert entry["parity"]["top1_agreement"] == 1.0 and entry["parity"]["photos"] > 0
        assert "int8" in entry["variants"]
        # the metrics the run was trained to travel with the model
        assert entry["metrics"] == json.loads(json.dumps(state["metrics"]))
    assert "parity fp32 vs PyTorch" in printed.out
