"""The crawler against the real showroom over loopback: completeness, faults, robots, browser, resume, signals."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from carscope.crawler import crawl
from carscope.crawler.browser import browser_available
from carscope.crawler.dataset import load
from carscope.showroom.testing import fetch_stats, fetch_truth, reset_stats, serve_in_thread, tiny_config
from tests.crawler.helpers import (
    assert_files_intact,
    comparable_specs,
    config,
    expected_view,
    frontier_done,
    good_photos,
    specs_by_model,
    truth_specs,
)

REPO = Path(__file__).resolve().parents[2]
PER_HOST = 3


def assert_matches_truth(root: Path, truth: dict) -> None:
    ds = load(root)
    assert specs_by_model(ds) == truth_specs(truth)  # every model-year, every raw row, as written
    assert ds.specs["model_id"].tolist() == sorted(truth_specs(truth))
    assert ds.specs["msrp_usd"].notna().all() and ds.specs["make"].notna().all()
    good = good_photos(truth)
    assert len(ds.images) == ds.images["sha256"].nunique()  # each photo stored once
    assert set(ds.images["sha256"]) == set(good)  # every unique photo, nothing else
    for row in ds.images.itertuples():
        photo = good[row.sha256]
        assert row.model_id == photo["model_id"]
        assert row.view_hint == expected_view(truth, photo), row.source_url
    assert_files_intact(root, ds.images)


@pytest.fixture(scope="module")
def clean_crawl(showroom_site, tmp_path_factory):
    """One uninterrupted crawl of the session showroom (no browser), with the site's request stats."""
    root = tmp_path_factory.mktemp("clean") / "ds"
    showroom_site.reset_stats()
    stats = crawl(config(showroom_site.base_url, root, per_host=PER_HOST, concurrency=8))
    return root, stats, showroom_site.stats()


def test_crawl_matches_the_ground_truth(clean_crawl, showroom_site):
    root, stats, site = clean_crawl
    truth = showroom_site.truth
    assert stats["status"] == "complete" and stats["exit_code"] == 0
    assert_matches_truth(root, truth)
    dup_photos = sum(1 for p in truth["photos"] if p["dup_urls"])  # listed twice: /photos/ and /cdn/
    assert dup_photos > 0 and stats["images"]["duplicates"] == dup_photos  # the copy fetched, not stored
    assert len(load(root).failures) == 0
    assert site["disallowed_hits"] == 0  # robots.txt obeyed: /__* and /compare never requested
    assert "compare" not in site["by_kind"]  # the trap was not entered
    assert max(site["max_inflight_per_client"].values()) <= PER_HOST
    assert json.loads((root / "stats.json").read_text())["images"]["stored"] == len(good_photos(truth))


def test_robots_txt_keeps_the_crawler_out_of_the_trap(showroom_site, tmp_path):
    """An adapter that asks to follow the trap's links: robots.txt still stops every request to it."""
    shipped = (REPO / "carscope" / "crawler" / "sites" / "showroom.toml").read_text()
    hook = (REPO / "carscope" / "crawler" / "sites" / "showroom_hook.py").as_posix()
    greedy = shipped.replace('hook = "showroom_hook.py"', f'hook = "{hook}"').replace(
        'links = ["a.specs-link", "a.photos-link"]', 'links = ["a.specs-link", "a.photos-link", "a.compare"]')
    greedy += "\n[pages.compare]\nmatch = '^/compare'\nlinks = [\"a\"]\n"
    adapter = tmp_path / "greedy.toml"
    adapter.write_text(greedy)
    showroom_site.reset_stats()
    stats = crawl(config(showroom_site.base_url, tmp_path / "ds", site=str(adapter), max_images=0))
    site = showroom_site.stats()
    assert site["disallowed_hits"] == 0 and "compare" not in site["by_kind"]
    fails = load(tmp_path / "ds").failures
    robots_rows = fails[fails["reason"] == "robots_disallowed"]
    assert len(robots_rows) >= 1 and robots_rows["url"].str.contains("/compare").all()
    assert (robots_rows["kind"] == "robots").all()
    assert stats["pages"]["done"] > 0


@pytest.mark.browser
def test_browser_renders_the_javascript_gallery(showroom_site, tmp_path):
    if not browser_available():
        from tests.conftest import no_browser

        no_browser("no Chromium on this machine")
    showroom_site.reset_stats()
    stats = crawl(config(showroom_site.base_url, tmp_path / "ds", browser="auto", per_host=PER_HOST))
    site = showroom_site.stats()
    truth = showroom_site.truth
    assert stats["browser"]["used_for"] == ["photos"]
    assert stats["browser"]["rendered"] == len(truth["model_years"])
    assert_matches_truth(tmp_path / "ds", truth)
    assert site["by_kind"]["gallery_json"] == len(truth["model_years"])  # fetched by the page's own script
    assert site["disallowed_hits"] == 0
    assert max(site["max_inflight_per_client"].values()) <= PER_HOST  # the browser's requests are gated too


