"""From a crawl to tensors: labels, the view-run filter, the stratified split, and the decode-once cache.

    python -c "from carscope.train.data import build_table; from carscope.crawler.dataset import load; \
print(build_table(load('dataset'), 'view')[0].label.value_counts())"

`prepare()` runs once per run (rank 0 under DDP) and writes `splits.parquet` (sha256, path, label, split, source,
model_id) into the run: the split is data, so evaluation and export are reproducible. Every photo is decoded
once into a uint8 `.npy` cache (memory-mapped, so DataLoader workers and DDP ranks share the page cache
instead of copying it): train photos as squares of `resize` px for augmentation, val/test photos as the exact
eval crop. A photo that does not decode is skipped and counted, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from carscope.common.errors import CarscopeError

SPLITS_FILE = "splits.parquet"
SPLITS = ("train", "val", "test")
OTHER_LABEL = "other"  # the view task's not-a-car class (carscope/export/bundle.py's OTHER_LABEL)
MIN_NEGATIVES, MAX_NEGATIVES = 64, 20_000


def say(msg: str) -> None:
    print(f"train: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------- labels
def build_table(ds, task: str, *, target_year: int | None = None, label_mode: str = "model_year",
                view_scores: dict[str, float] | None = None, view_threshold: float = 0.9,
                years: str = "target", other_scores: dict[str, float] | None = None) -> tuple[Any, dict[str, Any]]:
    """One row per usable photo: sha256, path, model_id, year, label, source. Returns (table, counts).

    view:  label = view_hint (exterior/interior); unknown photos excluded.
    model: photos of `target_year` (default: the latest year in the data) with view_hint exterior (source
           "hint"), plus unknown photos whose exterior probability from a view run (`view_scores`, sha256 ->
           p(exterior)) is >= view_threshold (source "view_run"), less any photo whose p(other) from a
           three-class view run (`other_scores`) is >= 0.5. label_mode "model_year" labels by model_id;
           "make_model" by make+model (the all-years pretraining); years "all" keeps every year."""
    import pandas as pd

    from carscope.crawler.dataset import slugify

    images, specs = ds.images, ds.specs
    counts: dict[str, Any] = {"images_in_dataset": int(len(images)) + int(ds.missing_files),
                              "missing_files": int(ds.missing_files)}
    if len(images) == 0:
        raise CarscopeError(f"dataset {ds.root} has no images (crawl it first, or check its images/ folder)")
    cols = ["sha256", "path", "model_id", "view_hint"] + (["split"] if "split" in images.columns else [])
    df = images[cols].copy().rename(columns={"split": "published"})
    if "published" not in df.columns:
        df["published"] = pd.Series(pd.NA, index=df.index, dtype="string")
    df = df.dropna(subset=["sha256", "path"])
    if task == "view":
        df = df[df["view_hint"].isin(["exterior", "interior"])].copy()
        df["label"] = df["view_hint"].astype(str)
        df["source"] = "hint"
        df["year"] = pd.NA
        counts["sources"] = {"hint": int(len(df))}
        counts["unknown_excluded"] = int((images["view_hint"] == "unknown").sum())
    elif task == "model":
        meta = specs[["model_id", "make", "model", "year"]].drop_duplicates("model_id")
        df = df.merge(meta, on="model_id", how="left", indicator=True)
        no_specs = int((df["_merge"] != "both").sum())
        if no_specs:
            say(f"warning: {no_specs} photos have a model_id with no row in specs.parquet; skipped")
        df = df[df["_merge"] == "both"].drop(columns="_merge").copy()
        counts["no_specs"] = no_specs
        if len(df) == 0:
            raise CarscopeError(f"dataset {ds.root}: no photo belongs to a model-year of specs.parquet")
        dated = df["year"].notna()
        if not dated.any():
            # labels without a year (an imported folder of plain classes): every label is a class
            if target_year is not None:
                raise CarscopeError(f"--target-year {target_year}: no label of dataset {ds.root} has a year")
            counts["target_year"] = None
            counts["plain_classes"] = True
        else:
            data_years = sorted(int(y) for y in df.loc[dated, "year"].unique())
            if target_year is None:
                target_year = data_years[-1]
            if target_year not in data_years:
                raise CarscopeError(f"--target-year {target_year} is not in the data (years: "
                                    f"{', '.join(map(str, data_years))})")
            counts["target_year"] = int(target_year)
            if years != "all":
                counts["other_years_excluded"] = int((df["year"] != target_year).fillna(True).sum())
                df = df[(df["year"] == target_year).fillna(False)]
        ext = df["view_hint"] == "exterior"
        unknown = df["view_hint"] == "unknown"
        df["source"] = pd.Series("hint", index=df.index, dtype="object")
        keep = ext.copy()
        if view_scores is not None:
            p = df["sha256"].map(view_scores)
            from_run = unknown & p.notna() & (p >= view_threshold)
            df.loc[from_run, "source"] = "view_run"
            keep |= from_run
            counts["view_run_rejected"] = int((unknown & ~from_run).sum())
        counts["unknown_excluded"] = int((unknown & ~keep).sum())
        counts["interior_excluded"] = int((df["view_hint"] == "interior").sum())
        if other_scores:  # photos the view run calls not a car photo (logos, banners in a gallery): left out
            not_car = keep & (df["sha256"].map(other_scores).fillna(0.0) >= 0.5)
            counts["view_run_not_a_car"] = int(not_car.sum())
            keep &= ~not_car
        df = df[keep].copy()
        if label_mode == "make_model":
            df["label"] = [f"{slugify(a)}_{slugify(b)}" for a, b in zip(df["make"], df["model"], strict=False)]
        else:
            df["label"] = df["model_id"].astype(str)
        counts["sources"] = {k: int(v) for k, v in df["source"].value_counts().items()}
        counts["sources"].setdefault("hint", 0)
        if view_scores is not None:
            counts["sources"].setdefault("view_run", 0)
    else:
        raise CarscopeError(f"unknown task '{task}' (view or model)")
    if len(df) == 0:
        views = {str(k): int(v) for k, v in images["view_hint"].value_counts().items()}
        hint = ""
        if task == "model" and views.get("unknown") and not views.get("exterior"):
            hint = ("; every photo's view is unknown: import them with --view exterior, or pass --view-run RUN "
                    "(a view run picks the exterior ones)")
        raise CarscopeError(f"dataset {ds.root} has no usable photos for the '{task}' task (view_hint values: "
                            f"{views}){hint}")
    # One row per content hash: a photo listed twice (another URL, a CDN copy) counts once; a hash with two
    # different labels is ambiguous and dropped rather than guessed.
    n_labels = df.groupby("sha256")["label"].nunique()
    ambiguous = set(n_labels[n_labels > 1].index)
    counts["duplicates_merged"] = int(len(df) - df["sha256"].nunique())
    counts["ambiguous_dropped"] = len(ambiguous)
    if ambiguous:
        say(f"warning: {len(ambiguous)} photos appear under two labels; dropped")
        df = df[~df["sha256"].isin(ambiguous)]
    df = df.drop_duplicates("sha256").sort_values(["label", "sha256"]).reset_index(drop=True)
    df["year"] = df["year"].astype("Int64")
    published = df["published"].dropna()
    if len(published):
        counts["published_split"] = {str(k): int(v) for k, v in published.value_counts().sort_index().items()}
    return df[["sha256", "path", "model_id", "year", "label", "source", "published"]], counts


def split_table(df, *, val_frac: float, test_frac: float, seed: int, min_class_images: int,
                exclude: dict[str, str] | None = None) -> tuple[Any, list[str]]:
    """Stratified train/val/test split by class with a fixed seed; classes under `min_class_images` dropped.

    Rows are unique by sha256 (build_table), so no photo lands in two splits. A `published` column (the split
    a source such as Stanford Cars ships, from `carscope dataset import`) is kept: its val and test photos stay
    there, and when it has a test (or val) split no other photo is drawn into it: only the missing splits are
    carved from the rest. `exclude` (sha256 -> split) pins photos to a split (the pretraining keeps the target
    year's val/test photos out of its training)."""
    import numpy as np

    if min_class_images < 3:
        raise CarscopeError("--min-class-images must be at least 3 (one photo each for train, val and test)")
    sizes = df["label"].value_counts()
    small = sizes[sizes < min_class_images].sort_values()
    dropped = [f"{label} ({n})" for label, n in small.items()]
    if dropped:
        shown = ", ".join(dropped[:12]) + (f" and {len(dropped) - 12} more" if len(dropped) > 12 else "")
        say(f"warning: dropped {len(dropped)} classes with fewer than {min_class_images} photos: {shown}")
    df = df[~df["label"].isin(set(small.index))].copy()
    if df["label"].nunique() < 2:
        raise CarscopeError(
            f"need at least 2 classes with {min_class_images}+ photos, have {df['label'].nunique()}"
            + (f" (dropped: {', '.join(dropped[:12])})" if dropped else ""))
    df = df.reset_index(drop=True)
    published = df["published"] if "published" in df.columns else None
    pinned_pub = published.isin(["val", "test"]).fillna(False).to_numpy() if published is not None else None
    if pinned_pub is not None and pinned_pub.any():
        if (published == "test").any():
            test_frac = 0.0
        if (published == "val").any():
            val_frac = 0.0
    split = np.empty(len(df), dtype=object)
    rng = np.random.default_rng(seed)
    free = df if pinned_pub is None else df[~pinned_pub]
    for _, pos in sorted(free.groupby("label").indices.items()):
        idx = free.index.to_numpy()[pos]
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        n_test = max(1, int(round(n * test_frac))) if test_frac > 0 else 0
        n_val = max(1, int(round(n * val_frac))) if val_frac > 0 else 0
        n_val = min(n_val, max(0, n - 1))
        n_test = max(0, min(n_test, n - n_val - 1))
        split[idx[:n_val]] = "val"
        split[idx[n_val:n_val + n_test]] = "test"
        split[idx[n_val + n_test:]] = "train"
    if pinned_pub is not None and pinned_pub.any():
        split[pinned_pub] = published[pinned_pub].astype(str).to_numpy()
    df["split"] = split
    if exclude:
        pinned = df["sha256"].map(exclude)
        df.loc[pinned.notna(), "split"] = pinned[pinned.notna()]
    return df.reset_index(drop=True), dropped


# ------------------------------------------------------------------------------------------------ cache
@dataclass
class CacheRef:
    """A uint8 NHWC .npy of decoded photos and where each sha256 sits in it (rows)."""

    path: Path
    rows: Any  # numpy int64 array aligned with the table it was opened for

    def open(self):
        import numpy as np

        return np.load(self.path, mmap_mode="r")


def _decode(job):
    path, mode, spec = job
    from PIL import Image

    from carscope.train.presets import cache_eval_image, cache_train_image

    try:
        with Image.open(path) as img:
            return cache_train_image(img, spec) if mode == "train" else cache_eval_image(img, spec)
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for broken files
        return exc


def open_cache(cache_dir: Path, mode: str, spec: dict[str, Any], paths: list[str], shas: list[str], *,
               workers: int = 2, desc: str = "decode") -> tuple[CacheRef, Any]:
    """Decode `paths` once into cache_dir/<mode>-<size>.npy (or reuse it); returns (ref, ok mask).

    mode "train": squares of spec["resize"] px; mode "eval": the exact eval crop (spec["crop"] px)."""
    import numpy as np
    from tqdm import tqdm

    size = spec["resize"] if mode == "train" else spec["crop"]
    cache_dir.mkdir(parents=True, exist_ok=True)
    key = [mode, spec["resize"], spec["crop"], spec["interpolation"]]
    if mode == "eval" and spec.get("jpeg_draft"):  # other pixels than a full-size decode: another cache
        key.append("jpeg_draft")
    spec_key = hashlib.sha1(json.dumps(key).encode()).hexdigest()[:8]
    npy, index = cache_dir / f"{mode}-{size}-{spec_key}.npy", cache_dir / f"{mode}-{size}-{spec_key}.json"
    if npy.exists() and index.exists():
        meta = json.loads(index.read_text())
        where = {s: i for i, s in enumerate(meta["sha256"])}
        bad = set(meta["corrupt"])
        if all(s in where or s in bad for s in shas):
            ok = np.array([s in where for s in shas])
            rows = np.array([where.get(s, -1) for s in shas], dtype=np.int64)
            return CacheRef(npy, rows), ok
    n = len(paths)
    tmp = npy.with_name(f".{npy.name}.{os.getpid()}.tmp")
    arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(max(n, 1), size, size, 3))
    ok = np.zeros(n, dtype=bool)
    errors: list[str] = []
    # Pillow releases the GIL while it decodes and resizes, so threads decode in parallel without the
    # pickling cost of processes.
    with ThreadPoolExecutor(max(1, workers)) as pool:
        jobs = ((p, mode, spec) for p in paths)
        for i, out in enumerate(tqdm(pool.map(_decode, jobs, chunksize=1), total=n, desc=desc, leave=False,
                                     disable=True if n < 200 else None, mininterval=1.0)):
            if isinstance(out, Exception):
                errors.append(f"{paths[i]}: {type(out).__name__}")
                continue
            arr[i] = out
            ok[i] = True
    arr.flush()
    del arr
    # Rows are kept for corrupt photos too (zeros), so row i is photo i; the index says which are broken.
    os.replace(tmp, npy)
    tmp_index = index.with_name(f".{index.name}.tmp")
    tmp_index.write_text(json.dumps({"sha256": [s if good else "" for s, good in zip(shas, ok, strict=False)],
                                     "corrupt": [s for s, good in zip(shas, ok, strict=False) if not good],
                                     "size": size, "mode": mode}))
    os.replace(tmp_index, index)
    if errors:
        say(f"warning: {len(errors)} photos could not be decoded and are skipped (first: {errors[0]})")
    return CacheRef(npy, np.arange(n, dtype=np.int64)), ok


