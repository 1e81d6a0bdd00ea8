"""Shared fixtures. `showroom_site`: one tiny showroom on loopback for the whole session.

    def test_something(showroom_site):
        html = urllib.request.urlopen(showroom_site.base_url + "/").read()
        assert showroom_site.truth["model_years"]

The site has 2 makes x 2 models x 2 years, 4 exterior + 1 interior photo and 2 non-car images (logos, maps, ...)
per model-year, seed 0, no faults
(other than the default `dup` copies under /cdn/). Tests that count requests call `showroom_site.reset_stats()`
first; tests that need faults or another size start their own with `showroom.testing.serve_in_thread`.
"""

from __future__ import annotations

import os

import pytest

REQUIRE_BROWSER = "CARSCOPE_REQUIRE_BROWSER"  # 1 in CI (.ci/run): a missing or unlaunchable Chromium fails the run


def no_browser(reason: str):
    """Skip a browser test locally (pytest's -ra summary says so at the end); fail it where a browser is required."""
    if os.environ.get(REQUIRE_BROWSER) == "1":
        pytest.fail(f"{REQUIRE_BROWSER}=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def showroom_site():
    from carscope.showroom.testing import ShowroomServer, ShowroomSite, fetch_truth, tiny_config

    config = tiny_config()
    with ShowroomServer(config) as server:
        yield ShowroomSite(base_url=server.base_url, config=config, truth=fetch_truth(server.base_url),
                           server=server)
