"""The Flask app through app.test_client(): pages, API, ops routes, every bad-input class, security."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest

from carscope.common.errors import CarscopeError
from carscope.serve.predictor import INTERIOR_NOTE
from tests.serve import images
from tests.serve.tinybundle import CLASSES, EXPECTED, LABELS, TEMPERATURE, photo


def upload(client, data: bytes, path: str = "/api/v1/predict", field: str = "image", filename: str = "car.jpg"):
    return client.post(path, data={field: (io.BytesIO(data), filename)}, content_type="multipart/form-data")


def error_of(resp):
    body = resp.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}
    return body["error"]["code"]


# -- API: right answers -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("colour", sorted(EXPECTED))
def test_predict_is_correct(client, colour):
    r = upload(client, photo(colour, seed=3))
    assert r.status_code == 200 and r.mimetype == "application/json"
    j = r.get_json()
    assert j["model"]["sure"] is True
    assert j["model"]["prediction"]["label"] == EXPECTED[colour]
    assert j["view"] == {**j["view"], "label": "exterior", "interior": False}
    top = j["model"]["top"]
    assert len(top) == 5 and [t["confidence"] for t in top] == sorted((t["confidence"] for t in top), reverse=True)
    assert sum(t["confidence"] for t in top) == pytest.approx(1.0)  # 5 classes: top-5 is everything
    assert j["specs"]["model_id"] == EXPECTED[colour]
    assert set(j["timings_ms"]) >= {"decode", "preprocess", "queue", "inference", "total"}
    assert j["thumbs"]["exterior"] == [f"/bundle/thumbs/{EXPECTED[colour]}/exterior_0.jpg"]


def test_specs_and_names_come_from_the_bundle(client):
    j = upload(client, photo("red")).get_json()
    assert j["model"]["prediction"]["name"] == "2023 Acme Roadster"
    assert j["specs"]["msrp_usd"] == 34500 and j["specs"]["make"] == "Acme"
    j = upload(client, photo("magenta")).get_json()
    assert j["specs"]["drivetrain"] is None and j["specs"]["horsepower"] is None  # <NA> -> null, not NaN


def test_confidences_are_calibrated_softmax(app, client, bundle_dir):
    """The API's confidence is softmax(logits / T) with the bundle's temperature (T = 2 here), of the logits of
    the graph it serves (int8 here, chosen on the CPU: a real QDQ graph whose logits differ from fp32's)."""
    import onnxruntime as ort
    from PIL import Image

    from carscope.serve.preprocess import Preprocessor
    from tests.serve.tinybundle import SPEC

    data = photo((200, 110, 40), seed=1)  # orange
    x = Preprocessor(SPEC)(Image.open(io.BytesIO(data)).convert("RGB"))[None]
    served = app.extensions["carscope"].engine.describe()["variants"]["model"]
    assert served == "int8"
    sess = ort.InferenceSession(str(bundle_dir / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    logits = sess.run(None, {"input": x})[0][0].astype(np.float64)
    p = np.exp(logits / TEMPERATURE - (logits / TEMPERATURE).max())
    p /= p.sum()
    top = upload(client, data).get_json()["model"]["top"]
    got = {t["label"]: t["confidence"] for t in top}
    assert got == pytest.approx({label: float(p[i]) for i, label in enumerate(LABELS)}, abs=1e-5)


SPLIT = (90, 110, 130)  # between Acme's hauler and Bolt's 2022 sedan: no model-year, model or make reaches 50%
MAKE_ONLY = (140, 120, 100)  # between Acme's two models: the make Acme, at about 65%


def test_a_photo_between_makes_is_not_sure(client):
    j = upload(client, photo(SPLIT)).get_json()
    assert j["model"]["sure"] is False and j["model"]["reason"] == "low_confidence"
    assert j["model"]["level"] is None and j["model"]["prediction"] is None and j["specs"] is None
    assert any(n.startswith("Not sure") for n in j["notes"])


def test_a_photo_between_two_models_of_a_make_is_answered_with_the_make(client):
    j = upload(client, photo(MAKE_ONLY)).get_json()
    top = {c["label"]: c["confidence"] for c in j["model"]["top"]}
    assert max(top.values()) < 0.5  # no model-year is sure...
    answer = j["model"]["prediction"]
    assert j["model"]["sure"] is True and j["model"]["level"] == "make" and answer["level"] == "make"
    assert answer["name"] == "Acme" and answer["make"] == "Acme"  # ...but the make is
    assert answer["confidence"] == pytest.approx(top["2023_acme_roadster"] + top["2023_acme_hauler"], abs=1e-6)
    assert sorted(answer["labels"]) == ["2023_acme_hauler", "2023_acme_roadster"]
    assert j["specs"] is None and j["specs_range"] is None and j["thumbs"] == {}
    html = upload(client, photo(MAKE_ONLY), path="/").get_data(as_text=True)
    assert 'data-level="make"' in html and "cannot tell the model" in html and '<table class="specs"' not in html


def test_grey_photo_names_no_model_year_and_shows_candidates(client):
    """Grey is nearest no class colour: no model-year reaches 50%. It is answered at most at the make level, and
    then only with the make's whole probability (tests/serve/test_levels.py holds each level on its own)."""
    j = upload(client, photo("grey")).get_json()
    assert len(j["model"]["top"]) == 5 and j["model"]["top"][0]["confidence"] < 0.5
    assert j["model"]["level"] != "model_year" and j["specs"] is None
    if j["model"]["sure"]:
        answer = j["model"]["prediction"]
        assert answer["level"] == "make" and answer["confidence"] >= 0.5
        mass = sum(c["confidence"] for c in j["model"]["top"] if c.get("make") == answer["make"])
        assert answer["confidence"] == pytest.approx(mass, abs=1e-6)
    else:
        assert j["model"]["prediction"] is None and any(n.startswith("Not sure") for n in j["notes"])


def test_interior_photo_is_flagged_and_still_classified(client):
    j = upload(client, photo("dark")).get_json()
    assert j["view"]["label"] == "interior" and j["view"]["interior"] is True
    assert INTERIOR_NOTE in j["notes"]
    assert len(j["model"]["top"]) == 5


@pytest.mark.parametrize("make,note", [(lambda: photo("red", fmt="JPEG", mode="CMYK"), None),
                                       (lambda: photo("red", fmt="PNG", mode="RGBA"), None),
                                       (lambda: photo("red", fmt="PNG", mode="P"), None),
                                       (lambda: images.animated_gif(), "first one was used")])
def test_unusual_photos_are_converted_end_to_end(client, make, note):
    j = upload(client, make()).get_json()
    assert j["model"]["prediction"]["label"] == EXPECTED["red"]
    if note:
        assert any(note in n for n in j["notes"])


# -- API: every bad input -------------------------------------------------------------------------------------
BAD = [
    ("empty", lambda: b"", 400, "empty_file"),
    ("text", lambda: images.NOT_IMAGES["text"], 415, "not_an_image"),
    ("pdf", lambda: images.NOT_IMAGES["pdf"], 415, "not_an_image"),
    ("svg", lambda: images.NOT_IMAGES["svg"], 415, "not_an_image"),
    ("heic", images.heic_header, 415, "unsupported_format"),
    ("truncated", images.truncated_jpeg, 422, "corrupt_image"),
    ("corrupt", images.corrupt_png, 422, "corrupt_image"),
    ("broken header", images.broken_header_jpeg, 422, "corrupt_image"),
    ("bomb", lambda: images.png_header_only(100_000, 100_000), 422, "too_many_pixels"),
    ("60 MP", lambda: images.png_header_only(10_000, 6_000), 422, "too_many_pixels"),
    ("too thin", lambda: images.png_header_only(3000, 60), 422, "bad_dimensions"),
    ("too small", lambda: images.png_header_only(5, 5), 422, "bad_dimensions"),
]


@pytest.mark.parametrize("name,make,status,code", BAD, ids=[b[0] for b in BAD])
def test_bad_upload_api(client, bundle_dir, name, make, status, code):
    r = upload(client, make())
    assert r.status_code == status and r.mimetype == "application/json"
    assert error_of(r) == code
    assert str(bundle_dir) not in r.get_data(as_text=True) and "Traceback" not in r.get_data(as_text=True)


@pytest.mark.parametrize("name,make,status,code", BAD, ids=[b[0] for b in BAD])
def test_bad_upload_page_is_readable(client, name, make, status, code):
    r = upload(client, make(), path="/")
    assert r.status_code == status and r.mimetype == "text/html"
    html = r.get_data(as_text=True)
    assert 'role="alert"' in html and code in html and "<form" in html  # the message, and the form to try again
    assert "Traceback" not in html


def test_no_file_field_is_400(client):
    r = client.post("/api/v1/predict", data={"photo": (io.BytesIO(photo("red")), "x.jpg")})
    assert r.status_code == 400 and error_of(r) == "no_file"
    r = client.post("/api/v1/predict", json={"image": "not a file"})
    assert r.status_code == 400 and error_of(r) == "no_file"
    r = client.post("/", data={})
    assert r.status_code == 400 and "no photo was sent" in r.get_data(as_text=True)


def test_oversized_upload_is_413(client):
    big = photo("red") + b"\0" * (1024 * 1024 + 100_000)  # the fixture's cap is 1 MB
    r = upload(client, big)
    assert r.status_code == 413 and error_of(r) == "too_large"
    r = upload(client, big, path="/")
    assert r.status_code == 413 and "limit" in r.get_data(as_text=True)


def test_a_flood_of_form_parts_is_refused(client):
    data = {f"field{i}": "x" for i in range(40)}
    data["image"] = (io.BytesIO(photo("red")), "x.jpg")
    r = client.post("/api/v1/predict", data=data, content_type="multipart/form-data")
    assert r.status_code == 413 and error_of(r) == "too_many_parts"


def test_oversized_upload_is_refused_before_the_body_is_read(app):
    """A Content-Length over the cap is answered 413 without reading a byte of the body."""
    from werkzeug.test import create_environ, run_wsgi_app

    class Untouchable(io.RawIOBase):
        reads = 0

        def readable(self):
            return True

        def readinto(self, b):
            Untouchable.reads += 1
            raise AssertionError("the body was read")

    env = create_environ("/api/v1/predict", method="POST", content_type="multipart/form-data; boundary=x")
    env["CONTENT_LENGTH"] = str(10**9)
    env["wsgi.input"] = Untouchable()
    body, status, headers = run_wsgi_app(app.wsgi_app, env)
    assert status.startswith("413") and Untouchable.reads == 0
    assert b"too_large" in b"".join(body)


def test_unknown_routes_and_methods_are_json_on_the_api(client):
    r = client.get("/api/v1/nope")
    assert r.status_code == 404 and error_of(r) == "not_found"
    r = client.get("/api/v1/predict")
    assert r.status_code == 405 and error_of(r) == "method_not_allowed"
    r = client.get("/no/such/page")
    assert r.status_code == 404 and r.mimetype == "text/html"
    # Werkzeug's messages end with a full stop and the page adds one only where the message has none.
    assert b"try again. <span" in r.data and b".." not in r.data


def test_unexpected_errors_are_500_without_details(client, app, monkeypatch):
    predictor = app.extensions["carscope"]

    def explode(*a, **k):
        raise RuntimeError("secret /etc/shadow detail")

    monkeypatch.setattr(predictor, "predict", explode)
    for path in ("/api/v1/predict", "/"):
        r = upload(client, photo("red"), path=path)
        text = r.get_data(as_text=True)
        assert r.status_code == 500 and "secret" not in text and "/etc" not in text and "Traceback" not in text


def test_unexpected_errors_name_their_request_id_in_answer_and_log(client, app, monkeypatch, caplog):
    monkeypatch.setattr(app.extensions["carscope"], "predict", lambda *a, **k: 1 / 0)
    with caplog.at_level("ERROR", logger="carscope.serve"):
        r = upload(client, photo("red"))
    rid = r.headers["X-Request-ID"]
    assert r.status_code == 500 and rid in r.get_json()["error"]["message"]
    assert any(rid in rec.getMessage() and rec.exc_info for rec in caplog.records)


# -- request ids and the access log ------------------------------------------------------------------------------
def test_every_response_has_a_request_id(client):
    ids = [client.get(path).headers["X-Request-ID"] for path in ("/healthz", "/healthz", "/nope", "/api/v1/nope")]
    assert all(re.fullmatch(r"[0-9a-f]{16}", rid) for rid in ids) and len(set(ids)) == 4
    r = upload(client, b"")  # an error answer has one too
    assert r.status_code == 400 and re.fullmatch(r"[0-9a-f]{16}", r.headers["X-Request-ID"])


@pytest.mark.parametrize("sent,kept", [
    ("7f3c2a9e-1b4d-4c8e-9f00-0123456789ab", True),  # a proxy's uuid
    ("web-1.42:7", True),
    ("a" * 129, False),  # too long for a log line
    ("x Set-Cookie: a=b", False),  # spaces: not an id (a header injection attempt after the proxy folds it)
    ("<script>", False),
])
def test_a_well_formed_client_request_id_is_kept(client, sent, kept):
    rid = client.get("/healthz", headers={"X-Request-ID": sent}).headers["X-Request-ID"]
    assert (rid == sent) is kept and re.fullmatch(r"[A-Za-z0-9._:-]{1,128}", rid)


def test_access_log_is_one_line_per_request_and_off_by_default(bundle_dir, client, caplog):
    from carscope.serve.app import create_app

    with caplog.at_level("INFO", logger="carscope.access"):
        upload(client, photo("red"))  # the shared app: access_log off
        assert not [rec for rec in caplog.records if rec.name == "carscope.access"]
        app = create_app(bundle_dir, {"providers": "cpu", "intra_op_threads": 1, "access_log": True})
        try:
            logged = app.test_client()
            r = upload(logged, photo("red"), filename="secret-name.jpg")
            logged.get("/healthz?token=hunter2", headers={"X-Request-ID": "req-1"})
        finally:
            app.extensions["carscope"].close()
    lines = [rec.getMessage() for rec in caplog.records if rec.name == "carscope.access"]
    assert len(lines) == 2
    assert re.fullmatch(r'127\.0\.0\.1 "POST /api/v1/predict" 200 \d+ \d+\.\dms id=' + r.headers["X-Request-ID"],
                        lines[0])
    assert lines[1].startswith('127.0.0.1 "GET /healthz" 200 ') and lines[1].endswith("id=req-1")
    assert "secret-name" not in "".join(lines) and "hunter2" not in "".join(lines)


# -- pages ----------------------------------------------------------------------------------------------------
def test_upload_page_works_without_javascript(client):
    r = client.get("/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200
    assert re.search(r'<form[^>]*method="post"[^>]*enctype="multipart/form-data"', html)
    assert '<label for="image"' in html and 'id="image" name="image" type="file"' in html
    assert '<button type="submit"' in html and 'lang="en"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # every asset is local


def test_result_page(client):
    r = upload(client, photo("red"), path="/")
    html = r.get_data(as_text=True)
    assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store"
    assert "2023 Acme Roadster" in html and 'data-best' in html
    assert 'src="data:image/jpeg;base64,' in html  # the photo, from memory
    assert html.count("<meter") == 5  # top-5 with confidence bars
    assert '<table class="specs">' in html and "$34,500" in html and "Coupe" in html
    assert 'src="/bundle/thumbs/2023_acme_roadster/exterior_0.jpg"' in html
    assert 'src="/bundle/thumbs/2023_acme_roadster/interior_0.jpg"' in html
    assert re.search(r'<img[^>]+alt="Example exterior photo of the 2023 Acme Roadster"', html)
    assert all('alt="' in tag for tag in re.findall(r"<img[^>]*>", html))


def test_result_page_not_sure_and_interior(client):
    html = upload(client, photo(SPLIT), path="/").get_data(as_text=True)
    assert "Not sure" in html and "Candidates" in html and '<table class="specs">' not in html
    html = upload(client, photo("dark"), path="/").get_data(as_text=True)
    assert "Interior" in html and "no answer from inside the car" in html
    assert '<table class="specs">' not in html and 'data-reason="interior"' in html


def test_an_interior_photo_is_never_sure(client):
    """The model classifier learned model-years from exterior photos: however confident it is about an interior
    photo, the answer is not sure, with the reason, and carries no specifications."""
    body = upload(client, photo("dark")).get_json()
    assert body["view"]["interior"] is True
    assert body["model"]["top"][0]["confidence"] >= body["model"]["min_confidence"]  # confident, yet:
    assert body["model"]["sure"] is False and body["model"]["reason"] == "interior"
    assert body["model"]["prediction"] is None and body["specs"] is None and body["thumbs"] == {}


def test_thumbs_are_served_and_nothing_else_from_the_bundle(client):
    r = client.get("/bundle/thumbs/2023_acme_roadster/exterior_0.jpg")
    assert r.status_code == 200 and r.mimetype == "image/jpeg" and r.data[:3] == b"\xff\xd8\xff"
    for path in ("/bundle/bundle.json", "/bundle/model.onnx", "/bundle/../bundle.json",
                 "/bundle/thumbs/../model.onnx", "/bundle/%2e%2e/bundle.json", "/bundle//etc/passwd"):
        assert client.get(path, follow_redirects=True).status_code == 404, path


def test_static_assets(client):
    for name, mime in (("style.css", "text/css"), ("app.js", "text/javascript")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.mimetype == mime


def test_security_headers(client):
    for path in ("/", "/api/v1/models", "/nope"):
        h = client.get(path).headers
        assert "frame-ancestors 'none'" in h["Content-Security-Policy"]
        assert "script-src 'self'" in h["Content-Security-Policy"]
        assert h["X-Content-Type-Options"] == "nosniff" and h["X-Frame-Options"] == "DENY"


def test_models_pages_the_classes(client):
    """At 19,000 model-years the whole class list is megabytes per call: `classes` comes in pages, the next
    page's offset says where to go on, and a bad query is a 400."""
    whole = client.get("/api/v1/models").get_json()["classes"]
    first = client.get("/api/v1/models?limit=2").get_json()
    assert first["classes"] == whole[:2] and first["classes_total"] == 5 and first["classes_next"] == 2
    seen, offset = [], 0
    while offset is not None:
        page = client.get(f"/api/v1/models?limit=2&offset={offset}").get_json()
        seen += page["classes"]
        offset = page["classes_next"]
    assert seen == whole
    assert first["models"]["model"]["labels"] == LABELS[:2]  # the output index's labels, the same page
    assert first["models"]["model"]["num_classes"] == 5 and first["models"]["view"]["labels"] == ["exterior", "interior"]
    for bad in ("limit=x", "offset=-1"):
        r = client.get(f"/api/v1/models?{bad}")
        assert r.status_code == 400 and r.get_json()["error"]["code"] == "bad_query"


def test_no_debug(app):
    assert not app.debug and not app.config["PROPAGATE_EXCEPTIONS"]


# -- ops routes -------------------------------------------------------------------------------------------------
def test_models_and_openapi(client):
    j = client.get("/api/v1/models").get_json()
    assert j["models"]["model"]["labels"] == LABELS and j["models"]["model"]["num_classes"] == 5
    assert j["models"]["model"]["temperature"] == TEMPERATURE
    assert j["models"]["view"]["labels"] == ["exterior", "interior"]
    assert j["models"]["model"]["input"]["crop"] == 64
    assert j["serving"]["providers"] == ["CPUExecutionProvider"] and j["serving"]["ready"] is True
    assert [c["name"] for c in j["classes"]][0] == "2023 Acme Roadster"
    assert j["classes_total"] == 5 and j["classes_next"] is None
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["openapi"].startswith("3.")
    assert {"/api/v1/predict", "/api/v1/models", "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    assert set(spec["paths"]["/api/v1/predict"]["post"]["responses"]) >= {"200", "400", "413", "415", "422", "503"}


def test_health_and_readiness(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
    r = client.get("/readyz")
    assert r.status_code == 200 and r.get_json()["status"] == "ready"


def test_metrics(client):
    upload(client, photo("blue"))
    upload(client, b"not an image")
    text = client.get("/metrics").get_data(as_text=True)
    assert re.search(r'carscope_http_requests_total\{method="POST",route="/api/v1/predict",status="200"\} \d', text)
    assert re.search(r'carscope_http_requests_total\{method="POST",route="/api/v1/predict",status="415"\} \d', text)
    assert re.search(r'carscope_http_request_duration_seconds_count\{route="/api/v1/predict"\} \d', text)
    assert re.search(r"carscope_batch_size_count \d", text)
    assert re.search(r'carscope_inference_seconds_count\{model="model"\} \d', text)
    assert 'carscope_rejected_uploads_total{code="not_an_image"}' in text
    assert "carscope_ready 1.0" in text


# -- start-up ---------------------------------------------------------------------------------------------------
def test_readyz_is_503_until_warm(bundle_dir, monkeypatch):
    from carscope.serve.app import create_app
    from carscope.serve.engine import Engine

    gate = threading.Event()
    real = Engine.warm_up

    def slow_warm_up(self):
        gate.wait(10)
        real(self)

    monkeypatch.setattr(Engine, "warm_up", slow_warm_up)
    app = create_app(bundle_dir, {"providers": "cpu", "background_load": True})
    try:
        c = app.test_client()
        r = c.get("/readyz")
        assert r.status_code == 503 and error_of(r) == "not_ready" and r.headers["Retry-After"]
        r = upload(c, photo("red"))
        assert r.status_code == 503 and error_of(r) == "not_ready"
        assert upload(c, photo("red"), path="/").status_code == 503
        assert c.get("/healthz").status_code == 200  # alive while not ready
        gate.set()
        assert app.extensions["carscope"].wait_ready(10)
        assert c.get("/readyz").status_code == 200
        assert upload(c, photo("red")).status_code == 200
    finally:
        gate.set()
        app.extensions["carscope"].close()


def test_failed_background_load_reports_on_readyz(bundle_dir, monkeypatch):
    from carscope.serve.app import create_app
    from carscope.serve.engine import Engine

    def broken(self, warmup=True):
        raise CarscopeError("no such luck")

    monkeypatch.setattr(Engine, "load", broken)
    app = create_app(bundle_dir, {"providers": "cpu", "background_load": True})
    with pytest.raises(CarscopeError):
        app.extensions["carscope"].wait_ready(10)
    r = app.test_client().get("/readyz")
    assert r.status_code == 503 and error_of(r) == "load_failed"


@pytest.fixture
def tampered_bundle(bundle_dir, tmp_path):
    root = tmp_path / "tampered"
    shutil.copytree(bundle_dir, root)
    data = bytearray((root / "model.onnx").read_bytes())
    data[-1] ^= 0x01
    (root / "model.onnx").write_bytes(bytes(data))
    return root


def test_sha256_mismatch_refuses_to_start(tampered_bundle):
    from carscope.serve.app import create_app

    with pytest.raises(CarscopeError, match="sha256"):
        create_app(tampered_bundle, {"providers": "cpu"})


def test_cli_refuses_tampered_bundle_with_one_line_exit_2(tampered_bundle):
    proc = subprocess.run([sys.executable, "-m", "carscope", "serve", "--bundle", str(tampered_bundle), "--port", "0",
                           "--providers", "cpu"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sha256" in lines[0] and "Traceback" not in proc.stderr


def test_variants_and_settings(bundle_dir):
    from carscope.serve.app import create_app

    app = create_app(bundle_dir, {"providers": "cpu", "variant": "int8"})
    try:
        assert app.extensions["carscope"].engine.describe()["variant"] == "int8"
        assert upload(app.test_client(), photo("red")).get_json()["model"]["prediction"]["label"] == EXPECTED["red"]
    finally:
        app.extensions["carscope"].close()
    with pytest.raises(CarscopeError, match="fp16"):
        create_app(bundle_dir, {"providers": "cpu", "variant": "fp16"})
    app = create_app(bundle_dir, {"providers": "cpu"})  # variant auto: int8 on the CPU where the bundle has it
    try:
        assert app.extensions["carscope"].engine.describe()["variants"] == {"view": "fp32", "model": "int8"}
        assert app.test_client().get("/api/v1/models").get_json()["serving"]["variants"]["model"] == "int8"
    finally:
        app.extensions["carscope"].close()
    for bad in ({"max_batch": 0}, {"min_confidence": 2}, {"providers": "tpu"}, {"nonsense": 1}):
        with pytest.raises(CarscopeError):
            create_app(bundle_dir, bad)


def test_min_confidence_threshold(bundle_dir):
    from carscope.serve.app import create_app

    app = create_app(bundle_dir, {"providers": "cpu", "min_confidence": 0.0})
    try:
        j = upload(app.test_client(), photo("grey")).get_json()
        assert j["model"]["sure"] is True and j["specs"] is not None
    finally:
        app.extensions["carscope"].close()


def test_serving_never_imports_torch(bundle_dir):
    code = f"""
import io, sys
import carscope.serve.app, carscope.serve.cli, carscope.serve.server
assert "onnxruntime" not in sys.modules, "onnxruntime imported at import time"
from carscope.serve.app import create_app
from tests.serve.tinybundle import photo
app = create_app({str(bundle_dir)!r}, {{"providers": "cpu"}})
r = app.test_client().post("/api/v1/predict", data={{"image": (io.BytesIO(photo("red")), "x.jpg")}})
assert r.status_code == 200, r.status_code
print(sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_classes_in_fixture_have_distinct_colours():
    assert len({c for c, _ in CLASSES.values()}) == len(CLASSES)


@pytest.mark.parametrize("variants,on_cuda,want", [
    ({}, False, "fp32"),
    ({}, True, "fp32"),
    ({"int8": {"forced": False}}, False, "int8"),
    ({"int8": {"forced": True}}, False, "fp32"),  # kept by --force past the accuracy gate: never chosen for you
    ({"int8": {"forced": False}}, True, "fp32"),  # int8 QDQ is a CPU win, not a CUDA one
    ({"fp16": {"validation": {"validated": False, "reason": "not validated: no CUDA"}}}, True, "fp32"),
    ({"fp16": {"validation": {"validated": True}}, "int8": {"forced": False}}, True, "fp16"),
    ({"fp16": {"validation": {"validated": True}}}, False, "fp32"),
])
def test_auto_variant_picks_the_fastest_validated_export(variants, on_cuda, want):
    from types import SimpleNamespace

    from carscope.serve.engine import auto_variant

    assert auto_variant(SimpleNamespace(meta={"variants": variants}), on_cuda) == want


@pytest.mark.parametrize("workers,threads,on_cuda,want", [
    (0, 2, False, (2, 1, 2)),  # auto on 2 cores: two single-threaded workers, both threads for a lone batch
    (0, 1, False, (1, 1, 0)),  # one thread (a --processes child's share): one worker, nothing to widen
    (1, 4, False, (1, 4, 0)),
    (2, 8, False, (2, 4, 8)),
    (3, 8, False, (3, 2, 8)),
    (4, 2, False, (4, 1, 2)),  # more workers than threads: one each, and still the whole budget alone
    (0, 8, True, (1, 8, 0)),  # CUDA: one worker; the GPU does the work
    (0, 64, False, (16, 4, 64)),  # auto is capped at the default waitress thread count
])
def test_thread_plan(workers, threads, on_cuda, want):
    from carscope.serve.engine import plan_threads

    assert plan_threads(workers, threads, on_cuda) == want


@pytest.mark.parametrize("plan", ["sequential", "parallel"])
def test_a_lone_batch_uses_every_thread_and_answers_the_same(bundle_dir, plan):
    """With two workers of one thread each, a lone request runs on the lone-batch plan: the two-thread sessions
    one after the other, or both models at once on the workers' own sessions. The same logits either way."""
    import threading

    import numpy as np

    from carscope.serve.app import create_app

    app = create_app(bundle_dir, {"providers": "cpu", "workers": 2, "intra_op_threads": 2, "max_wait_ms": 1,
                                  "alone": plan})
    try:
        predictor = app.extensions["carscope"]
        engine = predictor.engine
        assert (engine.workers, engine.intra_op_threads, engine.alone_threads) == (2, 1, 2)
        assert engine.alone_plan == plan and predictor.batcher.tell_alone
        assert set(engine.alone_models) == {"view", "model"}
        for key in ("view", "model"):  # parallel on 2 threads: 1 + 1, the workers' sessions, no second copy
            shared = engine.alone_models[key].session is engine.models[key].session
            assert shared == (plan == "parallel")
        xv = np.random.default_rng(0).random((3, *engine.input_shape("view")), dtype=np.float32)
        xm = np.random.default_rng(1).random((3, *engine.input_shape("model")), dtype=np.float32)
        for shared, alone in zip(engine.infer(xv, xm), engine.infer(xv, xm, alone=True), strict=True):
            np.testing.assert_allclose(shared, alone, rtol=1e-5, atol=1e-5)
        serving = app.test_client().get("/api/v1/models").get_json()["serving"]
        assert (serving["workers"], serving["intra_op_threads"], serving["alone_threads"]) == (2, 1, 2)
        assert serving["alone_plan"] == plan and serving["alone_split"] == (
            {"view": 1, "model": 1} if plan == "parallel" else {"view": 2, "model": 2})
        asked, view_threads = [], []
        real_infer, real_view_run = engine.infer_all, engine.models["view"].run
        engine.infer_all = lambda *a, alone=False, **k: asked.append(alone) or real_infer(*a, alone=alone, **k)
        engine.models["view"].run = lambda x: view_threads.append(threading.current_thread().name) or real_view_run(x)
        for colour in sorted(EXPECTED):
            assert upload(app.test_client(), photo(colour)).get_json()["model"]["prediction"]["label"] == EXPECTED[colour]
        assert asked == [True] * len(EXPECTED)  # one request at a time: every batch ran alone
        if plan == "parallel":  # the view model ran on the pair thread, beside the model classifier
            assert len(view_threads) == len(EXPECTED)
            assert all(name.startswith("carscope-alone") for name in view_threads)
    finally:
        app.extensions["carscope"].close()
    assert engine._pair_pool is None  # close() stopped the pair thread


def test_auto_times_both_lone_batch_plans_and_keeps_the_faster(bundle_dir, monkeypatch):
    """--alone auto: both plans are timed at warm-up; the faster is kept and the other's sessions dropped."""
    import time as _time

    from carscope.export.bundle import load
    from carscope.serve import engine as engine_mod

    slow = {"plan": "parallel"}
    real_run = engine_mod.Engine._run

    def run(self, models, plan, xv, xm, timings=None):  # make one plan measurably slower
        if plan == slow["plan"] and self._plans:
            _time.sleep(0.01)
        return real_run(self, models, plan, xv, xm, timings)

    monkeypatch.setattr(engine_mod.Engine, "_run", run)
    for slower, want in (("parallel", "sequential"), ("sequential", "parallel")):
        slow["plan"] = slower
        engine = engine_mod.Engine(load(bundle_dir), providers="cpu", workers=2, intra_op_threads=2, max_batch=2)
        engine.load(warmup=True)
        try:
            assert engine.alone_plan == want
            assert set(engine.alone_measured_ms) == {"sequential", "parallel"}
            assert engine.alone_measured_ms[slower] > engine.alone_measured_ms[want] + 5
            assert engine._plans == {}  # the loser's sessions are released
            assert (engine._pair_pool is not None) == (want == "parallel")
            assert engine.describe()["alone_plan"] == want
        finally:
            engine.close()


def test_a_failing_model_in_the_parallel_plan_fails_the_batch_after_the_view_run(bundle_dir):
    """The pair thread's view run is always waited for: a failure never leaves it running into the next batch."""
    import threading

    import numpy as np

    from carscope.export.bundle import load
    from carscope.serve.engine import Engine

    engine = Engine(load(bundle_dir), providers="cpu", workers=2, intra_op_threads=2, max_batch=2, alone="parallel")
    engine.load(warmup=False)
    try:
        view_done = threading.Event()
        real_view_run = engine.alone_models["view"].run

        def view_run(x):
            out = real_view_run(x)
            view_done.set()
            return out

        def model_run(x):
            raise RuntimeError("model failed")

        engine.alone_models["view"].run = view_run
        engine.alone_models["model"].run = model_run
        xv = np.zeros((1, *engine.input_shape("view")), np.float32)
        xm = np.zeros((1, *engine.input_shape("model")), np.float32)
        with pytest.raises(RuntimeError, match="model failed"):
            engine.infer(xv, xm, alone=True)
        assert view_done.is_set()
    finally:
        engine.close()


@pytest.mark.parametrize("slot,level", [(None, "WARNING"), ("0", "WARNING"), ("1", "DEBUG")])
def test_cuda_fallback_is_said_once_per_server(bundle_dir, monkeypatch, caplog, slot, level):
    """Under --processes N every child falls back alike; only slot 0 (or a lone server) warns."""
    import logging

    from carscope.serve.engine import SLOT_ENV, create_session

    if slot is None:
        monkeypatch.delenv(SLOT_ENV, raising=False)
    else:
        monkeypatch.setenv(SLOT_ENV, slot)
    state: dict = {}
    with caplog.at_level(logging.DEBUG, logger="carscope.serve"):
        create_session(bundle_dir / "model.onnx", "auto", 1, state)
    if state["device"] == "cuda":
        pytest.skip("CUDA works here: nothing falls back")
    said = [r for r in caplog.records if "CUDA is not usable" in r.getMessage()]
    assert len(said) == 1 and said[0].levelname == level


def test_an_unknown_lone_batch_plan_is_a_one_line_error():
    from carscope.serve.config import ServeConfig

    with pytest.raises(CarscopeError, match="--alone must be one of auto, sequential, parallel, off"):
        ServeConfig.from_any({"alone": "sideways"})


def test_the_result_page_shows_a_price_in_its_own_currency():
    from carscope.serve.app import spec_rows

    assert ("Starting MSRP", "$34,500") in spec_rows({"msrp_usd": 34500, "price": 34500.0, "price_currency": "USD"})
    assert not any(label == "Price" for label, _ in spec_rows({"msrp_usd": 34500, "price": 34500.0}))
    assert spec_rows({"price": 31740.0, "price_currency": "EUR"}) == [("Price", "31,740 EUR")]


# -- the upload limits at their edges, for `make mutate` of carscope/serve/app.py's upload handling ------------------------
def test_an_upload_of_exactly_the_cap_is_read_and_one_past_it_is_413(client):
    from carscope.serve.app import MULTIPART_SLACK

    cap = 1024 * 1024  # the fixture's --max-upload-mb 1
    at_cap = photo("red") + b"\0" * (cap - len(photo("red")))  # a JPEG with trailing bytes: still the same photo
    assert len(at_cap) == cap
    r = upload(client, at_cap)
    assert r.status_code == 200 and r.get_json()["model"]["prediction"]["label"] == EXPECTED["red"]
    past = at_cap + b"\0" * (MULTIPART_SLACK + 1)  # the body is now over cap + slack, whatever the headers
    r = upload(client, past)
    assert r.status_code == 413 and error_of(r) == "too_large"
    assert r.get_json()["error"]["message"] == "the upload is larger than the 1 MB limit"


def test_a_flood_of_parts_under_the_size_cap_is_too_many_parts_not_too_large(client):
    fields = {f"f{i}": "x" for i in range(15)}
    r = client.post("/api/v1/predict", data={**fields, "image": (io.BytesIO(photo("red")), "x.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 200  # 16 parts: the limit, read
    fields["f15"] = "x"
    r = client.post("/api/v1/predict", data={**fields, "image": (io.BytesIO(photo("red")), "x.jpg")},
                    content_type="multipart/form-data")
    assert r.status_code == 413 and error_of(r) == "too_many_parts"
    assert r.get_json()["error"]["message"] == "the form has too many fields; send one file named 'image'"


def test_an_empty_image_field_and_a_non_multipart_body(client):
    r = client.post("/api/v1/predict", data={"image": (io.BytesIO(b""), "x.jpg")}, content_type="multipart/form-data")
    assert r.status_code == 400 and error_of(r) == "empty_file"
    assert r.get_json()["error"]["message"] == "the uploaded file is empty"
    r = client.post("/api/v1/predict", data=photo("red"), content_type="image/jpeg")  # a raw body: not a form
    assert r.status_code == 400 and error_of(r) == "no_file"
    assert r.get_json()["error"]["message"] == ("no photo was sent (expected a multipart/form-data file field "
                                                "named 'image')")


def test_too_many_parts_at_exactly_the_size_cap_is_still_too_many_parts(app, client):
    """A body of exactly MAX_CONTENT_LENGTH bytes is within the size cap: its 413 is about the parts."""
    cap = app.config["MAX_CONTENT_LENGTH"]
    boundary = "bnd"
    parts = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="f{i}"\r\n\r\nx\r\n'.encode()
                     for i in range(20))
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="pad"\r\n\r\n'.encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = parts + head + b"p" * (cap - len(parts) - len(head) - len(tail)) + tail
    assert len(body) == cap
    r = client.post("/api/v1/predict", data=body, content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 413 and error_of(r) == "too_many_parts"
    r = client.post("/api/v1/predict", data=body + b"\r\n", content_type=f"multipart/form-data; boundary={boundary}")
    assert r.status_code == 413 and error_of(r) == "too_large"  # one line more: over the cap


def test_refusals_are_counted_by_code():
    """carscope_rejected_uploads{code} counts each refusal under its own code (a fresh app: counts start at 0)."""
    import tempfile

    from carscope.serve.app import create_app
    from tests.serve.tinybundle import make_tiny_bundle

    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(make_tiny_bundle(tmp + "/b", with_thumbs=False),
                         {"providers": "cpu", "max_upload_mb": 1, "max_wait_ms": 1, "intra_op_threads": 1})
        try:
            client = app.test_client()
            assert upload(client, photo("red") + b"\0" * (2 * 1024 * 1024)).status_code == 413
            assert client.post("/api/v1/predict", data={**{f"f{i}": "x" for i in range(20)},
                                                        "image": (io.BytesIO(photo("red")), "x.jpg")},
                               content_type="multipart/form-data").status_code == 413
            assert upload(client, images.heic_header()).status_code == 415
            assert upload(client, images.heic_header()).status_code == 415
            text = client.get("/metrics").get_data(as_text=True)
        finally:
            app.extensions["carscope"].close()
    counts = dict(re.findall(r'carscope_rejected_uploads_total\{code="(\w+)"\} (\S+)', text))
    assert counts == {"too_large": "1.0", "too_many_parts": "1.0", "unsupported_format": "2.0"}


def test_the_upload_form_accepts_the_decoded_formats(client):
    from carscope.serve.imageio import SUPPORTED_MIME

    html = client.get("/").get_data(as_text=True)
    assert f'accept="{",".join(SUPPORTED_MIME)}"' in html and 'accept="image/jpeg,image/png,' in html