@pytest.mark.browser
def test_browser_contexts_are_recycled(showroom_site, tmp_path):
    """--browser-recycle N: a page context is closed and replaced after N pages, so a long crawl's browser memory
    stays flat. With N = 1 every page gets a fresh context; the photos are the same."""
    if not browser_available():
        from tests.conftest import no_browser

        no_browser("no Chromium on this machine")
    stats = crawl(config(showroom_site.base_url, tmp_path / "ds", browser="auto", per_host=PER_HOST,
                         browser_recycle=1, browser_pages=1))
    rendered = stats["browser"]["rendered"]
    assert rendered == len(showroom_site.truth["model_years"])
    assert stats["browser"]["contexts"] >= rendered  # one context per page
    assert_matches_truth(tmp_path / "ds", showroom_site.truth)


@pytest.mark.slow
def test_faults_everything_recoverable_is_collected(tmp_path):
    faults = "5xx=0.06,429=0.02,truncate=0.08,redirect=0.1,slow=0.02,corrupt=0.15,dup=0.2"
    cfg = tiny_config(faults=faults, retry_after_s=1, slow_s=0.3)
    with serve_in_thread(cfg) as base:
        truth = fetch_truth(base)
        reset_stats(base)
        stats = crawl(config(base, tmp_path / "ds", per_host=4))
        site = fetch_stats(base)
    assert stats["status"] == "complete"
    assert {"5xx", "429", "truncate"} <= set(site["faults"])  # the faults really happened
    assert_matches_truth(tmp_path / "ds", truth)  # everything recoverable, nothing corrupt or truncated
    fails = load(tmp_path / "ds").failures
    corrupt_urls = {u for p in truth["photos"] if p["corrupt"] for u in p["urls"]}  # 640 px, /cdn/ too
    assert corrupt_urls, "the fault plan should have produced corrupt photos"
    assert set(fails["url"].str.replace(base, "", regex=False)) == corrupt_urls  # exactly the unrecoverable
    assert (fails["reason"] == "corrupt_image").all() and (fails["kind"] == "image").all()
    assert stats["retries"] >= site["faults"]["5xx"]
    # every 429 and every 503 (the showroom sends Retry-After with both) paused the host before the retry;
    # the exact spacing is checked in test_politeness.py
    assert stats["politeness"]["retry_after_waits"] == site["status"].get("429", 0) + site["status"].get("503", 0)
    assert stats["politeness"]["retry_after_max_s"] >= 1.0


def _crawl_cmd(base: str, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "carscope", "crawl", "--start-url", base + "/", "--out", str(out),
            "--browser", "never", "--per-host", str(PER_HOST), "--quiet", *extra]


def _start_and_wait_for_progress(cmd, root: Path, min_done: int, timeout: float = 30):
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while frontier_done(root) < min_done:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < timeout, "the crawl made no progress"
        time.sleep(0.05)
    return proc


@pytest.mark.slow
def test_resume_after_sigkill_equals_an_uninterrupted_crawl(clean_crawl, showroom_site, tmp_path):
    clean_root = clean_crawl[0]
    root = tmp_path / "ds"
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    moment = random.Random(seed).randint(3, 60)  # how many URLs are done when the kill comes
    showroom_site.reset_stats()
    # --delay spaces requests so the kill lands mid-crawl whatever the machine's speed
    proc = _start_and_wait_for_progress(_crawl_cmd(showroom_site.base_url, root, "--delay", "0.02"), root, moment)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (root / "stats.json").exists(), f"seed {seed}: the crawl finished before the kill"
    con = sqlite3.connect(f"file:{root / 'crawl.sqlite'}?mode=ro", uri=True)
    try:  # what the killed crawl had committed as done: the resume must not fetch any of it again
        done_at_kill = [urllib.parse.urlsplit(u).path for (u,) in con.execute("SELECT url FROM urls WHERE state='done'")]
    finally:
        con.close()
    assert done_at_kill, seed

    with pytest.raises(Exception, match="not empty"):  # a killed crawl's directory is not silently reused
        crawl(config(showroom_site.base_url, root))
    stats = crawl(config(showroom_site.base_url, root, resume=True, per_host=PER_HOST))
    assert stats["status"] == "complete" and stats["durations"]["runs"] == 1, seed
    got, want = load(root), load(clean_root)
    assert set(got.images["sha256"]) == set(want.images["sha256"]), seed
    assert comparable_specs(got).equals(comparable_specs(want)), seed
    assert specs_by_model(got) == specs_by_model(want)
    assert_files_intact(root, got.images)  # and no temp files left
    fetched = showroom_site.stats()["by_path"]
    # (the start URL excepted: every run fetches it once, first, to check that the site answers)
    again = sorted(p for p in set(done_at_kill) - {"/"} if fetched.get(p, 0) > 1)
    assert again == [], f"seed {seed}: committed before the kill and fetched again on resume: {again[:10]}"


