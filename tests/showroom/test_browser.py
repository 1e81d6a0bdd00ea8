"""The JS pages in a real Chromium: the classic gallery (built by script, lazy-loaded), dl's More button, spa."""

import os
import shutil

import pytest

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def page():
    from playwright import sync_api as playwright

    from tests.conftest import no_browser
    exe = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    with playwright.sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS) if exe else \
                p.chromium.launch(args=CHROMIUM_ARGS)
        except Exception as exc:  # no browser on this machine
            no_browser(f"no Chromium: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        pg = browser.new_page(viewport={"width": 800, "height": 600})
        yield pg
        browser.close()


def test_gallery_is_built_by_script_and_lazy_loaded(showroom_site, page):
    truth = showroom_site.truth
    for layout in ("tabs", "mixed"):
        my = next(m for m in truth["model_years"] if m["layout"] == layout)
        page.goto(showroom_site.base_url + my["photos_url"])
        page.wait_for_selector("#gallery.ready", timeout=15000)
        want = [p for p in truth["photos"] if p["model_id"] == my["model_id"]]
        srcs = page.eval_on_selector_all("img.photo", "els => els.map(e => e.getAttribute('data-src'))")
        n_entries = len(want) + sum(bool(p["dup_urls"]) for p in want)
        assert len(srcs) == n_entries
        assert {s for s in srcs if s.startswith("/photos/")} == {p["url"] for p in want}
        if layout == "tabs":
            assert page.locator("div.gallery.tabbed button.tab[data-view=interior]").count() == 1
            views = page.eval_on_selector_all("img.photo", "els => els.map(e => e.dataset.view)")
            assert set(views) == {"exterior", "interior"}
            page.click("button.tab[data-view=interior]")
            assert page.locator("div.panel[data-view=interior]").is_visible()
        else:
            assert page.locator("div.gallery.mixed").count() == 1
            assert page.locator("img.photo[data-view]").count() == 0
        # scroll to the end: every visible image gets its real src and srcset from the data attributes
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        page.wait_for_function(
            "() => [...document.querySelectorAll('img.photo')].filter(e => e.offsetParent)"
            ".every(e => e.complete && e.naturalWidth > 1)", timeout=15000)
        loaded = page.eval_on_selector_all(
            "img.photo", "els => els.filter(e => e.offsetParent).map(e => [e.currentSrc, e.getAttribute('srcset')])")
        assert loaded and all("-320.jpg" in s or "-640.jpg" in s for s, _ in loaded)
        assert all(ss and "320w" in ss and "640w" in ss for _, ss in loaded)


def test_dl_more_photos_button_loads_every_photo(page):
    from carscope.showroom.testing import fetch_truth, serve_in_thread, tiny_config

    with serve_in_thread(tiny_config(layout="dl", makes=1, models_per_make=1, years=(2023, 2023), photos=12)) as base:
        truth = fetch_truth(base, sha256=False)
        my = truth["model_years"][0]
        page.goto(base + "/")  # redirects to the listing
        assert page.url == base + "/vehicles"
        page.click("a.result-link")
        assert page.url == base + my["pages"]["photos"]
        assert page.locator("figure.shot").count() == 8
        clicks = 0
        while page.locator("button.more-photos").count():
            page.click("button.more-photos")
            clicks += 1
            page.wait_for_function("() => { const b = document.querySelector('button.more-photos');"
                                   " return !b || !b.disabled; }", timeout=15000)
        page.wait_for_selector("div.shots.complete", timeout=15000)
        srcs = page.eval_on_selector_all("figure.shot img", "els => els.map(e => e.getAttribute('src'))")
        want = [p for p in truth["photos"] if p["model_id"] == my["model_id"]]
        expected = [p["thumb_url"] for p in want] + [p["dup_urls"][1] for p in want if p["dup_urls"]]
        assert clicks >= 1 and sorted(srcs) == sorted(expected)


def test_spa_renders_links_specs_and_gallery(page):
    from carscope.showroom.testing import fetch_truth, serve_in_thread, tiny_config

    with serve_in_thread(tiny_config(layout="spa", makes=1, models_per_make=1, years=(2023, 2023), photos=3)) as base:
        truth = fetch_truth(base, sha256=False)
        my = truth["model_years"][0]
        page.goto(base + "/")
        page.wait_for_selector("#root.ready", timeout=15000)
        page.click("a.make")
        page.wait_for_selector("#root.ready", timeout=15000)
        page.click("a.year")
        page.wait_for_selector("#root.ready", timeout=15000)
        assert page.url == base + my["pages"]["specs"]
        rows = page.eval_on_selector_all("table.specs tr", "els => els.map(e => [...e.children].map(c => c.textContent))")
        assert rows == my["layout_specs"]
        srcs = page.eval_on_selector_all("img.photo", "els => els.map(e => e.getAttribute('src'))")
        want = [u for p in truth["photos"] if p["model_id"] == my["model_id"] for u in p["urls"]]
        assert sorted(srcs) == sorted(want)
        assert page.locator("a.compare").get_attribute("href").startswith("/compare?")