# ------------------------------------------------------------------------------------------ datasets
class TrainImages:
    """Augmented training photos from the cache. Indexed by (index, epoch): the augmentation of a photo is a
    function of (seed, epoch, index) alone, so any number of workers, DDP ranks or a --resume give the same
    batches (worker RNG streams would not survive a restart)."""

    def __init__(self, cache: CacheRef, targets, preset, seed: int):
        self.cache, self.targets, self.preset, self.seed = cache, targets, preset, seed
        self._arr = None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key):
        import numpy as np
        import torch

        index, epoch = key
        if self._arr is None:  # opened lazily, in each worker: a memmap must not be pickled (it copies)
            self._arr = self.cache.open()
        img = torch.from_numpy(np.array(self._arr[self.cache.rows[index]])).permute(2, 0, 1)  # copy: mmap is r/o
        state = torch.get_rng_state()
        # the CPU generator alone: torch.manual_seed would also reseed every CUDA generator, per photo, in the
        # training process itself under --workers 0 (and the dropout stream on the GPU with it)
        torch.default_generator.manual_seed((self.seed * 1_000_003 + epoch * 100_003 + index) % (2**63))
        try:
            img = self.preset(img)
        finally:
            torch.set_rng_state(state)  # leave the main process's stream (dropout) untouched
        return img, int(self.targets[index])


