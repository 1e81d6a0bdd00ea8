"""`carscope showroom`: serve the local car-catalog website."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("showroom", help="serve the local car-catalog website", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8700)
    p.add_argument("--makes", type=int, default=6)
    p.add_argument("--models-per-make", type=int, default=4)
    p.add_argument("--years", default="2022-2023")
    p.add_argument("--photos", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--faults", default="")


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("the showroom is not built yet")
