"""The dataset format written by `carscope crawl` and read by `carscope train` (the contract; no heavy imports).

    dataset/
      specs.parquet       one row per model-year, cleaned typed columns (SPECS_COLUMNS), in US units; `units`
                          records, per model-year, which columns were converted from which unit (JSON)
      specs_raw.parquet   long format (model_id, key, value) exactly as scraped, with when each value was
                          first and last seen (`crawl --refresh` moves a value that changed to specs_history)
      specs_history.parquet   values a refresh replaced: model_id, key, value, first_seen, last_seen, replaced_at
      images.parquet      one row per stored image (IMAGES_COLUMNS)
      images/<sha[:2]>/<sha>.jpg   content-addressed photos
      failures.parquet    url, kind, reason, status, attempts, last_error_at
      crawl.sqlite        frontier and progress (the crawler's own business; `dataset import` writes one too)
      stats.json          counts, rates, status histogram, durations

    python -c "from carscope.crawler.dataset import load; d = load('dataset'); print(d.images.head())"

pandas/pyarrow are imported inside the functions that need them, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carscope.common.errors import CarscopeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

FORMAT_VERSION = 1

SPECS_FILE = "specs.parquet"
SPECS_RAW_FILE = "specs_raw.parquet"
SPECS_HISTORY_FILE = "specs_history.parquet"
IMAGES_FILE = "images.parquet"
FAILURES_FILE = "failures.parquet"
STATS_FILE = "stats.json"
FRONTIER_FILE = "crawl.sqlite"
IMAGES_DIR = "images"

VIEWS = ("exterior", "interior", "unknown")

# column -> pandas dtype. Nullable dtypes: a spec a page did not give is <NA>, never 0 or "".
SPECS_COLUMNS: dict[str, str] = {
    "model_id": "string",  # e.g. 2023_acme_roadster: year, make and model slugs joined
    "make": "string",
    "model": "string",
    "year": "Int64",
    "msrp_usd": "Int64",  # only when the price is in USD: no exchange rates are applied
    "price": "Float64",  # the price as written, in any currency
    "price_currency": "string",  # ISO 4217 code of `price`: USD / EUR / GBP ...; <NA> when the page gives none
    "body_style": "string",
    "epa_class": "string",
    "drivetrain": "string",  # AWD / 4WD / FWD / RWD
    "engine": "string",  # as written, e.g. "2.0L I4 Turbo Gas"
    "displacement_l": "Float64",
    "cylinders": "Int64",
    "fuel": "string",
    "horsepower": "Int64",
    "horsepower_rpm": "Int64",
    "mpg_city": "Int64",
    "mpg_highway": "Int64",
    "mpg_combined": "Int64",  # a single combined figure ("7.8 l/100 km"); never copied into city/highway
    "length_in": "Float64",
    "width_in": "Float64",
    "height_in": "Float64",
    "wheelbase_in": "Float64",
    "seats": "Int64",
    "doors": "Int64",
    "wheel_size_in": "Float64",
    # compact JSON object: column -> the unit it was converted from, for columns not written in the US unit,
    # and price -> its currency when not USD; e.g. {"length_in":"mm","mpg_city":"l/100km","horsepower":"kW",
    # "price":"EUR"}. "{}" when nothing was converted. Units: mm cm m | l/100km km/l mpg_imp | kW PS | cc.
    "units": "string",
    "page_url": "string",
    "crawled_at": "datetime64[ns, UTC]",
}
SPECS_RAW_COLUMNS: dict[str, str] = {
    "model_id": "string", "key": "string", "value": "string",
    # when the crawl first and last saw this value on the page (<NA> in datasets written before, and in imports)
    "first_seen": "datetime64[ns, UTC]", "last_seen": "datetime64[ns, UTC]",
}
SPECS_HISTORY_COLUMNS: dict[str, str] = {  # a value `crawl --refresh` found replaced, and its time on the page
    "model_id": "string", "key": "string", "value": "string", "first_seen": "datetime64[ns, UTC]",
    "last_seen": "datetime64[ns, UTC]", "replaced_at": "datetime64[ns, UTC]",
}
IMAGES_COLUMNS: dict[str, str] = {
    "sha256": "string",
    "path": "string",  # relative to the dataset dir: images/ab/ab12....jpg
    "model_id": "string",
    "view_hint": "string",  # exterior / interior / unknown (from the page, never guessed)
    "width": "Int64",  # the stored photo's pixels as displayed (EXIF orientation applied)
    "height": "Int64",
    "bytes": "Int64",
    "source_url": "string",
    "page_url": "string",
    "crawled_at": "datetime64[ns, UTC]",
    # train / val / test when the source publishes a split (`carscope dataset import`), kept by `carscope train`;
    # <NA> for crawled photos (train makes a stratified split)
    "split": "string",
    # the photo as downloaded, before the default re-encoding (a JPEG of at most 1024 px): its displayed size and
    # Pillow's format name (JPEG / PNG / WEBP ...); <NA> in datasets written before these columns existed
    "orig_width": "Int64",
    "orig_height": "Int64",
    "orig_format": "string",
    # when `crawl --refresh` found the photo no longer listed, or its URL serving other bytes; <NA>: current.
    # The row and its file are kept (`images[images.gone_at.isna()]` is what the site shows now)
    "gone_at": "datetime64[ns, UTC]",
}
SPLITS = ("train", "val", "test")
FAILURES_COLUMNS: dict[str, str] = {
    "url": "string",
    "kind": "string",  # page / image / robots / ...
    "reason": "string",  # short machine-friendly reason: http_404, timeout, corrupt_image, too_small, ...
    "status": "Int64",  # last HTTP status, <NA> when there was none
    "attempts": "Int64",
    "last_error_at": "datetime64[ns, UTC]",
}
TABLES = {
    SPECS_FILE: SPECS_COLUMNS,
    SPECS_RAW_FILE: SPECS_RAW_COLUMNS,
    SPECS_HISTORY_FILE: SPECS_HISTORY_COLUMNS,
    IMAGES_FILE: IMAGES_COLUMNS,
    FAILURES_FILE: FAILURES_COLUMNS,
}


def image_relpath(sha256: str, ext: str = "jpg") -> str:
    """Content-addressed path of an image, relative to the dataset directory."""
    return f"{IMAGES_DIR}/{sha256[:2]}/{sha256}.{ext}"


def make_model_id(year: int | str, make: str, model: str) -> str:
    """`2023`, `Acme`, `Road Star` -> `2023_acme_road_star`."""
    return "_".join([str(int(year)), slugify(make), slugify(model)])


_LETTERS = str.maketrans({"ß": "ss", "æ": "ae", "ø": "o", "œ": "oe", "ł": "l", "đ": "d", "þ": "th", "ı": "i"})


def slugify(text: str) -> str:
    """Lower-case ASCII words joined by `_`: accents dropped ("Škoda" -> "skoda", as a URL slug writes it)."""
    import unicodedata

    text = unicodedata.normalize("NFKD", str(text).lower().translate(_LETTERS))
    out, prev_sep = [], True
    for ch in text:
        if unicodedata.combining(ch):
            continue
        if ch.isalnum():
            out.append(ch)
            prev_sep = False
        elif not prev_sep:
            out.append("_")
            prev_sep = True
    return "".join(out).strip("_")


def conform(df: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Return `df` with exactly the contract's columns first (missing ones added as <NA>) and typed.

    Extra columns are kept after the contract's (a site may scrape more specs than we type)."""
    import pandas as pd

    df = df.copy()
    for name, dtype in columns.items():
        if name not in df.columns:
            df[name] = pd.Series(pd.NA, index=df.index, dtype="object")
        if dtype.startswith("datetime64"):
            df[name] = pd.to_datetime(df[name], utc=True)
        else:
            df[name] = df[name].astype(dtype)
    extra = [c for c in df.columns if c not in columns]
    return df[list(columns) + extra].reset_index(drop=True)


