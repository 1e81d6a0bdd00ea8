"""`carscope crawl`: crawl a catalog site into a dataset directory."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("crawl", help="crawl a catalog site into a dataset", description=__doc__)
    p.add_argument("--start-url", required=True)
    p.add_argument("--out", required=True)


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("the crawler is not built yet")
