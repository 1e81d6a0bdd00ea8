"""`carscope serve`: serve a bundle over HTTP."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("serve", help="serve a bundle over HTTP", description=__doc__)
    p.add_argument("--bundle", required=True)


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("serving is not built yet")