def epoch_sampler(n: int, *, world: int, rank: int, seed: int, shuffle: bool = True):
    """A DistributedSampler (also for one process) that yields (index, epoch) pairs; call .set_epoch(e)."""
    from torch.utils.data import DistributedSampler

    class _Sized:
        def __len__(self):
            return n

    class EpochTaggedSampler(DistributedSampler):
        def __iter__(self):
            epoch = self.epoch
            return ((i, epoch) for i in super().__iter__())

    return EpochTaggedSampler(_Sized(), num_replicas=world, rank=rank, shuffle=shuffle, seed=seed, drop_last=False)


def eval_batches(cache: CacheRef, targets, batch_size: int, *, rank: int = 0, world: int = 1):
    """(global indices, uint8 NCHW batch, targets) over this rank's share (every world-th photo, no padding:
    gathered results are exact)."""
    import numpy as np
    import torch

    arr = cache.open()
    mine = np.arange(rank, len(targets), world)
    for start in range(0, len(mine), batch_size):
        idx = mine[start:start + batch_size]
        x = torch.from_numpy(np.take(arr, cache.rows[idx], axis=0)).permute(0, 3, 1, 2)  # a writable copy
        yield idx, x, torch.as_tensor(np.asarray(targets)[idx], dtype=torch.long)


