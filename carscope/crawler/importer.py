"""`carscope dataset import`: photos a user already has -> the dataset format of carscope/crawler/dataset.py.

    python -c "from carscope.crawler.importer import import_dataset, ImportConfig; \
print(import_dataset(ImportConfig('photos', 'dataset', view='exterior')))"

Three phases, all recorded in the dataset's `crawl.sqlite` (carscope/crawler/frontier.py), so a kill at any moment
resumes exactly (`resume=True`):

1. **Labelling.** The source (carscope/crawler/sources.py) is read once without image bytes: every row's label becomes
   a model-year (carscope/crawler/labels.py), its view hint and split are fixed, and each local file or URL is queued
   in the frontier as an image item. Model-years with their specs (the row's other columns, then `--specs`)
   go into the specs tables. A row that cannot be used (no label, a label the pattern rejects, no path) is a
   failures row. Queueing is INSERT OR IGNORE, so a labelling pass cut short is simply done again.
2. **Image bytes** (parquet sources): rows are read in record batches and decoded on the CPU pool; each
   batch's images and failures are committed together with the row it reached, so a resumed import starts
   at the first row whose batch did not commit and stores nothing twice (images are content-addressed).
3. **Files and URLs**: the crawl's work queue (carscope/crawler/runner.py) works the queued image items: local files
   read from disk, URLs fetched politely (robots.txt, per-host limits, Retry-After, retries), every photo
   fully decoded and validated, sha256-deduplicated, failures as data, progress bars, the same stop and
   `--resume` as a crawl.

Politeness scope: every http(s) host a manifest names may be fetched (and its redirects followed); each
host's robots.txt still rules unless told otherwise.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler import dataset as ds
from carscope.crawler.config import CrawlConfig
from carscope.crawler.frontier import IMAGE, Frontier, Item
from carscope.crawler.labels import Identity, LabelParser
from carscope.crawler.output import close_output, prepare_output
from carscope.crawler.progress import Progress
from carscope.crawler.runner import Runner
from carscope.crawler.sources import Columns, Entry, HfSource, Source, open_source

IMPORT_SITE = "import"
LABEL_KIND = "label"  # failures.kind of a row whose label could not be used
# our own specs.parquet column names, as a --specs table may spell them -> a key carscope/crawler/specs.py reads
OUR_COLUMN_KEYS = {"msrp_usd": "MSRP", "price": "Price", "price_currency": "offers.priceCurrency",
                   "body_style": "Body style", "epa_class": "EPA class", "drivetrain": "Drivetrain",
                   "engine": "Engine", "displacement_l": "Displacement (l)", "fuel": "Fuel",
                   "horsepower": "Horsepower", "mpg_city": "City MPG", "mpg_highway": "Highway MPG",
                   "mpg_combined": "Combined MPG", "length_in": "Length (in)", "width_in": "Width (in)",
                   "height_in": "Height (in)", "wheelbase_in": "Wheelbase (in)", "seats": "Seats", "doors": "Doors",
                   "wheel_size_in": "Wheel size (in)"}
SEED_COMMIT_ROWS = 5_000


@dataclass
class ImportConfig:
    source: str
    out: str
    format: str = "auto"  # auto / folder / manifest / hf
    columns: Columns = field(default_factory=Columns)
    label_pattern: str = "auto"
    specs: str | None = None  # a table of specifications joined onto the labels
    view: str | None = None  # the view hint of photos whose source gives none (default: unknown)
    base_dir: str | None = None  # what relative manifest paths are relative to (default: the manifest's folder)
    resume: bool = False
    overwrite: bool = False
    crawl: CrawlConfig | None = None  # politeness, retries, image rules, progress (start_url is unused)

    def crawl_config(self) -> CrawlConfig:
        base = self.crawl or CrawlConfig("import:", self.out)
        return base.replace(start_url=f"import:{self.source}", out=self.out, site=IMPORT_SITE, resume=self.resume,
                            overwrite=self.overwrite, browser="never", shard=None, max_pages=None)

    def fingerprint(self, source: Source) -> dict:
        """What a resumed import must match (anything that changes which rows become which photos)."""
        c = self.crawl_config()
        return {"source": source.fingerprint(), "label_pattern": self.label_pattern, "view": self.view,
                "specs": str(Path(self.specs).resolve()) if self.specs else None,
                "keep_original": c.keep_original, "max_side": c.max_side, "jpeg_quality": c.jpeg_quality,
                "min_side": c.min_side, "max_aspect": c.max_aspect}


def import_dataset(config: ImportConfig) -> dict:
    """Import `config.source` into `config.out`; returns the stats (also in stats.json). CarscopeError for bad
    input, raised before anything is written."""
    crawl_config = config.crawl_config().validate_settings()
    if config.view is not None and config.view not in ds.VIEWS:
        raise CarscopeError(f"--view must be one of {', '.join(ds.VIEWS)}, not '{config.view}'")
    source = open_source(config.source, config.format, config.columns, config.base_dir)
    parser = LabelParser(config.label_pattern)
    specs = read_specs_table(config.specs, parser) if config.specs else None
    root, created = prepare_output(crawl_config)
    fresh = not (root / ds.FRONTIER_FILE).exists()
    frontier = Frontier(root / ds.FRONTIER_FILE)
    ok = False
    try:
        previous = frontier.get_meta("import")
        if not fresh and frontier.get_meta("config") is not None and previous is None:
            raise CarscopeError(f"{root} holds a crawl, not an import; import into another directory")
        want = json.loads(json.dumps(config.fingerprint(source)))
        if previous is not None and previous != want:
            changed = sorted(k for k in want if want.get(k) != previous.get(k))
            raise CarscopeError(f"{root} was imported with other settings ({', '.join(changed)}); resume it with "
                                f"the same source and options, or pass --overwrite")
        frontier.set_meta("import", want)
        frontier.set_meta("config", {"start_url": crawl_config.start_url, "site": IMPORT_SITE,
                                     "keep_original": crawl_config.keep_original})
        if not frontier.get_meta("labelled"):
            label_pass(source, parser, specs, config, frontier)
        runner = ImportRunner(crawl_config, root, frontier, source, parser, config)
        stats = asyncio.run(runner.run())
        ok = True
        return stats
    finally:  # bad input found while labelling: leave nothing behind
        discard = not ok and fresh and not frontier.get_meta("labelled")
        close_output(frontier, root, created, discard=discard)


# ------------------------------------------------------------------------------------------- labelling
def entry_url(entry: Entry) -> str:
    """The URL a photo is known by (the frontier key, images.source_url, failures.url)."""
    if entry.kind == "file":
        return Path(entry.ref).absolute().as_uri()
    if entry.kind == "bytes":
        path, _, row = entry.ref.rpartition("#")
        return f"{Path(path).as_uri()}#row={row}"
    return entry.ref


def label_pass(source: Source, parser: LabelParser, specs, config: ImportConfig, frontier: Frontier) -> None:
    """Phase 1: labels -> model-years, photos -> frontier items, unusable rows -> failures; commits as it goes."""
    from carscope.crawler.urls import canonicalize

    models: dict[str, dict] = {}
    counts = {"rows": 0, "queued": 0, "bytes_rows": 0, "duplicate_rows": 0, "label_conflicts": 0,
              "rejected": {}, "views": {}, "splits": {}}
    now = time.time()
    entries = source.entries(with_images=False) if isinstance(source, HfSource) else source.entries()

    def reject(entry: Entry, reason: str, url: str | None = None) -> None:
        counts["rejected"][reason] = counts["rejected"].get(reason, 0) + 1
        if url is None:  # a row without a path is known by its place in the source
            url = entry_url(entry) if entry.ref else f"{source.path.as_uri()}#row={entry.row}"
        kind = LABEL_KIND if reason in ("no_label", "label_unparsed", "bad_year") else IMAGE
        frontier.record_failure(url, kind, reason, None, 0, now)

    bar = None
    show = sys.stderr.isatty() if config.crawl_config().progress is None else bool(config.crawl_config().progress)
    if show:
        from tqdm import tqdm

        bar = tqdm(desc="labels", unit="row", dynamic_ncols=True, mininterval=0.5)
    for entry in entries:
        if bar is not None:
            bar.update(1)
        counts["rows"] += 1
        if counts["rows"] % SEED_COMMIT_ROWS == 0:
            frontier.commit(force=True)
        ident = parser.parse(entry.label, make=entry.make, model=entry.model, year=entry.year)
        if entry.kind == "missing":
            reject(entry, "no_path")
            continue
        if entry.kind == "unsupported":
            reject(entry, "unsupported_scheme", entry.ref)
            continue
        if not isinstance(ident, Identity):
            reject(entry, ident)
            continue
        view = entry.view or config.view or "unknown"
        info = models.setdefault(ident.model_id, {"make": ident.make, "model": ident.model, "year": ident.year,
                                                  "label": ident.label, "extra": {}})
        for k, v in entry.extra.items():
            info["extra"].setdefault(k, v)
        counts["views"][view] = counts["views"].get(view, 0) + 1
        split = entry.split or "none"
        counts["splits"][split] = counts["splits"].get(split, 0) + 1
        if entry.kind == "bytes":  # phase 2 reads the bytes; nothing to queue
            counts["bytes_rows"] += 1
            continue
        url = entry_url(entry) if entry.kind == "file" else canonicalize(entry.ref)
        if url is None:
            reject(entry, "bad_url", entry.ref)
            continue
        meta = {"model_id": ident.model_id, "view_hint": view, "split": entry.split}
        if frontier.add(url, IMAGE, meta=meta):
            counts["queued"] += 1
        else:
            counts["duplicate_rows"] += 1
            row = frontier.db.execute("SELECT meta FROM urls WHERE url=?", (url,)).fetchone()
            if row and json.loads(row[0] or "{}").get("model_id") != ident.model_id:
                counts["label_conflicts"] += 1
    if bar is not None:
        bar.close()
    usable = counts["queued"] + counts["bytes_rows"]
    if not models:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(counts["rejected"].items())) or "no rows"
        hint = (f"--label-pattern {parser.pattern!r} matches none of the labels" if parser.strict
                and counts["rejected"].get("label_unparsed") else f"no row of {source.describe} is usable")
        raise CarscopeError(f"{hint} ({reasons}); nothing imported")
    joined = 0
    unmatched = 0
    if specs is not None:
        for model_id, rows in specs.items():
            if model_id in models:
                models[model_id]["specs"] = rows
                joined += 1
            else:
                unmatched += 1
    for model_id, info in sorted(models.items()):
        rows = [("label", info["label"])]
        rows += [(OUR_COLUMN_KEYS.get(k, k), v) for k, v in info["extra"].items()]
        rows += info.get("specs", [])
        frontier.put_specs(model_id, info["make"], info["model"], info["year"], None, rows)
    counts.update({"usable_rows": usable, "model_years": len(models),
                   "without_year": sum(1 for m in models.values() if m["year"] is None),
                   "specs_joined": joined, "specs_unmatched": unmatched,
                   "labels_without_specs": len(models) - joined if specs is not None else None})
    frontier.set_meta("labelled", counts)
    frontier.commit(force=True)


def read_specs_table(path: str, parser: LabelParser) -> dict[str, list[tuple[str, str]]]:
    """--specs FILE: model_id -> [(key, value)], keyed by a model_id, label, or make / model / year column."""
    import pandas as pd

    p = Path(path).expanduser()
    if not p.is_file():
        raise CarscopeError(f"--specs {path}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif suffix in (".jsonl", ".ndjson"):
            df = pd.read_json(p, lines=True, dtype=False)
        elif suffix == ".json":
            df = pd.read_json(p, dtype=False)
        else:
            df = pd.read_csv(p, sep="\t" if suffix == ".tsv" else ",", dtype=str, keep_default_na=False)
    except Exception as exc:  # pandas / pyarrow parse errors
        raise CarscopeError(f"--specs {path} is not a readable table ({type(exc).__name__})") from None
    cols = {c.lower(): c for c in map(str, df.columns)}
    if "model_id" in cols:
        keys = [None if _blank(v) else str(v) for v in df[cols["model_id"]]]
        used = {cols["model_id"]}
    elif "label" in cols:
        keys = [i.model_id if isinstance(i := parser.parse(None if _blank(v) else str(v)), Identity) else None
                for v in df[cols["label"]]]
        used = {cols["label"]}
    elif {"make", "model"} <= set(cols):
        year = df[cols["year"]] if "year" in cols else [None] * len(df)
        keys = []
        for mk, md, yr in zip(df[cols["make"]], df[cols["model"]], year, strict=False):
            ident = parser.parse(None, make=None if _blank(mk) else str(mk), model=None if _blank(md) else str(md),
                                 year=None if _blank(yr) else str(yr))
            keys.append(ident.model_id if isinstance(ident, Identity) else None)
        used = {cols[c] for c in ("make", "model", "year") if c in cols}
    else:
        raise CarscopeError(f"--specs {path} has no model_id, label, or make and model column to join on "
                            f"(columns: {', '.join(map(str, df.columns[:12]))})")
    out: dict[str, list[tuple[str, str]]] = {}
    value_cols = [c for c in df.columns if c not in used]
    for key, rec in zip(keys, df[value_cols].to_dict("records"), strict=False):
        if key is None or key in out:
            continue
        out[key] = [(OUR_COLUMN_KEYS.get(str(c), str(c)), str(v).strip()) for c, v in rec.items()
                    if not _blank(v)]
    return out


def _blank(value) -> bool:
    import pandas as pd

    try:
        if pd.isna(value):
            return True
    except (TypeError, ValueError):
        return False
    return str(value).strip() == ""


# -------------------------------------------------------------------------------------------- the runner
class ImportRunner(Runner):
    """The work queue over image items only: files and URLs from the labelling pass, parquet bytes read first."""

    def __init__(self, config: CrawlConfig, root: Path, frontier: Frontier, source: Source, parser: LabelParser,
                 import_config: ImportConfig):
        super().__init__(config, root, frontier)
        self.source, self.parser, self.import_config = source, parser, import_config

    def begin(self) -> None:
        back = self.frontier.reopen()
        if self.frontier.get_meta("runs"):
            self.note(f"resuming: {self.frontier.image_count()} images already stored, {back} in-flight items back "
                      f"to pending")

    def make_politeness(self):
        """Every host a manifest names may be fetched; each host's robots.txt still rules."""
        from carscope.crawler.politeness import Politeness

        return Politeness(self.config, set(), any_host=True)

    def make_progress(self) -> Progress:
        labelled = self.frontier.get_meta("labelled") or {}
        return Progress(self.config, self.frontier, kinds=(IMAGE,), image_total=labelled.get("usable_rows"))

    async def prepare(self, http) -> None:
        """Phase 2 (parquet image bytes) runs here, before the workers take the queued files and URLs."""
        if isinstance(self.source, HfSource):
            await self._ingest_bytes()

    async def fetch_image(self, item: Item):
        if not item.url.startswith("file:"):
            return await self.http.fetch(item.url, kind="image")
        from carscope.crawler.fetch import Response

        data, error = await asyncio.to_thread(read_local, item.url, self.config.max_image_bytes)
        return Response(item.url, item.url, status=None if error else 200, body=data, error=error)

    # -- phase 2 -------------------------------------------------------------------------------------------
    async def _ingest_bytes(self) -> None:
        from carscope.crawler.images import process_image
        from carscope.crawler.writer import store_file

        done_rows = int(self.frontier.get_meta("bytes_rows_done", 0) or 0)
        total = (self.frontier.get_meta("labelled") or {}).get("rows")
        if total is not None and done_rows >= total:
            return
        if done_rows:
            self.note(f"resuming the parquet rows at row {done_rows} of {total}")
        rules, config = self.rules, self.import_config

        def work(entry: Entry):
            data = entry.data
            if data is None and entry.kind == "file":
                data, error = read_local(Path(entry.ref).absolute().as_uri(), self.config.max_image_bytes)
                if error:
                    return error
            if not data:
                return "no_image_bytes"
            if len(data) > self.config.max_image_bytes:
                return "too_large"
            return process_image(bytes(data), rules, None)

        batch: list[Entry] = []
        entries = self.source.entries(with_images=True)
        while self.stop_reason is None:
            batch.clear()
            for entry in entries:
                if entry.row < done_rows:
                    continue
                batch.append(entry)
                if len(batch) >= 64:
                    break
            if not batch:
                break
            kept = []
            for entry in batch:
                ident = self.parser.parse(entry.label, make=entry.make, model=entry.model, year=entry.year)
                if isinstance(ident, Identity):  # a rejected label has its failures row from phase 1
                    kept.append((entry, ident))
            results = await asyncio.gather(*(self.loop.run_in_executor(self.cpu, work, e) for e, _ in kept))
            now = time.time()
            for (entry, ident), result in zip(kept, results, strict=True):
                url = entry_url(entry)
                view = entry.view or config.view or "unknown"
                if isinstance(result, str):
                    self.frontier.record_failure(url, IMAGE, result, None, 1, now)
                    self.progress.error(IMAGE)
                    continue
                if self.frontier.has_source(result.source_sha256):
                    self.count("duplicates")
                    self.frontier.improve_image(source_sha256=result.source_sha256, model_id=ident.model_id,
                                                view_hint=view)
                    self.progress.image_dup()
                    continue
                if not result.ok:
                    self.frontier.record_failure(url, IMAGE, result.reason, None, 1, now)
                    self.progress.error(IMAGE)
                    continue
                relpath = ds.image_relpath(result.sha256, result.ext)
                await store_file(self.root, relpath, result.data)
                row = {"sha256": result.sha256, "source_sha256": result.source_sha256, "path": relpath,
                       "model_id": ident.model_id, "view_hint": view, "width": result.width,
                       "height": result.height, "bytes": len(result.data), "source_url": url, "page_url": None,
                       "crawled_at": now, "split": entry.split, "orig_width": result.orig_width,
                       "orig_height": result.orig_height, "orig_format": result.orig_format}
                if self.frontier.put_image(row):
                    self.count("bytes_stored", len(result.data))
                    self.progress.image_stored()
                else:
                    self.count("duplicates")
                    self.progress.image_dup()
            done_rows = batch[-1].row + 1
            self.frontier.set_meta("bytes_rows_done", done_rows)  # with the batch's rows: one transaction
            self.save_counters()
            self.frontier.commit(force=True)

    # -- the end -------------------------------------------------------------------------------------------
    def describe(self, counts: dict) -> dict:
        return {"start_url": None, "site": IMPORT_SITE, "shard": None}

    def complete_stats(self, stats: dict, counts: dict) -> None:
        labelled = self.frontier.get_meta("labelled") or {}
        total = labelled.get("rows", 0)
        bytes_left = 0
        if labelled.get("bytes_rows"):
            bytes_left = max(0, total - int(self.frontier.get_meta("bytes_rows_done", 0) or 0))
        if stats["status"] == "complete" and bytes_left:
            stats["status"] = "interrupted" if self.stop_reason else "limit_reached"
        stats["import"] = {"source": self.source.describe, "format": self.source.kind,
                           "label_pattern": self.parser.pattern, "default_view": self.import_config.view,
                           **labelled, "bytes_rows_left": bytes_left}


def read_local(url: str, max_bytes: int) -> tuple[bytes | None, str | None]:
    """A file:// URL's bytes, or (None, reason): file_not_found, not_a_file, file_unreadable, too_large."""
    from urllib.parse import urlsplit
    from urllib.request import url2pathname

    path = Path(url2pathname(urlsplit(url).path))
    try:
        size = path.stat().st_size
        if not path.is_file():
            return None, "not_a_file"
        if size > max_bytes:
            return None, "too_large"
        return path.read_bytes(), None
    except FileNotFoundError:
        return None, "file_not_found"
    except OSError:
        return None, "file_unreadable"
