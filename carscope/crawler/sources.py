"""What `carscope dataset import` reads: an image folder, a manifest (CSV / JSON lines / parquet) of paths or
URLs, or a parquet of image bytes in the Hugging Face `datasets` layout, as one stream of `Entry` rows.

    python -c "from carscope.crawler.sources import open_source; s = open_source('photos'); print(s.describe, next(s.entries()))"

Nothing here decodes an image or touches the network: a source only says where each photo is and what its
row says about it (label, make / model / year, view, split, other columns). Sources are streamed (a manifest
in chunks, a parquet in record batches, a folder walked in sorted order), so memory does not grow with the
number of photos, and they are read in the same order every time (what an exact `--resume` counts on).

Layouts:
- folder:   ROOT/[train|val|test/]<class>/[exterior|interior|unknown/]*.jpg (png, webp, bmp, gif, tif);
            nested class folders (ROOT/acme/roadster/2023/) join into one class name, "acme/roadster/2023";
- manifest: one row per photo; columns `path` or `url` (one column may mix both), `label` or `make` / `model` /
            `year`, optionally `view` and `split`; any other column is a spec of the photo's model-year;
- hf:       a parquet file (or a folder of them) with an image struct column (`bytes`, `path`) and a label
            column; ClassLabel names come from the file's `huggingface` schema metadata; the split from a
            `split` column or the file name (train-00000-of-00002.parquet).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from carscope.common.errors import CarscopeError
from carscope.crawler.views import IMPORT_VIEW_WORDS as VIEW_WORDS

IMAGE_EXTS = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"})
MANIFEST_EXTS = {".csv": "csv", ".tsv": "tsv", ".txt": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
                 ".json": "json", ".parquet": "parquet", ".pq": "parquet"}
SPLIT_WORDS = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "dev": "val", "test": "test", "testing": "test"}
FORMATS = ("auto", "folder", "manifest", "hf")
CHUNK_ROWS = 10_000  # manifest rows read at a time
HF_BATCH_ROWS = 64  # rows of image bytes read at a time (a few MB)
_HF_SPLIT = re.compile(r"(?:^|[/\\_.-])(train|training|validation|valid|val|dev|test|testing)(?=[/\\_.-]|$)", re.I)


@dataclass
class Columns:
    """Which manifest / parquet column holds what; None: the default name (see `DEFAULTS`)."""

    path: str | None = None
    url: str | None = None
    label: str | None = None
    make: str | None = None
    model: str | None = None
    year: str | None = None
    view: str | None = None
    split: str | None = None
    image: str | None = None  # hf: the image struct column

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


DEFAULTS = {"path": ("path", "file", "filename", "filepath", "image_path"),
            "url": ("url", "image_url", "photo_url"),
            "label": ("label", "labels", "class", "class_name"),
            "make": ("make",), "model": ("model",), "year": ("year",),
            "view": ("view", "view_hint"), "split": ("split",)}


@dataclass
class Entry:
    """One photo of a source."""

    kind: str  # file / url / bytes
    ref: str  # absolute path (file), URL (url), or "<parquet path>#<row>" (bytes)
    row: int  # position in the source, from 0
    label: str | None = None
    make: str | None = None
    model: str | None = None
    year: str | None = None
    view: str | None = None
    split: str | None = None
    extra: dict = field(default_factory=dict)  # other columns: specs of the model-year
    data: bytes | None = None  # bytes entries: the encoded image


def norm_view(value) -> str | None:
    """A view column's value -> exterior / interior / unknown; None when empty."""
    text = _text(value)
    if text is None:
        return None
    return VIEW_WORDS.get(text.lower(), "unknown")


def norm_split(value) -> str | None:
    """train / val / test (also training, validation, dev, testing...); None when empty or not a split."""
    text = _text(value)
    return SPLIT_WORDS.get(text.lower()) if text else None


