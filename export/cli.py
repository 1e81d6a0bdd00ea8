"""`carscope export`: trained runs -> ONNX bundle."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("export", help="export trained runs to an ONNX bundle", description=__doc__)
    p.add_argument("--view-run", required=True)
    p.add_argument("--model-run", required=True)
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("export is not built yet")
