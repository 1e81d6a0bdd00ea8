r"""`carscope dataset`: make and combine dataset directories (format: carscope/crawler/dataset.py).

    carscope dataset import photos/ --out dataset --view exterior                  # ROOT/<class>/*.jpg
    carscope dataset import photos.csv --out dataset                               # path or url, label columns
    carscope dataset import hf-data/ --out dataset --label-pattern '(?P<make>\S+) (?P<model>.+) (?P<year>\d{4})'
    carscope crawl --start-url http://127.0.0.1:8700/ --shard 1/2 --out shard-1    # on one machine
    carscope crawl --start-url http://127.0.0.1:8700/ --shard 2/2 --out shard-2    # on another
    carscope dataset merge shard-1 shard-2 --out dataset                           # then train on dataset

merge: photos deduplicated by content hash (the first source wins), every file hashed again on the way;
specs from the latest crawl of each model-year; failures minus URLs that succeeded in another source.
Exit status: 0 done, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse

from carscope.common.errors import CarscopeError


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="import photos into a dataset, or merge datasets", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    actions.required = True
    add_import_parser(actions)
    m = actions.add_parser("merge", help="merge datasets (shards of a crawl, or crawls of several sites) into one",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("sources", nargs="+", metavar="SRC", help="dataset directories, in order of precedence")
    m.add_argument("--out", required=True, metavar="DST", help="dataset directory to write")
    m.add_argument("--overwrite", action="store_true", help="replace DST if it is a dataset already")
    m.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")


IMPORT_DOC = r"""Import photos you already have into a dataset that `carscope train` reads.

SOURCE is one of:
  an image folder   ROOT/[train|val|test/]<class>/[exterior|interior/]*.jpg (png, webp, ...); a published
                    split is kept, so the test split stays the test split
  a manifest        CSV / TSV / JSON lines / JSON / parquet, one row per photo: path or url (one column may
                    mix both; relative paths are relative to the manifest, or --base-dir), label or make /
                    model / year, optionally view and split; every other column is kept as a spec
  image parquet     the Hugging Face datasets layout (a file or a folder of them): an image struct column
                    (bytes / path), a label column (ClassLabel names read from the file), the split from a
                    split column or the file name (train-00000-of-00001.parquet)

Labels become model-years with --label-pattern: a regex with named groups year, make and model, e.g.
  '(?P<year>\d{4})_(?P<make>[^_]+)_(?P<model>.+)'   for 2023_acme_roadster
  '(?P<make>AM General|Land Rover|\S+) (?P<model>.+) (?P<year>\d{4})'   for AM General Hummer SUV 2000
auto (the default) knows both spellings and keeps other labels as classes without a year; none keeps every
label as it is. With a regex, a label it does not match is a failures row (label_unparsed).

