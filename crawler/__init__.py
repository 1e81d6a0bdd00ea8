"""Crawl a car catalog website into a dataset directory (see `crawler/dataset.py` for the format)."""
