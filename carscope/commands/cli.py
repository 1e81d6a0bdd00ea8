"""The `carscope` command: subcommand dispatch only.

    carscope --help
    carscope showroom --makes 3 --port 8700

Each stage package has a `cli.py` with `add_parser(subparsers)` (argparse only, cheap to import) and
`run(args) -> int`, which imports the heavy parts of the stage when the command actually runs.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from carscope import __version__
from carscope.common.errors import CarscopeError

# command -> module with add_parser() and run(); imported lazily so `carscope --help` stays fast.
COMMANDS = {
    "showroom": "carscope.showroom.cli",
    "crawl": "carscope.crawler.cli",
    "dataset": "carscope.crawler.dataset_cli",
    "train": "carscope.train.cli",
    "export": "carscope.export.cli",
    "serve": "carscope.serve.cli",
    "predict": "carscope.serve.predict_cli",
    "bench": "carscope.benchmarks.cli",
    "demo": "carscope.commands.demo",
    "doctor": "carscope.commands.doctor",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # argparse's default is usage + message; keep it to one line, exit 2
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="carscope", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"carscope {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command])
    try:
        code = module.run(args)
    except CarscopeError as exc:
        print(f"carscope {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"carscope {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
