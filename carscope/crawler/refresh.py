"""Keeping a dataset up to date: `carscope crawl --refresh` revisits a finished crawl and records what changed.

    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset --refresh     # killed? the same again (or --resume)

A refresh is a *round* of the crawl in crawl.sqlite (frontier meta `refresh`: `round`, `state` running | done,
`started_at`, the counters at its start). Starting one is one transaction (carscope/crawler/frontier.py
`begin_refresh`): every done or failed page is pending again. A killed refresh resumes like a crawl: the round
stays `running` until a run of it completes, and `--refresh` or `--resume` continues it.

A page is not requested when it is known unchanged: its sitemap `lastmod` is not newer than its last visit, or
its last answer is still fresh by its own `Cache-Control: max-age` / `Expires`. Otherwise it is asked with
`If-None-Match` / `If-Modified-Since` (its ETag and Last-Modified from the last visit); a `304` means unchanged.
An unchanged page keeps what it gave: its specs are seen again (`last_seen`), its photos still listed. A page
whose reading fetched other resources (a gallery's JSON, a browser's scripts) keeps no validator: its own
ETag does not cover them, so it is read in full each round.

Photos follow the pages: a photo a page lists again is revalidated only when its last answer is stale (the
showroom's photos, `max-age=86400`, are not asked at all); a new photo URL is fetched as in a crawl. New bytes
under a known URL are a new row, and the old row gets `gone_at`. When the round completes, every photo URL that
no page listed in it (and whose page did not merely fail for a while) gets `gone_at` on its rows: nothing is
deleted. Specifications: a value that changed moves to `specs_history` (`first_seen`, `last_seen`,
`replaced_at`); `specs_raw` holds the current values with their `first_seen` and `last_seen`.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

REFRESH = "refresh"  # frontier meta key
RUNNING, FINISHED = "running", "done"
# counters a refresh keeps (their totals minus the totals at the round's start are the round's stats)
ROUND_COUNTERS = ("refresh_pages_not_modified", "refresh_pages_lastmod", "refresh_pages_fresh",
                  "refresh_pages_read", "refresh_photos_not_modified", "refresh_photos_replaced", "bytes_downloaded",
                  "images_stored_new")


def freshness(headers: dict, now: float) -> float | None:
    """Until when a response stays fresh by its own headers (RFC 9111: `max-age`, else `Expires`); None when it
    must be revalidated (`no-cache`, `no-store`, or nothing said)."""
    cc = {}
    for part in (headers.get("cache-control") or "").lower().split(","):
        k, _, v = part.strip().partition("=")
        if k:
            cc[k] = v.strip().strip('"')
    if "no-cache" in cc or "no-store" in cc:
        return None
    if "max-age" in cc:
        try:
            age = float(cc["max-age"])
        except ValueError:
            return None
        return now + age if age > 0 else None
    expires = http_date(headers.get("expires"))
    return expires if expires is not None and expires > now else None


def http_date(text: str | None) -> float | None:
    """An HTTP date (`Wed, 21 Oct 2015 07:28:00 GMT`) as epoch seconds; None when absent or unreadable."""
    if not text:
        return None
    try:
        return parsedate_to_datetime(text).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def parse_lastmod(text: str | None) -> float | None:
    """A sitemap `lastmod` (W3C datetime: `2024-05-01`, `2024-05`, `2024`, `2024-05-01T10:00:00+02:00`, `...Z`) as
    epoch seconds, UTC where no zone is given; None when absent or unreadable (the page is then asked)."""
    if not text:
        return None
    s = text.strip()
    if len(s) == 4 and s.isdigit():
        s += "-01-01"
    elif len(s) == 7 and s[4] == "-":
        s += "-01"
    try:
        when = datetime.fromisoformat(s.replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def validators(headers: dict, now: float) -> dict:
    """What a response lets the next round ask with: ETag, Last-Modified, and until when it is fresh."""
    return {"etag": headers.get("etag"), "last_modified": headers.get("last-modified"),
            "fresh_until": freshness(headers, now)}


def conditional_headers(cache: dict | None) -> dict[str, str] | None:
    """`If-None-Match` / `If-Modified-Since` from what the last visit kept; None when it kept nothing."""
    if not cache:
        return None
    out = {}
    if cache.get("etag"):
        out["If-None-Match"] = cache["etag"]
    if cache.get("last_modified"):
        out["If-Modified-Since"] = cache["last_modified"]
    return out or None


def unchanged_without_asking(cache: dict | None, lastmod: str | None, now: float) -> str | None:
    """Why a known page needs no request this round ("lastmod" or "fresh"), or None."""
    if not cache or cache.get("visited_at") is None:
        return None
    changed_at = parse_lastmod(lastmod)
    if changed_at is not None and changed_at <= cache["visited_at"]:
        return "lastmod"
    if cache.get("fresh_until") is not None and now < cache["fresh_until"]:
        return "fresh"
    return None


class Refresh:
    """The running refresh round of one frontier (None from `current` when there is none)."""

    def __init__(self, frontier, state: dict):
        self.frontier = frontier
        self.round = int(state["round"])
        self.started_at = float(state["started_at"])
        self.counters_at_start = state.get("counters_at_start") or {}

    @classmethod
    def current(cls, frontier) -> Refresh | None:
        state = frontier.get_meta(REFRESH)
        return cls(frontier, state) if state and state.get("state") == RUNNING else None

    @classmethod
    def begin(cls, frontier) -> Refresh:
        """Start the next round (the caller continues a running one instead: `current`)."""
        state = frontier.get_meta(REFRESH) or {}
        new = {"round": int(state.get("round", 0)) + 1, "state": RUNNING, "started_at": time.time(),
               "counters_at_start": frontier.get_meta("counters", {}) or {}}
        frontier.begin_refresh(new, REFRESH)  # pages pending again and the round recorded: one transaction
        return cls(frontier, new)

    def skip_reason(self, item, now: float | None = None) -> str | None:
        """"lastmod" / "fresh" when the page need not be asked this round (see `unchanged_without_asking`)."""
        return unchanged_without_asking(self.frontier.cache_of(item.id), item.meta.get("lastmod"),
                                        time.time() if now is None else now)

    def request_headers(self, item) -> dict[str, str] | None:
        return conditional_headers(self.frontier.cache_of(item.id))

    def unchanged_page(self, url: str) -> int:
        """A page known unchanged: what it gave stays, seen again now (its specs' last_seen, its photos listed).
        Returns how many of its photos were queued again (stale or failed)."""
        return self.frontier.confirm_page(url, self.round, time.time())

    def finish(self) -> dict:
        """The round completed: photo URLs no page listed get `gone_at`, the round is `done` (one transaction)."""
        return self.frontier.finish_refresh(self.round, self.started_at, REFRESH)

    def report(self, totals: dict, finished: dict | None) -> dict:
        """The round's part of stats.json."""
        got = {k: int(totals.get(k, 0) - self.counters_at_start.get(k, 0)) for k in ROUND_COUNTERS}
        db = self.frontier.db
        changed = db.execute("SELECT COUNT(DISTINCT model_id) FROM specs_history WHERE replaced_at >= ?",
                             (self.started_at,)).fetchone()[0]
        out = {"round": self.round, "state": FINISHED if finished is not None else RUNNING,
               "pages": {"not_modified": got["refresh_pages_not_modified"], "unchanged_lastmod":
                         got["refresh_pages_lastmod"], "fresh": got["refresh_pages_fresh"],
                         "read": got["refresh_pages_read"]},
               "photos": {"not_modified": got["refresh_photos_not_modified"], "stored_new": got["images_stored_new"],
                          "replaced": got["refresh_photos_replaced"]},
               "model_years_changed": int(changed),
               "bytes_downloaded": got["bytes_downloaded"]}
        if finished is not None:
            out["photos"]["gone"] = finished["gone"]
            out["photos"]["back"] = finished["back"]
        return out
