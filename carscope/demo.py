"""`carscope demo`: showroom -> crawl -> train -> export -> serve, on the CPU."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on the embedded showroom", description=__doc__)
    p.add_argument("--workdir", default="demo-work")


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("the demo is not built yet")
