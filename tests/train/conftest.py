"""Fixtures of the training tests: a tiny synthetic crawl (tests/datasets.py) and one view run shared by many
tests (training is the expensive part; every test that only reads a run's artifacts reuses it)."""

from __future__ import annotations

import pytest

from tests.datasets import make_tiny_dataset

# tinynet at 32 px, one thread, no workers: a few seconds per run on 2 cores.
TINY = {"arch": "tinynet", "img_size": 32, "batch_size": 4, "lr": 3e-3, "workers": 0, "threads": 1,
        "no_progress": True, "auto_augment": "none", "min_scale": 0.6, "label_smoothing": 0.0}


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """3 model-years of 2023: 10 exterior + 5 interior + 4 unknown photos each, plus 2 corrupt files."""
    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "data", n_classes=3, per_class=10,
                             interior_per_class=5, unknown_per_class=4, corrupt=2)


@pytest.fixture(scope="session")
def view_run(tiny_data, tmp_path_factory):
    """(summary, run_dir) of a finished 6-epoch view run on tiny_data."""
    from carscope.train import train

    run_dir = tmp_path_factory.mktemp("runs") / "view"
    # two classes: the tests that share it are about the crawl's own photos; tests/train/test_negatives.py trains
    # the third class (`other`, synthetic negatives), which the view task adds by default
    summary = train({"task": "view", "data": str(tiny_data), "out": str(run_dir), "epochs": 6, "negatives": 0,
                     **TINY})
    return summary, run_dir
