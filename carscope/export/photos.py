"""The photos an export checks itself on: a run's splits resolved against a dataset, preprocessed in batches.

    python -c "from carscope.export.photos import split_photos; from carscope.train.checkpoint import load_run; \
from carscope.crawler.dataset import load; print(split_photos('runs/model', load('dataset'), 'test', \
load_run('runs/model')['labels']).head())"

The tensors fed to PyTorch and onnxruntime come from train's eval transform (`carscope/train/presets.py`), the one
definition of preprocessing; serve's numpy version is held against it by tests/export/test_preprocess_parity.py.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from carscope.common.errors import CarscopeError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    import pandas as pd

    from carscope.crawler.dataset import Dataset

SPLITS_FILE = "splits.parquet"
SPLITS_COLUMNS = ("sha256", "label", "split")
MIN_MATCH = 0.5  # below this share of a run's photos found in the dataset, it is not the run's dataset


def read_splits(run_dir: str | os.PathLike) -> pd.DataFrame:
    """The run's splits.parquet (`run_dir` may also name the file itself), checked for the columns export needs."""
    import pandas as pd

    path = Path(run_dir)
    if path.suffix != ".parquet":
        path = path / SPLITS_FILE
    if not path.is_file():
        raise CarscopeError(f"run {run_dir} has no {SPLITS_FILE}; it was not written by `carscope train`")
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises many types for a broken file
        raise CarscopeError(f"{path} is not a readable parquet file ({type(exc).__name__})") from exc
    missing = [c for c in SPLITS_COLUMNS if c not in df.columns]
    if missing:
        raise CarscopeError(f"{path} lacks columns: {', '.join(missing)}")
    return df


def split_photos(run_dir: str | os.PathLike, dataset: Dataset, split: str, labels: list[str],
                 splits: pd.DataFrame | None = None) -> pd.DataFrame:
    """Rows of `split` with `file` (absolute path in `dataset`) and `target` (index into `labels`).

    Photos are matched by sha256, not by path, so a dataset that was moved or merged still matches. A run
    whose photos are mostly absent from `dataset` was trained on another dataset: CarscopeError."""
    import pandas as pd

    if splits is None:
        splits = read_splits(run_dir)
    rows = splits[splits["split"].astype(str) == split]
    if rows.empty:
        return rows.assign(file=[], target=[])
    by_sha = dict(zip(dataset.images["sha256"].astype(str), dataset.images["path"].astype(str), strict=True))
    found = rows["sha256"].astype(str).map(by_sha)
    # the view run's synthetic negatives (carscope/train/negatives.py) live in the run, not the dataset (absolute paths)
    own = rows["source"].astype(str).eq("negative") if "source" in rows.columns else pd.Series(False, rows.index)
    if own.any():
        run_root = Path(run_dir).parent if Path(run_dir).suffix == ".parquet" else Path(run_dir)
        found = found.astype(object)
        found[own] = [_negative_file(run_root, p, sha) for p, sha in zip(rows.loc[own, "path"],
                                                                          rows.loc[own, "sha256"], strict=True)]
    n, k = int((~own).sum()), int((found.notna() & ~own).sum())
    if k < MIN_MATCH * n:
        raise CarscopeError(f"dataset {dataset.root} does not match run {run_dir}: only {k} of its {n} "
                            f"{split}-split photos are in the dataset")
    index = {label: i for i, label in enumerate(labels)}
    rows = rows.assign(file=[str(dataset.root / p) if isinstance(p, str) else None for p in found],
                       target=rows["label"].astype(str).map(index))
    rows = rows[rows["file"].notna() & rows["target"].notna()]
    # sorted by hash: the same photos in the same order on every export of the same run
    return rows.assign(target=rows["target"].astype(int)).sort_values("sha256").reset_index(drop=True)


def _negative_file(run_root: Path, path: str, sha: str) -> str | None:
    """A negative's file: where splits.parquet says, else RUN/negatives/<sha>.jpg (a run that was moved)."""
    for candidate in (Path(str(path)), run_root / "negatives" / f"{sha}.jpg"):
        if candidate.is_file():
            return str(candidate)
    return None


def eval_transform(spec: dict[str, Any]) -> Callable[[Any], Any]:
    """PIL image -> float32 CHW tensor: train's eval transform (carscope/train/presets.py), the one definition."""
    from carscope.train.presets import eval_transform as train_eval_transform

    return train_eval_transform(spec)


def open_rgb(path: str | os.PathLike, spec: dict[str, Any] | None = None):
    """The photo as RGB: at full size, or for `spec`, at its JPEG draft scale (carscope/common/imaging.py)."""
    from carscope.train.presets import load_rgb

    return load_rgb(path, spec)


def batches(files: list[str], spec: dict[str, Any], batch_size: int = 32) -> Iterator[np.ndarray]:
    """float32 NCHW arrays of preprocessed photos, `batch_size` at a time, in the order of `files`."""

    def load(f):
        try:
            return open_rgb(f, spec)
        except OSError as exc:  # Pillow's UnidentifiedImageError is an OSError
            raise CarscopeError(f"photo {f} cannot be read ({type(exc).__name__})") from None

    return _batches(files, load, spec, batch_size)


def image_batches(images: list[Any], spec: dict[str, Any], batch_size: int = 32) -> Iterator[np.ndarray]:
    """`batches` for PIL images in memory (the synthetic frames an export measures its OOD score on)."""
    return _batches(images, lambda im: im.convert("RGB"), spec, batch_size)


def _batches(items: list[Any], load: Callable[[Any], Any], spec: dict[str, Any], batch_size: int
             ) -> Iterator[np.ndarray]:
    import numpy as np

    transform = eval_transform(spec)
    for start in range(0, len(items), batch_size):
        chunk = [np.asarray(transform(load(item)), dtype=np.float32) for item in items[start:start + batch_size]]
        yield np.ascontiguousarray(np.stack(chunk))
