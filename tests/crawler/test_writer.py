import asyncio

import pandas as pd

from carscope.crawler import dataset as ds
from carscope.crawler import writer
from carscope.crawler.frontier import Frontier


def _fill(root, n_images):
    f = Frontier(root / ds.FRONTIER_FILE)
    f.put_specs("2023_a_b", "A", "B", 2023, "http://h/s", [("MSRP", "$1,000"), ("Passenger Doors", "4")])
    for i in range(n_images):
        f.put_image({"sha256": f"{i:064x}", "source_sha256": f"{i:064x}", "path": ds.image_relpath(f"{i:064x}"),
                     "model_id": "2023_a_b", "view_hint": "exterior", "width": 640, "height": 480, "bytes": 10,
                     "source_url": f"http://h/{i}.jpg", "page_url": "http://h/p", "crawled_at": 1.7e9 + i})
    f.record_failure("http://h/bad.jpg", "image", "corrupt_image", 200, 2, 1.7e9)
    f.close()


def test_snapshot_streams_big_tables_in_chunks_with_contract_types(tmp_path, monkeypatch):
    monkeypatch.setattr(writer, "CHUNK_ROWS", 10)  # 25 rows -> 3 row groups
    _fill(tmp_path, 25)
    counts = writer.snapshot(tmp_path)
    assert counts == {"specs": 1, "specs_raw": 2, "images": 25, "failures": 1}
    d = ds.load(tmp_path, check_files=False)
    assert len(d.images) == 25 and str(d.images["width"].dtype) == "Int64"
    assert str(d.images["crawled_at"].dtype) == "datetime64[ns, UTC]"
    assert d.images["source_sha256"].notna().all()  # the extra column rides along
    assert d.specs.loc[0, "msrp_usd"] == 1000 and d.specs.loc[0, "doors"] == 4
    assert d.failures.loc[0, "reason"] == "corrupt_image"
    import pyarrow.parquet as pq

    assert pq.ParquetFile(tmp_path / ds.IMAGES_FILE).num_row_groups == 3
    assert not list(tmp_path.glob(".*.tmp"))


def test_snapshot_of_an_empty_crawl_has_every_contract_column(tmp_path):
    Frontier(tmp_path / ds.FRONTIER_FILE).close()
    writer.snapshot(tmp_path)
    for name, columns in ds.TABLES.items():
        df = pd.read_parquet(tmp_path / name)
        assert len(df) == 0 and list(df.columns)[: len(columns)] == list(columns), name


def test_store_file_is_atomic_and_sweep_removes_leftovers(tmp_path):
    rel = ds.image_relpath("ab" * 32)
    assert asyncio.run(writer.store_file(tmp_path, rel, b"x" * 100)) is True
    assert asyncio.run(writer.store_file(tmp_path, rel, b"x" * 100)) is False  # content-addressed: once
    leftover = (tmp_path / rel).parent / f".{'cd' * 32}.jpg.1234{writer.TEMP_SUFFIX}"
    leftover.write_bytes(b"half")
    (tmp_path / ".images.parquet.abc.tmp").write_bytes(b"half")
    assert writer.sweep_temp(tmp_path) == 2
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == [("ab" * 32) + ".jpg"]


def test_the_original_size_reaches_images_parquet_and_old_datasets_still_read(tmp_path):
    f = Frontier(tmp_path / ds.FRONTIER_FILE)
    f.put_image({"sha256": "a" * 64, "source_sha256": "b" * 64, "path": ds.image_relpath("a" * 64),
                 "model_id": "2023_a_b", "view_hint": "exterior", "width": 1024, "height": 768, "bytes": 10,
                 "source_url": "http://h/a.png", "page_url": "http://h/p", "crawled_at": 1.7e9,
                 "orig_width": 2000, "orig_height": 1500, "orig_format": "PNG"})
    f.close()
    writer.snapshot(tmp_path)
    row = ds.load(tmp_path, check_files=False).images.iloc[0]
    assert (row["width"], row["height"], row["orig_width"], row["orig_height"], row["orig_format"]) == (
        1024, 768, 2000, 1500, "PNG")
    old = pd.read_parquet(tmp_path / ds.IMAGES_FILE).drop(columns=["orig_width", "orig_height", "orig_format"])
    old.to_parquet(tmp_path / ds.IMAGES_FILE, index=False)  # a dataset written before the columns existed
    images = ds.load(tmp_path, check_files=False).images
    assert images["orig_width"].isna().all() and images.loc[0, "width"] == 1024


def test_an_old_crawl_sqlite_gains_the_columns_and_its_redirect_targets_count_as_no_page(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / ds.FRONTIER_FILE)
    con.executescript("""
        CREATE TABLE urls (id INTEGER PRIMARY KEY, url TEXT NOT NULL UNIQUE, kind TEXT NOT NULL, page_type TEXT,
            state TEXT NOT NULL DEFAULT 'pending', prio INTEGER NOT NULL DEFAULT 1, depth INTEGER NOT NULL DEFAULT 0,
            attempts INTEGER NOT NULL DEFAULT 0, not_before REAL NOT NULL DEFAULT 0, status INTEGER, error TEXT,
            meta TEXT, updated REAL);
        CREATE TABLE images (sha256 TEXT PRIMARY KEY, source_sha256 TEXT, path TEXT, model_id TEXT, view_hint TEXT,
            width INTEGER, height INTEGER, bytes INTEGER, source_url TEXT, page_url TEXT, crawled_at REAL);
        INSERT INTO urls (url, kind, state, attempts) VALUES ('http://h/', 'page', 'done', 1);
        INSERT INTO urls (url, kind, state, attempts) VALUES ('http://h/home', 'page', 'done', 0);""")
    con.commit()
    con.close()
    f = Frontier(tmp_path / ds.FRONTIER_FILE)
    assert f.counts()["page"] == {"done": 1, "seen": 1}
    have = {row[1] for row in f.db.execute("PRAGMA table_info(images)")}
    assert {"split", "orig_width", "orig_height", "orig_format"} <= have
    f.close()