# ------------------------------------------------------------------------------------------ prepare
@dataclass
class Prepared:
    table: Any  # the splits table (sha256, path, label, split, source, model_id)
    labels: list[str]
    caches: dict[str, CacheRef]  # split -> cache
    targets: dict[str, Any]  # split -> int64 array
    counts: dict[str, Any] = field(default_factory=dict)

    def size(self, split: str) -> int:
        return len(self.targets[split])


def score_unknown(ds, view_run: str, *, cache_dir: Path, device, workers: int, batch_size: int = 64,
                  other: dict[str, float] | None = None, only: set[str] | None = None) -> dict[str, float]:
    """p(exterior) for every view_hint=unknown photo, by a finished view run (calibrated by its temperature).
    The photos are decoded into this run's cache (`cache_dir`): another run's directory is never written.

    When the view run has an `other` class (not a car photo) and `other` is a dict, every photo is scored and
    `other` gets sha256 -> p(other) for all of them: a gallery's logos and banners come with the page's view.
    `only` limits the scoring to those sha256s (a fold's photos)."""
    import numpy as np
    import torch

    from carscope.train import checkpoint
    from carscope.train.models import model_from_checkpoint
    from carscope.train.presets import Normalizer

    state = checkpoint.load_run(view_run, task="view")
    other_i = state["labels"].index(OTHER_LABEL) if OTHER_LABEL in state["labels"] else None
    every = other is not None and other_i is not None
    unknown = ds.images if every else ds.images[ds.images["view_hint"] == "unknown"]
    if only is not None:
        unknown = unknown[unknown["sha256"].isin(only)]
    unknown = unknown.drop_duplicates("sha256")
    hint = dict(zip(unknown["sha256"], unknown["view_hint"], strict=False))
    if len(unknown) == 0:
        return {}
    spec = state["preprocess"]
    ref, ok = open_cache(cache_dir, "eval", spec, [str(ds.root / p) for p in unknown["path"]],
                         list(unknown["sha256"]), workers=workers, desc="view-run decode")
    model = model_from_checkpoint(state).to(device)
    norm = Normalizer(spec["mean"], spec["std"], device)
    ext = state["labels"].index("exterior")
    shas = np.asarray(unknown["sha256"])
    out: dict[str, float] = {}
    with torch.inference_mode():
        for idx, x, _ in eval_batches(ref, np.zeros(len(shas), dtype=np.int64), batch_size):
            probs = torch.softmax(model(norm(x.to(device))).float() / state["temperature"], dim=1).cpu()
            for i, row in zip(idx, probs.tolist(), strict=False):
                if ok[i]:
                    if hint[shas[i]] == "unknown":
                        out[shas[i]] = float(row[ext])
                    if every:
                        other[shas[i]] = float(row[other_i])
    return out


