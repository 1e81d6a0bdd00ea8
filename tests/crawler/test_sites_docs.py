"""carscope/crawler/sites/README.md is the adapter authors' reference: it must name every field the language accepts,
and its cookbook must be the shipped adapters, as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from carscope.crawler import adapter as ad
from carscope.crawler.adapter import load_adapter, shipped_adapters
from carscope.crawler.extract.actions import ACTION_KEYS
from carscope.crawler.extract.fields import FIELD_KEYS
from carscope.crawler.extract.pairs import FORMS

SITES = Path(ad.__file__).resolve().parent / "sites"
README = (SITES / "README.md").read_text()


@pytest.mark.parametrize("name", shipped_adapters())
def test_the_cookbook_holds_each_shipped_adapter_verbatim(name):
    text = (SITES / f"{name}.toml").read_text().rstrip("\n")
    assert text in README, f"carscope/crawler/sites/README.md's cookbook is out of date for {name}.toml"
    load_adapter(name)  # and it loads


def test_the_reference_names_every_field_of_the_language():
    keys = set(ad.PAGE_KEYS) | set(ad.PHOTO_KEYS) | set(FIELD_KEYS) | set(ACTION_KEYS) | set(ad.LEGACY_SPEC_KEYS)
    keys |= {k for form in FORMS.values() for k in form.keys} | set(FORMS)
    keys |= {"script", "var", "url", "captured", "optional", "structured", "inherit", "title", "name", "hook", "allowed_hosts", "drop_params", "rewrite_links"}
    keys |= {"times", "max", "timeout_ms"} | set(ad.HOOKS)
    missing = sorted(k for k in keys if f"`{k}" not in README)
    assert missing == [], f"not documented in carscope/crawler/sites/README.md: {missing}"


def test_the_worked_hook_example_runs(tmp_path):
    import asyncio
    import re

    from carscope.crawler.parse import extract_page

    code = re.search(r"```python\n(# mysite_hook.py.*?)```", README, re.S).group(1)
    (tmp_path / "mysite_hook.py").write_text(code)
    (tmp_path / "mysite.toml").write_text("[site]\nhook = 'mysite_hook.py'\n[pages.car]\nmatch = '^/(?P<make>\\w+)/"
                                          "(?P<model>\\w+)/(?P<year>\\d{4})$'\n[pages.car.specs]\nmsrp = 'p.price'\n"
                                          "[pages.car.photos]\nimage = 'a.photo'\nattrs = ['href']\n")
    a = load_adapter(str(tmp_path / "mysite.toml"))
    html = """<p class=price>$30,000</p>
      <section class=spec-group><h3>Front</h3><ul><li><span class=label>Brakes</span>: <b>Disc</b></li></ul></section>
      <section class=spec-group><h3>Rear</h3><ul><li><span class=label>Brakes</span>: <b>Drum</b></li></ul></section>
      <a class=photo href=/1.jpg></a><a class=photo href=/press.zip></a>"""
    pt, groups = a.classify("/acme/roadster/2023")
    _, got = asyncio.run(extract_page(a, pt, groups, "http://h/acme/roadster/2023", html))
    assert got.specs.rows == [("Front Brakes", "Disc"), ("Rear Brakes", "Drum")]
    assert [p.url for p in got.photos] == ["http://h/1.jpg"]
