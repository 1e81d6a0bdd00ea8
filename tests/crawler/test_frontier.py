import json
import sqlite3

from crawler.frontier import IMAGE, PAGE, Frontier


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
