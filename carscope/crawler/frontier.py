"""The frontier and the crawl's record of what it found, in one SQLite file (WAL): `crawl.sqlite`.

    python -c "from carscope.crawler.frontier import Frontier; f = Frontier('dataset/crawl.sqlite'); print(f.counts())"

Every URL has one row in `urls` with a state: pending -> inflight -> done | failed (with `attempts`, the
earliest time of the next attempt and the last error); `seen` is a redirect's target, read under the URL that led
there (never fetched, and not a page of its own: `--max-pages` and the stats count it nowhere). What a URL produced (spec rows, an image row, a
failure row, new links) is written in the same transaction that marks it done, so after a SIGKILL the file
is always consistent: work whose transaction did not commit is simply pending again, and redoing it is
idempotent (links are INSERT OR IGNORE, images are content-addressed). `reopen()` puts in-flight work back.
A refresh (carscope/crawler/refresh.py) is a round over the same rows: `begin_refresh` puts the pages back to
pending and records the round in one transaction, a page's validators (`etag`, `last_modified`, `fresh_until`,
`visited_at`) and its photos' `listed_round` are written with its results, and `finish_refresh` marks what no page
listed as gone and closes the round in one transaction, so a refresh killed at any moment resumes like a crawl.
The parquet files are snapshots of these tables (carscope/crawler/writer.py). Memory stays bounded: nothing is kept
in Python beyond the rows being worked on.

Commits are batched (every `commit_every` seconds) because a lost claim costs only a refetch; this keeps
SQLite off the hot path.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

PENDING, INFLIGHT, DONE, FAILED, SKIPPED, SEEN = "pending", "inflight", "done", "failed", "skipped", "seen"
PAGE, IMAGE = "page", "image"

SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    id INTEGER PRIMARY KEY,
    url TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,              -- page / image
    page_type TEXT,                  -- the adapter's page type (pages only)
    state TEXT NOT NULL DEFAULT 'pending',
    prio INTEGER NOT NULL DEFAULT 1, -- 0 first: images before pages keeps the pending set small
    depth INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    not_before REAL NOT NULL DEFAULT 0,
    status INTEGER,
    error TEXT,
    meta TEXT,                       -- JSON: model_id, view_hint, page_url for images; referrer_model_year for pages
    updated REAL
);
CREATE INDEX IF NOT EXISTS urls_ready ON urls (state, prio, id);
CREATE TABLE IF NOT EXISTS specs (
    model_id TEXT PRIMARY KEY, make TEXT, model TEXT, year INTEGER, page_url TEXT, crawled_at REAL
);
CREATE TABLE IF NOT EXISTS specs_raw (
    model_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT, value TEXT, PRIMARY KEY (model_id, idx)
);
CREATE TABLE IF NOT EXISTS images (
    sha256 TEXT PRIMARY KEY, source_sha256 TEXT, path TEXT, model_id TEXT, view_hint TEXT,
    width INTEGER, height INTEGER, bytes INTEGER, source_url TEXT, page_url TEXT, crawled_at REAL, split TEXT,
    orig_width INTEGER, orig_height INTEGER, orig_format TEXT
);
CREATE INDEX IF NOT EXISTS images_source ON images (source_sha256);
CREATE TABLE IF NOT EXISTS specs_input (  -- what cleaning reads when an adapter's [specs] words or hook changed
    model_id TEXT NOT NULL, idx INTEGER NOT NULL, key TEXT, value TEXT, PRIMARY KEY (model_id, idx)
);
CREATE TABLE IF NOT EXISTS specs_history (  -- values a refresh replaced, with when they were seen
    model_id TEXT NOT NULL, key TEXT, value TEXT, first_seen REAL, last_seen REAL, replaced_at REAL
);
CREATE TABLE IF NOT EXISTS failures (
    url TEXT PRIMARY KEY, kind TEXT, reason TEXT, status INTEGER, attempts INTEGER, last_error_at REAL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value REAL NOT NULL DEFAULT 0);
"""