def _text(value) -> str | None:
    """A cell as stripped text; None for missing (NaN, None, <NA>, "")."""
    if value is None:
        return None
    try:
        import pandas as pd

        if pd.isna(value):
            return None
    except (TypeError, ValueError):  # arrays and the like are never missing
        pass
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # a year column read as float: 2023.0 -> "2023"
    text = str(value).strip()
    return text or None


class Source:
    kind = "?"
    path: Path
    describe = ""

    def entries(self) -> Iterator[Entry]:  # pragma: no cover - every source defines it
        raise NotImplementedError

    def fingerprint(self) -> dict:
        return {"kind": self.kind, "path": str(self.path)}


# ------------------------------------------------------------------------------------------------- folder
class FolderSource(Source):
    kind = "folder"

    def __init__(self, root: Path):
        self.path = root
        self.describe = f"image folder {root}"

    def entries(self) -> Iterator[Entry]:
        row = 0
        for rel_dir, files in self._walk():
            parts = list(rel_dir.parts)
            split = None
            if len(parts) >= 2 and parts[0].lower() in SPLIT_WORDS:
                split = SPLIT_WORDS[parts[0].lower()]
                parts = parts[1:]
            view = None
            if len(parts) >= 2 and parts[-1].lower() in VIEW_WORDS:
                view = VIEW_WORDS[parts[-1].lower()]
                parts = parts[:-1]
            label = "/".join(parts) or None  # a photo right in ROOT has no class: a failure row
            for name in files:
                yield Entry("file", str(self.path / rel_dir / name), row, label=label, view=view, split=split)
                row += 1

    def _walk(self) -> Iterator[tuple[Path, list[str]]]:
        """(folder relative to ROOT, its image files), folders and files in sorted order; hidden ones skipped."""
        seen: set[tuple[int, int]] = set()  # (device, inode) of folders walked: a symlink loop is walked once
        for dirpath, dirnames, filenames in os.walk(self.path, followlinks=True):
            st = os.stat(dirpath)
            if (st.st_dev, st.st_ino) in seen:
                dirnames[:] = []
                continue
            seen.add((st.st_dev, st.st_ino))
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            files = sorted(f for f in filenames if not f.startswith(".") and Path(f).suffix.lower() in IMAGE_EXTS)
            if files:
                yield Path(dirpath).relative_to(self.path), files

    def check(self) -> None:
        for _ in self._walk():
            return
        exts = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTS))
        raise CarscopeError(f"{self.path} holds no images ({exts}) in any folder; expected ROOT/<class>/*.jpg")


