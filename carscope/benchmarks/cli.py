"""`carscope bench showroom|crawl|import|train|latency|serve|shutdown|accuracy|ood|recipe|levels|refresh|ray|gpu|all`: measure a stage, write JSON + Markdown + PNG.

    carscope bench latency --bundle demo-work/bundle --out benchmarks/results/mine

Each benchmark is a module `benchmarks/<name>.py` with `add_arguments(parser)` and `run(args) -> (result, md)`,
listed in benchmarks/registry.py.
"""

from __future__ import annotations

import importlib

from carscope.benchmarks.registry import REGISTRY, module_path


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="run benchmarks (JSON + Markdown + PNG)", description=__doc__)
    bsub = p.add_subparsers(dest="bench", metavar="BENCH", parser_class=type(p))
    bsub.required = True
    for bench in REGISTRY:
        bp = bsub.add_parser(bench.name, help=f"{bench.name} benchmark")
        bp.add_argument("--out", default=None, help="results directory (default benchmarks/results/<date>-<host>)")
        try:
            importlib.import_module(module_path(bench.name)).add_arguments(bp)
        except ModuleNotFoundError as exc:
            if exc.name != module_path(bench.name):
                raise


def run(args) -> int:
    from carscope.benchmarks.common import default_results_dir, write_result
    from carscope.common.errors import CarscopeError

    out = args.out or str(default_results_dir())
    try:
        module = importlib.import_module(module_path(args.bench))
    except ModuleNotFoundError:
        raise CarscopeError(f"benchmark '{args.bench}' is not built yet") from None
    result, markdown = module.run(args, out)
    path = write_result(out, args.bench, result, markdown)
    print(markdown)
    print(f"wrote {path}")
    return 0
