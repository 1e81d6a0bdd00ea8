"""CI never skips a browser test silently: under CARSCOPE_REQUIRE_BROWSER=1 (set by .ci/run) a missing Chromium
fails; elsewhere it skips, and pytest's -ra summary says so at the end."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REQUIRE_BROWSER, no_browser

ROOT = Path(__file__).resolve().parents[1]


def test_a_missing_browser_fails_where_one_is_required(monkeypatch):
    monkeypatch.setenv(REQUIRE_BROWSER, "1")
    with pytest.raises(pytest.fail.Exception, match="CARSCOPE_REQUIRE_BROWSER=1 but no Chromium"):
        no_browser("no Chromium here")
    monkeypatch.delenv(REQUIRE_BROWSER)
    with pytest.raises(pytest.skip.Exception):
        no_browser("no Chromium here")


def test_ci_requires_the_browser():
    assert f"export {REQUIRE_BROWSER}=1" in (ROOT / ".ci" / "run").read_text()
    assert "--with-deps" in (ROOT / "Makefile").read_text()