def add_negatives(table, run_dir: Path, count: int, *, seed: int, photos: list[str], size: int = 256,
                  workers: int = 2):
    """The view table plus `count` synthetic not-a-car images (carscope/train/negatives.py) labelled `other`, written
    under RUN/negatives/ (absolute paths in splits.parquet, so export finds them without the dataset)."""
    import pandas as pd

    from carscope.train.negatives import write_negatives

    drawn = write_negatives(run_dir / "negatives", count, seed=seed, size=size, photos=photos, threads=workers)
    rows = pd.DataFrame({"sha256": [s for s, _ in drawn], "path": [str(Path(p).resolve()) for _, p in drawn]})
    rows = rows.drop_duplicates("sha256")
    rows = rows.assign(model_id=pd.NA, year=pd.NA, label=OTHER_LABEL, source="negative",
                       published=pd.Series(pd.NA, index=rows.index, dtype="string"))
    out = pd.concat([table, rows[table.columns]], ignore_index=True)
    out["year"] = out["year"].astype("Int64")
    return out.sort_values(["label", "sha256"]).reset_index(drop=True), len(rows)


def prepare(ds, *, task: str, run_dir: Path, cache_dir: Path, spec: dict[str, Any], args, device,
            label_mode: str = "model_year", years: str = "target", exclude: dict[str, str] | None = None
            ) -> Prepared:
    """Build the table, split it, decode the caches, write splits.parquet (rank 0 only)."""
    from carscope.crawler.dataset import write_table

    view_scores, other_scores = None, {}
    if task == "model" and getattr(args, "view_run", None):
        view_scores = score_unknown(ds, args.view_run, cache_dir=cache_dir / "view-run", device=device,
                                    workers=args.workers or 2, other=other_scores)
    table, counts = build_table(ds, task, target_year=getattr(args, "target_year", None), label_mode=label_mode,
                                view_scores=view_scores, view_threshold=getattr(args, "view_threshold", 0.9),
                                years=years, other_scores=other_scores)
    negatives = getattr(args, "negatives", 0)
    if task == "view" and negatives:
        if negatives < 0:  # auto: a quarter of the labelled photos
            negatives = min(MAX_NEGATIVES, max(MIN_NEGATIVES, round(0.25 * len(table))))
        sample = table.sample(n=min(len(table), 256), random_state=args.seed)["path"]
        table, n = add_negatives(table, run_dir, negatives, seed=args.seed,
                                 photos=[str(ds.root / p) for p in sample], workers=args.workers or 2)
        counts["sources"]["negative"] = n
        say(f"{n} synthetic not-a-car images as class '{OTHER_LABEL}' (--negatives)")
    table, dropped = split_table(table, val_frac=args.val_frac, test_frac=args.test_frac, seed=args.seed,
                                 min_class_images=args.min_class_images, exclude=exclude)
    counts["dropped_classes"] = dropped
    corrupt = 0
    keep = []
    for mode, splits in (("train", ["train"]), ("eval", ["val", "test"])):
        part = table[table["split"].isin(splits)]
        if len(part) == 0:
            continue
        _, ok = open_cache(cache_dir, mode, spec, [str(ds.root / p) for p in part["path"]],
                           list(part["sha256"]), workers=args.workers or 2, desc=f"decode {mode}")
        corrupt += int((~ok).sum())
        keep.append(part[ok])
    import pandas as pd

    table = pd.concat(keep).sort_values(["split", "label", "sha256"]).reset_index(drop=True)
    counts["corrupt_skipped"] = corrupt
    write_table(table, run_dir / SPLITS_FILE, columns=None)
    return load_prepared(run_dir, cache_dir, spec, ds.root, counts, workers=args.workers or 2)


