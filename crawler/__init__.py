"""Crawl a car catalog website into a dataset directory (see `crawler/dataset.py` for the format).

    python -c "from crawler import crawl, CrawlConfig; crawl(CrawlConfig('http://127.0.0.1:8700/', 'dataset'))"

`crawl` and `CrawlConfig` are imported lazily: importing the package stays cheap.
"""

__all__ = ["crawl", "CrawlConfig"]


def __getattr__(name):
    if name == "crawl":
        from crawler.engine import crawl

        return crawl
    if name == "CrawlConfig":
        from crawler.config import CrawlConfig

        return CrawlConfig
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
