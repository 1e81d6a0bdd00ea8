"""`carscope dataset merge` (carscope/crawler/merge.py): small datasets made on disk, no network."""

from __future__ import annotations

import hashlib
import io
import json

import pandas as pd
import pytest

from carscope.commands.cli import main
from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds
from carscope.crawler import merge as merge_mod
from carscope.crawler.merge import merge

T0 = pd.Timestamp("2024-01-01", tz="UTC")


def jpeg(color: tuple[int, int, int]) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (80, 60), color).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def colour(i: int) -> tuple[int, int, int]:
    return (10 + 37 * i % 240, 200 - 23 * i % 190, 60 + 51 * i % 190)


def make_source(root, photos, specs, *, failures=(), shard=None):
    """photos: [(bytes, model_id)]; specs: {model_id: (crawled_at, {raw key: value})}; failures: [(url, at)]."""
    root.mkdir(parents=True)
    rows = []
    for data, model_id in photos:
        sha = hashlib.sha256(data).hexdigest()
        rel = ds.image_relpath(sha)
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
        rows.append({"sha256": sha, "path": rel, "model_id": model_id, "view_hint": "exterior", "width": 80,
                     "height": 60, "bytes": len(data), "source_url": f"http://{root.name}/img/{sha[:12]}.jpg",
                     "page_url": f"http://site/{model_id}", "crawled_at": T0, "source_sha256": sha})
    spec_rows, raw_rows = [], []
    for model_id, (at, raw) in specs.items():
        year, make, model = model_id.split("_")
        spec_rows.append({"model_id": model_id, "make": make, "model": model, "year": int(year),
                          "msrp_usd": int(raw.get("MSRP", "0")), "page_url": f"http://site/{model_id}",
                          "crawled_at": at})
        raw_rows += [{"model_id": model_id, "key": k, "value": v} for k, v in raw.items()]
    ds.write_table(pd.DataFrame(spec_rows), root / ds.SPECS_FILE)
    ds.write_table(pd.DataFrame(raw_rows), root / ds.SPECS_RAW_FILE)
    ds.write_table(pd.DataFrame(rows), root / ds.IMAGES_FILE)
    ds.write_table(pd.DataFrame([{"url": u, "kind": "page", "reason": "http_500", "status": 500, "attempts": 3,
                                  "last_error_at": at} for u, at in failures]), root / ds.FAILURES_FILE)
    if shard:
        ds.write_json({"status": "complete", "shard": shard}, root / ds.STATS_FILE)
    return root


def two_shards(tmp_path):
    a = make_source(tmp_path / "shard-1", [(jpeg(colour(i)), "2023_acme_roadster") for i in range(3)],
                    {"2023_acme_roadster": (T0, {"MSRP": "30000", "Engine": "2.0L I4"})},
                    failures=[("http://site/broken", T0)], shard="1/2")
    b = make_source(tmp_path / "shard-2", [(jpeg(colour(i)), "2023_acme_wagon") for i in range(3, 7)],
                    {"2023_acme_wagon": (T0, {"MSRP": "35000"})}, shard="2/2")
    return a, b


