"""Which photo a page gives and at what size: `<picture>` ranking, sizes as displayed and as downloaded, the
thumbnail warning (crawl summary and `--check`), and a hook's error named by function, file and line."""

from __future__ import annotations

import io
import json
import textwrap

from aiohttp import web
from PIL import Image

from carscope.crawler import crawl
from carscope.crawler.cli import summary
from carscope.crawler.dataset import load
from tests.crawler.helpers import app_in_thread, config

ADAPTER = """
[site]
name = "sizes"

[pages.car]
match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'
links = ["a.thumbs"]

[pages.car.photos]
image = "picture img, img.turned"

[pages.thumbs]
match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})/thumbs$'

[pages.thumbs.photos]
image = "img"
"""

CAR = """<a class="thumbs" href="/acme/roadster/2023/thumbs">thumbnails</a>
  <picture>
    <source type="image/webp" srcset="/photo/front.webp?w=400 400w, /photo/front.webp?w=800 800w">
    <img src="/photo/front.jpg" alt="front">
  </picture>
  <img class="turned" src="/photo/turned.jpg">"""
THUMBS = '<img src="/photo/t1.jpg"><img src="/photo/t2.jpg">'


def _jpeg(size, color, orientation: int | None = None) -> bytes:
    im = Image.new("RGB", size, color)
    buf = io.BytesIO()
    if orientation is None:
        im.save(buf, "JPEG")
    else:
        exif = im.getexif()
        exif[0x0112] = orientation
        im.save(buf, "JPEG", exif=exif)
    return buf.getvalue()


def _webp(size, color) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, "WEBP")
    return buf.getvalue()


PHOTOS = {
    "/photo/front.jpg": (_jpeg((1600, 1200), (200, 20, 20)), "image/jpeg"),  # the full photo
    "/photo/turned.jpg": (_jpeg((800, 600), (20, 200, 20), orientation=6), "image/jpeg"),  # shows 600x800
    "/photo/t1.jpg": (_jpeg((160, 120), (20, 20, 200)), "image/jpeg"),
    "/photo/t2.jpg": (_jpeg((160, 120), (200, 200, 20)), "image/jpeg"),
}