def empty(columns: dict[str, str]) -> pd.DataFrame:
    import pandas as pd

    return conform(pd.DataFrame({c: [] for c in columns}), columns)


def write_table(df: pd.DataFrame, path: str | os.PathLike, columns: dict[str, str] | None = None) -> None:
    """Write a parquet table atomically (temp file in the same directory, fsync, rename)."""
    path = Path(path)
    if columns is None:
        columns = TABLES.get(path.name)
    if columns is not None:
        df = conform(df, columns)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=False)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_table_chunks(frames, path: str | os.PathLike, columns: dict[str, str] | None = None) -> int:
    """Like `write_table`, for a table streamed as an iterable of DataFrames (so memory stays flat however
    many rows): each chunk is conformed and appended as a row group; atomic like `write_table`. Returns rows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if columns is None:
        columns = TABLES.get(path.name)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    writer, rows, schema = None, 0, None
    try:
        for df in frames:
            if columns is not None:
                df = conform(df, columns)
            table = pa.Table.from_pandas(df, preserve_index=False)
            if writer is None:
                schema = table.schema
                writer = pq.ParquetWriter(tmp, schema)
            else:
                table = table.cast(schema)
            writer.write_table(table)
            rows += len(df)
        if writer is None:  # no chunk at all: an empty table with the contract's columns
            write_table(empty(columns) if columns is not None else __import__("pandas").DataFrame(), tmp, columns)
        else:
            writer.close()
            writer = None
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        Path(tmp).unlink(missing_ok=True)
        raise
    return rows


def write_json(obj, path: str | os.PathLike) -> None:
    """Write JSON atomically."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# columns added to a contract after datasets were written without them: an older file reads them as <NA>
