"""What serve says about photos it should not answer: the reason codes and their order, a bundle made before the
OOD check, the page, and an upload part without a filename (curl -F image=<photo.jpg)."""

from __future__ import annotations

import numpy as np
import pytest

from carscope.serve.predictor import NO_OOD_NOTE, NOT_A_CAR_NOTE, REASONS
from tests.serve.test_app import upload
from tests.serve.tinybundle import EXPECTED, photo


def test_a_bundle_without_an_ood_check_still_serves_and_says_so(client):
    """The tiny bundle is written the way bundles were before the OOD check (no "ood", two view labels)."""
    j = upload(client, photo("red")).get_json()
    assert j["model"]["sure"] is True and j["model"]["reason"] is None
    assert j["ood"] == {"checked": False, "method": None, "score": None, "threshold": None, "unfamiliar": None}
    assert NO_OOD_NOTE in j["notes"] and j["view"]["not_a_car"] is False
    models = client.get("/api/v1/models").get_json()
    assert models["ood"]["checked"] is False and models["not_a_car_class"] is False


class _Scorer:
    def __init__(self, value):
        self.value = value

    def score(self, feats):
        return np.full(len(feats), self.value)


@pytest.fixture
def predictor(app):
    return app.extensions["carscope"]


def _answer(predictor, monkeypatch, *, view, conf, score, threshold=1.0, unknown=None):
    """Predictor._answer for a three-class view model and an OOD check with `threshold`, on chosen logits."""
    monkeypatch.setattr(predictor, "view_labels", ["exterior", "interior", "other"])
    monkeypatch.setattr(predictor, "interior_index", 1)
    monkeypatch.setattr(predictor, "other_index", 2)
    monkeypatch.setattr(predictor, "ood_scorer", _Scorer(score))
    monkeypatch.setattr(predictor, "ood_meta", {"method": "mahalanobis"})
    monkeypatch.setattr(predictor, "ood_threshold", lambda: threshold)
    monkeypatch.setattr(predictor, "unknown_threshold", lambda: unknown)
    monkeypatch.setattr(predictor.engine.models["view"], "temperature", 1.0)
    monkeypatch.setattr(predictor.engine.models["model"], "temperature", 1.0)
    view_logits = np.full(3, -10.0)
    view_logits[["exterior", "interior", "other"].index(view)] = 10.0
    n = len(predictor.labels)
    # top-1 probability `conf`: logit gap log(conf * (n - 1) / (1 - conf)) over the other n - 1 equal logits
    model_logits = np.zeros(n)
    model_logits[0] = np.log(conf * (n - 1) / (1 - conf))
    return predictor._answer(view_logits, model_logits, score)


@pytest.mark.parametrize("view,conf,score,reason", [
    ("exterior", 0.9, 0.5, None),  # sure
    ("other", 0.9, 0.5, "not_a_car"),  # the view classifier first...
    ("other", 0.9, 5.0, "not_a_car"),
    ("exterior", 0.99, 5.0, "unfamiliar"),  # ...then the OOD score, however confident the classifier is
    ("interior", 0.99, 5.0, "unfamiliar"),
    ("interior", 0.99, 0.5, "interior"),  # an interior photo is never sure of a model-year
    ("exterior", 0.3, 0.5, "low_confidence"),
    ("exterior", 0.9, 1.0, "unknown_model"),  # at the OOD threshold is not unfamiliar; over the unknown one
    ("exterior", 0.99, 0.8, "unknown_model"),  # a car, but over the unknown-model threshold (0.7 here)...
    ("interior", 0.99, 0.8, "interior"),  # ...only after the view's verdict
    ("other", 0.99, 0.8, "not_a_car"),
    ("exterior", 0.99, 0.7, None),  # at the unknown-model threshold is a known model
])
def test_reason_codes_in_order(predictor, monkeypatch, view, conf, score, reason):
    a = _answer(predictor, monkeypatch, view=view, conf=conf, score=score, unknown=0.7)
    assert a["model"]["reason"] == reason and a["model"]["sure"] is (reason is None)
    assert reason is None or reason in REASONS
    assert a["ood"] == {"checked": True, "method": "mahalanobis", "score": score, "threshold": 1.0,
                        "unfamiliar": score > 1.0, "unknown_threshold": 0.7,
                        "unknown_model": 0.7 < score <= 1.0}
    if reason is None:
        assert a["model"]["prediction"] is not None and a["specs"] is not None
    else:
        assert a["model"]["prediction"] is None and a["specs"] is None and a["thumbs"] == {}
        assert len(a["model"]["top"]) == 5  # the guesses are still listed, as guesses
    assert (NOT_A_CAR_NOTE in a["notes"]) is (reason == "not_a_car")
    assert a["view"]["not_a_car"] is (view == "other")


def test_the_page_says_it_does_not_look_like_a_car_photo(app, predictor, monkeypatch):
    """The page of a refused photo: plain words, the guesses as guesses, no specification table."""
    import copy

    refused = _answer(predictor, monkeypatch, view="other", conf=0.95, score=3.0)
    monkeypatch.setattr(predictor, "_answer", lambda *a: copy.deepcopy(refused))
    html = upload(app.test_client(), photo("red"), path="/").get_data(as_text=True)
    assert "This does not look like a car photo the model knows" in html
    assert "Guesses only (not an answer)" in html and '<table class="specs">' not in html
    assert "Not a car photo" in html and 'data-reason="not_a_car"' in html


def _multipart(parts: list[tuple[str, str | None, bytes]], boundary: str = "b0undary") -> tuple[bytes, str]:
    body = b""
    for name, filename, data in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + data + b"\r\n"
    return body + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_an_image_part_without_a_filename_is_the_photo(client):
    """`curl -F image=<car.jpg` sends the photo as a form value with no filename: it is still the photo, its bytes
    unchanged (not decoded as text)."""
    body, ctype = _multipart([("image", None, photo("blue"))])
    r = client.post("/api/v1/predict", data=body, content_type=ctype)
    assert r.status_code == 200, r.get_json()
    assert r.get_json()["model"]["prediction"]["label"] == EXPECTED["blue"]
    page = client.post("/", data=body, content_type=ctype)
    assert page.status_code == 200 and "no photo was sent" not in page.get_data(as_text=True)
    # another field without a filename is still a form field, not a photo
    body, ctype = _multipart([("note", None, b"hello")])
    r = client.post("/api/v1/predict", data=body, content_type=ctype)
    assert r.status_code == 400 and r.get_json()["error"]["code"] == "no_file"


def test_openapi_documents_the_reasons(client):
    spec = client.get("/api/v1/openapi.json").get_json()
    pred = spec["components"]["schemas"]["Prediction"]["properties"]
    assert set(REASONS) <= set(pred["model"]["properties"]["reason"]["enum"])
    assert {"score", "threshold", "checked"} <= set(pred["ood"]["properties"])
    assert "other" in pred["view"]["properties"]["label"]["enum"]