# ----------------------------------------------------------------------------------------------- manifest
class ManifestSource(Source):
    kind = "manifest"

    def __init__(self, path: Path, fmt: str, columns: Columns, base_dir: Path | None):
        self.path, self.fmt, self.columns = path, fmt, columns
        self.base_dir = base_dir or path.parent
        self.describe = f"manifest {path}"
        self.names: dict[str, str | None] = {}

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "columns": self.columns.given(), "base_dir": str(self.base_dir)}

    def _chunks(self):
        import pandas as pd

        try:
            if self.fmt in ("csv", "tsv"):
                yield from pd.read_csv(self.path, sep="\t" if self.fmt == "tsv" else ",", dtype=str,
                                       keep_default_na=False, chunksize=CHUNK_ROWS, skipinitialspace=True)
            elif self.fmt == "jsonl":
                yield from pd.read_json(self.path, lines=True, dtype=False, chunksize=CHUNK_ROWS)
            elif self.fmt == "json":
                data = json.loads(self.path.read_text())
                if isinstance(data, dict):  # {"images": [...]} or {"rows": [...]}: the one list inside
                    lists = [v for v in data.values() if isinstance(v, list)]
                    data = lists[0] if len(lists) == 1 else None
                if not isinstance(data, list):
                    raise CarscopeError(f"{self.path}: expected a JSON list of rows (one object per photo)")
                yield pd.DataFrame(data)
            else:
                import pyarrow.parquet as pq

                for batch in pq.ParquetFile(self.path).iter_batches(batch_size=CHUNK_ROWS):
                    yield batch.to_pandas()
        except CarscopeError:
            raise
        except (ValueError, OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CarscopeError(f"cannot read manifest {self.path} as {self.fmt}: {_first_line(exc)}") from None
        except Exception as exc:  # pyarrow and pandas parsers raise their own types
            raise CarscopeError(f"cannot read manifest {self.path} as {self.fmt}: "
                                f"{type(exc).__name__}: {_first_line(exc)}") from None

    def resolve(self, cols: list[str]) -> dict[str, str | None]:
        """Column role -> the manifest's column name; one-line errors for what is missing."""
        names = _roles(self.columns.given(), list(map(str, cols)), list(DEFAULTS), self.path)
        if names["path"] is None and names["url"] is None:
            raise CarscopeError(f"{self.path} has no path or url column (columns: {_list(cols)}); "
                                f"name one with --path-column or --url-column")
        if names["label"] is None and names["make"] is None and names["model"] is None:
            raise CarscopeError(f"{self.path} has no label column, nor make / model / year (columns: {_list(cols)}); "
                                f"name one with --label-column")
        return names

    def entries(self) -> Iterator[Entry]:
        row = 0
        names = None
        for chunk in self._chunks():
            if names is None:
                names = self.names = self.resolve(list(chunk.columns))
                roles = {v for v in names.values() if v is not None}
                extra_cols = [c for c in chunk.columns if c not in roles]
            records = chunk.to_dict("records")
            for rec in records:
                where = None
                for role in ("path", "url"):
                    if names[role] is not None and _text(rec.get(names[role])) is not None:
                        where = _text(rec.get(names[role]))
                        break
                extra = {str(c): _text(rec.get(c)) for c in extra_cols}
                entry = Entry("file", "", row, label=_text(rec.get(names["label"])) if names["label"] else None,
                              make=_text(rec.get(names["make"])) if names["make"] else None,
                              model=_text(rec.get(names["model"])) if names["model"] else None,
                              year=_text(rec.get(names["year"])) if names["year"] else None,
                              view=norm_view(rec.get(names["view"])) if names["view"] else None,
                              split=norm_split(rec.get(names["split"])) if names["split"] else None,
                              extra={k: v for k, v in extra.items() if v is not None})
                entry.kind, entry.ref = self.locate(where)
                yield entry
                row += 1
        if names is None:
            raise CarscopeError(f"manifest {self.path} has no rows")

    def locate(self, where: str | None) -> tuple[str, str]:
        """A path-or-URL cell -> (kind, ref): URLs as written, paths made absolute against --base-dir."""
        if where is None:
            return "missing", ""
        low = where.lower()
        if low.startswith(("http://", "https://")):
            return "url", where
        if low.startswith("file://"):
            from urllib.parse import urlsplit
            from urllib.request import url2pathname

            return "file", url2pathname(urlsplit(where).path)
        if re.match(r"^[a-z][a-z0-9+.-]*://", low):
            return "unsupported", where
        p = Path(where).expanduser()
        return "file", str(p if p.is_absolute() else self.base_dir / p)


# --------------------------------------------------------------------------------------------------- hf
class HfSource(Source):
    """Parquet files in the Hugging Face `datasets` layout (image struct column of bytes / path)."""

    kind = "hf"

    def __init__(self, path: Path, files: list[Path], columns: Columns):
        self.path, self.files, self.columns = path, files, columns
        self.describe = f"image parquet {path}" + (f" ({len(files)} files)" if len(files) > 1 else "")
        self.class_names: dict[str, list[str]] = {}
        self.plan = self._plan()

    def fingerprint(self) -> dict:
        return {**super().fingerprint(), "files": [str(f) for f in self.files], "columns": self.columns.given()}

    @staticmethod
    def _schema(f: Path):
        import pyarrow.parquet as pq

        try:
            return pq.read_schema(f)
        except Exception as exc:  # ArrowInvalid and friends for a file that is not parquet
            raise CarscopeError(f"{f} is not a readable parquet file ({type(exc).__name__}: "
                                f"{_first_line(exc)})") from None

    def _plan(self) -> dict:
        import pyarrow as pa

        schema = self._schema(self.files[0])
        cols = schema.names
        given = self.columns.given()
        image = (given.get("image") or next((f.name for f in schema if _is_image_struct(f.type)), None)
                 or next((f.name for f in schema if pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)),
                         None))
        if image is None or image not in cols:
            raise CarscopeError(f"{self.files[0]} has no image column (a struct with bytes / path); columns: "
                                f"{_list(cols)}" + (" (see --image-column)" if "image" not in given else ""))
        t = schema.field(image).type
        if not (_is_image_struct(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t)):
            raise CarscopeError(f"column {image} of {self.files[0]} is not an image (bytes / path struct or binary)")
        names = {"image": image, **_roles(given, cols, ["label", "make", "model", "year", "view", "split"],
                                           self.files[0])}
        if names["label"] is None and names["make"] is None and names["model"] is None:
            raise CarscopeError(f"{self.files[0]} has no label column (columns: {_list(cols)}); "
                                f"name one with --label-column")
        features = _hf_features(schema)
        for role in ("label", "make", "model", "view", "split"):
            col = names.get(role)
            feat = features.get(col) if col else None
            if isinstance(feat, dict) and feat.get("_type") == "ClassLabel" and feat.get("names"):
                self.class_names[col] = [str(n) for n in feat["names"]]
        roles = {v for v in names.values() if v is not None}
        names["_extra"] = [c for c in cols if c not in roles]
        return names

    def entries(self, *, with_images: bool = True) -> Iterator[Entry]:
        """Rows in file order; `with_images=False` reads only the small columns (the labelling pass)."""
        import pyarrow.parquet as pq

        names = self.plan
        small = [c for c in (names[r] for r in ("label", "make", "model", "year", "view", "split")) if c]
        wanted = small + list(names["_extra"]) + ([names["image"]] if with_images else [])
        row = 0
        for f in self.files:
            file_split = _split_of_file(f.relative_to(self.path) if f != self.path else Path(f.name))
            try:
                pf = pq.ParquetFile(f)
                missing = [c for c in wanted if c not in pf.schema_arrow.names]
                if missing:
                    raise CarscopeError(f"{f} lacks column(s) {_list(missing)} that {self.files[0].name} has")
                batches = pf.iter_batches(batch_size=HF_BATCH_ROWS if with_images else CHUNK_ROWS, columns=wanted)
                for batch in batches:
                    data = batch.to_pydict()
                    for i in range(batch.num_rows):
                        yield self._entry(f, row, {c: data[c][i] for c in wanted}, file_split, with_images)
                        row += 1
            except CarscopeError:
                raise
            except Exception as exc:  # a damaged file mid-read
                raise CarscopeError(f"cannot read {f}: {type(exc).__name__}: {_first_line(exc)}") from None

    def _entry(self, f: Path, row: int, rec: dict, file_split: str | None, with_images: bool) -> Entry:
        names = self.plan

        def cell(role):
            col = names.get(role)
            if col is None:
                return None
            value = rec.get(col)
            if col in self.class_names and isinstance(value, int) and not isinstance(value, bool):
                classes = self.class_names[col]
                return classes[value] if 0 <= value < len(classes) else None
            return _text(value)

        entry = Entry("bytes", f"{f}#{row}", row, label=cell("label"), make=cell("make"), model=cell("model"),
                      year=cell("year"), view=norm_view(cell("view")),
                      split=norm_split(cell("split")) or file_split,
                      extra={c: t for c in names["_extra"] if (t := _text_scalar(rec.get(c))) is not None})
        if with_images:
            img = rec.get(names["image"])
            if isinstance(img, dict):
                entry.data = img.get("bytes")
                if entry.data is None and img.get("path"):
                    p = Path(img["path"])
                    entry.kind, entry.ref = "file", str(p if p.is_absolute() else f.parent / p)
            else:
                entry.data = img
        return entry


