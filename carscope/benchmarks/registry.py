"""Every benchmark, in one table: `carscope bench NAME` (benchmarks/cli.py) and `carscope bench all`
(benchmarks/all.py) both read it.

    from carscope.benchmarks.registry import REGISTRY, by_name
    by_name("import").module   # 'carscope.benchmarks.imports'

A new benchmark is a module `benchmarks/<name>.py` with `add_arguments(parser)` and `run(args, out) -> (result,
markdown)`, and one row here. A row with `all_argv` also runs under `bench all`, in the table's order, with the
arguments it returns from the scale and the demo's artifacts; `needs_demo` says those artifacts must exist first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Artifacts:
    """The demo's artifacts under its --workdir (what `carscope demo --no-serve` makes)."""

    data: Path
    view: Path
    model: Path
    bundle: Path

    @classmethod
    def under(cls, work: Path) -> Artifacts:
        return cls(work / "dataset", work / "runs" / "view", work / "runs" / "model", work / "bundle")


@dataclass(frozen=True)
class Bench:
    name: str  # `carscope bench NAME`
    module: str  # the module under carscope/benchmarks/
    all_argv: Callable[[str, Artifacts], list] | None = None  # its arguments under `bench all`; None: not run there
    needs_demo: bool = False  # `bench all` makes the demo's artifacts before it runs


REGISTRY: tuple[Bench, ...] = (
    Bench("showroom", "showroom"),
    Bench("crawl", "crawl", lambda scale, a: ["--scale", scale]),
    Bench("import", "imports"),  # `import` is a keyword: its module is carscope/benchmarks/imports.py
    Bench("train", "train", lambda scale, a: ["--scale", scale]),
    Bench("latency", "latency", lambda scale, a: ["--view-run", a.view, "--model-run", a.model, "--bundle", a.bundle,
                                                  "--data", a.data], needs_demo=True),
    Bench("serve", "serve", lambda scale, a: ["--bundle", a.bundle, "--model-run", a.model, "--data", a.data,
                                              *(["--requests", "300"] if scale == "small" else [])], needs_demo=True),
    Bench("shutdown", "shutdown", lambda scale, a: ["--bundle", a.bundle, "--data", a.data,
                                                    *(["--stops", "5"] if scale == "small" else [])],
          needs_demo=True),
    Bench("accuracy", "accuracy", lambda scale, a: ["--bundle", a.bundle, "--data", a.data, "--model-run", a.model],
          needs_demo=True),
    Bench("ood", "ood"),
    Bench("recipe", "recipe"),  # ~6 min of training: not part of `bench all`
    Bench("levels", "levels"),  # ~25 min: three recipes on the realistic showroom; not part of `bench all`
    Bench("refresh", "refresh"),  # `crawl --refresh` against a fresh crawl of the same showroom
    Bench("ray", "ray_predict"),  # `carscope predict --engine ray` against the local engine; needs carscope[ray]
    Bench("scale", "scale"),  # the pipeline up to 19,000 model-years and 200,000 photos (75 min); not in `bench all`
    Bench("gpu", "gpu"),
    Bench("all", "all"),
)


def by_name(name: str) -> Bench:
    return next(b for b in REGISTRY if b.name == name)


def module_path(name: str) -> str:
    """The importable module of benchmark `name`."""
    return f"carscope.benchmarks.{by_name(name).module}"
