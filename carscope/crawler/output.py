"""The dataset directory a crawl or an import writes: made or checked before the run, closed after it.

    python -c "from carscope.crawler.config import CrawlConfig; from carscope.crawler.output import prepare_output; print(prepare_output(CrawlConfig('http://127.0.0.1:8700/', '/tmp/carscope-out')))"

`prepare_output` refuses to clobber a directory that holds something (unless `--resume` or `--overwrite`),
probes that it can write, and sweeps the temporary files a killed run left. `close_output` closes the frontier
and, when the run failed on bad input before doing any work, leaves nothing behind.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds

ARTIFACTS = (ds.SPECS_FILE, ds.SPECS_RAW_FILE, ds.SPECS_HISTORY_FILE, ds.IMAGES_FILE, ds.FAILURES_FILE, ds.STATS_FILE,
             ds.FRONTIER_FILE,
             ds.FRONTIER_FILE + "-wal", ds.FRONTIER_FILE + "-shm", ds.IMAGES_DIR)


def prepare_output(config) -> tuple[Path, bool]:
    """Create / check the dataset directory (`config`: a CrawlConfig): refuse to clobber, honour --resume /
    --overwrite, probe writes. Returns the directory and whether it was created now."""
    root = config.out_path
    created = not root.exists()
    if root.exists() and not root.is_dir():
        raise CarscopeError(f"output {root} exists and is not a directory")
    existing = root.is_dir() and any(root.iterdir())
    if existing and not (config.resume or config.overwrite):
        raise CarscopeError(f"output directory {root} is not empty; pass --resume to continue its crawl "
                            f"or --overwrite to start over")
    if existing and config.resume and not (root / ds.FRONTIER_FILE).is_file():
        raise CarscopeError(f"cannot resume: {root} has no {ds.FRONTIER_FILE} (not a crawl's output)")
    try:
        if existing and config.overwrite:
            remove_artifacts(root)
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".carscope-write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise CarscopeError(f"cannot write to output directory {root}: {exc.strerror or exc}") from None
    from carscope.crawler.writer import sweep_temp

    sweep_temp(root)
    return root, created


def close_output(frontier, root: Path, created: bool, *, discard: bool) -> None:
    """Close the frontier; with `discard`, leave nothing behind (the directory too, if this run made it)."""
    try:
        frontier.close()
    except Exception:
        pass
    if discard:
        remove_artifacts(root)
        if created:
            try:
                root.rmdir()
            except OSError:
                pass


def has_results(root: Path) -> bool:
    """Whether the frontier in `root` has finished any URL (a run that did some work keeps its directory)."""
    import sqlite3

    try:
        con = sqlite3.connect(f"file:{root / ds.FRONTIER_FILE}?mode=ro", uri=True)
        try:
            return con.execute("SELECT COUNT(*) FROM urls WHERE state='done'").fetchone()[0] > 0
        finally:
            con.close()
    except sqlite3.Error:
        return False


def remove_artifacts(root: Path) -> None:
    """Remove what a crawl writes into `root` (and nothing else a user keeps there)."""
    for name in ARTIFACTS:
        p = root / name
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        elif p.exists():
            p.unlink(missing_ok=True)
