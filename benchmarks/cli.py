"""`carscope bench`: benchmarks of every stage."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks", description=__doc__)
    p.add_argument("which", choices=["crawl", "train", "latency", "serve", "accuracy", "all"])


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("benchmarks are not built yet")