# images columns added after crawl.sqlite files were written without them (`_migrate` adds them)
IMAGE_COLUMNS_ADDED = (("orig_width", "INTEGER"), ("orig_height", "INTEGER"), ("orig_format", "TEXT"),
                       ("gone_at", "REAL"))  # gone_at: when a refresh found the photo no longer listed (or replaced)
# for refresh (carscope/crawler/refresh.py): a URL's validators from its last answer, when that was, and the last
# refresh round in which a page listed it (photos)
URL_COLUMNS_ADDED = (("etag", "TEXT"), ("last_modified", "TEXT"), ("fresh_until", "REAL"), ("visited_at", "REAL"),
                     ("listed_round", "INTEGER NOT NULL DEFAULT 0"))
SPECS_RAW_COLUMNS_ADDED = (("first_seen", "REAL"), ("last_seen", "REAL"))


@dataclass
class Item:
    """One claimed URL."""

    id: int
    url: str
    kind: str
    page_type: str | None
    depth: int
    attempts: int  # attempts made before this one
    meta: dict


class Frontier:
    def __init__(self, path: str | Path, *, commit_every: float = 0.5):
        self.path = Path(path)
        self.db = sqlite3.connect(str(self.path), isolation_level="DEFERRED", check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last commits
        self.db.executescript(SCHEMA)
        self._migrate()
        self.db.commit()
        self.commit_every = commit_every
        self._last_commit = time.monotonic()

    def _migrate(self) -> None:
        """Columns added after crawl.sqlite files were written without them (a resumed old crawl gains them)."""
        have = {row[1] for row in self.db.execute("PRAGMA table_info(images)")}
        if "split" not in have:
            self.db.execute("ALTER TABLE images ADD COLUMN split TEXT")
        for table, added in (("images", IMAGE_COLUMNS_ADDED), ("urls", URL_COLUMNS_ADDED),
                             ("specs_raw", SPECS_RAW_COLUMNS_ADDED)):
            have = {row[1] for row in self.db.execute(f"PRAGMA table_info({table})")}
            for name, kind in added:
                if name not in have:
                    self.db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
        # a redirect's target was once recorded as `done` with no attempt: it is `seen` (counted as no page)
        self.db.execute("UPDATE urls SET state=? WHERE state=? AND attempts=0", (SEEN, DONE))

    # -- lifecycle -----------------------------------------------------------------------------------------
    def reopen(self) -> int:
        """After a crash or a stop: in-flight work goes back to pending. Returns how many."""
        cur = self.db.execute("UPDATE urls SET state=? WHERE state=?", (PENDING, INFLIGHT))
        self.db.commit()
        return cur.rowcount

    def requeue_failed(self) -> int:
        """`--retry-failed`: every failed URL pending again with a fresh set of attempts, and its failures row
        gone, in one transaction (a kill before the commit leaves them failed; after it, pending). Returns how many."""
        self.db.execute("DELETE FROM failures WHERE url IN (SELECT url FROM urls WHERE state=?)", (FAILED,))
        cur = self.db.execute("UPDATE urls SET state=?, attempts=0, not_before=0, error=NULL, updated=? WHERE state=?",
                              (PENDING, time.time(), FAILED))
        self.db.commit()
        return cur.rowcount

    def commit(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_commit >= self.commit_every:
            self.db.commit()
            self._last_commit = now

    def close(self) -> None:
        try:
            self.db.commit()
            self.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            self.db.close()

    # -- meta ----------------------------------------------------------------------------------------------
    def get_meta(self, key: str, default=None):
        row = self.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return json.loads(row[0]) if row else default

    def set_meta(self, key: str, value) -> None:
        self.db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value)))

    def add_counter(self, name: str, delta: float = 1) -> None:
        self.db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (name, delta))

    def counters(self) -> dict[str, float]:
        return {k: v for k, v in self.db.execute("SELECT name, value FROM counters")}

    def rebase(self, old_origin: str, new_origin: str) -> int:
        """The site moved (e.g. the showroom restarted on another port): rewrite every URL of the old origin."""
        cur = self.db.execute(
            "UPDATE urls SET url = ? || substr(url, ?) WHERE substr(url, 1, ?) = ?",
            (new_origin, len(old_origin) + 1, len(old_origin), old_origin))
        self.db.commit()
        return cur.rowcount

    # -- the queue -----------------------------------------------------------------------------------------
    def add(self, url: str, kind: str, *, page_type: str | None = None, depth: int = 0,
            meta: dict | None = None) -> bool:
        """Queue a URL unless it is known already. True when it was new."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO urls (url, kind, page_type, prio, depth, meta, updated) VALUES (?,?,?,?,?,?,?)",
            (url, kind, page_type, 0 if kind == IMAGE else 1, depth, json.dumps(meta or {}), time.time()))
        return cur.rowcount == 1

    def mark_seen(self, url: str, kind: str, *, page_type: str | None = None) -> bool:
        """Record a URL as seen without queueing it (a redirect's target, read under the URL that led there)."""
        cur = self.db.execute("INSERT OR IGNORE INTO urls (url, kind, page_type, state, updated) VALUES (?,?,?,?,?)",
                              (url, kind, page_type, SEEN, time.time()))
        return cur.rowcount == 1

    def claim(self, now: float | None = None, *, kinds: tuple[str, ...] = (PAGE, IMAGE)) -> Item | None:
        """The next ready URL (images first, then pages in discovery order), marked in-flight."""
        now = time.time() if now is None else now
        marks = ",".join("?" * len(kinds))
        # one statement (UPDATE ... RETURNING): the hot path pays for one round through SQLite, not two
        row = self.db.execute(
            f"UPDATE urls SET state=?, updated=? WHERE id = (SELECT id FROM urls "
            f"WHERE state=? AND not_before<=? AND kind IN ({marks}) ORDER BY prio, id LIMIT 1) "
            f"RETURNING id, url, kind, page_type, depth, attempts, meta",
            (INFLIGHT, now, PENDING, now, *kinds)).fetchone()
        if row is None:
            return None
        return Item(id=row[0], url=row[1], kind=row[2], page_type=row[3], depth=row[4], attempts=row[5],
                    meta=json.loads(row[6] or "{}"))

    def next_ready_at(self, kinds: tuple[str, ...] = (PAGE, IMAGE)) -> float | None:
        marks = ",".join("?" * len(kinds))
        row = self.db.execute(f"SELECT MIN(not_before) FROM urls WHERE state=? AND kind IN ({marks})",
                              (PENDING, *kinds)).fetchone()
        return row[0]

    def pending_count(self, kinds: tuple[str, ...] = (PAGE, IMAGE)) -> int:
        marks = ",".join("?" * len(kinds))
        return self.db.execute(f"SELECT COUNT(*) FROM urls WHERE state=? AND kind IN ({marks})",
                               (PENDING, *kinds)).fetchone()[0]

    def done(self, item: Item, status: int | None = None) -> None:
        self.db.execute("UPDATE urls SET state=?, attempts=attempts+1, status=?, error=NULL, updated=? WHERE id=?",
                        (DONE, status, time.time(), item.id))

    def release(self, item: Item) -> None:
        """Give a claimed URL back untouched (a stop, or a limit reached): it will be redone on resume."""
        self.db.execute("UPDATE urls SET state=? WHERE id=? AND state=?", (PENDING, item.id, INFLIGHT))

    def retry(self, item: Item, *, not_before: float, status: int | None, error: str) -> None:
        self.db.execute("UPDATE urls SET state=?, attempts=attempts+1, not_before=?, status=?, error=?, updated=? "
                        "WHERE id=?", (PENDING, not_before, status, error, time.time(), item.id))

    def fail(self, item: Item, *, reason: str, status: int | None, kind: str | None = None) -> None:
        now = time.time()
        self.db.execute("UPDATE urls SET state=?, attempts=attempts+1, status=?, error=?, updated=? WHERE id=?",
                        (FAILED, status, reason, now, item.id))
        self.record_failure(item.url, kind or item.kind, reason, status, item.attempts + 1, now)

    def skip(self, url: str, kind: str, reason: str, *, status: int | None = None) -> None:
        """A URL that will never be fetched (robots.txt, off-site, not http): known, with a failures row."""
        now = time.time()
        self.db.execute("INSERT OR IGNORE INTO urls (url, kind, state, error, updated) VALUES (?,?,?,?,?)",
                        (url, kind, SKIPPED, reason, now))
        self.record_failure(url, kind, reason, status, 0, now)

    def record_failure(self, url, kind, reason, status, attempts, when) -> None:
        self.db.execute("INSERT OR REPLACE INTO failures (url, kind, reason, status, attempts, last_error_at) "
                        "VALUES (?,?,?,?,?,?)", (url, kind, reason, status, attempts, when))

    # -- results -------------------------------------------------------------------------------------------
    def put_specs(self, model_id: str, make, model, year, page_url: str, rows: list[tuple[str, str]],
                  cleaned: list[tuple[str, str]] | None = None) -> None:
        """The model-year's current specs. A (key, value) seen before keeps its `first_seen`; one no longer given
        moves to `specs_history` with when it was first and last seen (a refresh's record of what changed)."""
        now = time.time()
        before = self.db.execute(
            "SELECT r.key, r.value, COALESCE(r.first_seen, s.crawled_at), COALESCE(r.last_seen, s.crawled_at) "
            "FROM specs_raw r LEFT JOIN specs s ON s.model_id = r.model_id WHERE r.model_id=? ORDER BY r.idx",
            (model_id,)).fetchall()
        first = {}
        for k, v, f, _ in before:
            first.setdefault((k, v), f)
        now_given = set(rows)
        self.db.executemany("INSERT INTO specs_history (model_id, key, value, first_seen, last_seen, replaced_at) "
                            "VALUES (?,?,?,?,?,?)",
                            [(model_id, k, v, f, last, now) for k, v, f, last in before if (k, v) not in now_given])
        self.db.execute("INSERT OR REPLACE INTO specs (model_id, make, model, year, page_url, crawled_at) "
                        "VALUES (?,?,?,?,?,?)", (model_id, make, model, year, page_url, now))
        self.db.execute("DELETE FROM specs_raw WHERE model_id=?", (model_id,))
        self.db.executemany("INSERT INTO specs_raw (model_id, idx, key, value, first_seen, last_seen) "
                            "VALUES (?,?,?,?,?,?)",
                            [(model_id, i, k, v, first.get((k, v)) or now, now) for i, (k, v) in enumerate(rows)])
        # `rows` are the page's own pairs (specs_raw); `cleaned` what cleaning reads when they differ
        self.db.execute("DELETE FROM specs_input WHERE model_id=?", (model_id,))
        self.db.executemany("INSERT INTO specs_input (model_id, idx, key, value) VALUES (?,?,?,?)",
                            [(model_id, i, k, v) for i, (k, v) in enumerate(cleaned or [])])

    # -- refresh (carscope/crawler/refresh.py) --------------------------------------------------------------
    def remember(self, item: Item, headers: dict | None, *, keep: bool = True, merge: bool = False) -> None:
        """What the answer to `item` lets a refresh ask with next time (none when `keep` is False: a page whose
        reading fetched more than itself), and that it was visited now. `merge`: a 304, whose validators only
        update the stored ones."""
        from carscope.crawler.refresh import validators

        now = time.time()
        v = validators(headers or {}, now) if keep else {"etag": None, "last_modified": None, "fresh_until": None}
        etag, lm = ("COALESCE(?, etag)", "COALESCE(?, last_modified)") if merge else ("?", "?")
        self.db.execute(f"UPDATE urls SET etag={etag}, last_modified={lm}, fresh_until=?, visited_at=? WHERE id=?",
                        (v["etag"], v["last_modified"], v["fresh_until"], now, item.id))

    def cache_of(self, url_id: int) -> dict | None:
        row = self.db.execute("SELECT etag, last_modified, fresh_until, visited_at FROM urls WHERE id=?",
                              (url_id,)).fetchone()
        return None if row is None else dict(zip(("etag", "last_modified", "fresh_until", "visited_at"), row,
                                                 strict=True))

    def begin_refresh(self, state: dict, key: str) -> int:
        """A refresh round starts: every done or failed page pending again with fresh attempts (a failed page's
        failures row goes), the round recorded under meta `key`; one transaction. Returns the pages queued."""
        self.db.execute("DELETE FROM failures WHERE url IN (SELECT url FROM urls WHERE kind=? AND state=?)",
                        (PAGE, FAILED))
        cur = self.db.execute("UPDATE urls SET state=?, attempts=0, not_before=0, error=NULL, updated=? "
                              "WHERE kind=? AND state IN (?, ?)", (PENDING, time.time(), PAGE, DONE, FAILED))
        self.set_meta(key, state)
        self.db.commit()
        return cur.rowcount

    def list_photos(self, where: str, params: tuple, round_: int, now: float) -> int:
        """Photos a page lists in refresh round `round_`: a stale or failed one is asked again (a failed one with
        a fresh set of attempts, its failures row gone); a fresh one is not. Returns how many were queued."""
        stale = (f"kind='image' AND {where} AND listed_round < ? AND ((state='done' AND (fresh_until IS NULL OR "
                 f"fresh_until <= ?)) OR state='failed')")
        self.db.execute(f"DELETE FROM failures WHERE url IN (SELECT url FROM urls WHERE {stale})",
                        (*params, round_, now))
        cur = self.db.execute(f"UPDATE urls SET state=?, attempts=0, not_before=0, error=NULL WHERE {stale}",
                              (PENDING, *params, round_, now))
        self.db.execute(f"UPDATE urls SET listed_round=? WHERE kind='image' AND {where}", (round_, *params))
        return cur.rowcount

    def note_lastmod(self, url: str, lastmod: str) -> None:
        """A known page's `lastmod` as the sitemap says it now (a refresh compares it with the last visit)."""
        self.db.execute("UPDATE urls SET meta=json_set(COALESCE(meta, '{}'), '$.lastmod', ?) WHERE url=? AND kind=?",
                        (lastmod, url, PAGE))

    def confirm_page(self, page_url: str, round_: int, now: float) -> int:
        """An unchanged page in refresh round `round_`: its specs seen again, its photos listed again."""
        self.db.execute("UPDATE specs_raw SET last_seen=? WHERE model_id IN (SELECT model_id FROM specs "
                        "WHERE page_url=?)", (now, page_url))
        return self.list_photos("json_extract(meta, '$.page_url')=?", (page_url,), round_, now)

    def replace_image(self, source_url: str, source_sha256: str, now: float) -> int:
        """A photo URL now serving the bytes `source_sha256` (stored now, or already under another URL): the rows
        of its other bytes are gone (kept, marked). Rows marked."""
        return self.db.execute("UPDATE images SET gone_at=? WHERE source_url=? AND source_sha256<>? AND "
                               "gone_at IS NULL", (now, source_url, source_sha256)).rowcount

    def finish_refresh(self, round_: int, started_at: float, key: str) -> dict:
        """Refresh round `round_` completed: rows of photo URLs no page listed in it get `gone_at` (unless their
        page failed for a while: an error other than 404 / 410 is no sign they are gone), rows that were gone and
        are listed again lose it, and the round is closed under meta `key`; one transaction."""
        now = time.time()
        unlisted = ("SELECT u.url FROM urls u WHERE u.kind='image' AND u.listed_round < ? AND NOT EXISTS ("
                    "SELECT 1 FROM urls p WHERE p.kind='page' AND p.url = json_extract(u.meta, '$.page_url') "
                    "AND p.state='failed' AND COALESCE(p.status, 0) NOT IN (404, 410))")
        gone = self.db.execute(f"UPDATE images SET gone_at=? WHERE gone_at IS NULL AND source_url IN ({unlisted})",
                               (now, round_)).rowcount
        back = self.db.execute(
            "UPDATE images SET gone_at=NULL WHERE gone_at IS NOT NULL AND gone_at < ? AND source_url IN "
            "(SELECT url FROM urls WHERE kind='image' AND listed_round=?) AND crawled_at = "
            "(SELECT MAX(crawled_at) FROM images i2 WHERE i2.source_url = images.source_url)",
            (started_at, round_)).rowcount
        state = self.get_meta(key) or {}
        state.update(state="done", finished_at=now, gone=gone, back=back)
        self.set_meta(key, state)
        self.db.commit()
        return {"gone": gone, "back": back}

    def has_source(self, source_sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE source_sha256=? LIMIT 1",
                               (source_sha256,)).fetchone() is not None

    def has_image(self, sha256: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE sha256=?", (sha256,)).fetchone() is not None

    def put_image(self, row: dict) -> bool:
        """Insert an image row; False when that content is already stored (a duplicate)."""
        cur = self.db.execute(
            "INSERT OR IGNORE INTO images (sha256, source_sha256, path, model_id, view_hint, width, height, bytes, "
            "source_url, page_url, crawled_at, split, orig_width, orig_height, orig_format, gone_at) VALUES ("
            ":sha256, :source_sha256, :path, :model_id, :view_hint, :width, :height, :bytes, :source_url, "
            ":page_url, :crawled_at, :split, :orig_width, :orig_height, :orig_format, NULL)",
            {"split": None, "orig_width": None, "orig_height": None, "orig_format": None, **row})
        return cur.rowcount == 1

    def improve_image(self, *, sha256: str | None = None, source_sha256: str | None = None,
                      model_id: str | None = None, view_hint: str | None = None) -> int:
        """A duplicate's labels fill in what the stored copy lacks: a known view over `unknown`, a model-year over
        none (so the result does not depend on which copy finished downloading first). Rows changed."""
        where, key = ("sha256=?", sha256) if sha256 else ("source_sha256=?", source_sha256)
        n = 0
        if view_hint and view_hint != "unknown":
            n += self.db.execute(f"UPDATE images SET view_hint=? WHERE {where} AND view_hint='unknown'",
                                 (view_hint, key)).rowcount
        if model_id:
            n += self.db.execute(f"UPDATE images SET model_id=? WHERE {where} AND model_id IS NULL",
                                 (model_id, key)).rowcount
        return n

    def image_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM images").fetchone()[0]

    def counts(self) -> dict:
        out: dict = {}
        for kind, state, n in self.db.execute("SELECT kind, state, COUNT(*) FROM urls GROUP BY kind, state"):
            out.setdefault(kind, {})[state] = n
        out["images_stored"] = self.image_count()
        out["specs"] = self.db.execute("SELECT COUNT(*) FROM specs").fetchone()[0]
        out["failures"] = self.db.execute("SELECT COUNT(*) FROM failures").fetchone()[0]
        return out

    def status_histogram(self) -> dict[str, int]:
        return {str(s): n for s, n in self.db.execute(
            "SELECT status, COUNT(*) FROM urls WHERE status IS NOT NULL GROUP BY status")}
