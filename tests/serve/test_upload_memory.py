"""Uploads are decoded in memory and never written to disk: during a request nothing is opened for writing and
no temporary file is made, even for an upload of several megabytes (where Werkzeug's own parser would spool to a
temporary file)."""

from __future__ import annotations

import builtins
import io
import os
import tempfile

import numpy as np
from PIL import Image

from carscope.serve.app import create_app


def _big_png(side: int = 1400) -> bytes:
    rng = np.random.default_rng(0)  # noise: a PNG that does not compress, several MB
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (side, side, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def test_an_upload_never_touches_the_disk(bundle_dir, monkeypatch):
    app = create_app(bundle_dir, {"providers": "cpu", "max_upload_mb": 20})
    client = app.test_client()
    data = _big_png()
    assert len(data) > 4 * 2**20
    boundary = "carscopeuploadtest"  # the body made here: the test client would spool a large one to a temp file
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
    writes: list[str] = []
    real_open, real_os_open = builtins.open, os.open

    def watched_open(file, mode="r", *a, **k):
        if any(c in mode for c in "wax+"):
            writes.append(f"open({file!r}, {mode!r})")
        return real_open(file, mode, *a, **k)

    def watched_os_open(path, flags, *a, **k):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT):
            writes.append(f"os.open({path!r})")
        return real_os_open(path, flags, *a, **k)

    with monkeypatch.context() as m:
        m.setattr(builtins, "open", watched_open)
        m.setattr(os, "open", watched_os_open)
        for name in ("TemporaryFile", "NamedTemporaryFile", "SpooledTemporaryFile", "mkstemp"):
            m.setattr(tempfile, name, lambda *a, _n=name, **k: writes.append(f"tempfile.{_n}") or
                      (_ for _ in ()).throw(AssertionError(f"tempfile.{_n} during an upload")))
        resp = client.post("/api/v1/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert resp.status_code == 200, resp.get_json()
    assert writes == []
