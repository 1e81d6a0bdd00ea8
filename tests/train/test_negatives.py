"""The view classifier's third class: generic synthetic not-a-car images (carscope/train/negatives.py), and the model task
leaving out the photos a three-class view run calls not a car photo."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from carscope.crawler.dataset import load
from carscope.train.data import build_table
from carscope.train.negatives import FAMILIES, draw_negative, write_negatives
from tests.train.conftest import TINY


@pytest.mark.parametrize("family", FAMILIES[:-1])
def test_every_family_draws_a_square_rgb_image(family):
    img = draw_negative(3, 48, family=family)
    assert img.mode == "RGB" and img.size == (48, 48)


def test_same_seed_same_image_and_seeds_differ():
    a, b, c = (np.asarray(draw_negative(s, 40)) for s in (11, 11, 12))
    assert (a == b).all() and not (a == c).all()


def test_scramble_keeps_the_photos_colours_and_survives_corrupt_ones(tmp_path):
    from PIL import Image

    red = tmp_path / "red.jpg"
    Image.new("RGB", (64, 48), (220, 20, 20)).save(red)
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(red.read_bytes()[:40])
    img = np.asarray(draw_negative(5, 32, [red], family="scramble"), dtype=float)
    assert img[..., 0].mean() > 150 or img[..., 1].mean() > 150 or img[..., 2].mean() > 150  # red, channels maybe shuffled
    draw_negative(5, 32, [broken], family="scramble")  # no photo decodes: another family, not an error


def test_write_negatives_is_content_addressed_and_repeatable(tmp_path):
    first = write_negatives(tmp_path / "n", 6, seed=1, size=32, threads=1)
    again = write_negatives(tmp_path / "n", 6, seed=1, size=32, threads=1)
    assert first == again and len({s for s, _ in first}) == len(first)
    for sha, path in first:
        import hashlib

        assert hashlib.sha256(open(path, "rb").read()).hexdigest() == sha


def test_view_run_learns_other_from_negatives(tiny_data, tmp_path):
    from PIL import Image

    from carscope.train import train

    run_dir = tmp_path / "view3"
    train({"task": "view", "data": str(tiny_data), "out": str(run_dir), "epochs": 4, "negatives": 40, **TINY})
    from carscope.train.checkpoint import load_run

    state = load_run(run_dir, task="view")
    assert state["labels"] == ["exterior", "interior", "other"]
    splits = pd.read_parquet(run_dir / "splits.parquet")
    neg = splits[splits["source"] == "negative"]
    assert len(neg) == 40 and set(neg["label"]) == {"other"} and set(neg["split"]) == {"train", "val", "test"}
    assert all((run_dir / "negatives" / f"{s}.jpg").is_file() for s in neg["sha256"])
    # export reads the negatives from the run (they are not in the dataset)
    from carscope.export.photos import split_photos

    test = split_photos(run_dir, load(tiny_data), "test", state["labels"])
    assert (test["target"] == 2).sum() == (neg["split"] == "test").sum()
    # a noise frame is a negative the classifier learned (a black one would be fair to call this tiny crawl's
    # interiors, which are dark frames)
    import torch

    from carscope.train.models import model_from_checkpoint
    from carscope.train.presets import eval_transform

    noise = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    x = eval_transform(state["preprocess"])(Image.fromarray(noise))
    with torch.inference_mode():
        probs = torch.softmax(model_from_checkpoint(state)(x[None]), dim=1)[0]
    assert int(probs.argmax()) == 2, probs


def test_model_task_leaves_out_what_the_view_run_calls_other(tiny_data):
    ds = load(tiny_data)
    ext = ds.images[ds.images["view_hint"] == "exterior"]["sha256"].tolist()
    base, _ = build_table(ds, "model")
    table, counts = build_table(ds, "model", other_scores={ext[0]: 0.9, ext[1]: 0.2})
    assert counts["view_run_not_a_car"] == 1
    assert ext[0] not in set(table["sha256"]) and ext[1] in set(table["sha256"])
    assert len(table) == len(base) - 1


def test_clean_folds_relabel_what_out_of_fold_models_call_other(tiny_data, tmp_path, monkeypatch):
    """The mechanics of --clean-folds, with the judge's answers fixed: every hinted train photo is judged by a
    fold model that did not train on it, the photos it calls `other` are relabelled (train split only), the rest
    keep their hints, and a fold model below the quality bar judges nothing."""
    from carscope.train import data as datamod
    from carscope.train import stages, train

    ds = load(tiny_data)
    ext = sorted(ds.images.loc[ds.images["view_hint"] == "exterior", "sha256"])
    suspects = set(ext[::3])
    judged_by: dict[str, str] = {}

    def fake_score(ds_, view_run, *, other, only, **kw):
        fold_splits = pd.read_parquet(f"{view_run}/splits.parquet")
        trained_on = set(fold_splits.loc[fold_splits["split"] == "train", "sha256"])
        assert only and not only & trained_on, "a fold model judges only photos it did not train on"
        for sha in only:
            judged_by[sha] = view_run
            other[sha] = 0.9 if sha in suspects else 0.1
        return {}

    monkeypatch.setattr(datamod, "score_unknown", fake_score)
    monkeypatch.setattr(stages, "CLEAN_MIN_VAL_TOP1", 0.0)  # two epochs of a tiny model: every fold judges
    run_dir = tmp_path / "view"
    train({"task": "view", "data": str(tiny_data), "out": str(run_dir), "epochs": 2, "negatives": 30,
           "clean_folds": 2, **TINY})
    splits = pd.read_parquet(run_dir / "splits.parquet")
    hinted_train = splits[(splits["split"] == "train") & splits["source"].isin(["hint", "view_cleaned"])]
    assert hinted_train["p_other_out_of_fold"].notna().all()
    assert all(sha in judged_by for sha in hinted_train["sha256"]), "every train photo judged out of its fold"
    cleaned = splits[splits["source"] == "view_cleaned"]
    assert set(cleaned["sha256"]) == suspects & set(hinted_train["sha256"]) and (cleaned["label"] == "other").all()
    assert not (splits.loc[splits["split"] != "train", "source"] == "view_cleaned").any()  # val/test keep hints
    assert (run_dir / "clean" / "fold1" / "report.json").is_file() and not (run_dir / "clean" / "fold1" / "best.pt").exists()
    # a judge below the bar is not asked
    monkeypatch.setattr(stages, "CLEAN_MIN_VAL_TOP1", 1.01)
    train({"task": "view", "data": str(tiny_data), "out": str(tmp_path / "v2"), "epochs": 2, "negatives": 30,
           "clean_folds": 2, **TINY})
    assert not (pd.read_parquet(tmp_path / "v2" / "splits.parquet")["source"] == "view_cleaned").any()
