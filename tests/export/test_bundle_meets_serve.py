"""A bundle as export really writes it (not a hand-written bundle.json) is served: serve verifies it, loads every
variant export validated, and answers with the classes and specs the export recorded. Fast: the tiny export the
export tests share."""

from __future__ import annotations

import io
import json

from PIL import Image

from carscope.export.bundle import load as load_bundle
from carscope.serve.app import create_app
from carscope.serve.predictor import REASONS


def _jpeg(size=(96, 72), colour=(180, 40, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, "JPEG")
    return buf.getvalue()


def test_exports_real_bundle_is_served(bundle):
    out, _logs = bundle
    meta = json.loads((out / "bundle.json").read_text())
    exported = load_bundle(out)
    for variant in ("auto", "fp32", *sorted(exported.models["model"].variants())):
        if variant == "fp16":
            continue  # needs the CUDA provider
        app = create_app(out, {"providers": "cpu", "variant": variant, "min_confidence": 0.0})
        client = app.test_client()
        assert client.get("/readyz").status_code == 200
        resp = client.post("/api/v1/predict", data={"image": (io.BytesIO(_jpeg()), "car.jpg")},
                           content_type="multipart/form-data")
        assert resp.status_code == 200, resp.get_json()
        body = resp.get_json()
        labels = meta["models"]["model"]["labels"]
        assert body["model"]["top"][0]["label"] in labels and len(body["model"]["top"]) == min(5, len(labels))
        assert body["view"]["label"] in meta["models"]["view"]["labels"]
        if body["model"]["level"] == "model_year":
            assert body["specs"]["model_id"] == body["model"]["prediction"]["label"]  # the exported specs table
        elif body["model"]["sure"]:  # a model-year export found indistinguishable: its model and years
            assert body["model"]["level"] == "model" and body["specs_range"] is not None
        else:  # a flat red frame is rightly refused by the OOD check or the view's `other` class
            assert body["model"]["reason"] in REASONS and body["specs"] is None
        models = client.get("/api/v1/models").get_json()
        assert models["models"]["model"]["labels"] == labels
        running = models["serving"]["variants"]["model"]  # the export the model classifier runs
        assert running == (variant if variant != "auto" else running) and running in ("fp32", "int8")
        # the OOD check export fitted is the one served: the variant's own threshold, a score from its features
        ood = meta["models"]["model"]["ood"]
        own = (ood.get("variants") or {}).get(running, {}).get("threshold", ood["threshold"])
        assert body["ood"]["checked"] is True and body["ood"]["method"] == ood["method"]
        assert body["ood"]["threshold"] == own and isinstance(body["ood"]["score"], float)
        assert body["ood"]["unfamiliar"] == (body["ood"]["score"] > own)
        unknown = (ood.get("variants") or {}).get(running, {}).get("unknown_threshold", ood["unknown_threshold"])
        assert body["ood"]["unknown_threshold"] == unknown <= own
        assert body["ood"]["unknown_model"] == (unknown < body["ood"]["score"] <= own)


def test_serve_reads_the_specs_without_pandas(bundle):
    """export writes the specs rows as JSON too; a serving process answers with them and never imports pandas or
    pyarrow (about 75 MB of RSS per process), and they equal the parquet's rows."""
    import json
    import subprocess
    import sys

    import pandas as pd

    out, _ = bundle
    meta = json.loads((out / "bundle.json").read_text())
    assert meta["specs_json"] == "specs.json"
    rows = json.loads((out / "specs.json").read_text())
    parquet = pd.read_parquet(out / "specs.parquet")
    assert [r["model_id"] for r in rows] == parquet["model_id"].astype(str).tolist()
    code = ("import io, sys; from PIL import Image; from carscope.serve.app import create_app; "
            f"app = create_app({str(out)!r}, {{'providers': 'cpu'}}); buf = io.BytesIO(); "
            "Image.new('RGB', (64, 48), (200, 30, 30)).save(buf, 'JPEG'); "
            "r = app.test_client().post('/api/v1/predict', data={'image': (io.BytesIO(buf.getvalue()), 'a.jpg')}, "
            "content_type='multipart/form-data'); assert r.status_code == 200, r.data; "
            "app.extensions['carscope'].close(); "
            "print(sorted(m for m in ('pandas', 'pyarrow') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"
