"""Crawl a car catalog website, or import photos a user already has, into a dataset directory (see
`carscope/crawler/dataset.py` for the format).

    python -c "from carscope.crawler import crawl, CrawlConfig; crawl(CrawlConfig('http://127.0.0.1:8700/', 'dataset'))"
    python -c "from carscope.crawler import import_dataset, ImportConfig; import_dataset(ImportConfig('photos', 'dataset'))"

The names are imported lazily: importing the package stays cheap.
"""

__all__ = ["crawl", "CrawlConfig", "import_dataset", "ImportConfig"]


def __getattr__(name):
    if name == "crawl":
        from carscope.crawler.engine import crawl

        return crawl
    if name == "CrawlConfig":
        from carscope.crawler.config import CrawlConfig

        return CrawlConfig
    if name in ("import_dataset", "ImportConfig"):
        from carscope.crawler import importer

        return getattr(importer, name)
    raise AttributeError(f"module 'crawler' has no attribute {name!r}")
