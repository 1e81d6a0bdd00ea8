"""Every showroom layout crawled with its shipped adapter equals the site's truth: every photo, label, view and
spec value; politely; and `carscope crawl --check` says what the adapter makes of each layout's pages."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from carscope.crawler import crawl
from carscope.crawler.dataset import load
from carscope.showroom.testing import ShowroomServer, ShowroomSite, fetch_truth, tiny_config
from tests.crawler.helpers import (
    assert_files_intact,
    comparable_specs,
    config,
    expected_view,
    frontier_done,
    good_photos,
    specs_by_model,
)

REPO = Path(__file__).resolve().parents[2]
LAYOUTS = ["classic", "dl", "jsonld", "spa"]
SITE = {"classic": "showroom", "dl": "showroom-dl", "jsonld": "showroom-jsonld", "spa": "showroom-spa"}
BROWSER = {"classic": "never", "dl": "auto", "jsonld": "never", "spa": "never"}
PER_HOST = 3
CRAWL_DELAY = 0.01
EUR_PER_USD = 0.92  # what the dl layout writes (carscope/showroom/layout_dl.py); cleaning never converts currencies

# the values each layout writes on its pages (SITE.md); the others it leaves out
NOT_WRITTEN = {
    "classic": set(),
    "spa": set(),
    "dl": {"epa_class", "horsepower_rpm", "msrp_usd"},
    "jsonld": {"epa_class", "horsepower_rpm", "wheel_size_in"},
}
DRIVES = {"All Wheel Drive": "AWD", "Four Wheel Drive": "4WD", "Front Wheel Drive": "FWD", "Rear Wheel Drive": "RWD"}
TOLERANCE = {"length_in": 0.06, "width_in": 0.06, "height_in": 0.06, "wheelbase_in": 0.06, "displacement_l": 0.051,
             "horsepower": 1, "mpg_city": 1, "mpg_highway": 1}


@pytest.fixture(scope="module")
def sites():
    servers, out = [], {}
    try:
        for name in LAYOUTS:
            cfg = tiny_config(layout=name, photos=10, crawl_delay=CRAWL_DELAY)
            server = ShowroomServer(cfg).start()
            servers.append(server)
            out[name] = ShowroomSite(base_url=server.base_url, config=cfg, truth=fetch_truth(server.base_url),
                                     server=server)
        yield out
    finally:
        for server in servers:
            server.stop()


@pytest.fixture(scope="module")
def crawls(sites, tmp_path_factory):
    """One crawl of each layout with its shipped adapter, and what each site was asked."""
    out = {}
    for name in LAYOUTS:
        site = sites[name]
        site.reset_stats()
        root = tmp_path_factory.mktemp(name) / "ds"
        t0 = time.monotonic()
        stats = crawl(config(site.base_url, root, site=SITE[name], browser=BROWSER[name], per_host=PER_HOST))
        out[name] = (root, stats, site.stats(), time.monotonic() - t0)
    return out


def assert_values(ds, truth: dict, layout: str) -> None:
    """The cleaned specs.parquet row of every model-year equals the values the site wrote, within rounding."""
    specs = ds.specs.set_index("model_id")
    for my in truth["model_years"]:
        row = specs.loc[my["model_id"]]
        assert (row["make"], row["model"], row["year"]) == (my["make"], my["model"], my["year"]), my["model_id"]
        for key, want in my["values"].items():
            if key == "electric" or key in NOT_WRITTEN[layout]:
                continue
            got = row[key]
            where = f"{layout} {my['model_id']} {key}: got {got!r}, want {want!r}"
            if want is None:
                continue  # absent or N/A on the page: nothing to compare (an N/A may still clean to <NA>)
            assert got is not None and not (isinstance(got, float) and math.isnan(got)), where
            if key == "drivetrain":
                assert got == DRIVES[want], where
            elif key in TOLERANCE:
                assert abs(float(got) - float(want)) <= TOLERANCE[key], where
            elif isinstance(want, (int, float)):
                assert float(got) == float(want), where
            else:
                assert str(got) == str(want), where
        if layout == "dl":  # euros on the page: the price and its currency, no invented dollar figure
            assert row["price_currency"] == "EUR" and str(row["msrp_usd"]) == "<NA>", my["model_id"]
            assert row["price"] == round(my["values"]["msrp_usd"] * EUR_PER_USD / 10) * 10, my["model_id"]
        else:
            assert row["price_currency"] == "USD" and row["msrp_usd"] == my["values"]["msrp_usd"], my["model_id"]


@pytest.mark.browser
@pytest.mark.parametrize("layout", LAYOUTS)
def test_each_layout_crawls_to_exactly_the_truth(crawls, sites, layout):
    root, stats, site, _ = crawls[layout]
    assert_crawl_matches(root, stats, site, sites[layout].truth, layout)


def test_the_dl_layout_without_a_browser_follows_the_more_photos_fragments(sites, tmp_path):
    """--browser never: the button's data-next URL is a page type that inherits the vehicle's model-year."""
    server = sites["dl"]
    server.reset_stats()
    stats = crawl(config(server.base_url, tmp_path / "ds", site="showroom-dl", browser="never", per_host=PER_HOST))
    site = server.stats()
    assert stats["browser"]["used_for"] == [] and site["by_kind"]["gallery_json"] > 0
    assert_crawl_matches(tmp_path / "ds", stats, site, server.truth, "dl")


def assert_crawl_matches(root, stats, site, truth, layout):
    ds = load(root)
    assert stats["status"] == "complete" and stats["failures"] == 0, stats["failure_reasons"]
    assert stats["no_model_year"] == {"pages": 0, "photos": 0} and stats["page_problems"] == {}
    # photos: every unique one, stored once, with its model-year and its view hint
    good = good_photos(truth)
    assert len(ds.images) == ds.images["sha256"].nunique()
    assert set(ds.images["sha256"]) == set(good)
    for row in ds.images.itertuples():
        assert row.model_id == good[row.sha256]["model_id"], row.source_url
        assert row.view_hint == expected_view(truth, good[row.sha256]), row.source_url
    assert_files_intact(root, ds.images)
    # specs: every model-year; the raw pairs exactly as the page wrote them; the cleaned values
    assert sorted(ds.specs["model_id"]) == sorted(my["model_id"] for my in truth["model_years"])
    raw = specs_by_model(ds)
    for my in truth["model_years"]:
        if my["layout_specs"] is not None:
            assert raw[my["model_id"]] == [tuple(p) for p in my["layout_specs"]], my["model_id"]
    assert_values(ds, truth, layout)
    # politeness: robots.txt obeyed (the trap never entered), per-host limit kept
    assert site["disallowed_hits"] == 0 and "compare" not in site["by_kind"]
    assert max(site["max_inflight_per_client"].values()) <= PER_HOST


@pytest.mark.browser
def test_the_crawl_delay_is_obeyed_on_every_layout(crawls):
    for layout in LAYOUTS:
        _, stats, site, seconds = crawls[layout]
        host = next(iter(stats["politeness"]["hosts"].values()))
        assert host["delay_s"] >= CRAWL_DELAY, layout
        # requests to one host start CRAWL_DELAY apart: the crawl cannot be quicker than that
        assert seconds >= (site["requests"] - 1) * CRAWL_DELAY * 0.9, (layout, seconds, site["requests"])


@pytest.mark.browser
def test_the_dl_layout_needs_its_button_and_its_redirecting_root(crawls, sites):
    _, stats, site, _ = crawls["dl"]
    truth = sites["dl"].truth
    assert site["by_kind"].get("gallery_json", 0) > 0  # the "More photos" fragments were fetched by clicks
    assert stats["browser"]["clicks"] == site["by_kind"]["gallery_json"]
    thumbs = {p["thumb_url"] for p in truth["photos"]}
    assert not any(path in thumbs for path in site["by_path"]), "a thumbnail was downloaded, not rewritten"
    assert site["status"].get("301", 0) == 1  # the start URL redirected once, and that was enough


def test_the_spa_layout_also_crawls_in_a_browser(sites, tmp_path):
    site = sites["spa"]
    site.reset_stats()
    stats = crawl(config(site.base_url, tmp_path / "ds", site="showroom-spa", browser="always", per_host=PER_HOST))
    assert stats["status"] == "complete" and stats["browser"]["rendered"] == stats["pages"]["done"]
    ds = load(tmp_path / "ds")
    assert set(ds.images["sha256"]) == set(good_photos(site.truth))
    assert_values(ds, site.truth, "spa")


def test_a_broken_adapter_field_is_one_line_with_file_and_line(sites, tmp_path, capsys):
    from carscope.commands.cli import main

    shipped = (REPO / "carscope" / "crawler" / "sites" / "showroom-dl.toml").read_text()
    bad = tmp_path / "bad.toml"
    bad.write_text(shipped.replace('form = "table"', 'form = "tabel"'))
    line = next(i for i, t in enumerate(bad.read_text().splitlines(), 1) if "tabel" in t)
    code = main(["crawl", "--check", sites["dl"].base_url + "/vehicles", "--site", str(bad)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(f"carscope crawl: error: {bad}:{line}: pages.vehicle.specs.pairs.form"), err
    assert len(err.splitlines()) == 1


def _check(base: str, path: str, site: str, *extra: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "carscope", "crawl", "--check", base + path, "--site", site,
                           "--json", *extra], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.browser
@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_reports_page_type_links_specs_model_year_and_photos(sites, layout, tmp_path):
    site = sites[layout]
    truth = site.truth
    my = truth["model_years"][0]
    base = site.base_url
    listing = _check(base, "/", SITE[layout])  # the root: dl's redirects to its listing
    assert listing["links"] and all(lk["page_type"] for lk in listing["links"])
    if layout == "dl":
        assert listing["final_url"] == base + "/vehicles" and listing["page_type"] == "listing"
    if layout == "classic":  # an adapter that asks to follow the trap and another site: both dropped, with why
        shipped = (REPO / "carscope" / "crawler" / "sites" / "showroom.toml").read_text()
        adapter = REPO / "carscope" / "crawler" / "sites" / "showroom.toml"
        greedy = shipped.replace('hook = "showroom_hook.py"', f'hook = "{(adapter.parent / "showroom_hook.py").as_posix()}"')
        greedy = greedy.replace('links = ["a.specs-link", "a.photos-link"]',
                                'links = ["a.specs-link", "a.photos-link", "a.compare", "footer a"]')
        greedy += "\n[pages.compare]\nmatch = '^/compare'\n"
        path = Path(tmp_path) / "greedy.toml"
        path.write_text(greedy)
        page = _check(base, my["overview_url"], str(path))
        reasons = {d["url"].removeprefix(base): d["reason"] for d in page["dropped_links"]}
        assert reasons.pop("/sitemap.xml") == "no_page_type"
        assert set(reasons.values()) == {"robots_disallowed"} and all(u.startswith("/compare") for u in reasons)
        assert [lk["page_type"] for lk in page["links"]] == ["specifications", "photos"]
    specs = _check(base, my["pages"]["specs"], SITE[layout])
    assert specs["model_year"]["model_id"] == my["model_id"]
    assert specs["specs"]["raw"] and specs["specs"]["named"]
    assert specs["specs"]["cleaned"].get("seats") == my["values"]["seats"]  # absent when the page has none
    photos = _check(base, my["pages"]["photos"], SITE[layout], "--browser", BROWSER[layout])
    want = {p["url"]: expected_view(truth, p) for p in truth["photos"] if p["model_id"] == my["model_id"]}
    got = {p["url"].removeprefix(base): p["view_hint"] for p in photos["photos"]}
    assert {u: v for u, v in got.items() if u in want} == want  # every photo of the model-year, its view right
    assert photos["problems"] == []


@pytest.mark.browser
def test_check_as_text_for_a_person(sites):
    site = sites["dl"]
    path = site.truth["model_years"][0]["pages"]["specs"]
    proc = subprocess.run([sys.executable, "-m", "carscope", "crawl", "--check", site.base_url + path, "--site",
                           "showroom-dl"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for part in ("page type    vehicle", "model-year   " + site.truth["model_years"][0]["model_id"], "specs:",
                 "cleaned", "price_currency", "EUR", "photos (", "clicks"):
        assert part in out, (part, out)


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("layout", ["dl", "spa"])
def test_kill_and_resume_is_exact_on_the_new_layouts(crawls, sites, layout, tmp_path):
    """SIGKILL mid-crawl, then --resume: the same dataset as the uninterrupted crawl, and no page redone
    beyond the few that were in flight at the kill."""
    site = sites[layout]
    root = tmp_path / "ds"
    site.reset_stats()
    cmd = [sys.executable, "-m", "carscope", "crawl", "--start-url", site.base_url + "/", "--out", str(root),
           "--site", SITE[layout], "--browser", BROWSER[layout], "--quiet", "--delay", "0.03", "--concurrency", "4",
           "--per-host", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while frontier_done(root) < 12:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() - t0 < 60, "no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (root / "stats.json").exists(), "the crawl finished before the kill"
    stats = crawl(config(site.base_url, root, site=SITE[layout], browser=BROWSER[layout], resume=True,
                         per_host=PER_HOST))
    assert stats["status"] == "complete"
    got, want = load(root), load(crawls[layout][0])
    assert sorted(got.images["sha256"]) == sorted(want.images["sha256"])
    assert specs_by_model(got) == specs_by_model(want)
    assert comparable_specs(got).equals(comparable_specs(want))
    by_path = site.stats()["by_path"]
    vehicle_pages = {p: n for p, n in by_path.items() if p.startswith(("/vehicle/", "/v/")) and "/more" not in p}
    assert len(vehicle_pages) == len(site.truth["model_years"])
    assert sum(vehicle_pages.values()) <= len(vehicle_pages) + 4, vehicle_pages  # at most the in-flight ones twice


@pytest.mark.browser
def test_json_the_page_fetched_can_be_read_from_the_browser(sites, tmp_path):
    """capture_json: the spa's media API answer, as the page's own script fetched it, is the photo source; the
    crawler does not fetch it a second time."""
    shipped = (REPO / "carscope" / "crawler" / "sites" / "showroom-spa.toml").read_text()
    captured = shipped.replace("[pages.vehicle]\nmatch = '^/v/[0-9a-f-]+$'",
                               "[pages.vehicle]\nmatch = '^/v/[0-9a-f-]+$'\nbrowser = true\ncapture_json = true\n"
                               "wait_for = '#root.ready'")
    captured = captured.replace("url = { json = \"mediaApi\", from = \"config\" }    # fetched politely as JSON",
                                "captured = '/api/v2/media/'")
    assert captured.count("capture_json") == 1 and "captured = " in captured
    adapter = tmp_path / "spa-captured.toml"
    adapter.write_text(captured)
    site = sites["spa"]
    site.reset_stats()
    stats = crawl(config(site.base_url, tmp_path / "ds", site=str(adapter), browser="auto", per_host=PER_HOST))
    assert stats["status"] == "complete" and stats["page_problems"] == {}
    ds = load(tmp_path / "ds")
    assert set(ds.images["sha256"]) == set(good_photos(site.truth))
    media = {p: n for p, n in site.stats()["by_path"].items() if p.startswith("/api/v2/media/")}
    assert len(media) == len(site.truth["model_years"]) and set(media.values()) == {1}


def test_a_wrong_json_path_is_a_failure_row_with_its_reason_not_a_traceback(sites, tmp_path):
    shipped = (REPO / "carscope" / "crawler" / "sites" / "showroom-spa.toml").read_text()
    broken = shipped.replace('items = "props.pageProps.vehicle.specs"', 'items = "props.pageProps.car.specs"')
    broken = broken.replace('year = { json = "props.pageProps.vehicle.year", from = "next" }',
                            'year = { json = "props.pageProps.vehicle.modelYear", from = "next" }')
    adapter = tmp_path / "spa-broken.toml"
    adapter.write_text(broken)
    site = sites["spa"]
    stats = crawl(config(site.base_url, tmp_path / "ds", site=str(adapter), per_host=PER_HOST))
    n = len(site.truth["model_years"])
    assert stats["status"] == "complete" and stats["specs"] == 0
    # the spec list's path is a problem of each page; the year field's is not (fields may be absent), but the
    # pages it leaves without a model-year are
    assert stats["no_model_year"]["pages"] == n and stats["page_problems"]["json_path_missing"] == n
    fails = load(tmp_path / "ds").failures
    vehicle_rows = fails[fails["url"].str.contains("/v/")]
    assert len(vehicle_rows) == n
    for reason in vehicle_rows["reason"]:
        assert reason.startswith("no_model_year; ") and "json_path_missing: props.pageProps.car.specs" in reason
    assert stats["images"]["stored"] > 0  # the photos are kept, counted as having no model-year