ADDED_LATER = frozenset({"price", "price_currency", "mpg_combined", "units", "split", "orig_width", "orig_height",
                         "orig_format", "first_seen", "last_seen", "gone_at"})


def read_table(path: str | os.PathLike, columns: dict[str, str] | None = None) -> pd.DataFrame:
    import pandas as pd

    path = Path(path)
    if columns is None:
        columns = TABLES.get(path.name)
    if not path.exists():
        if columns is None:
            raise CarscopeError(f"{path} does not exist")
        return empty(columns)
    try:
        df = pd.read_parquet(path)
    except Exception as exc:  # pyarrow raises a zoo of types for a broken file
        raise CarscopeError(f"{path} is not a readable parquet file ({type(exc).__name__})") from exc
    if columns is not None:
        missing = [c for c in columns if c not in df.columns and c not in ADDED_LATER]
        if missing:
            raise CarscopeError(f"{path} lacks required columns: {', '.join(missing)}")
        df = conform(df, columns)
    return df


@dataclass
class Dataset:
    """A dataset directory, loaded. `images` rows whose file is missing are dropped (and counted)."""

    root: Path
    specs: pd.DataFrame
    images: pd.DataFrame
    missing_files: int = 0

    def image_path(self, relpath: str) -> Path:
        return self.root / relpath

    @property
    def specs_raw(self) -> pd.DataFrame:
        return read_table(self.root / SPECS_RAW_FILE)

    @property
    def failures(self) -> pd.DataFrame:
        return read_table(self.root / FAILURES_FILE)

    @property
    def stats(self) -> dict:
        p = self.root / STATS_FILE
        return json.loads(p.read_text()) if p.exists() else {}


def load(root: str | os.PathLike, *, check_files: bool = True) -> Dataset:
    """Load a dataset directory for reading; raises CarscopeError with a one-line reason when it is not one."""
    root = Path(root)
    if not root.is_dir():
        raise CarscopeError(f"dataset {root} does not exist or is not a directory")
    for name in (SPECS_FILE, IMAGES_FILE):
        if not (root / name).exists():
            raise CarscopeError(f"{root} is not a carscope dataset: {name} is missing (run `carscope crawl` first)")
    specs = read_table(root / SPECS_FILE)
    images = read_table(root / IMAGES_FILE)
    missing = 0
    if check_files and len(images):
        exists = images["path"].map(lambda p: (root / p).is_file())
        missing = int((~exists).sum())
        images = images[exists].reset_index(drop=True)
    return Dataset(root=root, specs=specs, images=images, missing_files=missing)