@pytest.mark.slow
@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_resumes(clean_crawl, showroom_site, tmp_path, sig, code):
    root = tmp_path / "ds"
    proc = _start_and_wait_for_progress(_crawl_cmd(showroom_site.base_url, root, "--delay", "0.02"), root, 10)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    assert "Traceback" not in err
    stats = json.loads((root / "stats.json").read_text())
    assert stats["status"] == "interrupted" and stats["interrupted_by"] == sig.name
    assert "--resume" in out
    first = load(root)  # what was saved is a consistent dataset already
    assert_files_intact(root, first.images)
    stats = crawl(config(showroom_site.base_url, root, resume=True, per_host=PER_HOST))
    assert stats["status"] == "complete"
    got, want = load(root), load(clean_crawl[0])
    assert set(got.images["sha256"]) == set(want.images["sha256"])
    assert comparable_specs(got).equals(comparable_specs(want))


def test_limits_then_resume_on_a_moved_site(showroom_site, tmp_path):
    """--max-pages stops early; --resume finishes the crawl even after the site came back on another port."""
    root = tmp_path / "ds"
    with serve_in_thread(tiny_config()) as first_base:
        stats = crawl(config(first_base, root, max_pages=5))
    assert stats["status"] == "limit_reached" and stats["pages"]["done"] == 5 and stats["exit_code"] == 0
    stats = crawl(config(showroom_site.base_url, root, resume=True))
    assert stats["status"] == "complete"
    assert any("rebased" in note for note in stats["notes"])
    assert_matches_truth(root, showroom_site.truth)


def test_overwrite_starts_over(showroom_site, tmp_path):
    root = tmp_path / "ds"
    crawl(config(showroom_site.base_url, root, max_pages=3))
    (root / "notes.txt").write_text("not ours")  # a user's file next to the dataset is left alone
    stats = crawl(config(showroom_site.base_url, root, overwrite=True))
    assert stats["status"] == "complete" and stats["durations"]["runs"] == 1
    assert_matches_truth(root, showroom_site.truth)
    assert (root / "notes.txt").read_text() == "not ours"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bad_input_is_one_line_and_exit_2(clean_crawl, showroom_site, tmp_path, capsys):
    from carscope.commands.cli import main

    broken = tmp_path / "broken.toml"
    broken.write_text("[site]\nname = 'x'\n[pages.home\nmatch = '^/$'\n")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    base = showroom_site.base_url
    cases = [
        (["--start-url", "not a url", "--out", str(tmp_path / "o1")], "invalid start URL"),
        (["--start-url", "ftp://example.com/", "--out", str(tmp_path / "o2")], "invalid start URL"),
        (["--start-url", f"http://127.0.0.1:{_free_port()}/", "--out", str(tmp_path / "o3")], "cannot reach"),
        (["--start-url", base + "/", "--out", str(tmp_path / "o4"), "--site", str(broken)], f"{broken}:3"),
        (["--start-url", base + "/", "--out", str(blocker / "sub")], "cannot write to output directory"),
        (["--start-url", base + "/", "--out", str(clean_crawl[0])], "--resume"),
    ]
    for argv, expect in cases:
        code = main(["crawl", "--quiet", *argv])
        err = capsys.readouterr().err.strip()
        assert code == 2, (argv, err)
        assert len(err.splitlines()) == 1 and expect in err, (argv, err)
        assert "Traceback" not in err
    # and once through a real process, as a user would see it
    proc = subprocess.run([sys.executable, "-m", "carscope", "crawl", "--start-url", "nope", "--out",
                           str(tmp_path / "o5")], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for name in ("o1", "o2", "o3", "o4", "o5"):  # nothing half-made is left behind
        assert not (tmp_path / name).exists(), name


def test_no_crawl_leaves_a_process_behind():
    import psutil

    names = [c.name() for c in psutil.Process(os.getpid()).children(recursive=True)]
    assert not any("chrom" in n for n in names), names
