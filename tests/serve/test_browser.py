"""A real Chromium (Playwright) uses the upload page served by waitress on loopback; saves a screenshot (docs/screenshot.png with CARSCOPE_UPDATE_SCREENSHOT=1)."""

from __future__ import annotations

import base64
import os
import shutil
from pathlib import Path

import pytest

from carscope.serve.server import serve_in_thread
from tests.serve.http import Client
from tests.serve.tinybundle import LABELS, make_tiny_bundle

pytestmark = pytest.mark.browser
REPO = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    for path in ("/usr/bin/chromium", shutil.which("chromium") or "", shutil.which("chromium-browser") or ""):
        if path and os.path.exists(path):
            return path
    return None  # Playwright's own browser, if installed


@pytest.fixture(scope="module")
def showroom_bundle(tmp_path_factory):
    """The tiny bundle, with showroom photos as its example thumbnails; plus one showroom photo to upload."""
    from carscope.showroom.testing import iter_photos, tiny_config

    by_model: dict[str, dict[str, list[bytes]]] = {}
    for info, jpeg in iter_photos(tiny_config()):
        by_model.setdefault(info["model_id"], {}).setdefault(info["view"], []).append(jpeg)
    models = list(by_model)
    upload = by_model[models[0]]["exterior"][0]
    thumbs = {label: {"exterior": by_model[m]["exterior"][:3], "interior": by_model[m].get("interior", [])[:1]}
              for label, m in zip(LABELS, models, strict=False)}
    root = make_tiny_bundle(tmp_path_factory.mktemp("browser") / "bundle", thumb_photos=thumbs)
    path = root.parent / "showroom-photo.jpg"
    path.write_bytes(upload)
    return root, path


def test_upload_a_showroom_photo_in_chromium(showroom_bundle, tmp_path):
    from playwright import sync_api

    from tests.conftest import no_browser
    bundle, photo_path = showroom_bundle
    # min_confidence 0: the tiny model's guess for a showroom photo is arbitrary but must be shown as an answer.
    with serve_in_thread(bundle, {"providers": "cpu", "min_confidence": 0.0}, threads=4) as server:
        client = Client(server.url)
        status, expected = client.predict(photo_path.read_bytes())
        client.close()
        assert status == 200
        with sync_api.sync_playwright() as p:
            try:
                browser = p.chromium.launch(executable_path=_chromium(), args=CHROMIUM_ARGS)
            except Exception as exc:  # no Chromium at all on this machine
                no_browser(f"no Chromium to drive ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})")
            try:
                page = browser.new_page(viewport={"width": 1200, "height": 900})
                problems: list[str] = []
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                page.on("pageerror", lambda e: problems.append(str(e)))
                page.on("requestfailed", lambda r: problems.append(f"failed: {r.url}"))

                page.goto(server.url + "/")
                # Drag-and-drop: drop a file on the zone; the script puts it into the form's file input.
                dropped = page.evaluate("""async (b64) => {
                    const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
                    const dt = new DataTransfer();
                    dt.items.add(new File([bytes], "dropped.jpg", {type: "image/jpeg"}));
                    const zone = document.querySelector("[data-dropzone]");
                    zone.dispatchEvent(new DragEvent("dragover", {dataTransfer: dt, bubbles: true, cancelable: true}));
                    const highlighted = zone.classList.contains("dragover");
                    zone.dispatchEvent(new DragEvent("drop", {dataTransfer: dt, bubbles: true, cancelable: true}));
                    const input = document.querySelector("#image");
                    return [highlighted, input.files.length, input.files[0].name];
                }""", base64.b64encode(photo_path.read_bytes()).decode())
                assert dropped == [True, 1, "dropped.jpg"]
                assert "dropped.jpg" in page.inner_text("[data-preview-caption]")
                page.get_by_label("Choose a photo of a car").set_input_files(str(photo_path))
                page.wait_for_selector("[data-preview]:not([hidden])")  # the JS preview ran
                assert page.locator("[data-preview-img]").evaluate("img => img.src.startsWith('blob:')")
                page.get_by_role("button", name="Identify the car").click()
                page.wait_for_selector("[data-best]")

                name = expected["model"]["prediction"]["name"]
                assert page.inner_text("[data-best]").strip() == name  # the model-year
                specs = page.locator("table.specs")
                assert specs.is_visible() and page.locator("table.specs tr").count() >= 5
                assert "Engine" in specs.inner_text() and expected["specs"]["make"] in specs.inner_text()
                assert page.locator("ol.top li").count() == 5
                assert page.locator("img.photo").evaluate("img => img.complete && img.naturalWidth > 0")
                loaded = page.eval_on_selector_all("ul.thumbs img", "imgs => imgs.map(i => i.complete && i.naturalWidth > 0)")
                assert loaded and all(loaded)
                assert not problems, problems  # CSP violations and broken assets show up here

                # the README's picture is refreshed on request, so a test run leaves the work tree clean
                out = REPO / "docs" / "screenshot.png" if os.environ.get("CARSCOPE_UPDATE_SCREENSHOT") else tmp_path / "shot.png"
                out.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(out), full_page=True)
                assert out.stat().st_size > 10_000
            finally:
                browser.close()
