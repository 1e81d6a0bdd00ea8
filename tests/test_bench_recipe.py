"""`carscope bench recipe` at a tiny size: the real pretrained EfficientNet-Lite0 trained by carscope's recipe (through
the CLI) and by the seed's (frozen backbone, linear head, random test-time crop) on the same split, and cpunet from
scratch; every figure in range, the Markdown and the plot written."""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main


@pytest.mark.slow
def test_bench_recipe_smoke(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["bench", "recipe", "--makes", "2", "--models-per-make", "2", "--photos", "8", "--img-size", "32",
                 "--epochs", "2", "--test-draws", "2", "--out", str(res)]) == 0
    r = json.loads((res / "recipe.json").read_text())
    assert set(r["recipes"]) == {"carscope", "seed", "scratch"} and r["same_split"] and r["classes"] == 4
    figures = [r["recipes"][k]["test"] for k in ("carscope", "seed", "scratch")] + [r["recipes"]["seed"]["test_centre"]]
    for t in figures:
        assert t["n"] == r["photos"]["test"] > 0
        assert 0 <= t["top1"] <= t["top5"] <= 1 and 0 <= t["ece"] <= 1
    for key in ("carscope", "seed", "scratch"):
        assert r["recipes"][key]["train_seconds"] > 0 and len(r["recipes"][key]["curve"]) == 2
    seed = r["recipes"]["seed"]
    assert seed["test"]["draws"] == 2 and seed["test"]["top1_min"] <= seed["test"]["top1"] <= seed["test"]["top1_max"]
    assert seed["trainable_params"] == 4 * 1280 + 4  # one linear layer on Lite0's 1280 pooled features
    assert "backbone tensors loaded" in seed["weights"][0] and r["recipes"]["carscope"]["weights"] == seed["weights"]
    assert r["recipes"]["carscope"]["curve"][0]["phase"] == "head" and r["recipes"]["carscope"]["curve"][1]["phase"] == "full"
    md = (res / "recipe.md").read_text()
    assert "random test crop" in md and "centre test crop" in md and "cpunet" in md
    assert (res / "recipe_figures.png").stat().st_size > 10_000


def test_bench_recipe_refuses_bad_settings(tmp_path, capsys):
    assert main(["bench", "recipe", "--epochs", "0", "--out", str(tmp_path)]) == 2
    assert "--epochs" in capsys.readouterr().err
    assert main(["bench", "recipe", "--data", str(tmp_path / "nope"), "--out", str(tmp_path)]) == 2
    assert "not a directory" in capsys.readouterr().err
