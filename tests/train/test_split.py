"""carscope.train.data.split_table on hand-made tables: exact split sizes per class, the small-class rule, published
splits, pinned photos. A wrong split leaks test photos into training or drops classes, and every metric after it
is then wrong, so each rule is checked at its edges (tests/train/test_data.py runs it on real tiny datasets)."""

import pandas as pd
import pytest

from carscope.common.errors import CarscopeError
from carscope.train.data import split_table


def _table(sizes: dict[str, int], published: dict[str, list] | None = None) -> pd.DataFrame:
    rows = []
    for label, n in sizes.items():
        for i in range(n):
            row = {"sha256": f"{label}-{i}", "label": label}
            if published is not None:
                row["published"] = published.get(label, [None] * n)[i]
            rows.append(row)
    df = pd.DataFrame(rows)
    if published is not None:
        df["published"] = df["published"].astype("string")
    return df


def _sizes(out) -> dict[str, dict[str, int]]:
    got = out.groupby(["label", "split"]).size()
    return {label: {s: int(n) for s, n in got[label].items()} for label in out["label"].unique()}


def _split(df, **kw):
    args = {"val_frac": 0.15, "test_frac": 0.15, "seed": 0, "min_class_images": 3, **kw}
    return split_table(df, **args)


def test_sizes_per_class_are_rounded_shares_with_at_least_one_each_and_one_left_to_train():
    out, dropped = _split(_table({"a": 3, "b": 10, "c": 20, "d": 7}))
    assert dropped == []
    assert _sizes(out) == {"a": {"train": 1, "val": 1, "test": 1},  # 0.45 rounds to 0, but each split gets one
                           "b": {"train": 6, "val": 2, "test": 2},  # round(1.5) = 2
                           "c": {"train": 14, "val": 3, "test": 3},
                           "d": {"train": 5, "val": 1, "test": 1}}  # round(1.05) = 1
    assert out["split"].notna().all() and len(out) == 40 and out.index.tolist() == list(range(40))
    out, _ = _split(_table({"a": 3, "b": 4}), val_frac=0.5, test_frac=0.5)
    assert _sizes(out) == {"a": {"train": 1, "val": 2}, "b": {"train": 1, "val": 2, "test": 1}}  # train keeps one
    out, _ = _split(_table({"a": 10, "b": 10}), val_frac=0.2, test_frac=0.0)
    assert _sizes(out)["a"] == {"train": 8, "val": 2}
    out, _ = _split(_table({"a": 10, "b": 10}), val_frac=0.0, test_frac=0.3)
    assert _sizes(out)["a"] == {"train": 7, "test": 3}
    out, _ = _split(_table({"a": 10, "b": 10}), val_frac=0.0, test_frac=0.0)
    assert set(out["split"]) == {"train"}


def test_the_split_is_seeded_and_every_photo_is_in_one_split():
    df = _table({"a": 30, "b": 30, "c": 30})
    a, _ = _split(df, seed=0)
    b, _ = _split(df, seed=0)
    c, _ = _split(df, seed=1)
    assert a["split"].tolist() == b["split"].tolist() != c["split"].tolist()
    assert a["sha256"].is_unique and set(a["sha256"]) == set(df["sha256"])
    assert "split" not in df.columns  # the caller's table is not modified


def test_small_classes_are_dropped_at_the_limit_and_named(capsys):
    out, dropped = _split(_table({"a": 5, "b": 4, "c": 6, "d": 1}), min_class_images=5)
    assert set(out["label"]) == {"a", "c"}  # exactly the limit is kept
    assert dropped == ["d (1)", "b (4)"]  # smallest first
    assert "dropped 2 classes with fewer than 5 photos: d (1), b (4)" in capsys.readouterr().err
    many = {f"s{i:02d}": 3 for i in range(14)} | {"a": 5, "b": 5}
    _, dropped = _split(_table(many), min_class_images=4)
    assert len(dropped) == 14
    assert "and 2 more" in capsys.readouterr().err


