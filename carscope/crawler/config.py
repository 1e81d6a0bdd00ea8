"""What a crawl is asked to do: `CrawlConfig` (plain dataclass, cheap to import) and its validation.

    python -c "from carscope.crawler.config import CrawlConfig; print(CrawlConfig('http://127.0.0.1:8700/', 'dataset'))"

`crawler.crawl(config) -> stats` takes one; `carscope crawl` builds one from its arguments.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from carscope.common.errors import CarscopeError

BROWSER_MODES = ("auto", "always", "never")
DEFAULT_USER_AGENT = "carscope-crawler/0.1 (+research crawler; honours robots.txt)"


@dataclass
class CrawlConfig:
    start_url: str
    out: str | os.PathLike
    site: str = "showroom"  # a shipped adapter's name or a path to a TOML adapter
    resume: bool = False
    sitemap: bool = False  # also queue the pages the site's sitemaps list (as the adapter's `sitemap = true`)
    retry_failed: bool = False  # with resume: failed pages and photos get a fresh set of attempts first
    refresh: bool = False  # with resume: revisit the crawled site and record what changed (crawler/refresh.py)
    overwrite: bool = False
    keep_original: bool = False  # store the downloaded bytes as they are instead of RGB JPEG

    # politeness: one layer, see carscope/crawler/politeness.py
    concurrency: int = 16  # requests in flight overall
    per_host: int = 4  # requests in flight per host (Scrapy's polite template uses 1-8)
    delay: float = 0.0  # seconds between request starts per host; robots.txt Crawl-delay raises it
    obey_robots: bool = True
    user_agent: str = DEFAULT_USER_AGENT
    allowed_hosts: tuple[str, ...] = ()  # hosts beyond the start URL's (and the adapter's) that may be fetched

    # retries
    max_attempts: int = 4  # the showroom faults a URL at most twice; real sites rarely need more
    backoff_base: float = 0.25  # first retry after ~0.25 s, doubling, with +-50% jitter
    backoff_max: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is capped (and logged) rather than stalling the crawl

    # fetch limits
    timeout: float = 30.0
    connect_timeout: float = 10.0
    max_redirects: int = 10  # browsers allow ~20; fault-injected chains on retries can reach 6
    max_page_bytes: int = 5 * 2**20
    max_image_bytes: int = 25 * 2**20

    # crawl limits
    max_pages: int | None = None
    max_images: int | None = None
    max_depth: int = 25  # links from the start page; a second guard against traps beyond robots.txt
    shard: tuple[int, int] | None = None  # (K, N): fetch only shard K of N's model-years (carscope/crawler/shard.py)

    # browser
    browser: str = "auto"  # auto: only page types whose adapter says they need one
    browser_pages: int = 2  # pages rendering at once (each one is a renderer process' worth of memory)
    browser_recycle: int = 50  # a context is closed and replaced after this many pages: memory stays flat
    browser_timeout: float = 15.0
    chromium_path: str | None = None  # None: /usr/bin/chromium when present, else Playwright's own

    # images
    min_side: int = 64
    max_aspect: float = 4.0
    max_side: int = 1024
    jpeg_quality: int = 90
    max_pixels: int = 40_000_000  # refuse decompression bombs before decoding
    cpu_workers: int | None = None  # threads for decode/encode/hash; None: the number of cores

    # output
    flush_interval: float = 30.0  # seconds between parquet snapshots during the crawl
    progress: bool | None = None  # tqdm bars; None: when stderr is a terminal (else a line every 10 s)
    log: bool = True  # one-line notes (resume, rebasing, robots) on stderr
    install_signal_handlers: bool = True  # SIGINT/SIGTERM stop cleanly (only possible in the main thread)

    extra: dict = field(default_factory=dict)  # free-form settings for an adapter's Python hook

    def replace(self, **changes) -> CrawlConfig:
        return replace(self, **changes)

    def validate(self) -> CrawlConfig:
        """Raise CarscopeError (one line) on a setting that cannot work; return self."""
        from carscope.crawler.urls import canonicalize

        if canonicalize(str(self.start_url)) is None:
            raise CarscopeError(f"invalid start URL '{self.start_url}': expected an absolute http:// or https:// URL")
        return self.validate_settings()

    def validate_settings(self) -> CrawlConfig:
        """`validate` without the start URL (what `dataset import`, which has none, checks)."""
        if self.retry_failed and not self.resume:
            raise CarscopeError("--retry-failed continues a crawl: it goes with --resume, not --overwrite or a "
                                "fresh crawl")
        if self.refresh and not self.resume:
            raise CarscopeError("--refresh updates a crawled dataset: it goes with --resume, not --overwrite or a "
                                "fresh crawl")
        if self.resume and self.overwrite:
            raise CarscopeError("--resume and --overwrite exclude each other")
        if self.browser not in BROWSER_MODES:
            raise CarscopeError(f"--browser must be one of {', '.join(BROWSER_MODES)}, not '{self.browser}'")
        positive_ints = ("concurrency", "per_host", "max_attempts", "max_page_bytes", "max_image_bytes",
                         "browser_pages", "browser_recycle", "min_side", "max_side", "max_pixels")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise CarscopeError(f"{_flag(name)} must be at least 1 (got {getattr(self, name)})")
        for name in ("max_pages", "max_images"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise CarscopeError(f"{_flag(name)} must be >= 0 (got {value})")
        for name in ("delay", "backoff_base", "backoff_max", "max_retry_after", "flush_interval"):
            value = float(getattr(self, name))
            if not value >= 0:  # also rejects nan
                raise CarscopeError(f"{_flag(name)} must be >= 0 seconds (got {getattr(self, name)})")
        for name in ("timeout", "connect_timeout", "browser_timeout"):
            if not float(getattr(self, name)) > 0:
                raise CarscopeError(f"{_flag(name)} must be > 0 seconds")
        if not 1 <= self.jpeg_quality <= 100:
            raise CarscopeError(f"JPEG quality must be in 1..100 (got {self.jpeg_quality})")
        if not self.max_aspect >= 1:
            raise CarscopeError(f"max aspect ratio must be >= 1 (got {self.max_aspect})")
        if self.max_redirects < 0 or self.max_depth < 0:
            raise CarscopeError("max redirects and max depth must be >= 0")
        if self.shard is not None:
            from carscope.crawler.shard import check_shard

            try:
                check_shard(*map(int, self.shard))
            except (TypeError, ValueError):
                raise CarscopeError(f"--shard must be (K, N), got {self.shard!r}") from None
            except CarscopeError as exc:
                raise CarscopeError(f"--shard: {exc}") from None
        if not str(self.user_agent).strip() or "\n" in str(self.user_agent):
            raise CarscopeError("the User-Agent must be one non-empty line")
        return self

    @property
    def out_path(self) -> Path:
        return Path(self.out)

    def fingerprint(self) -> dict:
        """The settings recorded in crawl.sqlite (what a resumed crawl is compared with)."""
        out = {f.name: getattr(self, f.name) for f in fields(self)
               if f.name in ("start_url", "site", "keep_original", "max_side", "jpeg_quality", "min_side",
                             "max_aspect")}
        if self.shard is not None:  # only when set: a crawl recorded before --shard existed compares equal
            out["shard"] = list(self.shard)
        return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")
