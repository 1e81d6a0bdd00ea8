"""`carscope bench all [--scale small|full]`: every benchmark in one go, into one results directory.

    carscope bench all --scale small     # about 15 minutes on a 2-core laptop, reusing demo-work/ if present

It first makes sure the demo artifacts exist (`carscope demo --no-serve`, which reuses finished stages), then
runs each benchmark as its own `carscope bench NAME` process (so one benchmark's memory and threads never
colour the next one's numbers), and writes `summary.md` gathering their Markdown.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from carscope.benchmarks.registry import REGISTRY, Artifacts, by_name

ORDER = tuple(b.name for b in REGISTRY if b.all_argv is not None)  # the registry's rows that `bench all` runs


def add_arguments(p) -> None:
    p.add_argument("--scale", choices=["small", "full"], default="small",
                   help="small: minutes, on the demo artifacts; full: the issue-sized figures (much longer)")
    p.add_argument("--workdir", default="demo-work", help="demo artifacts to benchmark (made if missing)")
    p.add_argument("--only", default=",".join(ORDER), help="comma-separated subset of " + ",".join(ORDER))


def bench_argv(name: str, scale: str, work: Path) -> list[str]:
    """The arguments each benchmark gets, from the demo's artifacts."""
    return by_name(name).all_argv(scale, Artifacts.under(work))


def run(args, out: str):
    from carscope.common.errors import CarscopeError

    names = [n.strip() for n in args.only.split(",") if n.strip()]
    bad = [n for n in names if n not in ORDER]
    if bad:
        raise CarscopeError(f"unknown benchmark(s) {', '.join(bad)}; choose from {', '.join(ORDER)}")
    work = Path(args.workdir)
    carscope = [sys.executable, "-m", "carscope"]
    t0 = time.perf_counter()
    if any(by_name(n).needs_demo for n in names):
        print(f"bench all: making sure the demo artifacts exist in {work}", flush=True)
        if subprocess.run([*carscope, "demo", "--no-serve", "--workdir", str(work)]).returncode != 0:
            raise CarscopeError("the demo pipeline failed; see its message above")
    timings, status = {}, {}
    for name in names:
        print(f"bench all: {name} ...", flush=True)
        t = time.perf_counter()
        proc = subprocess.run([*carscope, "bench", name, "--out", out, *map(str, bench_argv(name, args.scale, work))])
        timings[name] = round(time.perf_counter() - t, 1)
        status[name] = "ok" if proc.returncode == 0 else f"failed (exit {proc.returncode})"
    parts = [f"# carscope benchmarks ({args.scale})", "",
             f"`carscope bench all --scale {args.scale}`, {time.perf_counter() - t0:.0f} s in all.", ""]
    for name in names:
        md = Path(out) / f"{name}.md"
        parts += [md.read_text() if md.exists() else f"## {name}\n\n{status[name]}\n", ""]
    summary = "\n".join(parts)
    (Path(out) / "summary.md").write_text(summary)
    result = {"scale": args.scale, "workdir": str(work), "seconds": timings, "status": status}
    print(json.dumps(status))
    if any(s != "ok" for s in status.values()):
        failed = [n for n, s in status.items() if s != "ok"]
        (Path(out) / "all.json").write_text(json.dumps(result, indent=2))
        raise CarscopeError(f"benchmark(s) failed: {', '.join(failed)}", exit_code=1)
    return result, f"## all\n\nbenchmark seconds: {timings}\n"
