"""The Python API (carscope/serve/api.py, docs/python.md): `carscope.load(bundle).predict(...)` answers as the app
does, from every kind of input, light to import, and the guide's example runs.

    .venv/bin/python -m pytest -q tests/serve/test_api.py
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import carscope
from carscope.common.errors import CarscopeError
from carscope.serve.api import Answer, PhotoRejected
from tests.serve.test_app import upload
from tests.serve.tinybundle import EXPECTED, make_tiny_bundle, photo

ROOT = Path(__file__).resolve().parents[2]
VOLATILE = ("timings_ms", "batch_size", "thumbs")  # per request; thumbnails are URLs in the app, files here


@pytest.fixture(scope="module")
def rec(bundle_dir):
    r = carscope.load(bundle_dir, providers="cpu", threads=1)
    yield r
    r.close()


def _stable(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in VOLATILE}


@pytest.mark.parametrize("colour", ["red", "blue", "grey", "dark", (140, 120, 100)])
def test_the_answer_equals_the_apps(rec, client, colour):
    data = photo(colour)
    answer = rec.predict(data)
    assert isinstance(answer, Answer)
    assert _stable(answer.to_dict()) == _stable(upload(client, data).get_json())
    assert answer.sure == answer.to_dict()["model"]["sure"] and answer.top[0].label == answer.raw["model"]["top"][0]["label"]


def test_paths_bytes_pil_and_arrays_give_the_same_answer(rec, tmp_path):
    from PIL import Image

    data = photo("red", fmt="PNG")
    path = tmp_path / "red.png"
    path.write_bytes(data)
    image = Image.open(io.BytesIO(data)).convert("RGB")
    answers = [rec.predict(x) for x in (str(path), path, data, image, np.asarray(image))]
    assert {(tuple(a.labels), a.level) for a in answers} == {((EXPECTED["red"],), "model_year")}
    probs = [a.top[0].confidence for a in answers]
    assert max(probs) - min(probs) < 1e-6  # the same pixels every way
    assert answers[0].name == "2023 Acme Roadster" and answers[0].specs["model_id"] == EXPECTED["red"]
    assert all(Path(p).is_file() for p in answers[0].to_dict()["thumbs"]["exterior"])  # files, in the bundle
    assert str(answers[0]).startswith("2023 Acme Roadster (model_year,")


def test_batches_keep_order_and_rejected_photos_say_why(rec):
    answers = rec.predict_batch([photo("red"), photo("blue"), photo("red")], jobs=3)
    assert [a.labels for a in answers] == [[EXPECTED["red"]], [EXPECTED["blue"]], [EXPECTED["red"]]]
    with pytest.raises(PhotoRejected) as err:
        rec.predict(b"this is not an image")
    assert err.value.code == "not_an_image" and err.value.status == 415
    mixed = rec.predict_batch([photo("red"), b""], errors="return")
    assert isinstance(mixed[0], Answer) and isinstance(mixed[1], PhotoRejected) and mixed[1].code == "empty_file"
    with pytest.raises(CarscopeError, match="uint8"):
        rec.predict(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(CarscopeError, match="cannot read"):
        rec.predict("/nonexistent/car.jpg")


def test_a_tampered_bundle_is_refused_at_load(tmp_path):
    root = make_tiny_bundle(tmp_path / "b")
    (root / "model.onnx").write_bytes((root / "model.onnx").read_bytes() + b"x")
    with pytest.raises(CarscopeError, match="sha256"):
        carscope.load(root)


def test_import_is_light():
    code = ("import sys, carscope, carscope.serve.api; "
            "print(sorted(m for m in ('torch', 'onnxruntime', 'flask', 'numpy', 'PIL', 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_guides_example_runs(bundle_dir, tmp_path, capsys):
    """docs/python.md's example, run as written on the tiny bundle and a photo of its first class."""
    block = re.search(r"```python\n(.*?)```", (ROOT / "docs" / "python.md").read_text(), re.S).group(1)
    path = tmp_path / "car.jpg"
    path.write_bytes(photo("red"))
    exec(compile(block, "docs/python.md", "exec"), {"BUNDLE": str(bundle_dir), "PHOTO": str(path)})
    out = capsys.readouterr().out
    assert "2023 Acme Roadster (model_year," in out and "exterior" in out
