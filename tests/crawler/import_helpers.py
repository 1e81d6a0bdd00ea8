"""Sources for the `carscope dataset import` tests: a photo server on loopback, manifests, an image parquet."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.datasets import tiny_photos


@contextlib.contextmanager
def photo_server(photos: dict[str, bytes], *, delay_s: float = 0.0, robots: str = "User-agent: *\nAllow: /\n"):
    """A threaded HTTP server on 127.0.0.1:0 serving `photos` (path -> bytes), robots.txt, 404 otherwise.
    Yields (base URL, request log); always shut down."""
    log: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the http.server API
            log.append(self.path)
            if self.path == "/robots.txt":
                body, ctype = robots.encode(), "text/plain"
            elif self.path in photos:
                if delay_s:
                    time.sleep(delay_s)
                body, ctype = photos[self.path], "image/jpeg"
            else:
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def class_parts(c: int) -> tuple[str, str, int]:
    return f"Make{c}", f"Model {c}", 2023


def write_manifest(root: Path, base_url: str | None, *, n_classes: int = 3, per_class: int = 8,
                   interior_per_class: int = 4, url_every: int = 2) -> tuple[Path, dict[str, bytes]]:
    """manifest.csv: every `url_every`-th photo by URL (served from `photos`), the others as relative paths;
    make / model / year / view columns and a horsepower spec. Returns (manifest, photos to serve)."""
    import csv

    root.mkdir(parents=True, exist_ok=True)
    (root / "files").mkdir(exist_ok=True)
    served: dict[str, bytes] = {}
    rows = []
    for i, (c, view, data) in enumerate(tiny_photos(n_classes, per_class, interior_per_class=interior_per_class)):
        make, model, year = class_parts(c)
        name = f"p{i:04d}.jpg"
        if base_url is not None and i % url_every == 0:
            served[f"/img/{name}"] = data
            where = {"path": "", "url": f"{base_url}/img/{name}"}
        else:
            (root / "files" / name).write_bytes(data)
            where = {"path": f"files/{name}", "url": ""}
        rows.append({**where, "make": make, "model": model, "year": year, "view": view,
                     "horsepower": 150 + 10 * c})
    path = root / "manifest.csv"
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "url", "make", "model", "year", "view", "horsepower"])
        w.writeheader()
        w.writerows(rows)
    return path, served


def write_hf_parquet(root: Path, *, n_classes: int = 3, per_class: int = 8, interior_per_class: int = 4,
                     test_every: int = 5, extra_rows: list[dict] | None = None) -> Path:
    """ROOT/data/{train,test}-00000-of-00001.parquet in the Hugging Face datasets layout: image struct
    (bytes, path), a ClassLabel `label` ("Make0 Model 0 2023"), a `view` string column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = [" ".join(map(str, class_parts(c))) for c in range(n_classes)]
    parts: dict[str, list[dict]] = {"train": [], "test": []}
    counts: dict[int, int] = {}
    for c, view, data in tiny_photos(n_classes, per_class, interior_per_class=interior_per_class):
        n = counts[c] = counts.get(c, 0) + 1
        split = "test" if n % test_every == 0 else "train"
        parts[split].append({"image": {"bytes": data, "path": None}, "label": c, "view": view})
    parts["train"] += extra_rows or []
    features = {"image": {"_type": "Image"}, "label": {"_type": "ClassLabel", "names": names},
                "view": {"dtype": "string", "_type": "Value"}}
    meta = {b"huggingface": json.dumps({"info": {"features": features}}).encode()}
    schema = pa.schema([("image", pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
                        ("label", pa.int64()), ("view", pa.string())], metadata=meta)
    out = root / "data"
    out.mkdir(parents=True, exist_ok=True)
    for split, rows in parts.items():
        table = pa.Table.from_pylist(rows, schema=schema)
        pq.write_table(table, out / f"{split}-00000-of-00001.parquet", row_group_size=16)
    return root