def _roles(given: dict[str, str], cols: list[str], roles: list[str], where: Path) -> dict[str, str | None]:
    """Column role -> the column holding it: the one an option names (which must exist), else the first
    default name present (case-insensitive), else None."""
    have = {c.lower(): c for c in cols}
    names: dict[str, str | None] = {}
    for role in roles:
        if role in given:
            if given[role] not in cols:
                raise CarscopeError(f"--{role}-column {given[role]}: {where} has no such column "
                                    f"(columns: {_list(cols)})")
            names[role] = given[role]
        else:
            names[role] = next((have[d] for d in DEFAULTS[role] if d in have), None)
    return names


def _is_image_struct(t) -> bool:
    import pyarrow as pa

    return pa.types.is_struct(t) and any(t.field(i).name == "bytes" for i in range(t.num_fields))


def _hf_features(schema) -> dict:
    """The `datasets` features recorded in the parquet schema metadata ({} when absent or unreadable)."""
    meta = schema.metadata or {}
    raw = meta.get(b"huggingface")
    if not raw:
        return {}
    try:
        info = json.loads(raw)
    except ValueError:
        return {}
    feats = (info.get("info") or {}).get("features") or {}
    return feats if isinstance(feats, dict) else {}


def _split_of_file(rel: Path) -> str | None:
    m = _HF_SPLIT.search(str(rel).lower())
    return SPLIT_WORDS[m.group(1).lower()] if m else None


