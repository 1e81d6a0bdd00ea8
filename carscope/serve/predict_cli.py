"""`carscope predict`: a bundle's answers for a folder of photos, without a server, one row per photo.

    carscope predict --bundle demo-work/bundle photos/ --out predictions.csv
    carscope predict --bundle bundle car.jpg other.png           # JSON lines on stdout

Each photo goes through the Predictor that `carscope serve` runs (decode, preprocessing, micro-batched onnxruntime,
calibrated top-k, specs), from --jobs threads at once so that batches form as they do under load. The answers are
the API's, and so are the refusals: a photo the server would refuse (not an image, corrupt, a decompression bomb,
absurd dimensions) becomes a row with the API's error code, and the run goes on. A directory is searched
recursively for image files by suffix; a file named on the command line is always read.

The output format follows --out's suffix: .jsonl (the default, `-` is stdout), .csv or .parquet. A file is written
under a temporary name and renamed at the end, so an interrupted run leaves no half-written file.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from carscope.serve.rows import predict_rows, row_for

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp", ".tif", ".tiff", ".mpo")
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


def add_parser(sub) -> None:
    p = sub.add_parser("predict", help="a bundle's answers for photos or folders of photos, without a server",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", required=True, help="bundle directory written by `carscope export`")
    p.add_argument("paths", nargs="+", metavar="PATH", help="photos, or directories searched recursively for them")
    p.add_argument("--out", default="-",
                   help="output file: .jsonl, .csv or .parquet; - for JSON lines on stdout (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    p.add_argument("--jobs", type=int, default=16,
                   help="photos in flight at once; their model calls are batched together (default: %(default)s)")
    p.add_argument("--providers", choices=("auto", "cpu", "cuda"), default="auto",
                   help="onnxruntime providers; auto = CUDA when usable, else CPU (default: %(default)s)")
    p.add_argument("--variant", choices=("auto", "fp32", "int8", "fp16"), default="auto",
                   help="which export of the models to run, as for serve (default: %(default)s)")
    p.add_argument("--max-batch", type=int, default=16, help="largest batch of one model call (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=5, help="candidates per photo (default: %(default)s)")
    p.add_argument("--min-confidence", type=float, default=0.5,
                   help="calibrated top-1 confidence under which a row says sure=false (default: %(default)s)")
    g = p.add_argument_group("ray (--engine ray: carscope/serve/predict_ray.py; pip install 'carscope[ray]')")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: this process; ray: a pool of Ray actors, here or on a cluster (default: %(default)s)")
    g.add_argument("--ray-address", default=None,
                   help="a Ray cluster to join (e.g. auto, ray://host:10001); default: start a local Ray")
    g.add_argument("--actors", type=int, default=None, help="Ray actors, each with a loaded bundle (default: 1 "
                   "per 2 CPUs of the local Ray, at least 1)")
    g.add_argument("--actor-cpus", type=float, default=None,
                   help="CPUs each actor claims, fractions allowed (default: what leaves half a CPU for Ray Data)")


def find_photos(paths: list[str]) -> list[Path]:
    """The files named, and the image files under the directories named (sorted), each once, in that order."""
    from carscope.common.errors import CarscopeError

    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()))
        elif path.is_file():
            found.append(path)
        else:
            raise CarscopeError(f"{raw} is neither a file nor a directory")
    unique = list(dict.fromkeys(found))
    if not unique:
        raise CarscopeError(f"no photos ({', '.join(IMAGE_SUFFIXES)}) under {', '.join(paths)}")
    return unique


def output_format(out: str, overwrite: bool) -> str:
    from carscope.common.errors import CarscopeError

    if out == "-":
        return "jsonl"
    fmt = FORMATS.get(Path(out).suffix.lower())
    if fmt is None:
        raise CarscopeError(f"--out {out}: the suffix must be one of {', '.join(FORMATS)} (or - for stdout)")
    if Path(out).exists() and not overwrite:
        raise CarscopeError(f"{out} exists; pass --overwrite to replace it")
    if not Path(out).resolve().parent.is_dir():
        raise CarscopeError(f"--out {out}: the directory {Path(out).parent} does not exist")
    return fmt


class _Writer:
    """Rows to JSON lines, CSV or parquet, in a temporary file renamed into place by commit()."""

    def __init__(self, out: str, fmt: str, columns: list[str]):
        import sys
        import tempfile

        self.out, self.fmt, self.columns = out, fmt, columns
        self.rows: list[dict] = []  # parquet is written in one go at the end
        if out == "-":
            self.tmp, self.fh = None, sys.stdout
        else:
            fd, self.tmp = tempfile.mkstemp(prefix=".carscope-predict-", suffix=".tmp", dir=Path(out).resolve().parent)
            self.fh = os.fdopen(fd, "w", encoding="utf-8", newline="") if fmt != "parquet" else os.fdopen(fd, "wb")
        if fmt == "csv":
            import csv

            self.csv = csv.DictWriter(self.fh, fieldnames=columns)
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.fmt == "jsonl":
            import json

            self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        elif self.fmt == "csv":
            self.csv.writerow(row)
        else:
            self.rows.append(row)

    def commit(self) -> None:

        if self.fmt == "parquet":
            import pandas as pd

            pd.DataFrame(self.rows, columns=self.columns).to_parquet(self.fh, index=False)
        self.fh.flush()
        if self.tmp is not None:
            os.fsync(self.fh.fileno())
            self.fh.close()
            os.replace(self.tmp, self.out)
            self.tmp = None

    def discard(self) -> None:

        if self.tmp is not None:
            self.fh.close()
            os.unlink(self.tmp)
            self.tmp = None


def run(args) -> int:
    import logging
    import sys
    import time
    from collections import Counter
    from contextlib import closing

    from tqdm import tqdm

    from carscope.common.errors import CarscopeError
    from carscope.serve.api import load

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="carscope predict: %(message)s")
    if not 1 <= args.jobs <= 256:
        raise CarscopeError(f"--jobs must be between 1 and 256, not {args.jobs}")
    fmt = output_format(args.out, args.overwrite)
    photos = find_photos(args.paths)
    options = {"providers": args.providers, "variant": args.variant, "max_batch": args.max_batch,
               "min_confidence": args.min_confidence, "top_k": args.top_k}
    # the Python API's Recognizer: the app's Predictor, loaded and warm; the bundle and its sha256s are checked
    # here (with --engine ray too: a bad bundle stops before Ray starts). No request timeout to speak of: offline,
    # a photo waits for its batch however slow the machine.
    recognizer = load(args.bundle, **options)
    config = recognizer.config
    columns = list(row_for(Path(), None, None, config.top_k))
    ray = getattr(args, "engine", "local") == "ray"
    if ray:  # the bundle is checked; each Ray actor loads its own
        recognizer.close()
    writer = _Writer(args.out, fmt, columns)

    def local_rows():
        with closing(predict_rows(recognizer, photos, args.jobs)) as answers:  # closed: its threads stop at once
            for path, result, error in answers:
                yield row_for(path, result, error, config.top_k)

    t0 = time.perf_counter()
    refused: Counter = Counter()
    reasons: Counter = Counter()
    sure = 0
    try:
        with tqdm(total=len(photos), unit="photo", desc="predict", disable=None, file=sys.stderr) as bar, \
                closing(_ray_rows(args, photos, options) if ray else local_rows()) as rows:
            for row in rows:  # closed on the way out: the threads (or Ray) stop at once
                writer.write(row)
                if not row["ok"]:
                    refused[row["error_code"]] += 1
                sure += bool(row["sure"])
                if row["reason"]:
                    reasons[row["reason"]] += 1
                bar.update()
        writer.commit()
    except BaseException:
        writer.discard()
        raise
    finally:
        if not ray:
            recognizer.close()
    seconds = time.perf_counter() - t0
    answered = len(photos) - sum(refused.values())
    why = f" ({', '.join(f'{code} {n}' for code, n in refused.most_common())})" if refused else ""
    dest = "" if args.out == "-" else f" -> {args.out}"
    unsure = f"; not sure: {', '.join(f'{r} {n}' for r, n in reasons.most_common())}" if reasons else ""
    print(f"predict: {len(photos)} photos in {seconds:.1f} s ({len(photos) / seconds:.0f}/s): {answered} answered "
          f"({sure} sure{unsure}), {sum(refused.values())} refused{why}{dest}", file=sys.stderr)
    return 0


def _ray_rows(args, photos: list[Path], options: dict):
    from carscope.serve.predict_ray import ray_rows

    return ray_rows(args.bundle, photos, options, actors=args.actors, actor_cpus=args.actor_cpus, jobs=args.jobs,
                    address=args.ray_address)
