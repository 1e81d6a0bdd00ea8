"""`carscope bench levels` at a tiny size: a realistic showroom, the from-scratch recipe and the colour-histogram
floor (the slow test adds the two ImageNet Lite0 recipes), every figure in range, the groups checked against the
showroom's truth, the unknown-model scores, the slices, the Markdown and the plot."""

from __future__ import annotations

import json

import pytest

from carscope.commands.cli import main

TINY = ["--makes", "3", "--models-per-make", "2", "--years", "2022-2023", "--photos", "8", "--unknown-makes", "2",
        "--unknown-photos", "4", "--img-size", "32", "--epochs", "2"]


def _check(r: dict, recipes: list[str]) -> None:
    from carscope.benchmarks.levels_eval import UNKNOWN_SCORES

    assert list(r["recipes"]) == recipes and r["classes"] == 12  # every model-year of both years is a class
    known = r["showrooms"]["known"]
    assert known["config"]["views"] == "all" and known["config"]["generations"] == 4 and known["looks"] < 12
    for rec in r["recipes"].values():
        for level in ("model_year", "model", "make"):
            t = rec["test"][level]
            assert 0 <= t["top1"] <= 1 and 0 <= t["ece"] <= 1
        # a coarser level is never less right: the true class's model and make hold its mass
        assert rec["test"]["model_year"]["top1"] <= rec["test"]["model"]["top1"] <= rec["test"]["make"]["top1"]
        g = rec["groups_found"]
        assert g["grouped_pairs_same_look"] <= g["grouped_pairs"] and g["truth_same_look_pairs"] > 0
        a = rec["answered_test"]
        assert 0 <= a["sure_and_right"] <= a["sure"] <= 1
        assert set(rec["unknown"]) == set(UNKNOWN_SCORES)
        for row in rec["unknown"].values():
            for name in ("unknown_realistic", "unknown_classic"):
                assert row[name]["photos"] == r["unknown_photos"][name] > 0 and 0 <= row[name]["auroc"] <= 1
        slices = rec["slices_test"]
        assert any(k.startswith("pose:") for k in slices) and sum(v["n"] for k, v in slices.items()
                                                                  if k.startswith("framing:")) == r["split"]["test"]


def test_bench_levels_small(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["bench", "levels", *TINY, "--recipes", "scratch,colour", "--out", str(res)]) == 0
    r = json.loads((res / "levels.json").read_text())
    _check(r, ["scratch", "colour"])
    md = (res / "levels.md").read_text()
    assert "## Top-1 and ECE at each level" in md and "## Cars the catalog does not hold" in md
    assert "| pose:front |" in md or "| pose:rear |" in md
    assert (res / "levels_figures.png").stat().st_size > 10_000


@pytest.mark.slow
def test_bench_levels_with_the_pretrained_recipes(tmp_path, capsys):
    res = tmp_path / "res"
    assert main(["bench", "levels", *TINY, "--recipes", "carscope,seed", "--out", str(res)]) == 0
    r = json.loads((res / "levels.json").read_text())
    _check(r, ["carscope", "seed"])
    assert r["recipes"]["seed"]["temperature"] == 1.0 and r["recipes"]["carscope"]["training"]["weights"]


def test_bench_levels_refuses_bad_settings(tmp_path, capsys):
    assert main(["bench", "levels", "--recipes", "seed", "--out", str(tmp_path)]) == 2
    assert "add carscope" in capsys.readouterr().err
    assert main(["bench", "levels", "--recipes", "nope", "--out", str(tmp_path)]) == 2
    assert "--recipes" in capsys.readouterr().err
    assert main(["bench", "levels", "--unknown-tpr", "1.5", "--out", str(tmp_path)]) == 2
