"""Labels, the view-run filter, the split and the decode-once cache, without training."""

from __future__ import annotations

import numpy as np
import pandas as pd

from carscope.crawler.dataset import load
from carscope.train.checkpoint import make_preprocess_spec
from carscope.train.data import build_table, open_cache, split_table
from tests.datasets import make_tiny_dataset


def test_view_labels_exclude_unknown(tiny_data):
    table, counts = build_table(load(tiny_data), "view")
    assert set(table["label"]) == {"exterior", "interior"}
    assert counts["unknown_excluded"] == 12 and counts["sources"] == {"hint": len(table)}


def test_model_labels_and_view_run_threshold(tiny_data):
    ds = load(tiny_data)
    unknown = ds.images[ds.images["view_hint"] == "unknown"]["sha256"].tolist()
    scores = {sha: (0.95 if i % 3 == 0 else 0.4) for i, sha in enumerate(unknown)}
    table, counts = build_table(ds, "model", view_scores=scores, view_threshold=0.9)
    assert counts["sources"] == {"hint": 32, "view_run": 4}  # 30 exterior + 2 corrupt rows; 4 of 12 unknown pass
    assert counts["view_run_rejected"] == 8 and counts["target_year"] == 2023
    assert set(table.loc[table["source"] == "view_run", "sha256"]) == {s for s, p in scores.items() if p >= 0.9}


def test_duplicates_merge_and_ambiguous_hashes_drop(tiny_data):
    ds = load(tiny_data)
    images = ds.images
    dup = images.iloc[[0]].copy()  # same bytes listed again (a CDN copy)
    clash = images[images["view_hint"] == "interior"].iloc[[0]].copy()
    clash["view_hint"] = "exterior"  # same bytes, other label
    ds.images = pd.concat([images, dup, clash], ignore_index=True)
    table, counts = build_table(ds, "view")
    assert counts["duplicates_merged"] >= 1 and counts["ambiguous_dropped"] == 1
    assert table["sha256"].is_unique


def test_split_is_stratified_seeded_and_drops_small_classes(tmp_path, capsys):
    data = make_tiny_dataset(tmp_path / "d", n_classes=4, per_class=20, interior_per_class=0, class_sizes={3: 2})
    table, _ = build_table(load(data), "model")
    a, dropped = split_table(table, val_frac=0.15, test_frac=0.15, seed=0, min_class_images=5)
    b, _ = split_table(table, val_frac=0.15, test_frac=0.15, seed=0, min_class_images=5)
    c, _ = split_table(table, val_frac=0.15, test_frac=0.15, seed=1, min_class_images=5)
    assert dropped == ["2023_make3_model3 (2)"] and "2023_make3_model3 (2)" in capsys.readouterr().err
    assert list(a["split"]) == list(b["split"]) and list(a["split"]) != list(c["split"])
    sizes = a.groupby(["label", "split"]).size().unstack()
    assert (sizes["val"] == 3).all() and (sizes["test"] == 3).all() and (sizes["train"] == 14).all()


def test_cache_decodes_once_and_skips_corrupt(tiny_data, tmp_path):
    ds = load(tiny_data)
    rows = ds.images[ds.images["view_hint"] == "exterior"]
    paths = [str(tiny_data / p) for p in rows["path"]]
    spec = make_preprocess_spec(32)
    ref, ok = open_cache(tmp_path, "train", spec, paths, list(rows["sha256"]), workers=2)
    assert (~ok).sum() == 2  # the two broken files
    arr = ref.open()
    assert arr.shape == (len(paths), spec["resize"], spec["resize"], 3) and arr.dtype == np.uint8
    stamp = ref.path.stat().st_mtime_ns
    ref2, ok2 = open_cache(tmp_path, "train", spec, paths[:5], list(rows["sha256"])[:5])
    assert ref2.path.stat().st_mtime_ns == stamp  # reused, not decoded again
    assert np.array_equal(ref2.open()[ref2.rows], arr[:5])


def test_a_published_split_is_kept_and_only_the_missing_splits_are_drawn(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_classes=3, per_class=20, interior_per_class=0)
    ds = load(data)
    published = np.where(np.arange(len(ds.images)) % 4 == 0, "test", "train")
    ds.images["split"] = pd.array(published, dtype="string")
    table, counts = build_table(ds, "model")
    assert counts["published_split"] == {"test": 15, "train": 45}
    out, _ = split_table(table, val_frac=0.2, test_frac=0.15, seed=0, min_class_images=5)
    by_sha = dict(zip(ds.images["sha256"], published, strict=True))
    pub = out["sha256"].map(by_sha)
    assert (out.loc[pub == "test", "split"] == "test").all()  # the published test split stays the test split
    assert set(out.loc[pub == "train", "split"]) == {"train", "val"}  # val is carved from train, test is not
    assert (out.loc[pub == "train", "split"] == "val").sum() == 9  # 20% of each class's 15 train photos


def test_labels_without_a_year_are_plain_classes(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_classes=3, per_class=6, interior_per_class=0)
    ds = load(data)
    ds.specs["year"] = pd.array([pd.NA] * len(ds.specs), dtype="Int64")
    table, counts = build_table(ds, "model")
    assert counts["plain_classes"] is True and counts["target_year"] is None
    assert sorted(table["label"].unique()) == sorted(ds.specs["model_id"]) and len(table) == 18
    import pytest

    from carscope.common.errors import CarscopeError

    with pytest.raises(CarscopeError, match="no label of dataset .* has a year"):
        build_table(ds, "model", target_year=2023)


def test_all_years_keeps_every_year_and_the_default_keeps_the_latest(tmp_path):
    data = make_tiny_dataset(tmp_path / "d", n_classes=2, per_class=4, interior_per_class=0, years=(2022, 2023))
    latest, counts = build_table(load(data), "model")
    assert set(latest["year"]) == {2023} and counts["other_years_excluded"] == 8
    every, _ = build_table(load(data), "model", years="all")
    assert set(every["year"]) == {2022, 2023} and every["label"].nunique() == 4
