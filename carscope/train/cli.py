"""`carscope train view|model`: train the interior/exterior or the car-model-year classifier from a crawl.

    carscope train view  --data dataset --out runs/view
    carscope train model --data dataset --out runs/model --view-run runs/view --pretrain-all-years
    torchrun --nproc-per-node 2 -m carscope train model --data dataset --out runs/model   # DDP
    carscope train model --data dataset --out runs/model --resume                         # continue a run

Writes the run directory of carscope/train/checkpoint.py (best.pt/last.pt, splits.parquet, metrics.jsonl, report.json,
report.md, curves.png, confusion.png, config.json). The same options work from Python:
`train.train({"task": "view", "data": ..., "out": ...})`.
"""

from __future__ import annotations

import argparse

from carscope.train.options import add_arguments  # the options live apart, so the engine needs no CLI


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train the view or model classifier", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)


def run(args) -> int:
    from carscope.train.engine import main

    main(args)
    return 0
