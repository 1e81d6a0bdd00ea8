"""crawler/sites/README.md is the adapter authors' reference: it must name every field the language accepts,
and its cookbook must be the shipped adapters, as they are."""

from __future__ import annotations

from pathlib import Path

import pytest

from crawler import adapter as ad
from crawler.adapter import load_adapter, shipped_adapters
from crawler.extract.actions import ACTION_KEYS
from crawler.extract.fields import FIELD_KEYS
from crawler.extract.pairs import FORMS

SITES = Path(ad.__file__).resolve().parent / "sites"
README = (SITES / "README.md").read_text()


@pytest.mark.parametrize("name", shipped_adapters())
def test_the_cookbook_holds_each_shipped_adapter_verbatim(name):
    text = (SITES / f"{name}.toml").read_text().rstrip("\n")
    assert text in README, f"crawler/sites/README.md's cookbook is out of date for {name}.toml"
    load_adapter(name)  # and it loads


def test_the_reference_names_every_field_of_the_language():
    keys = set(ad.PAGE_KEYS) | set(ad.PHOTO_KEYS) | set(FIELD_KEYS) | set(ACTION_KEYS) | set(ad.LEGACY_SPEC_KEYS)
    keys |= {k for form in FORMS.values() for k in form.keys} | set(FORMS)
    keys |= {"script", "var", "url", "captured", "optional", "structured", "inherit", "title", "name", "hook", "allowed_hosts"}
    keys |= {"times", "max", "timeout_ms"} | set(ad.HOOKS)
    missing = sorted(k for k in keys if f"`{k}" not in README)
    assert missing == [], f"not documented in crawler/sites/README.md: {missing}"