def test_too_few_classes_or_too_small_a_limit_is_an_error():
    with pytest.raises(CarscopeError, match="at least 3"):
        _split(_table({"a": 5, "b": 5}), min_class_images=2)
    with pytest.raises(CarscopeError, match=r"need at least 2 classes with 5\+ photos, have 1 \(dropped: b \(4\)\)"):
        _split(_table({"a": 5, "b": 4}), min_class_images=5)
    with pytest.raises(CarscopeError, match="have 1$"):
        _split(_table({"a": 5}))


def test_a_published_test_split_is_kept_and_no_other_photo_is_drawn_into_it():
    pub = {"a": ["test"] * 2 + ["train"] * 8, "b": ["test"] * 3 + [None] * 7}
    out, _ = _split(_table({"a": 10, "b": 10}, pub), val_frac=0.2, test_frac=0.5)
    by_sha = dict(zip(out["sha256"], out["split"], strict=True))
    assert [by_sha[f"a-{i}"] for i in range(2)] == ["test"] * 2
    assert [by_sha[f"b-{i}"] for i in range(3)] == ["test"] * 3
    # the rest: val carved out at 20% (8 -> 2, 7 -> 1), nothing more into test
    assert _sizes(out) == {"a": {"test": 2, "train": 6, "val": 2}, "b": {"test": 3, "train": 6, "val": 1}}


def test_a_published_val_split_is_kept_and_test_is_still_drawn():
    pub = {"a": ["val"] * 2 + ["train"] * 8, "b": [None] * 10}
    out, _ = _split(_table({"a": 10, "b": 10}, pub), val_frac=0.3, test_frac=0.2)
    assert _sizes(out) == {"a": {"test": 2, "train": 6, "val": 2}, "b": {"test": 2, "train": 8}}
    assert out.loc[out["sha256"].isin(["a-0", "a-1"]), "split"].tolist() == ["val", "val"]


def test_a_published_train_only_column_changes_nothing():
    df = _table({"a": 10, "b": 10}, {"a": ["train"] * 10, "b": ["train"] * 10})
    with_pub, _ = _split(df)
    without, _ = _split(df.drop(columns="published"))
    assert with_pub["split"].tolist() == without["split"].tolist()


def test_pinned_photos_go_where_they_are_pinned():
    df = _table({"a": 10, "b": 10})
    free, _ = _split(df)
    train_sha = free.loc[free["split"] == "train", "sha256"].iloc[0]
    val_sha = free.loc[free["split"] == "val", "sha256"].iloc[0]
    out, _ = _split(df, exclude={train_sha: "test", val_sha: "train", "not-in-table": "val"})
    by_sha = dict(zip(out["sha256"], out["split"], strict=True))
    assert by_sha[train_sha] == "test" and by_sha[val_sha] == "train"
    changed = [s for s in by_sha if by_sha[s] != dict(zip(free["sha256"], free["split"], strict=True))[s]]
    assert sorted(changed) == sorted([train_sha, val_sha])


def test_every_class_keeps_a_train_photo_whatever_the_shares():
    out, _ = _split(_table({"a": 3, "b": 3}), val_frac=0.9, test_frac=0.0)
    assert _sizes(out) == {"a": {"train": 1, "val": 2}, "b": {"train": 1, "val": 2}}
    # one photo left after the published test split: it trains, it is not carved into val
    pub = {"a": ["test"] * 3 + [None], "b": ["test"] * 2 + [None] * 3}
    out, _ = _split(_table({"a": 4, "b": 5}, pub), val_frac=0.2)
    assert _sizes(out) == {"a": {"test": 3, "train": 1}, "b": {"test": 2, "train": 2, "val": 1}}


def test_the_table_keeps_its_columns_and_gains_only_the_split():
    df = _table({"a": 4, "b": 4})
    out, _ = _split(df)
    assert list(out.columns) == [*df.columns, "split"] and out.index.tolist() == list(range(8))