def _site() -> web.Application:
    async def handler(request):
        if request.path == "/acme/roadster/2023":
            return web.Response(text=CAR, content_type="text/html")
        if request.path == "/acme/roadster/2023/thumbs":
            return web.Response(text=THUMBS, content_type="text/html")
        if request.path == "/photo/front.webp":  # the smaller variants the <source> offers
            w = int(request.query.get("w", 400))
            return web.Response(body=_webp((w, w * 3 // 4), (200, 20, 20)), content_type="image/webp")
        if request.path in PHOTOS:
            body, ctype = PHOTOS[request.path]
            return web.Response(body=body, content_type=ctype)
        return web.Response(status=404)

    app = web.Application()
    app.router.add_get("/{tail:.*}", handler)
    return app


def _crawl(base, tmp_path, name, **kw):
    return crawl(config(base, tmp_path / name, site=str(tmp_path / "a.toml"), **kw)
                 .replace(start_url=base + "/acme/roadster/2023"))


def test_the_full_photo_its_displayed_size_and_the_thumbnail_warning(tmp_path):
    (tmp_path / "a.toml").write_text(ADAPTER)
    with app_in_thread(_site()) as base:
        stats = _crawl(base, tmp_path, "ds")
        kept = _crawl(base, tmp_path, "kept", keep_original=True)
    images = load(tmp_path / "ds").images.set_index("source_url")
    front = images.loc[base + "/photo/front.jpg"]  # the <img src>, not a ?w=400 or ?w=800 <source> variant
    assert (front["width"], front["height"]) == (1024, 768)  # the default: a JPEG of at most 1024 px
    assert (front["orig_width"], front["orig_height"], front["orig_format"]) == (1600, 1200, "JPEG")
    turned = images.loc[base + "/photo/turned.jpg"]
    assert (turned["width"], turned["height"], turned["orig_width"], turned["orig_height"]) == (600, 800, 600, 800)
    both = load(tmp_path / "kept").images.set_index("source_url")
    assert (both.loc[base + "/photo/turned.jpg", "width"], both.loc[base + "/photo/turned.jpg", "height"]) == (
        600, 800)  # --keep-original agrees: the size as displayed
    assert (both.loc[base + "/photo/front.jpg", "width"], both.loc[base + "/photo/front.jpg", "orig_width"]) == (
        1600, 1600)
    warning = ("every photo of page type thumbs is under 320 px (largest 160 px); is there a full-size URL? "
               "(see `rewrite` in the adapter reference)")
    assert stats["warnings"] == [warning] == kept["warnings"]  # the car page type's photos are no thumbnails
    assert f"\n  warning: {warning}" in summary(stats, "ds")


def _check(base: str, path: str, site, capsys, *extra: str) -> tuple[int, str, str]:
    from carscope.commands.cli import main

    code = main(["crawl", "--check", base + path, "--site", str(site), *extra])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_check_shows_stored_size_candidates_and_the_thumbnail_warning(tmp_path, capsys):
    (tmp_path / "a.toml").write_text(ADAPTER)
    with app_in_thread(_site()) as base:
        code, out, _ = _check(base, "/acme/roadster/2023", tmp_path / "a.toml", capsys)
        assert code == 0
        assert "stored 1024x768 JPEG" in out and "(original 1600x1200 JPEG)" in out
        assert "stored 600x800 JPEG" in out  # EXIF orientation applied
        assert "chosen from 3 candidates:" in out
        lines = [line.split() for line in out.splitlines()]
        assert ["*", "width", "unknown", "<img>", "src", f"{base}/photo/front.jpg"] in lines  # * marks the winner
        assert ["400w", "<source>", "srcset", f"{base}/photo/front.webp?w=400"] in lines
        code, out, _ = _check(base, "/acme/roadster/2023", tmp_path / "a.toml", capsys, "--keep-original", "--json")
        report = json.loads(out)
        front = report["photos"][0]
        assert front["stored"] == {"width": 1600, "height": 1200, "format": "JPEG", "bytes": len(PHOTOS[
            "/photo/front.jpg"][0])} and report["warnings"] == []
        assert [c["won"] for c in front["candidates"]] == [False, False, True]
        code, out, _ = _check(base, "/acme/roadster/2023/thumbs", tmp_path / "a.toml", capsys)
    assert code == 0 and "stored 160x120 JPEG" in out
    assert ("  warning: every photo of page type thumbs is under 320 px (largest 160 px); is there a full-size URL? "
            "(see `rewrite` in the adapter reference)") in out.splitlines()


HOOK = """
def helper(rows):
    return [(k, v) for k, v in rows] + [("Doors", rows[9][1])]


def specs(ctx, page, rows):
    return helper(rows)
"""

HOOK_ADAPTER = """
[site]
name = "hooked"
hook = "hook.py"

[pages.car]
match = '^/(?P<make>\\w+)/(?P<model>\\w+)/(?P<year>\\d{4})$'

[pages.car.specs]
row = "li"
key = "b"
value = "i"
"""


def test_a_hook_error_names_the_hook_its_file_and_line(tmp_path, capsys):
    (tmp_path / "hook.py").write_text(textwrap.dedent(HOOK))
    (tmp_path / "a.toml").write_text(HOOK_ADAPTER)
    line = next(i for i, t in enumerate(HOOK.splitlines(), 1) if "rows[9]" in t)
    hook_file = tmp_path / "hook.py"

    async def handler(request):
        return web.Response(text="<ul><li><b>Seats</b><i>5</i></li></ul>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/acme/roadster/2023", handler)
    with app_in_thread(app) as base:
        stats = crawl(config(base, tmp_path / "ds", site=str(tmp_path / "a.toml"))
                      .replace(start_url=base + "/acme/roadster/2023"))
        failures = load(tmp_path / "ds").failures
        assert failures["reason"].tolist() == [f"hook_error: specs() at hook.py:{line}: IndexError"]
        assert any(n.startswith(f"hook specs() at {hook_file}:{line} raised IndexError: list index out of range")
                   for n in stats["notes"]), stats["notes"]
        code, out, err = _check(base, "/acme/roadster/2023", tmp_path / "a.toml", capsys)
        assert code == 2 and out == ""
        assert err.strip() == (f"carscope crawl: error: hook specs() at {hook_file}:{line} raised IndexError: list "
                               f"index out of range (--traceback shows the traceback)")
        code, out, err = _check(base, "/acme/roadster/2023", tmp_path / "a.toml", capsys, "--traceback")
    assert code == 2 and err.startswith("Traceback (most recent call last):")
    assert f'File "{hook_file}", line {line}, in helper' in err and "in specs" in err
    assert err.strip().splitlines()[-1] == (f"carscope crawl: error: hook specs() at {hook_file}:{line} raised "
                                            f"IndexError: list index out of range")
