"""End-to-end training runs on the tiny crawl: artifacts, learning, the view-run filter, resume, pretraining."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import torch

from carscope.train import checkpoint, train
from carscope.train.models import model_from_checkpoint
from tests.datasets import make_tiny_dataset
from tests.train.conftest import TINY


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_view_run_writes_every_artifact_and_learns(view_run):
    summary, run_dir = view_run
    for name in ("best.pt", "last.pt", "config.json", "splits.parquet", "metrics.jsonl", "report.json",
                 "report.md", "curves.png", "confusion.png"):
        assert (run_dir / name).is_file(), name
    assert not (run_dir / "cache").exists()  # the decode cache is removed after a finished run
    history = _metrics(run_dir)
    assert [h["epoch"] for h in history] == list(range(6))
    assert max(h["train_loss"] for h in history[-2:]) < history[0]["train_loss"]
    assert min(h["val_loss"] for h in history[1:]) < history[0]["val_loss"]
    assert summary["test_top1"] >= 0.8  # exterior vs interior is easy even for tinynet at 32 px

    report = json.loads((run_dir / "report.json").read_text())
    assert set(report["test"]["per_class"]) == {"exterior", "interior"}
    for m in report["test"]["per_class"].values():
        assert set(m) == {"precision", "recall", "f1", "support"}
    assert report["test"]["n"] == sum(m["support"] for m in report["test"]["per_class"].values())
    assert {"ece_before", "ece_after", "top5"} <= set(report["test"])
    assert report["data"]["corrupt_skipped"] == 2  # two broken files, skipped and counted, not fatal
    assert "| exterior |" in (run_dir / "report.md").read_text()


def test_splits_are_stratified_and_disjoint(view_run):
    _, run_dir = view_run
    splits = pd.read_parquet(run_dir / "splits.parquet")
    assert {"sha256", "path", "label", "split", "source"} <= set(splits.columns)
    assert splits["sha256"].is_unique  # so no photo can be in two splits
    counts = splits.groupby(["label", "split"]).size().unstack()
    assert (counts[["train", "val", "test"]] >= 1).all().all()


def test_checkpoint_is_self_describing(view_run):
    _, run_dir = view_run
    state = checkpoint.load_run(run_dir, task="view")  # torch.load(weights_only=True) inside
    assert state["labels"] == ["exterior", "interior"]
    assert state["preprocess"] == checkpoint.make_preprocess_spec(TINY["img_size"], 1.0)  # crop_pct default
    assert state["arch"] == "tinynet" and state["args"]["img_size"] == TINY["img_size"]
    assert 0.05 <= state["temperature"] <= 20 and "test_top1" in state["metrics"]
    model = model_from_checkpoint(state)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 2)
    last = checkpoint.load(run_dir / "last.pt")
    assert last["finished"] and {"optimizer", "scheduler", "scaler", "rng"} <= set(last)


def test_model_run_uses_the_view_run_for_unknown_photos(tiny_data, view_run, tmp_path):
    _, view_dir = view_run
    out = tmp_path / "model"
    summary = train({"task": "model", "data": str(tiny_data), "out": str(out), "epochs": 8,
                     "view_run": str(view_dir), "view_threshold": 0.5, **TINY})
    report = json.loads((out / "report.json").read_text())
    data = report["data"]
    # top-1 and ECE at each level, from the dataset's makes and models: here each class is a make of its own, so the
    # three levels are the model-year's own top-1
    for split in ("val", "test"):
        levels = report[split]["levels"]
        assert levels["n"] == report[split]["n"]
        for level in ("model_year", "model", "make"):
            assert levels[level]["top1"] == pytest.approx(report[split]["top1"], abs=1e-6) and 0 <= levels[level]["ece"] <= 1
    assert "model-year top-1 / ECE" in (out / "report.md").read_text()
    assert data["sources"]["hint"] == 32  # 3 classes x 10 exterior photos + 2 broken files (skipped at decode)
    assert data["sources"]["view_run"] >= 1 and data["sources"]["view_run"] + data["view_run_rejected"] == 12
    splits = pd.read_parquet(out / "splits.parquet")
    assert set(splits["source"]) == {"hint", "view_run"}
    assert sorted(splits["label"].unique()) == ["2023_make0_model0", "2023_make1_model1", "2023_make2_model2"]
    history = _metrics(out)
    assert min(h["train_loss"] for h in history[-2:]) < history[0]["train_loss"]
    assert min(h["val_loss"] for h in history[1:]) < history[0]["val_loss"]
    assert summary["labels"] == 3


def test_resume_continues_the_same_curve(tiny_data, tmp_path):
    common = {"task": "model", "data": str(tiny_data), "epochs": 4, **TINY, "workers": 1}
    train({**common, "out": str(tmp_path / "straight")})
    stopped = train({**common, "out": str(tmp_path / "resumed"), "stop_after": 2})
    assert stopped["stopped"] and len(_metrics(tmp_path / "resumed")) == 2
    # resumed with a different worker count: the augmentation is a function of (seed, epoch, index) alone.
    # The thread count is a runtime setting that --resume does not restore, and a bitwise comparison needs the
    # same one (left to itself it follows the load average: 1 or 2 threads here)
    train({"task": "model", "data": str(tiny_data), "out": str(tmp_path / "resumed"), "resume": True,
           "workers": 0, "no_progress": True, "threads": TINY["threads"]})
    a, b = _metrics(tmp_path / "straight"), _metrics(tmp_path / "resumed")
    assert [h["train_loss"] for h in a] == [h["train_loss"] for h in b]
    assert [h["val_loss"] for h in a] == [h["val_loss"] for h in b]
    wa = checkpoint.load(tmp_path / "straight" / "last.pt")["model"]
    wb = checkpoint.load(tmp_path / "resumed" / "last.pt")["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_pretrain_all_years_then_fine_tune(tmp_path):
    data = make_tiny_dataset(tmp_path / "data", n_classes=3, per_class=8, interior_per_class=0,
                             years=(2022, 2023), seed=1)
    out = tmp_path / "model"
    train({"task": "model", "data": str(data), "out": str(out), "epochs": 3, "pretrain_all_years": True,
           "pretrain_epochs": 3, **TINY})
    pre = checkpoint.load_run(out / "pretrain")
    assert pre["labels"] == ["make0_model0", "make1_model1", "make2_model2"]  # make+model over every year
    final = checkpoint.load_run(out, task="model")
    assert final["labels"] == ["2023_make0_model0", "2023_make1_model1", "2023_make2_model2"]
    assert final["args"]["freeze_epochs"] is None and _metrics(out)[0]["phase"] == "head"  # head first
    target = pd.read_parquet(out / "splits.parquet")
    pre_splits = pd.read_parquet(out / "pretrain" / "splits.parquet")
    held_out = set(target.loc[target["split"] != "train", "sha256"])
    assert held_out and not held_out & set(pre_splits.loc[pre_splits["split"] == "train", "sha256"])


def test_the_stored_temperature_is_the_one_that_fits_the_validation_split(view_run, tiny_data, tmp_path):
    """The temperature in best.pt minimises the validation NLL of best.pt's own logits (found here by a grid of
    its own, independent of train.evaluation), and calibration does not make the validation ECE worse."""
    import json

    import torch

    from carscope.train import checkpoint, engine, hardware
    from carscope.train.data import load_prepared
    from carscope.train.models import model_from_checkpoint
    from carscope.train.presets import Normalizer

    _, run_dir = view_run
    state = checkpoint.load_run(run_dir, task="view")
    spec = state["preprocess"]
    prepared = load_prepared(run_dir, tmp_path / "cache", spec, tiny_data, workers=1)
    model = model_from_checkpoint(state)
    ctx = hardware.Context(device=torch.device("cpu"))
    logits, targets = engine.evaluate(ctx, model, prepared.caches["val"], prepared.targets["val"],
                                      Normalizer(spec["mean"], spec["std"], ctx.device), 8, len(state["labels"]))

    def nll(t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / t, targets))

    grid = torch.logspace(-2, 1.5, 400).tolist()
    best = min(grid, key=nll)
    stored = float(state["temperature"])
    assert nll(stored) <= nll(best) + 1e-3, (stored, best)
    assert abs(stored - 1.0) > 1e-6 or abs(best - 1.0) < 0.05  # a fit that returned 1.0 untouched shows here
    report = json.loads((run_dir / "report.json").read_text())
    assert report["val"]["ece_after"] <= report["val"]["ece_before"] + 1e-9
