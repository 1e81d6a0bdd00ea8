import json
import sqlite3

from carscope.crawler.frontier import IMAGE, PAGE, Frontier


def test_states_attempts_and_priorities(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    assert f.add("http://h/", PAGE, page_type="home")
    assert not f.add("http://h/", PAGE, page_type="home")  # known URLs are not queued twice
    f.add("http://h/i.jpg", IMAGE, meta={"model_id": "m", "view_hint": "exterior"})
    first = f.claim(now=0)
    assert first.kind == IMAGE and first.meta["view_hint"] == "exterior"  # images first: the queue stays small
    page = f.claim(now=0)
    assert page.url == "http://h/" and f.claim(now=0) is None
    f.retry(page, not_before=100.0, status=503, error="http_503")
    assert f.claim(now=50) is None and f.next_ready_at() == 100.0
    again = f.claim(now=100)
    assert again.attempts == 1
    f.fail(again, reason="http_503", status=503)
    f.done(first, 200)
    f.commit(force=True)
    assert f.counts()[PAGE] == {"failed": 1} and f.counts()[IMAGE] == {"done": 1}
    row = f.db.execute("SELECT url, kind, reason, status, attempts FROM failures").fetchone()
    assert row == ("http://h/", "page", "http_503", 503, 2)
    f.close()


def test_reopen_puts_in_flight_work_back_after_a_crash(tmp_path):
    path = tmp_path / "crawl.sqlite"
    f = Frontier(path)
    for i in range(5):
        f.add(f"http://h/{i}", PAGE, page_type="x")
    claimed = [f.claim(now=0) for _ in range(3)]
    f.done(claimed[0], 200)
    f.commit(force=True)
    f.db.close()  # no clean shutdown: as after SIGKILL
    g = Frontier(path)
    assert g.reopen() == 2
    assert g.counts()[PAGE] == {"done": 1, "pending": 4}


def test_uncommitted_work_is_redone_not_lost(tmp_path):
    path = tmp_path / "crawl.sqlite"
    f = Frontier(path, commit_every=3600)
    f.add("http://h/", PAGE)
    f.commit(force=True)
    item = f.claim(now=0)
    f.put_specs("m", "A", "B", 2023, "http://h/", [("k", "v")])
    f.done(item, 200)  # not committed yet
    f.db.close()
    g = Frontier(path)
    g.reopen()
    assert g.counts()[PAGE] == {"pending": 1} and g.counts()["specs"] == 0


def test_skip_records_a_failure_row_and_rebase_moves_urls(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.skip("http://h:1/compare?ids=1", "robots", "robots_disallowed")
    f.add("http://h:1/a", PAGE)
    assert f.rebase("http://h:1", "http://h:2") == 2
    assert f.claim(now=0).url == "http://h:2/a"
    f.set_meta("config", {"a": 1})
    f.commit(force=True)
    con = sqlite3.connect(tmp_path / "crawl.sqlite")
    assert json.loads(con.execute("SELECT value FROM meta WHERE key='config'").fetchone()[0]) == {"a": 1}
    assert con.execute("SELECT reason FROM failures").fetchone() == ("robots_disallowed",)


# -- each operation's contract, for `make mutate` of carscope/crawler/frontier.py (resume depends on every one) ----------
def _claim_all(f, now=0.0, **kw):
    out = []
    while (item := f.claim(now=now, **kw)) is not None:
        out.append(item)
    return out


def test_claim_order_kinds_and_not_before(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    for u in ("http://h/p1", "http://h/p2"):
        f.add(u, PAGE, page_type="list", depth=2, meta={"referrer_model_year": "x"})
    f.add("http://h/i1.jpg", IMAGE)
    f.add("http://h/i2.jpg", IMAGE)
    assert f.pending_count() == 4 and f.pending_count((IMAGE,)) == 2 and f.pending_count((PAGE,)) == 2
    pages = _claim_all(f, kinds=(PAGE,))
    assert [(i.url, i.kind, i.page_type, i.depth, i.attempts, i.meta) for i in pages] == [
        ("http://h/p1", PAGE, "list", 2, 0, {"referrer_model_year": "x"}),
        ("http://h/p2", PAGE, "list", 2, 0, {"referrer_model_year": "x"})]  # discovery order
    assert f.pending_count() == 2 and f.pending_count((PAGE,)) == 0
    f.retry(pages[0], not_before=10.0, status=None, error="timeout")
    f.retry(pages[1], not_before=20.0, status=503, error="http_503")
    assert f.next_ready_at((PAGE,)) == 10.0 and f.next_ready_at((IMAGE,)) == 0.0
    images = f.claim(now=0.0)
    assert images.url == "http://h/i1.jpg"  # images before pages, pages not ready before not_before anyway
    assert f.claim(now=9.999, kinds=(PAGE,)) is None
    assert f.claim(now=10.0, kinds=(PAGE,)).url == "http://h/p1"  # ready exactly at not_before
    assert f.claim(now=15.0, kinds=(PAGE,)) is None
    again = f.claim(now=20.0, kinds=(PAGE,))
    assert (again.url, again.attempts) == ("http://h/p2", 1)
    assert f.next_ready_at((PAGE,)) is None  # nothing pending


def test_release_gives_back_without_counting_an_attempt(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.add("http://h/a", PAGE)
    item = f.claim(now=0)
    f.release(item)
    back = f.claim(now=0)
    assert back.url == "http://h/a" and back.attempts == 0
    f.done(back, 200)
    f.release(back)  # only in-flight work is given back: done stays done
    assert f.counts()[PAGE] == {"done": 1} and f.claim(now=0) is None
    assert f.reopen() == 0


def test_done_clears_the_last_error_and_counts_the_attempt(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.add("http://h/a", PAGE)
    f.retry(f.claim(now=0), not_before=0, status=503, error="http_503")
    f.done(f.claim(now=0), 200)
    assert f.db.execute("SELECT state, attempts, status, error FROM urls").fetchone() == ("done", 2, 200, None)
    assert f.status_histogram() == {"200": 1}


def test_mark_seen_is_seen_without_a_fetch_never_queued_and_no_page_done(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    assert f.mark_seen("http://h/target", PAGE, page_type="detail")
    assert not f.mark_seen("http://h/target", PAGE)
    assert not f.add("http://h/target", PAGE)  # a redirect's target found again later is not fetched
    assert f.claim(now=0) is None and f.counts()[PAGE] == {"seen": 1}  # --max-pages counts it nowhere


def test_skip_is_terminal_and_keeps_the_first_reason(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.skip("http://h/private", PAGE, "robots_disallowed")
    f.skip("http://h/private", PAGE, "offsite", status=None)  # known already: the URL row is not replaced
    assert f.claim(now=0) is None and not f.add("http://h/private", PAGE)
    assert f.db.execute("SELECT state, error FROM urls").fetchone() == ("skipped", "robots_disallowed")
    assert f.db.execute("SELECT kind, attempts, status FROM failures").fetchone() == (PAGE, 0, None)


def test_fail_writes_the_failure_row_with_its_kind(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.add("http://h/i.jpg", IMAGE)
    f.fail(f.claim(now=0), reason="corrupt_image", status=200, kind="decode")
    assert f.db.execute("SELECT url, kind, reason, status, attempts FROM failures").fetchone() == \
        ("http://h/i.jpg", "decode", "corrupt_image", 200, 1)
    assert f.db.execute("SELECT state, attempts, error FROM urls").fetchone() == ("failed", 1, "corrupt_image")
    assert f.counts() == {IMAGE: {"failed": 1}, "images_stored": 0, "specs": 0, "failures": 1}


def test_commit_batches_by_time(tmp_path, monkeypatch):
    import time
    import types

    import carscope.crawler.frontier as fmod

    now = [100.0]
    monkeypatch.setattr(fmod, "time", types.SimpleNamespace(monotonic=lambda: now[0], time=time.time))
    path = tmp_path / "crawl.sqlite"
    f = Frontier(path, commit_every=5.0)

    def committed():
        return sqlite3.connect(path).execute("SELECT COUNT(*) FROM urls").fetchone()[0]

    f.add("http://h/a", PAGE)
    now[0] = 104.9
    f.commit()
    assert committed() == 0  # inside the interval: not yet
    now[0] = 105.0
    f.commit()
    assert committed() == 1  # at the interval
    f.add("http://h/b", PAGE)
    now[0] = 109.0
    f.commit()
    assert committed() == 1  # the interval counts from the last commit
    f.commit(force=True)
    assert committed() == 2
    f.add("http://h/c", PAGE)
    f.close()  # a clean close commits what is left
    assert committed() == 3


def test_specs_images_and_duplicates(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    f.put_specs("m1", "Acme", "Roadster", 2023, "http://h/m1", [("Power", "100 kW"), ("Doors", "2")])
    f.put_specs("m1", "Acme", "Roadster", 2023, "http://h/m1", [("Power", "110 kW")])  # a refetch replaces
    assert f.db.execute("SELECT idx, key, value FROM specs_raw").fetchall() == [(0, "Power", "110 kW")]
    row = {"sha256": "s1", "source_sha256": "src1", "path": "images/s1.jpg", "model_id": None, "view_hint": "unknown",
           "width": 10, "height": 10, "bytes": 100, "source_url": "http://h/1.jpg", "page_url": "http://h/m1",
           "crawled_at": 1.0}
    assert f.put_image(row) and not f.put_image({**row, "source_url": "http://h/other.jpg"})
    assert f.image_count() == 1 and f.has_image("s1") and not f.has_image("s2")
    assert f.has_source("src1") and not f.has_source("src2")
    assert f.db.execute("SELECT split FROM images").fetchone() == (None,)
    # a duplicate's labels fill in only what the stored copy lacks
    assert f.improve_image(sha256="s1", view_hint="unknown") == 0
    assert f.improve_image(sha256="s1", view_hint="exterior", model_id="m1") == 2
    assert f.improve_image(source_sha256="src1", view_hint="interior", model_id="m2") == 0  # known labels stay
    assert f.improve_image(sha256="nope", view_hint="interior") == 0
    assert f.db.execute("SELECT model_id, view_hint FROM images").fetchone() == ("m1", "exterior")
    assert f.counts()["specs"] == 1 and f.counts()["images_stored"] == 1


def test_meta_and_counters_survive_a_reopen(tmp_path):
    path = tmp_path / "crawl.sqlite"
    f = Frontier(path)
    assert f.get_meta("missing", "dflt") == "dflt"
    f.set_meta("config", {"delay": 0.5})
    f.set_meta("config", {"delay": 1.0})
    f.add_counter("pages")
    f.add_counter("pages")
    f.add_counter("bytes", 2.5)
    f.close()
    g = Frontier(path)
    assert g.get_meta("config") == {"delay": 1.0} and g.counters() == {"pages": 2.0, "bytes": 2.5}


def test_rebase_touches_only_the_old_origin(tmp_path):
    f = Frontier(tmp_path / "crawl.sqlite")
    for u in ("http://h:1/a", "http://h:1/b?x=http://h:1/", "http://h:10/c", "http://g:1/d"):
        f.add(u, PAGE)
    assert f.rebase("http://h:1/", "http://h:2/") == 2
    assert sorted(i.url for i in _claim_all(f)) == ["http://g:1/d", "http://h:10/c", "http://h:2/a",
                                                    "http://h:2/b?x=http://h:1/"]


def test_an_old_crawl_file_gains_the_split_column(tmp_path):
    path = tmp_path / "crawl.sqlite"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE images (sha256 TEXT PRIMARY KEY, source_sha256 TEXT, path TEXT, model_id TEXT, "
                "view_hint TEXT, width INTEGER, height INTEGER, bytes INTEGER, source_url TEXT, page_url TEXT, "
                "crawled_at REAL)")
    con.commit()
    con.close()
    f = Frontier(path)
    assert "split" in {r[1] for r in f.db.execute("PRAGMA table_info(images)")}
    f.close()
    Frontier(path).close()  # and opening it again does not add it twice
