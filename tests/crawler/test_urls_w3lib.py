"""canonicalize() against w3lib.url: the same canonical query and path on realistic links, our spelling kept where
w3lib's would change the frontier's keys, and w3lib's byte-preserving query where the standard library loses
bytes."""

import random
from urllib.parse import urlsplit

import pytest
from w3lib.url import canonicalize_url

from carscope.crawler.urls import canonicalize


def realistic_links(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """(href, page URL) pairs as catalog pages give them: relative and absolute, queries, fragments, tracking."""
    rng = random.Random(seed)
    hosts = ["http://127.0.0.1:8700", "https://www.example-cars.com", "https://WWW.Example-Cars.com:443",
             "http://cars.example.org:80"]
    hrefs = ["/{m}/model-{i}/{y}/photos/{i}.jpg", "/{m}/model-{i}/{y}/specifications", "../{y}/gallery#photo-{i}",
             "/make/{m}?page={i}&sort=price", "/search?q=hybrid+awd&year={y}&utm_source=news&utm_medium=mail",
             "/search?q=crew%20cab&q=%C3%A9&year={y}", "/img/{i}_1280x960.jpg?v=2&gclid=abc{i}", "./overview/#top",
             "{h}/{m}/model-{i}/{y}/./overview/", "{h}/{m}/model {i}/{y}?b=&a=1"]
    out = []
    for _ in range(n):
        h, m, y, i = rng.choice(hosts), rng.choice(["acme", "nordwagen", "Zenith"]), rng.randint(2015, 2025), \
            rng.randint(1, 99)
        out.append((rng.choice(hrefs).format(h=h, m=m, y=y, i=i), f"{h}/{m}/model-{i}/{y}/overview"))
    return out


def test_canonical_form_is_stable():
    for href, base in realistic_links(2000):
        once = canonicalize(href, base)
        assert once is not None and canonicalize(once) == once, (href, base)


def test_realistic_links_are_already_w3lib_canonical():
    """w3lib would change nothing in what we produce: same sorting, encoding and dot-segment resolution."""
    for href, base in realistic_links(2000, seed=1):
        ours = canonicalize(href, base)
        assert canonicalize_url(ours) == ours, (href, base)


def test_query_encoding_matches_w3lib():
    rng = random.Random(3)
    alphabet = "abcXYZ019-._~!$'()*+,;:@/?=& %20%2F%C3%A9é中"
    for _ in range(3000):
        query = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 20)))
        url = f"http://h/x?{query}"
        assert urlsplit(canonicalize(url)).query == urlsplit(canonicalize_url(url)).query, query


@pytest.mark.parametrize("raw, want", [
    ("http://h/search?q=caf%E9&b=1", "http://h/search?b=1&q=caf%E9"),  # Latin-1 form: bytes kept, not U+FFFD
    ("http://h/search?q=caf%e9&utm_source=x&UTM_Medium=%FF", "http://h/search?q=caf%E9"),  # tracking still dropped
    ("http://h/search?q=%E9+x&a=%C3%A9&gclid=%FF", "http://h/search?a=%C3%A9&q=%E9+x"),
])
def test_query_escapes_that_are_not_utf8_keep_their_bytes(raw, want):
    assert canonicalize(raw) == want
    assert canonicalize(want) == want


@pytest.mark.parametrize("raw, ours", [  # where w3lib spells it differently (its spelling in the comment)
    ("http://example.com:80/x", "http://example.com/x"),  # w3lib keeps :80
    ("https://example.com:443/x", "https://example.com/x"),  # w3lib keeps :443
    ("http://h./x", "http://h/x"),  # w3lib keeps the trailing dot
    ("http://user:pw@h/x", "http://h/x"),  # w3lib keeps userinfo
    ("http://h/x?UTM_Source=1&Gclid=2&a=1", "http://h/x?a=1"),  # url_query_cleaner matches names exactly
    ("http://h/a%7eb/%2f", "http://h/a%7eb/%2f"),  # w3lib: /a~b/%2F (escapes rewritten)
    ("http://h/a|b", "http://h/a%7Cb"),  # w3lib leaves | unescaped
    ("http://h/a/b/..", "http://h/a"),  # w3lib: /a/
])
def test_kept_hand_written_where_w3lib_differs(raw, ours):
    assert canonicalize(raw) == ours
