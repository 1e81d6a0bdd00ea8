"""The dataset writer: image files (aiofiles, temp name then rename) and parquet snapshots of crawl.sqlite.

    python -c "from carscope.crawler.writer import snapshot; snapshot('dataset')"   # rewrite the parquet files

The SQLite file is the crawl's source of truth (rows are committed together with the frontier state, see
carscope/crawler/frontier.py); the parquet tables of carscope/crawler/dataset.py are snapshots of it, written with
`dataset.write_table` (atomic) every `flush_interval` seconds and at the end. A snapshot reads through its
own connection, so it can run in a thread while the crawl goes on.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from pathlib import Path

from carscope.crawler import dataset as ds

TEMP_SUFFIX = ".part"
_MADE_DIRS: set[Path] = set()


def _wrap(fn):
    import aiofiles.os

    return aiofiles.os.wrap(fn)


_write_new_async = None  # set on first use: importing aiofiles stays out of `import carscope.crawler.writer`


def _write_new(final: Path, data: bytes) -> bool:
    """Blocking part of `store_file`: temp file in the same folder, then an atomic rename."""
    if final.exists():
        return False
    if final.parent not in _MADE_DIRS:  # at most 256 fan-out folders: create each once per process
        final.parent.mkdir(parents=True, exist_ok=True)
        _MADE_DIRS.add(final.parent)
    tmp = final.parent / f".{final.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}"
    try:
        try:
            f = open(tmp, "wb")
        except FileNotFoundError:  # the folder went away since (a dataset deleted and made again)
            final.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")
        with f:
            f.write(data)
        os.replace(tmp, final)
    except BaseException:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise
    return True


async def store_file(root: Path, relpath: str, data: bytes) -> bool:
    """Write `data` at `root/relpath` unless it exists (content-addressed: same name, same bytes).

    Written to a hidden temp name in the same directory and renamed, so a reader or a crash never sees a
    half-written image; a leftover temp file is swept by `sweep_temp` on the next start. True if written.

    The blocking work runs through aiofiles' executor wrapper as ONE hop: `aiofiles.open` + `write` + close +
    `aiofiles.os.replace` would be four executor round trips per image, measured at ~1.1 ms of event-loop
    time per image against ~0.4 ms for one (2 cores, 25 kB images)."""
    global _write_new_async
    if _write_new_async is None:
        _write_new_async = _wrap(_write_new)
    return await _write_new_async(root / relpath, data)


def sweep_temp(root: Path) -> int:
    """Remove temp files a killed crawl left behind (images and parquet). Returns how many."""
    n = 0
    patterns = [(root / ds.IMAGES_DIR, f"*/.*{TEMP_SUFFIX}"), (root, ".*.tmp")]
    for base, pattern in patterns:
        if not base.is_dir():
            continue
        for p in base.glob(pattern):
            try:
                p.unlink()
                n += 1
            except OSError:
                pass
    return n


def _epoch_to_utc(series):
    import pandas as pd

    return pd.to_datetime(series.astype("float64"), unit="s", utc=True).astype("datetime64[ns, UTC]")


CHUNK_ROWS = 2_000  # rows per chunk (and row group) when streaming the big tables: a snapshot's transient memory
# is bounded by it (measured +37 MiB peak for 20,000 and for 100,000 image rows; +61 MiB with 5,000-row chunks)


def snapshot(root: str | os.PathLike, db_path: str | os.PathLike | None = None) -> dict[str, int]:
    """Write specs, specs_raw, specs_history, images and failures parquet from crawl.sqlite; returns row counts.

    The images and failures tables are streamed from SQLite in chunks (`dataset.write_table_chunks`), so a
    snapshot's memory does not grow with the crawl; specs tables are one row (or ~15) per model-year."""
    import pandas as pd

    from carscope.crawler.specs import clean_specs

    root = Path(root)
    db_path = Path(db_path) if db_path else root / ds.FRONTIER_FILE
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        con.execute("BEGIN")  # one read transaction: all four tables from the same committed state
        pages = pd.read_sql_query("SELECT model_id, make, model, year, page_url, crawled_at FROM specs "
                                  "ORDER BY model_id", con)
        raw = pd.read_sql_query("SELECT model_id, key, value, first_seen, last_seen FROM specs_raw "
                                "ORDER BY model_id, idx", con)
        history = pd.read_sql_query("SELECT model_id, key, value, first_seen, last_seen, replaced_at FROM "
                                    "specs_history ORDER BY model_id, replaced_at, rowid", con)
        pages["crawled_at"] = _epoch_to_utc(pages["crawled_at"])
        for table, cols in ((raw, ("first_seen", "last_seen")), (history, ("first_seen", "last_seen", "replaced_at"))):
            for col in cols:
                table[col] = _epoch_to_utc(table[col])
        mapped = (pd.read_sql_query("SELECT model_id, key, value FROM specs_input ORDER BY model_id, idx", con)
                  if con.execute("SELECT 1 FROM sqlite_master WHERE name='specs_input'").fetchone()
                  else raw[["model_id", "key", "value"]].iloc[:0])  # a crawl.sqlite older than the table
        to_clean = pd.concat([raw[~raw["model_id"].isin(mapped["model_id"])], mapped], ignore_index=True)
        ds.write_table(clean_specs(to_clean, pages), root / ds.SPECS_FILE)  # specs_raw: the page's own pairs
        ds.write_table(raw, root / ds.SPECS_RAW_FILE)
        ds.write_table(history, root / ds.SPECS_HISTORY_FILE)

        def images():
            for chunk in pd.read_sql_query(
                    "SELECT sha256, path, model_id, view_hint, width, height, bytes, source_url, page_url, "
                    "crawled_at, split, orig_width, orig_height, orig_format, gone_at, source_sha256 FROM images "
                    "ORDER BY model_id, sha256", con, chunksize=CHUNK_ROWS):
                chunk["crawled_at"] = _epoch_to_utc(chunk["crawled_at"])
                chunk["gone_at"] = _epoch_to_utc(chunk["gone_at"])
                chunk["source_sha256"] = chunk["source_sha256"].astype("string")  # an extra column, kept
                yield chunk

        def failures():
            for chunk in pd.read_sql_query("SELECT url, kind, reason, status, attempts, last_error_at FROM failures "
                                           "ORDER BY url", con, chunksize=CHUNK_ROWS):
                chunk["last_error_at"] = _epoch_to_utc(chunk["last_error_at"])
                yield chunk

        n_images = ds.write_table_chunks(images(), root / ds.IMAGES_FILE)
        n_failures = ds.write_table_chunks(failures(), root / ds.FAILURES_FILE)
    finally:
        con.close()
        _release_arrow_memory()
    return {"specs": len(pages), "specs_raw": len(raw), "images": n_images, "failures": n_failures}


def _release_arrow_memory() -> None:
    """Hand freed memory back to the OS after a snapshot, so a long crawl's RSS stays flat: pyarrow's pool
    keeps freed buffers for reuse, and glibc keeps freed heap in per-thread arenas (images are decoded on
    several threads) unless asked to trim."""
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except Exception:  # an older pyarrow without release_unused: nothing to do
        pass
    release_heap()


def release_heap() -> None:
    """glibc's malloc_trim(0); a no-op where there is no glibc."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