def snapshot_tree(root):
    return {p.relative_to(root): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def no_temp_dirs(parent):
    return [p.name for p in parent.iterdir() if p.name.startswith(".")] == []


def test_disjoint_shards_merge_to_the_union(tmp_path):
    a, b = two_shards(tmp_path)
    out = tmp_path / "merged"
    stats = merge([a, b], out, progress=False)

    d = ds.load(out)
    assert d.missing_files == 0
    assert len(d.images) == 7 and stats["images"] == 7
    assert sorted(d.specs["model_id"]) == ["2023_acme_roadster", "2023_acme_wagon"]
    assert len(d.specs_raw) == 3 and len(d.failures) == 1
    for row in d.images.itertuples():
        data = (out / row.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row.sha256
        assert row.path == ds.image_relpath(row.sha256)
    for name, dtype in ds.SPECS_COLUMNS.items():
        if dtype.startswith("datetime64"):
            assert isinstance(d.specs[name].dtype, pd.DatetimeTZDtype) and str(d.specs[name].dt.tz) == "UTC"
        else:
            assert str(d.specs[name].dtype) == dtype, name
    assert d.specs.set_index("model_id").loc["2023_acme_wagon", "msrp_usd"] == 35000
    assert "source_sha256" in d.images.columns  # extra columns survive
    assert stats["duplicates"] == stats["label_conflicts"] == stats["corrupt_files"] == stats["missing_files"] == 0
    on_disk = json.loads((out / ds.STATS_FILE).read_text())
    assert on_disk["status"] == "merged"
    assert [m["shard"] for m in on_disk["merged_from"]] == ["1/2", "2/2"]
    assert [m["images"] for m in on_disk["merged_from"]] == [3, 4]
    assert not (out / ds.FRONTIER_FILE).exists()
    assert no_temp_dirs(tmp_path)


def test_same_photo_stored_once_and_label_conflicts_keep_the_first(tmp_path):
    shared, other = jpeg(colour(1)), jpeg(colour(2))
    a = make_source(tmp_path / "a", [(shared, "2023_acme_roadster"), (other, "2023_acme_roadster")],
                    {"2023_acme_roadster": (T0, {})})
    b = make_source(tmp_path / "b", [(shared, "2023_acme_roadster"), (other, "2023_acme_wagon")],
                    {"2023_acme_wagon": (T0, {})})
    stats = merge([a, b], tmp_path / "out", progress=False)

    d = ds.load(tmp_path / "out")
    assert len(d.images) == 2 and d.images["sha256"].is_unique
    assert stats["duplicates"] == 2
    assert stats["label_conflicts"] == 1
    sha_other = hashlib.sha256(other).hexdigest()
    assert d.images.set_index("sha256").loc[sha_other, "model_id"] == "2023_acme_roadster"
    [example] = stats["label_conflict_examples"]
    assert example["sha256"] == sha_other and example["other_model_id"] == "2023_acme_wagon"
    assert len(list((tmp_path / "out" / ds.IMAGES_DIR).rglob("*.jpg"))) == 2


def test_later_crawl_of_a_model_year_wins_with_its_raw_specs(tmp_path):
    mid = "2023_acme_roadster"
    a = make_source(tmp_path / "a", [(jpeg(colour(1)), mid)],
                    {mid: (T0 + pd.Timedelta(days=2), {"MSRP": "31000", "Seats": "2"})})
    b = make_source(tmp_path / "b", [(jpeg(colour(2)), mid)], {mid: (T0, {"MSRP": "30000", "Doors": "2"})})
    c = make_source(tmp_path / "c", [(jpeg(colour(3)), mid)], {mid: (T0 + pd.Timedelta(days=2), {"MSRP": "1"})})
    for src, value in ((c, "from c"), (a, "from a")):  # raw rows with no specs row anywhere: the first source's
        raw = ds.read_table(src / ds.SPECS_RAW_FILE)
        orphan = pd.DataFrame([{"model_id": "2022_acme_coupe", "key": "Note", "value": value}])
        ds.write_table(pd.concat([raw, orphan], ignore_index=True), src / ds.SPECS_RAW_FILE)
    merge([b, a, c], tmp_path / "out", progress=False)  # a is later than b; c ties with a but comes after it

    d = ds.load(tmp_path / "out")
    [row] = d.specs.itertuples()
    assert row.msrp_usd == 31000 and row.crawled_at == T0 + pd.Timedelta(days=2)
    raw = d.specs_raw
    mine = raw[raw["model_id"] == mid]
    assert list(zip(mine["key"], mine["value"], strict=True)) == [("MSRP", "31000"), ("Seats", "2")]
    assert list(raw.loc[raw["model_id"] == "2022_acme_coupe", "value"]) == ["from a"]


def test_corrupt_and_missing_files_are_dropped_not_copied(tmp_path):
    a, b = two_shards(tmp_path)
    images = ds.read_table(b / ds.IMAGES_FILE)
    corrupt, missing = images["path"][0], images["path"][1]
    (b / corrupt).write_bytes((b / corrupt).read_bytes()[:-10] + b"0123456789")
    (b / missing).unlink()
    stats = merge([a, b], tmp_path / "out", progress=False)

    d = ds.load(tmp_path / "out")
    assert stats["corrupt_files"] == 1 and stats["missing_files"] == 1
    assert len(d.images) == 5 and d.missing_files == 0
    assert corrupt not in set(d.images["path"]) and not (tmp_path / "out" / corrupt).exists()
    assert missing not in set(d.images["path"])


def test_failures_of_urls_that_succeeded_elsewhere_are_dropped(tmp_path):
    wagon = "http://site/2023_acme_wagon"
    a = make_source(tmp_path / "a", [(jpeg(colour(1)), "2023_acme_roadster")], {"2023_acme_roadster": (T0, {})},
                    failures=[(wagon, T0), ("http://site/gone", T0)])
    b = make_source(tmp_path / "b", [(jpeg(colour(2)), "2023_acme_wagon")], {"2023_acme_wagon": (T0, {})},
                    failures=[("http://site/gone", T0 + pd.Timedelta(hours=1))])
    stats = merge([a, b], tmp_path / "out", progress=False)

    f = ds.load(tmp_path / "out").failures
    assert list(f["url"]) == ["http://site/gone"]
    assert f["last_error_at"][0] == T0 + pd.Timedelta(hours=1)
    assert stats["failures"] == 1 and stats["failures_dropped_succeeded_elsewhere"] == 1


def cli_error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("carscope dataset: error: ")
    return err


def test_bad_input_is_one_line_exit_2_and_leaves_out_alone(tmp_path, capsys):
    a, b = two_shards(tmp_path)
    (tmp_path / "notds").mkdir()
    out = tmp_path / "out"
    assert "not a carscope dataset" in cli_error(capsys, ["dataset", "merge", str(a), str(tmp_path / "notds"),
                                                          "--out", str(out)])
    assert "does not exist" in cli_error(capsys, ["dataset", "merge", str(a), str(tmp_path / "nope"),
                                                  "--out", str(out)])
    assert "twice" in cli_error(capsys, ["dataset", "merge", str(a), str(a) + "/../shard-1",
                                         "--out", str(out)])
    assert not out.exists()
    before = snapshot_tree(a)
    assert "is source" in cli_error(capsys, ["dataset", "merge", str(a), str(b), "--out", str(a), "--overwrite"])
    assert "inside" in cli_error(capsys, ["dataset", "merge", str(a), str(b), "--out", str(a / "images")])
    assert snapshot_tree(a) == before
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert "not empty" in cli_error(capsys, ["dataset", "merge", str(a), str(b), "--out", str(out)])
    assert "refusing" in cli_error(capsys, ["dataset", "merge", str(a), str(b), "--out", str(out), "--overwrite"])
    assert snapshot_tree(out) == {out.joinpath("keep.txt").relative_to(out): b"mine"}
    assert no_temp_dirs(tmp_path)

    assert main(["dataset", "merge", str(a), str(b), "--out", str(tmp_path / "good"), "--quiet"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("dataset merge: 2 datasets -> ") and "2 model-years, 7 images" in line


def test_overwrite_is_atomic(tmp_path, monkeypatch):
    a, b = two_shards(tmp_path)
    out = tmp_path / "out"
    merge([a], out, progress=False)
    before = snapshot_tree(out)
    assert ds.load(out).images.shape[0] == 3

    real, calls = merge_mod.store_file, []

    def failing(src, dst):
        calls.append(dst)
        if len(calls) > 4:
            raise OSError(28, "No space left on device")
        real(src, dst)

    monkeypatch.setattr(merge_mod, "store_file", failing)
    with pytest.raises(CarscopeError, match="nothing written"):
        merge([a, b], out, overwrite=True, progress=False)
    assert snapshot_tree(out) == before and no_temp_dirs(tmp_path)

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(merge_mod, "store_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        merge([a, b], out, overwrite=True, progress=False)
    assert snapshot_tree(out) == before and no_temp_dirs(tmp_path)

    monkeypatch.setattr(merge_mod, "store_file", real)
    merge([a, b], out, overwrite=True, progress=False)
    assert len(ds.load(out).images) == 7 and no_temp_dirs(tmp_path)


def test_copy_fallback_when_hard_links_fail(tmp_path, monkeypatch):
    a, b = two_shards(tmp_path)

    def no_link(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(merge_mod.os, "link", no_link)
    merge([a, b], tmp_path / "out", progress=False)
    d = ds.load(tmp_path / "out")
    for row in d.images.itertuples():
        p = tmp_path / "out" / row.path
        assert p.stat().st_nlink == 1 and hashlib.sha256(p.read_bytes()).hexdigest() == row.sha256
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".part")]


def test_paths_outside_the_dataset_are_rejected(tmp_path):
    a, b = two_shards(tmp_path)
    evil = jpeg((1, 2, 3))
    (tmp_path / "evil.jpg").write_bytes(evil)  # a real file with the right hash, outside the dataset
    images = ds.read_table(b / ds.IMAGES_FILE)
    sha = hashlib.sha256(evil).hexdigest()
    extra = images.iloc[:1].copy().assign(sha256=sha, path="../evil.jpg")
    absolute = images.iloc[:1].copy().assign(sha256=sha, path=str(tmp_path / "evil.jpg"))
    ds.write_table(pd.concat([images, extra, absolute], ignore_index=True), b / ds.IMAGES_FILE)
    (b / "images" / "ln").mkdir()
    (b / "images" / "ln" / "x.jpg").symlink_to(tmp_path / "evil.jpg")
    linked = images.iloc[:1].copy().assign(sha256=sha, path="images/ln/x.jpg")
    ds.write_table(pd.concat([ds.read_table(b / ds.IMAGES_FILE), linked], ignore_index=True), b / ds.IMAGES_FILE)

    stats = merge([a, b], tmp_path / "out", progress=False)
    d = ds.load(tmp_path / "out")
    assert stats["corrupt_files"] == 3 and len(d.images) == 7
    assert sha not in set(d.images["sha256"])
    assert not (tmp_path / "out" / ds.image_relpath(sha)).exists()
