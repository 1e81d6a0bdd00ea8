"""Merge dataset directories (shards of one crawl, or crawls of several sites) into one, by content hash.

    carscope dataset merge shard-1 shard-2 shard-3 --out dataset
    python -c "from carscope.crawler.merge import merge; print(merge(['shard-1', 'shard-2'], 'dataset'))"

Every table is read and written through carscope/crawler/dataset.py, so the result is an ordinary dataset that
`carscope train` reads as it is. Rules (the same a crawl follows within one run):

- images: rows in source order; each file is hashed again and a row whose file is missing, whose bytes do not
  hash to its sha256, or whose path leaves its dataset is dropped and counted. The first row of a content hash
  wins (later copies are duplicates; one with another model_id is a label conflict, counted with examples).
  Files are hard-linked into the output when the file system allows (no extra space; every file is written by
  rename, never changed in place), copied otherwise.
- specs: one row per model_id, the one crawled last (ties: the earlier source); specs_raw for a model_id comes
  from the source whose specs row was kept, so the two tables always describe the same page.
- failures: a URL that succeeded in any source is not a failure of the merge; per URL the latest error is kept.

The output is built in a hidden directory next to it and renamed into place (with --overwrite the old one is
moved aside first and deleted last), so a crash or Ctrl-C leaves either the old output or the new one, never
half of one. No crawl.sqlite is written: a merged dataset is not a crawl, and `carscope crawl --resume` on it
refuses; crawl more shards and merge again instead.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import sys
import time
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds

HASH_CHUNK = 1 << 20  # bytes read at a time when hashing: memory stays flat whatever the photo size
MAX_CONFLICT_EXAMPLES = 20
_SRC = "_merge_src"  # helper column: index of the source a row came from


# ------------------------------------------------------------------------------------------------ paths
def check_paths(sources, out, *, overwrite: bool = False) -> tuple[list[Path], Path]:
    """Resolve and check the sources and the output before anything is read or written."""
    if not sources:
        raise CarscopeError("nothing to merge: give at least one source dataset")
    resolved: list[Path] = []
    for s in sources:
        p = Path(s).resolve()
        if p in resolved:
            raise CarscopeError(f"source {s} is given twice")
        resolved.append(p)
    out_path = Path(out).resolve()
    for s, p in zip(sources, resolved, strict=True):
        if out_path == p or p in out_path.parents:
            raise CarscopeError(f"output {out} is source {s} or inside it; write the merge somewhere else")
        if out_path in p.parents:
            raise CarscopeError(f"source {s} is inside output {out}; write the merge somewhere else")
    if os.path.lexists(out_path):
        if not out_path.is_dir():
            raise CarscopeError(f"output {out} exists and is not a directory")
        if any(out_path.iterdir()):
            if not overwrite:
                raise CarscopeError(f"output directory {out} is not empty; pass --overwrite to replace it")
            if not all((out_path / n).exists() for n in (ds.SPECS_FILE, ds.IMAGES_FILE)):
                # --overwrite deletes the whole directory: only ever a dataset, never a folder given by mistake
                raise CarscopeError(f"output {out} is not empty and not a carscope dataset; refusing to replace it")
    return resolved, out_path


def safe_relpath(path) -> str | None:
    """The row's path if it is a plain relative path inside the dataset (no `..`, not absolute), else None."""
    if not isinstance(path, str) or not path or "\\" in path or "\x00" in path:
        return None
    p = PurePosixPath(path)
    if p.is_absolute() or os.path.isabs(path) or any(part in ("..", ".") for part in p.parts):
        return None
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(HASH_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def store_file(src: Path, dst: Path) -> None:
    """Put `src` at `dst`: a hard link where possible, else a copy to a temp name and a rename."""
    try:
        os.link(src, dst)
        return
    except FileExistsError:  # same name, same bytes (content-addressed)
        return
    except OSError:  # another file system, links not allowed: copy
        pass
    tmp = dst.parent / f".{dst.name}.{secrets.token_hex(4)}.part"
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ----------------------------------------------------------------------------------------------- tables
def _concat(frames, columns: dict[str, str]):
    """Rows of all sources in order, with the contract's dtypes and every source's extra columns."""
    import pandas as pd

    frames = [f for f in frames if len(f)]  # pandas warns on concatenating empty frames
    if not frames:
        df = ds.empty(columns)
        df[_SRC] = pd.Series(dtype="int64")
        return df
    return ds.conform(pd.concat(frames, ignore_index=True), columns)


def _tagged(df, i: int):
    df = df.copy()
    df[_SRC] = i
    return df


def merge_specs(specs_list, raw_list):
    """(specs, specs_raw): per model_id the latest crawl's row, and the raw rows of that same source."""
    specs = _concat([_tagged(s, i) for i, s in enumerate(specs_list)], ds.SPECS_COLUMNS)
    # stable sorts: latest crawled_at first, NaT last, ties keep source order
    specs = specs.sort_values(_SRC, kind="stable")
    specs = specs.sort_values("crawled_at", ascending=False, na_position="last", kind="stable")
    specs = specs.drop_duplicates("model_id", keep="first")
    specs = specs.sort_values("model_id", kind="stable").reset_index(drop=True)

    raw = _concat([_tagged(r, i) for i, r in enumerate(raw_list)], ds.SPECS_RAW_COLUMNS)
    chosen = dict(zip(specs["model_id"], specs[_SRC], strict=True))
    first_with_raw = raw.groupby("model_id", dropna=False)[_SRC].min().to_dict()
    want = raw["model_id"].map(lambda m: chosen.get(m, first_with_raw.get(m)))
    raw = raw[(raw[_SRC] == want).fillna(False).astype(bool)]
    raw = raw.sort_values("model_id", kind="stable").reset_index(drop=True)  # rows of a model keep their order
    return specs, raw


def merge_failures(failures_list, succeeded: set[str]):
    """(failures, dropped): the latest failure per URL, minus URLs that succeeded somewhere."""
    fail = _concat([_tagged(f, i) for i, f in enumerate(failures_list)], ds.FAILURES_COLUMNS)
    ok = fail["url"].isin(succeeded).fillna(False).astype(bool)
    dropped = int(fail.loc[ok, "url"].nunique())
    fail = fail[~ok]
    fail = fail.sort_values(_SRC, kind="stable")
    fail = fail.sort_values("last_error_at", ascending=False, na_position="last", kind="stable")
    fail = fail.drop_duplicates("url", keep="first").sort_values("url", kind="stable").reset_index(drop=True)
    return fail, dropped


def _str(value) -> str | None:
    import pandas as pd

    return None if value is None or value is pd.NA or (isinstance(value, float) and value != value) \
        else str(value)


def _target_relpath(sha: str, path: str) -> str:
    """Where the photo goes in the output: the content-addressed path (the crawl's layout, so a crawl's row keeps
    its path) with the file's extension; a name no two different photos can share."""
    ext = PurePosixPath(path).suffix.lstrip(".") or "jpg"
    return ds.image_relpath(sha, ext)


def merge_images(sources: list[Path], images_list, out: Path, *, progress: bool) -> tuple:
    """Verify, dedupe and store the photos; returns (images, counts, conflict examples, succeeded URLs)."""
    from tqdm import tqdm

    images = _concat([_tagged(im, i) for i, im in enumerate(images_list)], ds.IMAGES_COLUMNS)
    counts = {"duplicates": 0, "label_conflicts": 0, "missing_files": 0, "corrupt_files": 0}
    examples: list[dict] = []
    kept: dict[str, int] = {}  # sha256 -> row index of the kept row
    keep_rows: list[int] = []
    new_paths: list[str] = []
    good_rows: list[int] = []  # kept and duplicate rows: their URLs succeeded
    made_dirs: set[Path] = set()
    roots = sources  # resolved by check_paths
    cols = [images[c].tolist() for c in ("sha256", "path", "model_id", _SRC)]
    bar = tqdm(total=len(images), desc="merge", unit="img", disable=not progress, file=sys.stderr)
    try:
        for row, (sha, path, model_id, src) in enumerate(zip(*cols, strict=True)):
            bar.update(1)
            sha, path, model_id = _str(sha), _str(path), _str(model_id)
            if sha is not None and sha in kept:
                counts["duplicates"] += 1
                good_rows.append(row)
                first = kept[sha]
                first_model = _str(cols[2][first])
                if model_id != first_model:
                    counts["label_conflicts"] += 1
                    if len(examples) < MAX_CONFLICT_EXAMPLES:
                        examples.append({"sha256": sha, "kept_model_id": first_model,
                                         "kept_from": str(sources[cols[3][first]]), "other_model_id": model_id,
                                         "other_from": str(sources[src])})
                continue
            rel = safe_relpath(path)
            if sha is None or rel is None:
                counts["corrupt_files"] += 1
                continue
            file = roots[src] / rel
            try:
                real = file.resolve(strict=True)
            except (OSError, RuntimeError):  # missing, or a symlink loop
                counts["missing_files"] += 1
                continue
            if roots[src] not in real.parents or not real.is_file():  # a symlink out of the dataset: not followed
                counts["corrupt_files"] += 1
                continue
            try:
                digest = file_sha256(real)
            except FileNotFoundError:  # deleted since
                counts["missing_files"] += 1
                continue
            if digest != sha:
                counts["corrupt_files"] += 1
                continue
            target = _target_relpath(sha, rel)
            dst = out / target
            if dst.parent not in made_dirs:
                dst.parent.mkdir(parents=True, exist_ok=True)
                made_dirs.add(dst.parent)
            store_file(real, dst)
            kept[sha] = row
            keep_rows.append(row)
            new_paths.append(target)
            good_rows.append(row)
    finally:
        bar.close()
    merged = images.iloc[keep_rows].reset_index(drop=True)
    merged["path"] = new_paths
    good = images.iloc[good_rows]
    succeeded = set(good["source_url"].dropna()) | set(good["page_url"].dropna())
    return merged, counts, examples, succeeded


# ---------------------------------------------------------------------------------------------- merge
def merge(sources, out, *, overwrite: bool = False, progress: bool | None = None) -> dict:
    """Merge the dataset directories `sources` into `out`; returns the stats (also written to stats.json).

    Raises CarscopeError (one line) for bad input: a source that is not a dataset or is given twice, an output
    that is a source or inside one, or a non-empty output without `overwrite`."""
    t0 = time.monotonic()
    src_paths, out_path = check_paths(sources, out, overwrite=overwrite)
    loaded = [ds.load(p, check_files=False) for p in src_paths]  # one-line error for a non-dataset
    if progress is None:
        progress = sys.stderr.isatty()
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        tmp = out_path.parent / f".{out_path.name}.merge-{secrets.token_hex(4)}"
        tmp.mkdir()
    except OSError as exc:
        raise CarscopeError(f"cannot write next to output {out}: {exc.strerror or exc}") from None
    try:
        stats = _build(src_paths, loaded, tmp, progress=progress)
        stats["durations"] = {"this_run_s": round(time.monotonic() - t0, 3)}
        ds.write_json(stats, tmp / ds.STATS_FILE)
        _install(tmp, out_path)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # disk full, a file we may not read, ...: one line, nothing left behind
            raise CarscopeError(f"merge into {out} failed, nothing written: {exc}") from exc
        raise
    return stats


def _source_stats(d) -> dict:
    try:
        return d.stats
    except (OSError, ValueError):  # an unreadable stats.json only loses the shard note
        return {}


def _build(src_paths: list[Path], loaded, tmp: Path, *, progress: bool) -> dict:
    raws = [d.specs_raw for d in loaded]
    failures = [d.failures for d in loaded]
    specs, raw = merge_specs([d.specs for d in loaded], raws)
    images, counts, examples, succeeded = merge_images(src_paths, [d.images for d in loaded], tmp,
                                                      progress=progress)
    for d in loaded:  # a page that gave specs in any source succeeded, even if another source's row was kept
        succeeded |= set(d.specs["page_url"].dropna())
    fail, dropped = merge_failures(failures, succeeded)

    ds.write_table(specs.drop(columns=[_SRC]), tmp / ds.SPECS_FILE)
    ds.write_table(raw.drop(columns=[_SRC]), tmp / ds.SPECS_RAW_FILE)
    ds.write_table(images.drop(columns=[_SRC]), tmp / ds.IMAGES_FILE)
    ds.write_table(fail.drop(columns=[_SRC]), tmp / ds.FAILURES_FILE)
    merged_from = []
    for p, d, f in zip(src_paths, loaded, failures, strict=True):
        merged_from.append({"path": str(p), "specs": int(len(d.specs)), "images": int(len(d.images)),
                            "failures": int(len(f)), "shard": _source_stats(d).get("shard")})
    return {
        "status": "merged",
        "merged_from": merged_from,
        "shards_missing": missing_shards([m["shard"] for m in merged_from]),
        "specs": int(len(specs)),
        "specs_raw": int(len(raw)),
        "images": int(len(images)),
        **counts,
        "label_conflict_examples": examples,
        "failures": int(len(fail)),
        "failures_dropped_succeeded_elsewhere": dropped,
        "merged_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def missing_shards(shards: list) -> list[str]:
    """The K/N shards absent from a merge of shards of one crawl (all sources say the same N); else []."""
    from carscope.crawler.shard import parse_shard

    try:
        parsed = [parse_shard(s) for s in shards]
    except (CarscopeError, TypeError):  # a source that is not a shard (None) or says something else
        return []
    totals = {n for _, n in parsed}
    if len(totals) != 1:
        return []
    n = totals.pop()
    have = {k for k, _ in parsed}
    return [f"{k}/{n}" for k in range(1, n + 1) if k not in have]


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished `tmp` to `out`; an existing `out` is moved aside first and deleted last."""
    if not os.path.lexists(out):
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{secrets.token_hex(4)}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)