def load_prepared(run_dir: Path, cache_dir: Path, spec: dict[str, Any], data_root: Path,
                  counts: dict[str, Any] | None = None, *, workers: int = 2,
                  labels: list[str] | None = None) -> Prepared:
    """The splits of a prepared run with their caches (decoding again only if the cache is gone)."""
    import numpy as np
    import pandas as pd

    table = pd.read_parquet(run_dir / SPLITS_FILE)
    labels = labels or sorted(table.loc[table["split"] == "train", "label"].unique())
    table = table[table["label"].isin(set(labels))].reset_index(drop=True)
    index = {label: i for i, label in enumerate(labels)}
    caches, targets = {}, {}
    for mode, splits in (("train", ["train"]), ("eval", ["val", "test"])):
        part = table[table["split"].isin(splits)]
        if len(part) == 0:
            continue
        ref, ok = open_cache(cache_dir, mode, spec, [str(Path(data_root) / p) for p in part["path"]],
                             list(part["sha256"]), workers=workers, desc=f"decode {mode}")
        if not ok.all():  # photos that decoded at prepare time and no longer do: the dataset changed under us
            raise CarscopeError(f"{run_dir}/{SPLITS_FILE} lists photos that no longer decode")
        for split in splits:
            mask = (part["split"] == split).to_numpy()
            caches[split] = CacheRef(ref.path, ref.rows[mask])
            targets[split] = np.array([index[lab] for lab in part.loc[mask, "label"]], dtype=np.int64)
    for split in SPLITS:
        targets.setdefault(split, np.zeros(0, dtype=np.int64))
        caches.setdefault(split, None)
    return Prepared(table=table, labels=labels, caches=caches, targets=targets, counts=counts or {})
