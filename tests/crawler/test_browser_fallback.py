"""--browser auto without a usable Chromium falls back to the adapter's hook; --browser always says why it can't."""

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler import crawl
from carscope.crawler.dataset import load
from tests.crawler.helpers import config, good_photos


@pytest.mark.parametrize("chromium", ["/nonexistent/chromium", "/bin/false"])
def test_auto_falls_back_to_the_hook(showroom_site, tmp_path, chromium):
    stats = crawl(config(showroom_site.base_url, tmp_path / "ds", browser="auto", chromium_path=chromium))
    assert stats["status"] == "complete"
    assert set(load(tmp_path / "ds").images["sha256"]) == set(good_photos(showroom_site.truth))
    assert any("hook" in note for note in stats["notes"])


@pytest.mark.parametrize("chromium, message", [("/nonexistent/chromium", "no Chromium found"),
                                               ("/bin/false", "cannot start Chromium")])
def test_always_without_chromium_is_a_one_line_error(showroom_site, tmp_path, chromium, message):
    with pytest.raises(CarscopeError, match=message) as exc:
        crawl(config(showroom_site.base_url, tmp_path / "ds", browser="always", chromium_path=chromium))
    assert "\n" not in str(exc.value)
