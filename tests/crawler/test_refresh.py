"""`carscope crawl --refresh`: a refresh of an unchanged showroom fetches no photo; conditional requests answer
304; sitemap lastmod spares pages; a changed catalog (a new model-year, new prices, a removed photo) is brought up
to date with what changed on record; a refresh killed at any moment resumes to the same dataset."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler import crawl
from carscope.crawler.cli import refresh_line
from carscope.crawler.dataset import load, read_table, write_table
from carscope.crawler.refresh import conditional_headers, freshness, parse_lastmod, unchanged_without_asking
from carscope.showroom.testing import ShowroomServer, fetch_stats, fetch_truth, reset_stats, tiny_config
from tests.crawler.helpers import assert_files_intact, config, good_photos, specs_by_model, truth_specs

REPO = Path(__file__).resolve().parents[2]
PHOTO_KINDS = ("photo", "cdn_photo")


def _photo_requests(base: str) -> int:
    by_kind = fetch_stats(base)["by_kind"]
    return sum(by_kind.get(k, 0) for k in PHOTO_KINDS)


def _current(ds) -> set[str]:
    return set(ds.images.loc[ds.images["gone_at"].isna(), "sha256"])


def test_refresh_of_an_unchanged_showroom_fetches_no_photo(tmp_path):
    root = tmp_path / "ds"
    with ShowroomServer(tiny_config()) as server:  # photos: ETag, max-age=86400 (fresh: not asked again)
        base = server.base_url
        first = crawl(config(base, root))
        before = load(root)
        raw0 = before.specs_raw  # (read now: the property reads the file)
        reset_stats(base)
        stats = crawl(config(base, root, resume=True, refresh=True))
        assert _photo_requests(base) == 0
        truth = fetch_truth(base)
    after = load(root)
    r = stats["refresh"]
    assert r["state"] == "done" and r["round"] == 1 and r["photos"]["stored_new"] == 0 and r["photos"]["gone"] == 0
    assert r["pages"]["read"] == first["pages"]["done"]  # the showroom's pages carry no validator: read again
    assert set(after.images["sha256"]) == set(before.images["sha256"]) == set(good_photos(truth))
    assert after.images["gone_at"].isna().all()
    assert specs_by_model(after) == truth_specs(truth)
    raw1 = after.specs_raw
    assert (raw1["first_seen"] == raw0["first_seen"]).all()  # the same values: first seen in the first crawl
    assert (raw1["last_seen"] > raw0["last_seen"]).all()
    assert len(read_table(root / "specs_history.parquet")) == 0
    assert "refresh round 1 done" in refresh_line(r)


def test_refresh_asks_with_validators_and_a_304_downloads_nothing(tmp_path):
    root = tmp_path / "ds"
    with ShowroomServer(tiny_config(revalidate=True)) as server:
        base = server.base_url
        crawl(config(base, root))
        reset_stats(base)
        stats = crawl(config(base, root, resume=True, refresh=True))
        site = fetch_stats(base)
    n_photo_urls = _photo_requests_from(site)
    r = stats["refresh"]
    assert n_photo_urls > 0 and r["photos"]["not_modified"] == n_photo_urls  # every photo asked, each a 304
    assert r["photos"]["stored_new"] == 0
    assert r["pages"]["not_modified"] == site["by_kind"]["overview"] + site["by_kind"]["specifications"] + \
        site["by_kind"]["make"] + 1  # the home page too (its preflight request is unconditional)
    # 200s: robots.txt, the preflight, and the photos pages with their gallery JSON (read from more than
    # themselves, so they keep no validator and are read in full)
    assert site["status"]["200"] == 2 + 2 * len(load(root).specs)
    assert load(root).images["gone_at"].isna().all()


def _photo_requests_from(site: dict) -> int:
    return sum(site["by_kind"].get(k, 0) for k in PHOTO_KINDS)


def test_sitemap_lastmod_spares_the_pages_visited_since(tmp_path):
    root = tmp_path / "ds"
    with ShowroomServer(tiny_config(revalidate=True)) as server:
        base = server.base_url
        crawl(config(base, root, sitemap=True))
        reset_stats(base)
        stats = crawl(config(base, root, resume=True, refresh=True, sitemap=True))
        by_kind = fetch_stats(base)["by_kind"]
    spared = stats["refresh"]["pages"]["unchanged_lastmod"]
    assert spared == 3 * len(load(root).specs)  # overview, specifications, photos: all in the sitemap
    assert not any(by_kind.get(k) for k in ("overview", "specifications", "photos_page", "gallery_json"))
    assert by_kind["sitemap_xml"] == 1 and stats["refresh"]["state"] == "done"


def _serve_edition(port: int, **changes) -> ShowroomServer:
    return ShowroomServer(tiny_config(revalidate=True, **changes), port=port).start()


@pytest.mark.parametrize("sitemap", [False, True])
def test_refresh_brings_a_changed_catalog_up_to_date_and_keeps_what_changed(tmp_path, sitemap):
    root = tmp_path / "ds"
    with ShowroomServer(tiny_config(revalidate=True)) as old:
        port = old.port
        crawl(config(old.base_url, root, sitemap=sitemap))
        old_truth = fetch_truth(old.base_url)
    before = load(root)
    # the next edition: a 2024 model-year of every model, prices 2 % up, each gallery one exterior photo shorter
    new = _serve_edition(port, years=(2022, 2024), photos=3, edition=1)
    try:
        # (with the sitemap: the new edition's lastmod, newer than the last visit, sends every page to be asked)
        stats = crawl(config(new.base_url, root, resume=True, refresh=True, sitemap=sitemap))
        truth = fetch_truth(new.base_url)
    finally:
        new.stop()
    ds = load(root)
    assert specs_by_model(ds) == truth_specs(truth)  # new model-years in, prices updated
    assert {my["year"] for my in truth["model_years"]} == {2022, 2023, 2024}
    history = read_table(root / "specs_history.parquet")
    old_specs = truth_specs(old_truth)
    assert set(zip(history["model_id"], history["key"], history["value"], strict=True)) == {
        (mid, k, v) for mid, pairs in old_specs.items() for k, v in pairs if (k, v) not in dict(truth_specs(truth)[mid]).items()}
    assert set(history["key"]) == {"MSRP"} and history["replaced_at"].notna().all()
    assert (history["first_seen"] <= history["last_seen"]).all()
    # photos: the current ones are the new edition's; the removed ones are kept and marked, not deleted
    old_good, good = set(good_photos(old_truth)), set(good_photos(truth))
    assert _current(ds) == good
    gone = set(ds.images.loc[ds.images["gone_at"].notna(), "sha256"])
    assert gone == old_good - good and gone
    assert set(ds.images["sha256"]) == old_good | good
    assert_files_intact(root, ds.images)  # a gone photo's file stays
    r = stats["refresh"]
    assert r["photos"]["stored_new"] == len(good - old_good)  # only the 2024 photos were downloaded
    assert r["photos"]["gone"] == len(gone) and r["model_years_changed"] == len(before.specs)


def _pages_done(root: Path) -> int:
    try:
        con = sqlite3.connect(f"file:{root / 'crawl.sqlite'}?mode=ro", uri=True, timeout=5)
        try:
            row = con.execute("SELECT value FROM meta WHERE key='refresh'").fetchone()
            if row is None:
                return 0
            return con.execute("SELECT COUNT(*) FROM urls WHERE kind='page' AND state='done'").fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def _summary(root: Path) -> tuple:
    ds = load(root)
    history = read_table(root / "specs_history.parquet")
    return (specs_by_model(ds), _current(ds), set(ds.images["sha256"]),
            sorted(zip(history["model_id"], history["key"], history["value"], strict=True)))


@pytest.mark.slow
def test_a_killed_refresh_resumes_to_the_dataset_of_an_uninterrupted_one(tmp_path):
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    with ShowroomServer(tiny_config(revalidate=True)) as old:
        port = old.port
        crawl(config(old.base_url, killed))
        crawl(config(old.base_url, clean))
    new = _serve_edition(port, years=(2022, 2024), photos=3, edition=1)
    try:
        base = new.base_url
        crawl(config(base, clean, resume=True, refresh=True))
        seed = random.randrange(1 << 30)
        moment = random.Random(seed).randint(1, 25)  # how many pages the refresh has done when the kill comes
        cmd = [sys.executable, "-m", "carscope", "crawl", "--start-url", base + "/", "--out", str(killed),
               "--browser", "never", "--quiet", "--refresh", "--delay", "0.05"]
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        while _pages_done(killed) < moment:
            assert proc.poll() is None, (seed, proc.communicate())
            assert time.monotonic() - t0 < 60, "the refresh made no progress"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        stats = crawl(config(base, killed, resume=True, refresh=True))  # continues the round, does not restart it
    finally:
        new.stop()
    assert stats["refresh"]["round"] == 1 and stats["refresh"]["state"] == "done", seed
    assert _summary(killed) == _summary(clean), seed


def test_refresh_bad_input_is_one_line(tmp_path):
    with pytest.raises(CarscopeError, match="has no crawl.sqlite"):
        crawl(config("http://127.0.0.1:9", tmp_path / "none", resume=True, refresh=True))
    with pytest.raises(CarscopeError, match="--refresh updates a crawled dataset"):
        crawl(config("http://127.0.0.1:9", tmp_path / "ds", refresh=True))
    proc = subprocess.run([sys.executable, "-m", "carscope", "crawl", "--start-url", "http://127.0.0.1:9/", "--out",
                           str(tmp_path / "ds"), "--refresh", "--overwrite"], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "--refresh" in proc.stderr


def test_caching_rules():
    now = 1_000_000.0
    assert freshness({"cache-control": "public, max-age=86400, immutable"}, now) == now + 86400
    assert freshness({"cache-control": "no-cache", "expires": "Wed, 21 Oct 2099 07:28:00 GMT"}, now) is None
    assert freshness({"expires": "Wed, 21 Oct 2099 07:28:00 GMT"}, now) > now
    assert freshness({}, now) is None and freshness({"cache-control": "max-age=0"}, now) is None
    assert parse_lastmod("2024-05-01") == parse_lastmod("2024-05-01T00:00:00Z") == parse_lastmod("2024-05")
    assert parse_lastmod("2024-05-01T02:00:00+02:00") == parse_lastmod("2024-05-01")
    assert parse_lastmod("yesterday") is None and parse_lastmod(None) is None
    assert conditional_headers({"etag": '"a"', "last_modified": "Wed, 21 Oct 2015 07:28:00 GMT"}) == {
        "If-None-Match": '"a"', "If-Modified-Since": "Wed, 21 Oct 2015 07:28:00 GMT"}
    assert conditional_headers({"etag": None, "last_modified": None}) is None
    visited = parse_lastmod("2024-05-02")
    cache = {"visited_at": visited, "fresh_until": None}
    assert unchanged_without_asking(cache, "2024-05-01", now) == "lastmod"
    assert unchanged_without_asking(cache, "2024-05-03", now) is None  # changed after the visit: asked
    assert unchanged_without_asking({"visited_at": None}, "2024-05-01", now) is None  # never visited: asked
    assert unchanged_without_asking({"visited_at": 1.0, "fresh_until": now + 1}, None, now) == "fresh"


def test_datasets_written_before_refresh_read_the_new_columns_as_missing(tmp_path):
    import pandas as pd

    pd.DataFrame({"model_id": ["m"], "key": ["MSRP"], "value": ["$1"]}).to_parquet(tmp_path / "specs_raw.parquet")
    raw = read_table(tmp_path / "specs_raw.parquet")
    assert list(raw.columns[:5]) == ["model_id", "key", "value", "first_seen", "last_seen"]
    assert raw["first_seen"].isna().all()
    write_table(pd.DataFrame({"sha256": ["a"], "path": ["images/a.jpg"]}), tmp_path / "images.parquet")
    assert read_table(tmp_path / "images.parquet")["gone_at"].isna().all()


def test_new_bytes_under_a_known_photo_url_replace_its_row(tmp_path):
    root = tmp_path / "ds"
    with ShowroomServer(tiny_config(revalidate=True)) as old:
        port = old.port
        crawl(config(old.base_url, root))
        old_good = set(good_photos(fetch_truth(old.base_url)))
    # a 2021 model-year before them changes every later year's look: the same photo URLs, other bytes
    new = _serve_edition(port, years=(2021, 2023))
    try:
        stats = crawl(config(new.base_url, root, resume=True, refresh=True))
        good = set(good_photos(fetch_truth(new.base_url)))
    finally:
        new.stop()
    ds = load(root)
    changed = old_good - good  # the car photos (a gallery's logos and maps keep their bytes)
    assert changed and _current(ds) == good
    assert set(ds.images.loc[ds.images["gone_at"].notna(), "sha256"]) == changed
    assert stats["refresh"]["photos"]["replaced"] == len(changed)


def test_showroom_revalidate_keeps_the_bytes_and_answers_304(showroom_site):
    import urllib.error
    import urllib.request

    def get(base: str, path: str, headers: dict | None = None):
        try:
            with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers or {}), timeout=30) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), b""

    path = showroom_site.truth["model_years"][0]["specifications_url"]
    status, plain_headers, plain = get(showroom_site.base_url, path)
    assert "ETag" not in plain_headers and "Last-Modified" not in plain_headers  # off by default
    with ShowroomServer(tiny_config(revalidate=True)) as server:
        status, headers, body = get(server.base_url, path)
        assert body == plain and headers["ETag"] and headers["Last-Modified"]
        assert get(server.base_url, path, {"If-None-Match": headers["ETag"]})[0] == 304
        assert get(server.base_url, path, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
        assert get(server.base_url, path, {"If-None-Match": '"other"'})[0] == 200
