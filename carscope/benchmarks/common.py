"""What every benchmark shares: machine/version info, timing statistics, and writing results.

A benchmark module `benchmarks/<name>.py` exposes `add_arguments(parser)` and `run(args) -> dict` (the
result: settings and every figure). `carscope/benchmarks/cli.py` writes it as `<out>/<name>.json` (with `machine()`
added) and appends its Markdown lines to `<out>/summary.md`. Plots go next to it as `<name>_*.png`.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]  # the checkout this module is part of


def machine() -> dict[str, Any]:
    """Host, CPU, memory and the versions of the libraries that decide the numbers."""
    import importlib.metadata as md

    info: dict[str, Any] = {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:  # pragma: no cover
        pass
    versions = {}
    for dist in ("torch", "torchvision", "onnx", "onnxruntime-gpu", "onnxruntime", "aiohttp", "playwright",
                 "flask", "waitress", "numpy", "pillow"):
        try:
            versions[dist] = md.version(dist)
        except md.PackageNotFoundError:
            pass
    info["versions"] = versions
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def percentiles(samples_s: Iterable[float]) -> dict[str, float]:
    """p50/p90/p99/mean/min of durations given in seconds, returned in milliseconds."""
    xs = sorted(samples_s)
    if not xs:
        return {}

    def pct(p: float) -> float:
        k = (len(xs) - 1) * p
        lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
        return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)

    ms = 1000.0
    return {"n": len(xs), "p50_ms": pct(0.5) * ms, "p90_ms": pct(0.9) * ms, "p99_ms": pct(0.99) * ms,
            "mean_ms": statistics.fmean(xs) * ms, "min_ms": xs[0] * ms}


def time_calls(fn: Callable[[], Any], *, warmup: int = 3, repeat: int = 30, sync: Callable[[], Any] | None = None,
               max_seconds: float = 30.0) -> list[float]:
    """Durations (s) of `repeat` calls after `warmup` calls; `sync` (e.g. torch.cuda.synchronize) runs before
    each clock read. Stops early after `max_seconds` so a slow case cannot stall a run."""
    for _ in range(warmup):
        fn()
    if sync:
        sync()
    out, start_all = [], time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        if sync:
            sync()
        out.append(time.perf_counter() - t0)
        if time.perf_counter() - start_all > max_seconds and len(out) >= 5:
            break
    return out


def describe_code() -> dict[str, Any]:
    """The code a benchmark measured: HEAD of this checkout (None outside git) and whether the working tree differs
    from it. Every result records it, so a figure names its commit."""
    import subprocess

    repo = REPO

    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(repo), *a], capture_output=True, text=True,
                                  timeout=30).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    return {"head": git("rev-parse", "HEAD") or None,
            "uncommitted_changes": bool(git("status", "--porcelain", "--untracked-files=no"))}


def default_results_dir() -> Path:
    day = datetime.now().strftime("%Y-%m-%d")
    return Path("benchmarks") / "results" / f"{day}-{socket.gethostname()}"


def write_result(out_dir: str | os.PathLike, name: str, result: dict[str, Any], markdown: str = "") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    payload = {"benchmark": name, "machine": machine(), **result}
    path = out / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    if markdown:
        (out / f"{name}.md").write_text(markdown.rstrip() + "\n")
    return path




def resolve_ref(ref: str) -> str:
    """REF (`--baseline-ref`) as a full commit SHA of this repository, or a one-line CarscopeError."""
    from carscope.common.errors import CarscopeError

    if not ref.strip() or ref.startswith("-"):
        raise CarscopeError(f"--baseline-ref: '{ref}' is not a git ref")
    try:
        proc = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                              capture_output=True, text=True)
    except FileNotFoundError:
        raise CarscopeError("--baseline-ref needs git on PATH") from None
    if proc.returncode != 0 or not proc.stdout.strip():
        raise CarscopeError(f"--baseline-ref: '{ref}' is not a commit of the repository at {REPO}")
    return proc.stdout.strip()


def env_running(src: Path) -> dict[str, str]:
    """This process's environment with the checkout at `src` first on PYTHONPATH: a child started there runs that
    checkout's code (a baseline worktree's), not this one's editable install."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), *filter(None, [os.environ.get("PYTHONPATH")])])}


@contextlib.contextmanager
def git_worktree(commit: str, path: Path, say: Callable[[str], None] = print):
    """A detached `git worktree` of `commit` at `path` (the code a baseline runs), removed and pruned whatever
    happens."""
    from carscope.common.errors import CarscopeError

    git = ["git", "-C", str(REPO)]
    try:
        add = subprocess.run([*git, "worktree", "add", "--detach", str(path), commit], capture_output=True, text=True)
        if add.returncode != 0:
            raise CarscopeError(f"--baseline-ref: git worktree add failed: {add.stderr.strip()[-300:]}")
        say(f"baseline: {commit[:12]} checked out in {path}")
        yield path
    finally:
        subprocess.run([*git, "worktree", "remove", "--force", str(path)], capture_output=True, text=True)
        shutil.rmtree(path, ignore_errors=True)  # in case remove refused: prune then forgets it
        subprocess.run([*git, "worktree", "prune"], capture_output=True, text=True)