def _text_scalar(value) -> str | None:
    return None if isinstance(value, (dict, list, bytes)) else _text(value)


def _list(cols) -> str:
    cols = [str(c) for c in cols]
    return ", ".join(cols[:12]) + (f" and {len(cols) - 12} more" if len(cols) > 12 else "") if cols else "none"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]


# ------------------------------------------------------------------------------------------------ detect
def open_source(source: str | os.PathLike, fmt: str = "auto", columns: Columns | None = None,
                base_dir: str | os.PathLike | None = None) -> Source:
    """The source at `source` read as `fmt` (auto: a folder of images, a folder or file of image parquet, or
    a manifest by its extension); raises CarscopeError with a one-line reason when it is none of them."""
    columns = columns or Columns()
    path = Path(source).expanduser()
    if fmt not in FORMATS:
        raise CarscopeError(f"--format must be one of {', '.join(FORMATS)}, not '{fmt}'")
    if not path.exists():
        raise CarscopeError(f"{path} does not exist")
    base = Path(base_dir).expanduser().resolve() if base_dir else None
    if path.is_dir():
        path = path.resolve()
        parquets = sorted(p for p in path.rglob("*.parquet") if not any(s.startswith(".") for s in p.parts))
        if fmt == "manifest":
            raise CarscopeError(f"--format manifest needs a file; {path} is a folder")
        if fmt == "hf" or (fmt == "auto" and parquets and not _has_images(path)):
            if not parquets:
                raise CarscopeError(f"{path} holds no .parquet files")
            return HfSource(path, parquets, columns)
        src = FolderSource(path)
        src.check()
        return src
    path = path.resolve()
    if fmt == "folder":
        raise CarscopeError(f"--format folder needs a folder; {path} is a file")
    kind = MANIFEST_EXTS.get(path.suffix.lower())
    if fmt == "hf" or (fmt == "auto" and kind == "parquet" and _is_hf_parquet(path)):
        return HfSource(path, [path], columns)
    if kind is None:
        known = ", ".join(sorted(MANIFEST_EXTS))
        raise CarscopeError(f"{path}: not a folder and not a manifest this reads ({known})")
    if kind == "parquet":
        HfSource._schema(path)  # an unreadable parquet: the same one-line error
    return ManifestSource(path, kind, columns, base)


def _has_images(root: Path) -> bool:
    for _dirpath, _dirs, files in os.walk(root, followlinks=True):
        if any(Path(f).suffix.lower() in IMAGE_EXTS for f in files):
            return True
    return False


def _is_hf_parquet(path: Path) -> bool:
    schema = HfSource._schema(path)
    import pyarrow as pa

    return any(_is_image_struct(f.type) or pa.types.is_binary(f.type) or pa.types.is_large_binary(f.type)
               for f in schema)
