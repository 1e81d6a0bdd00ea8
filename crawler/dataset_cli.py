"""`carscope dataset`: work on dataset directories (format: crawler/dataset.py).

    carscope crawl --start-url http://127.0.0.1:8700/ --shard 1/2 --out shard-1    # on one machine
    carscope crawl --start-url http://127.0.0.1:8700/ --shard 2/2 --out shard-2    # on another
    carscope dataset merge shard-1 shard-2 --out dataset                           # then train on dataset

merge: photos deduplicated by content hash (the first source wins), every file hashed again on the way;
specs from the latest crawl of each model-year; failures minus URLs that succeeded in another source.
Exit status: 0 done, 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse


def add_parser(sub) -> None:
    p = sub.add_parser("dataset", help="merge dataset directories", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="dataset_command", metavar="ACTION")
    actions.required = True
    m = actions.add_parser("merge", help="merge datasets (shards of a crawl, or crawls of several sites) into one",
                           description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    m.add_argument("sources", nargs="+", metavar="SRC", help="dataset directories, in order of precedence")
    m.add_argument("--out", required=True, metavar="DST", help="dataset directory to write")
    m.add_argument("--overwrite", action="store_true", help="replace DST if it is a dataset already")
    m.add_argument("--quiet", action="store_true", help="no progress bar, only the summary")


def run(args) -> int:
    return ACTIONS[args.dataset_command](args)


def run_merge(args) -> int:
    from crawler.merge import merge

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


ACTIONS = {"merge": run_merge}
