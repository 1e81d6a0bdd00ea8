"""Soft errors: a page that answers 200 without its content (the showroom's `soft` fault, a maintenance page) is
retried like a 503, becomes a `content_missing` failures row after its last attempt, is never counted as done,
and `--retry-failed` then brings the dataset to what a clean crawl gives."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler import crawl
from carscope.crawler.adapter import SITES_DIR, load_adapter
from carscope.crawler.cli import summary
from carscope.crawler.dataset import load
from carscope.crawler.page import PageReader
from carscope.showroom.testing import fetch_stats, fetch_truth, reset_stats, serve_in_thread, tiny_config
from tests.crawler.helpers import assert_files_intact, config, good_photos, specs_by_model, truth_specs

README = (SITES_DIR / "README.md").read_text()


def _states(root: Path) -> dict[str, str]:
    con = sqlite3.connect(f"file:{root / 'crawl.sqlite'}?mode=ro", uri=True)
    try:
        return dict(con.execute("SELECT url, state FROM urls WHERE kind='page'"))
    finally:
        con.close()


def test_soft_errors_are_retried_recorded_and_recovered_by_retry_failed(tmp_path):
    root = tmp_path / "ds"
    # the showroom's soft fault hits at most 2 attempts of a URL: a crawl giving each page 2 attempts keeps some
    # pages broken for its whole run, and a third attempt always gets the real page
    with serve_in_thread(tiny_config(faults="soft=0.5")) as base:
        truth = fetch_truth(base)
        reset_stats(base)
        first = crawl(config(base, root, max_attempts=2))
        served = fetch_stats(base)["faults"].get("soft", 0)
        fails = load(root).failures
        states = _states(root)
        missing = {u for u, r in zip(fails["url"], fails["reason"], strict=True) if r == "content_missing"}
        assert missing, "the fault plan should have kept some pages broken for both attempts"
        assert served > len(missing)  # some maintenance pages were retried into real ones
        assert first["retries"] >= served - 2 * len(missing)
        assert (fails.set_index("url").loc[sorted(missing), "attempts"] == 2).all()
        assert {states[u] for u in missing} == {"failed"}  # never counted as done
        assert first["pages"]["done"] == sum(s == "done" for s in states.values())
        assert first["pages"]["failed"] == len(missing)
        assert specs_by_model(load(root)) != truth_specs(truth)  # what those pages held is missing
        assert "--retry-failed tries them again" in summary(first, root)

        # a recovered page's links are new pages, which meet the fault on their own first 2 attempts: the user
        # runs --retry-failed until nothing fails (each run recovers every page it retries)
        runs = []
        while not runs or runs[-1]["failures"]:
            assert len(runs) < 4, [r["failure_reasons"] for r in runs]
            before = set(load(root).failures["url"])
            runs.append(crawl(config(base, root, resume=True, retry_failed=True, max_attempts=2)))
            assert not before & set(load(root).failures["url"]), "a retried page failed again"
    assert runs[-1]["status"] == "complete"
    assert any("--retry-failed: " in n for n in runs[0]["notes"])
    ds = load(root)
    assert specs_by_model(ds) == truth_specs(truth)  # the dataset a clean crawl gives
    good = good_photos(truth)
    assert len(ds.images) == ds.images["sha256"].nunique() and set(ds.images["sha256"]) == set(good)
    assert {row.model_id for row in ds.images.itertuples()} <= set(truth_specs(truth))
    assert_files_intact(root, ds.images)
    assert set(_states(root).values()) <= {"done", "seen", "skipped"}


def test_retry_failed_goes_with_resume(tmp_path):
    with pytest.raises(CarscopeError, match="--retry-failed"):
        crawl(config("http://127.0.0.1:9", tmp_path / "ds", retry_failed=True))
    assert not (tmp_path / "ds").exists()


def _recipe() -> str:
    return re.search(r"```toml\n(# A page that can answer 200 without its content.*?)```", README, re.S).group(1)


GOOD = """<div class=specs><p>Seats: 5</p></div>
<script id=__NEXT_DATA__>{"props": {"pageProps": {"car": {"id": 7, "year": 2023}}}}</script>"""
MAINTENANCE = "<h1>Wartungsarbeiten</h1><p>Back soon.</p>"
HALF = "<div class=specs><p>Seats: 5</p></div>"  # the markup, but not the data the page's script carries


@pytest.mark.parametrize("html, missing", [
    (GOOD, []),
    (MAINTENANCE, ["css 'div.specs'", "json 'props.pageProps.car.id' from next"]),
    (HALF, ["json 'props.pageProps.car.id' from next"]),
])
def test_the_reference_recipe_for_require(tmp_path, html, missing):
    (tmp_path / "site.toml").write_text(_recipe())
    adapter = load_adapter(str(tmp_path / "site.toml"))
    pt, groups = adapter.classify("/car/7")
    read = asyncio.run(PageReader(adapter, None, None).read(pt, groups, "http://h/car/7", html, render=False))
    assert read.missing == missing


@pytest.mark.parametrize("value, error", [
    ("3", "expected a field rule"),
    ('""', "expected a CSS selector"),
    ('{ json = "a", from = "nope" }', "no data source 'nope'"),
    ('["div.ok", 4]', "expected a field rule"),
])
def test_a_bad_require_is_one_line_with_its_place(tmp_path, value, error):
    (tmp_path / "bad.toml").write_text(f"[pages.car]\nmatch = '^/'\nrequire = {value}\n")
    with pytest.raises(CarscopeError, match=re.escape(error)) as info:
        load_adapter(str(tmp_path / "bad.toml"))
    assert "pages.car.require" in str(info.value) and "\n" not in str(info.value)


def test_check_reports_a_soft_error(tmp_path):
    from carscope.crawler.check import check

    with serve_in_thread(tiny_config(faults="soft=1")) as base:  # every HTML page's first 2 answers
        report = check(base + "/")
        assert report["problems"] == ["content_missing: css 'ul.makes a.make-link'"]
        assert report["links"] == []
        photo = fetch_truth(base)["photos"][0]["url"]
        check(base + "/")  # the second answer is a maintenance page too, the third the real page
        report = check(base + "/")
        assert report["problems"] == [] and report["links"]
        import urllib.request

        with urllib.request.urlopen(base + photo) as r:  # photos (and JSON) are never replaced
            assert r.headers["Content-Type"] == "image/jpeg"
