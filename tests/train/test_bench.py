"""`carscope bench train` runs end to end on a tiny case and reports both loops."""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main


@pytest.mark.slow
def test_bench_train_smoke(tiny_data, tmp_path, capsys):
    code = main(["bench", "train", "--out", str(tmp_path), "--data", str(tiny_data), "--cases", "tinynet@32",
                 "--batch-size", "4", "--workers", "0"])
    assert code == 0
    result = json.loads((tmp_path / "train.json").read_text())
    case = result["cases"][0]
    assert case["arch"] == "tinynet" and case["naive"]["img_per_s"] > 0 and case["carscope"]["img_per_s"] > 0
    assert case["speedup"] == pytest.approx(case["carscope"]["img_per_s"] / case["naive"]["img_per_s"])
    assert "| tinynet | 32 |" in (tmp_path / "train.md").read_text()
