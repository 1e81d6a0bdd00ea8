"""Train the interior/exterior and car-model classifiers from a crawl (see `carscope/train/checkpoint.py` for the run format).

    python -c "from carscope.train import train; print(train({'task': 'view', 'data': 'dataset', 'out': 'runs/view'}))"

Importing this package is cheap: torch is imported when `train()` runs.
"""

from __future__ import annotations

from typing import Any


def train(args: Any) -> dict[str, Any]:
    """Run `carscope train` in-process. `args`: an argparse Namespace from the CLI, or a dict with at least
    task, data and out (other keys as the CLI's options with underscores: img_size, epochs, ...). Returns a
    summary: run_dir, checkpoint, val/test top-1 and top-5, ECE, temperature, train_seconds.
    Bad input raises carscope.common.errors.CarscopeError with a one-line message."""
    from carscope.train.engine import main

    return main(args)
