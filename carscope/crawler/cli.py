"""`carscope crawl`: crawl a catalog site into a dataset directory (format: carscope/crawler/dataset.py).

    carscope showroom --port 8700 &
    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset            # Ctrl-C, then add --resume
    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset --retry-failed   # failed pages and photos again
    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset --refresh   # what changed since (killed? again)
    carscope crawl --start-url http://127.0.0.1:8700/ --out dataset --browser never --concurrency 32 --per-host 16

Polite by default: robots.txt (and its Crawl-delay) obeyed, --per-host requests at a time per host,
Retry-After honoured. Exit status: 0 done, 2 bad input (one line on stderr), 130/143 stopped by
SIGINT/SIGTERM with everything saved (run again with --resume).
"""

from __future__ import annotations

import argparse

from carscope.common.errors import CarscopeError


def _int_at_least(minimum: int):
    """argparse type: a whole number >= minimum, with a one-line reason otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got '{text}'") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


_positive_int, _count = _int_at_least(1), _int_at_least(0)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got '{text}'") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def _shard(text: str) -> tuple[int, int]:
    from carscope.crawler.shard import parse_shard

    try:
        return parse_shard(text)
    except CarscopeError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(sub) -> None:
    p = sub.add_parser("crawl", help="crawl a catalog site into a dataset", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--start-url", help="where the crawl starts, e.g. http://127.0.0.1:8700/ (required unless --check)")
    p.add_argument("--out", metavar="DATASET", help="dataset directory to write (required unless --check)")
    p.add_argument("--check", metavar="URL", default=None,
                   help="fetch this one page and print what the adapter makes of it (page type, links, specs, "
                        "model-year, photos); writes nothing")
    p.add_argument("--json", action="store_true", help="with --check: print the report as one JSON document")
    p.add_argument("--traceback", action="store_true",
                   help="with --check: when the adapter's hook raises, print its traceback before the one-line error")
    p.add_argument("--site", default="showroom", metavar="showroom|showroom-LAYOUT|PATH.toml",
                   help="site adapter: a shipped one by name (carscope/crawler/sites/*.toml) or a TOML file; the language is "
                        "documented in carscope/crawler/sites/README.md (default: %(default)s)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue the crawl in DATASET")
    mode.add_argument("--overwrite", action="store_true", help="delete DATASET's crawl artifacts and start over")
    p.add_argument("--sitemap", action="store_true",
                   help="also queue the pages the site's sitemaps list (robots.txt Sitemap lines, else /sitemap.xml; "
                        "indexes and .gz followed), with their lastmod, as the adapter's `sitemap = true` does. "
                        "`--check` of a sitemap or robots.txt URL shows what it yields")
    p.add_argument("--retry-failed", action="store_true",
                   help="continue the crawl in DATASET (as --resume) and first give every failed page and photo "
                        "(failures.parquet rows such as content_missing, http_503, timeout) a fresh set of attempts")
    p.add_argument("--refresh", action="store_true",
                   help="bring the crawled DATASET up to date: revisit its pages with conditional requests "
                        "(ETag, Last-Modified; sitemap lastmod), crawl new links, fetch only new or changed photos, "
                        "mark photos no longer listed (images.parquet gone_at) and keep replaced spec values "
                        "(specs_history.parquet). Killed? Run it again (or --resume)")
    p.add_argument("--keep-original", action="store_true",
                   help="store downloaded photos as they are, at full size (default: each photo is re-encoded as an "
                        "RGB JPEG of at most 1024 px on its longest side; images.parquet keeps the original size "
                        "in orig_width, orig_height, orig_format). With --check: show the sizes this way")
    p.add_argument("--concurrency", type=_positive_int, default=16, help="requests in flight overall (default: %(default)s)")
    p.add_argument("--per-host", type=_positive_int, default=4, help="requests in flight per host (default: %(default)s)")
    p.add_argument("--delay", type=_seconds, default=0.0,
                   help="seconds between requests to one host; robots.txt Crawl-delay can raise it (default: %(default)s)")
    p.add_argument("--max-pages", type=_count, default=None, help="stop after this many pages")
    p.add_argument("--max-images", type=_count, default=None, help="stop after this many stored images")
    p.add_argument("--shard", type=_shard, default=None, metavar="K/N",
                   help="fetch only the model-years of shard K of N (every shard reads the listing pages); "
                        "crawl each shard into its own DATASET, then `carscope dataset merge` them. Each shard is "
                        "polite on its own: divide --per-host by N")
    p.add_argument("--browser", choices=["auto", "always", "never"], default="auto",
                   help="Chromium for JavaScript pages: auto = the page types the adapter marks, never = plain HTTP "
                        "only (the showroom adapter then reads each gallery's JSON through its hook) "
                        "(default: %(default)s)")
    p.add_argument("--user-agent", default=None, help="User-Agent header (default: carscope-crawler/<version>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars or notes, only the summary")


def run(args) -> int:
    from carscope.crawler.config import CrawlConfig
    from carscope.crawler.engine import crawl

    if args.check:
        if args.start_url or args.out:
            raise CarscopeError("--check URL looks at one page: it takes no --start-url or --out")
        from carscope.crawler.check import run as run_check

        return run_check(args)
    if args.json or args.traceback:
        raise CarscopeError(f"{'--json' if args.json else '--traceback'} goes with --check")
    if not args.start_url or not args.out:
        raise CarscopeError("--start-url and --out are required (or --check URL to look at one page)")
    if args.retry_failed and args.overwrite:
        raise CarscopeError("--retry-failed continues a crawl: it goes with --resume, not --overwrite")
    if args.refresh and args.overwrite:
        raise CarscopeError("--refresh updates a crawled dataset: it goes with --resume, not --overwrite")
    config = CrawlConfig(start_url=args.start_url, out=args.out, site=args.site,
                         resume=args.resume or args.retry_failed or args.refresh, retry_failed=args.retry_failed,
                         refresh=args.refresh,
                         overwrite=args.overwrite, keep_original=args.keep_original, concurrency=args.concurrency,
                         per_host=args.per_host, delay=args.delay, max_pages=args.max_pages,
                         max_images=args.max_images, browser=args.browser, shard=args.shard, sitemap=args.sitemap,
                         progress=False if args.quiet else None, log=not args.quiet)
    if args.user_agent:
        config.user_agent = args.user_agent
    stats = crawl(config)
    print(summary(stats, args.out))
    return int(stats.get("exit_code", 0))


def summary(stats: dict, out) -> str:
    pages, images = stats["pages"], stats["images"]
    rates = stats.get("rates", {})
    shard = f" (shard {stats['shard']})" if stats.get("shard") else ""
    line = (f"crawl {stats['status']}{shard}: {pages['done']} pages, {stats['specs']} model-years with specs, "
            f"{images['stored']} images stored ({images['duplicates']} duplicates skipped), "
            f"{stats['failures']} failures, {stats['retries']} retries in {stats['durations']['this_run_s']:.1f} s "
            f"({rates.get('pages_per_s') or 0:.1f} pages/s, {rates.get('images_per_s') or 0:.1f} images/s) -> {out}")
    nmy = stats.get("no_model_year") or {}
    if nmy.get("pages"):
        line += (f"\n  {nmy['pages']} pages gave no model-year ({nmy.get('photos', 0)} of their photos stored "
                 f"without one; failures.parquet reason no_model_year): check the adapter's model_year rules with --check")
    if stats.get("page_problems"):
        line += "\n  page problems: " + ", ".join(f"{k} {v}" for k, v in stats["page_problems"].items())
    for note in stats.get("notes", []):
        if note.startswith("nothing trainable"):
            line += f"\n  {note}"
    for warning in stats.get("warnings") or []:
        line += f"\n  warning: {warning}"
    if stats.get("failure_reasons"):
        line += "\n  failures by reason: " + ", ".join(f"{k} {v}" for k, v in stats["failure_reasons"].items())
    if (stats.get("failure_reasons") or {}).get("content_missing"):
        line += ("\n  content_missing: pages answered without the content their page type requires (a soft error, "
                 "such as a maintenance page) after every attempt; --retry-failed tries them again")
    if stats.get("refresh"):
        line += "\n  " + refresh_line(stats["refresh"])
    if stats["status"] == "interrupted":
        line += f"\n  stopped by {stats['interrupted_by']}; continue with --resume"
    elif stats["status"] == "limit_reached":
        line += "\n  a --max-pages/--max-images limit was reached; --resume with a higher limit continues"
    return line


def refresh_line(r: dict) -> str:
    """The summary's line about a refresh round (stats["refresh"], carscope/crawler/refresh.py)."""
    pages, photos = r["pages"], r["photos"]
    unchanged = pages["not_modified"] + pages["unchanged_lastmod"] + pages["fresh"]
    gone = f", {photos['gone']} gone" if "gone" in photos else ""
    state = "done" if r["state"] == "done" else "not finished (run --refresh again to continue it)"
    return (f"refresh round {r['round']} {state}: {unchanged} pages unchanged ({pages['not_modified']} answered 304), "
            f"{pages['read']} read, {r['model_years_changed']} model-years with changed specs; photos: "
            f"{photos['stored_new']} new, {photos['not_modified']} answered 304, {photos['replaced']} replaced{gone}; "
            f"{r['bytes_downloaded']} bytes downloaded")