URLs are fetched by the crawler's image pipeline: robots.txt, --per-host limits, Retry-After, retries; every
photo (files too) is fully decoded, validated and stored once by content (sha256). A photo that fails is a
failures row, never a stop. Ctrl-C saves; run again with --resume to continue exactly where it stopped.
Exit status: 0 done, 2 bad input (one line on stderr), 130/143 stopped (continue with --resume).
"""


def add_import_parser(actions) -> None:
    from carscope.crawler.cli import _positive_int, _seconds

    p = actions.add_parser("import", help="import an image folder, a manifest of paths / URLs, or an image parquet",
                           description=IMPORT_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", metavar="SOURCE", help="image folder, manifest file, or parquet file / folder")
    p.add_argument("--out", required=True, metavar="DATASET", help="dataset directory to write")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the import in DATASET")
    mode.add_argument("--overwrite", action="store_true", help="delete DATASET's artifacts and start over")
    p.add_argument("--format", choices=["auto", "folder", "manifest", "hf"], default="auto",
                   help="how to read SOURCE (default: from what it is)")
    p.add_argument("--label-pattern", default="auto", metavar="REGEX|auto|none",
                   help="class name -> model-year: a regex with (?P<year>), (?P<make>), (?P<model>) groups")
    p.add_argument("--specs", default=None, metavar="FILE",
                   help="CSV / JSON lines / parquet of specifications, joined on model_id, label, or make / model / "
                        "year; columns named like specs.parquet's (horsepower, length_in...) or as a catalog writes "
                        "them (\"Length (mm)\")")
    p.add_argument("--view", choices=["exterior", "interior", "unknown"], default=None,
                   help="the view hint of photos whose source gives none (default: unknown; a folder of exterior "
                        "shots such as Stanford Cars is --view exterior)")
    p.add_argument("--base-dir", default=None, help="what relative manifest paths are relative to")
    cols = p.add_argument_group("columns (manifest and parquet; default: the name after --)")
    for role in ("path", "url", "label", "make", "model", "year", "view", "split", "image"):
        cols.add_argument(f"--{role}-column", default=None, metavar="NAME")
    net = p.add_argument_group("fetching URLs")
    net.add_argument("--concurrency", type=_positive_int, default=32, help="requests in flight (default: %(default)s)")
    net.add_argument("--per-host", type=_positive_int, default=8,
                     help="requests in flight per host (default: %(default)s)")
    net.add_argument("--delay", type=_seconds, default=0.0, help="seconds between requests to one host")
    net.add_argument("--timeout", type=_seconds, default=30.0, help="seconds per request (default: %(default)s)")
    net.add_argument("--max-attempts", type=_positive_int, default=4, help="tries per URL (default: %(default)s)")
    net.add_argument("--ignore-robots", action="store_true", help="fetch what robots.txt disallows (your own hosts)")
    net.add_argument("--user-agent", default=None, help="User-Agent header")
    img = p.add_argument_group("photos")
    img.add_argument("--keep-original", action="store_true", help="store the bytes as they are, not as RGB JPEG")
    img.add_argument("--min-side", type=_positive_int, default=64, help="smaller photos are failures (too_small)")
    img.add_argument("--max-side", type=_positive_int, default=1024, help="larger photos are shrunk to this")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes, only the summary")


def run_import(args) -> int:
    from carscope.crawler.config import CrawlConfig
    from carscope.crawler.importer import ImportConfig, import_dataset
    from carscope.crawler.sources import Columns

    if args.timeout <= 0:
        raise CarscopeError("--timeout must be > 0 seconds")
    crawl = CrawlConfig("import:", args.out, concurrency=args.concurrency, per_host=args.per_host, delay=args.delay,
                        timeout=args.timeout, max_attempts=args.max_attempts, obey_robots=not args.ignore_robots,
                        keep_original=args.keep_original, min_side=args.min_side, max_side=args.max_side,
                        progress=False if args.quiet else None, log=not args.quiet)
    if args.user_agent:
        crawl.user_agent = args.user_agent
    columns = Columns(**{role: getattr(args, f"{role}_column") for role in
                         ("path", "url", "label", "make", "model", "year", "view", "split", "image")})
    config = ImportConfig(args.source, args.out, format=args.format, columns=columns,
                          label_pattern=args.label_pattern, specs=args.specs, view=args.view, base_dir=args.base_dir,
                          resume=args.resume, overwrite=args.overwrite, crawl=crawl)
    stats = import_dataset(config)
    print(import_summary(stats, args.out))
    return int(stats.get("exit_code", 0))


def import_summary(stats: dict, out) -> str:
    imp, images = stats["import"], stats["images"]
    rates = stats.get("rates") or {}
    line = (f"dataset import {stats['status']}: {imp['source']} -> {out}: {images['stored']} photos stored "
            f"({images['duplicates']} duplicates skipped), {imp['model_years']} model-years"
            f"{_without_year(imp)}, {stats['failures']} failures in {stats['durations']['this_run_s']:.1f} s "
            f"({rates.get('images_per_s') or 0:.1f} photos/s)")
    views = ", ".join(f"{k} {v}" for k, v in sorted(imp.get("views", {}).items()))
    splits = {k: v for k, v in imp.get("splits", {}).items() if k != "none"}
    line += f"\n  views: {views}" + ("; published split: " + ", ".join(f"{k} {v}" for k, v in sorted(splits.items()))
                                    if splits else "")
    if imp.get("rejected"):
        line += "\n  rows not imported: " + ", ".join(f"{k} {v}" for k, v in sorted(imp["rejected"].items()))
    if imp.get("duplicate_rows"):
        line += f"\n  {imp['duplicate_rows']} rows name a photo listed already"
        if imp.get("label_conflicts"):
            line += f" ({imp['label_conflicts']} under another label: the first row's label is kept)"
    if imp.get("specs_joined") is not None and imp.get("labels_without_specs") is not None:
        line += (f"\n  --specs: {imp['specs_joined']} model-years joined, {imp['labels_without_specs']} without a "
                 f"row, {imp['specs_unmatched']} rows matched no label")
    if stats.get("failure_reasons"):
        line += "\n  failures by reason: " + ", ".join(f"{k} {v}" for k, v in stats["failure_reasons"].items())
    if imp.get("views") and set(imp["views"]) == {"unknown"}:
        line += ("\n  every photo's view is unknown: `carscope train model` needs --view exterior at import or a "
                 "--view-run")
    if stats["status"] == "interrupted":
        line += f"\n  stopped by {stats['interrupted_by']}; continue with --resume"
    return line


def _without_year(imp: dict) -> str:
    n = imp.get("without_year") or 0
    return f" ({n} labels without a year: plain classes)" if n else ""


def run(args) -> int:
    return ACTIONS[args.dataset_command](args)


def run_merge(args) -> int:
    from carscope.crawler.merge import merge

    stats = merge(args.sources, args.out, overwrite=args.overwrite, progress=False if args.quiet else None)
    print(summary(stats, args.out))
    return 0


def summary(stats: dict, out) -> str:
    n = len(stats["merged_from"])
    line = (f"dataset merge: {n} dataset{'s' if n != 1 else ''} -> {out}: {stats['specs']} model-years, "
            f"{stats['images']} images ({stats['duplicates']} duplicates skipped, {stats['label_conflicts']} label "
            f"conflicts, {stats['corrupt_files']} corrupt, {stats['missing_files']} missing), "
            f"{stats['failures']} failures")
    missing = stats.get("shards_missing") or []
    if missing:
        line += f"\n  warning: shard(s) {', '.join(missing)} of this crawl are not in the merge"
    return line


ACTIONS = {"merge": run_merge, "import": run_import}
