"""Train the interior/exterior and car-model classifiers from a crawl (see `train/checkpoint.py` for the run format)."""
