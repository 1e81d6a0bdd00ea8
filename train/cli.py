"""`carscope train view|model`: train a classifier from a dataset."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the view or model classifier", description=__doc__)
    p.add_argument("task", choices=["view", "model"])
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)


def run(args) -> int:
    from carscope.errors import CarscopeError

    raise CarscopeError("training is not built yet")
