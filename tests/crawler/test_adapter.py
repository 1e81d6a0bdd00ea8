import re
import textwrap

import pytest

from carscope.common.errors import CarscopeError
from carscope.crawler.adapter import load_adapter, shipped_adapters


def write(tmp_path, text, name="site.toml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_the_showroom_adapter_ships_as_package_data():
    assert "showroom" in shipped_adapters()
    a = load_adapter("showroom")
    assert list(a.page_types) == ["home", "make", "overview", "specifications", "photos"]
    assert a.page_types["photos"].browser and not a.page_types["specifications"].browser
    assert a.hook_fn("photos_without_browser") is not None
    assert a.classify("/compare?ids=1,2") is None  # the trap is no page type: never queued


def test_toml_syntax_error_names_file_and_line(tmp_path):
    p = write(tmp_path, """
        [site]
        name = "x"

        [pages.home]
        match = '^/$
        """)
    with pytest.raises(CarscopeError) as exc:
        load_adapter(str(p))
    assert re.match(rf"{re.escape(str(p))}:6: TOML syntax error", str(exc.value)), str(exc.value)


@pytest.mark.parametrize("body, line, field", [
    ("[pages.home]\nmatch = '^/$'\nbrowser = \"yes\"\n", 3, "pages.home.browser"),
    ("[pages.home]\nmatch = '^/$'\nlinks = [\"a[\"]\n", 3, "pages.home.links"),
    ("[pages.home]\nmatch = '(unclosed'\n", 2, "pages.home.match"),
    ("[pages.home]\nlinks = []\n", 1, "pages.home"),
    ("[pages.home]\nmatch = '^/$'\nlinkz = []\n", 3, "pages.home.linkz"),
    ("[site]\nhook = 'nope.py'\n[pages.home]\nmatch = '^/$'\n", 2, "site.hook"),
    ("[pages.p]\nmatch = '^/$'\n[pages.p.photos]\nattrs = ['src']\n", 3, "pages.p.photos"),
])
def test_config_errors_name_file_line_and_field(tmp_path, body, line, field):
    p = write(tmp_path, body)
    with pytest.raises(CarscopeError) as exc:
        load_adapter(str(p))
    msg = str(exc.value)
    assert msg.startswith(f"{p}:{line}: {field}"), msg
    assert "\n" not in msg


def test_missing_adapter_lists_the_shipped_ones(tmp_path):
    with pytest.raises(CarscopeError, match="shipped adapters: showroom"):
        load_adapter(str(tmp_path / "nope.toml"))


def test_a_hook_file_next_to_the_adapter_is_loaded(tmp_path):
    (tmp_path / "h.py").write_text("async def photos_without_browser(ctx, page):\n    return []\n")
    p = write(tmp_path, "[site]\nhook = 'h.py'\n[pages.home]\nmatch = '^/$'\n")
    assert load_adapter(str(p)).hook_fn("photos_without_browser") is not None
