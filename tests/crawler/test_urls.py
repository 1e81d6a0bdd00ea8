import pytest

from carscope.crawler.urls import canonicalize, host_of, largest_from_srcset, path_and_query


@pytest.mark.parametrize("raw, want", [
    ("HTTP://Example.COM:80/A/b/../c?b=2&utm_source=x&a=1#top", "http://example.com/A/c?a=1&b=2"),
    ("https://example.com:443", "https://example.com/"),
    ("http://example.com:8080/x?gclid=1&fbclid=2", "http://example.com:8080/x"),
    ("http://example.com/Path/Keeps/Case/", "http://example.com/Path/Keeps/Case/"),
    ("http://example.com/a b", "http://example.com/a%20b"),
    ("http://example.com/x?q=", "http://example.com/x?q="),
])
def test_canonical_form(raw, want):
    assert canonicalize(raw) == want


def test_relative_links_resolve_against_the_page():
    assert canonicalize("../photos#g", "http://h/acme/x/2023/overview") == "http://h/acme/x/photos"
    assert canonicalize("/make/acme?page=2", "http://h/") == "http://h/make/acme?page=2"


@pytest.mark.parametrize("raw", ["mailto:a@b.c", "javascript:void(0)", "ftp://h/x", "", "http://", "http://h:99999/"])
def test_only_http_urls_are_crawlable(raw):
    assert canonicalize(raw) is None


def test_same_resource_same_spelling():
    a = canonicalize("http://H/x?b=1&a=2#frag")
    b = canonicalize("http://h:80/x?a=2&b=1&utm_medium=mail")
    assert a == b


def test_host_and_path_helpers():
    assert host_of("http://A.example:8080/x") == "a.example:8080"
    assert path_and_query("http://h/a/b?x=1") == "/a/b?x=1"


def test_srcset_picks_the_widest():
    assert largest_from_srcset("/p/1-320.jpg 320w, /p/1-640.jpg 640w") == "/p/1-640.jpg"
    assert largest_from_srcset("/p/a.jpg 2x, /p/b.jpg 1x") == "/p/a.jpg"
    assert largest_from_srcset("/p/only.jpg") == "/p/only.jpg"
    assert largest_from_srcset("") is None
