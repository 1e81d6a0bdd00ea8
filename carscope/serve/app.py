"""The Flask app: an upload page, a JSON API, health/readiness and Prometheus metrics over one Predictor.

    python -c "from carscope.serve.app import create_app; app = create_app('bundle'); \\
               print(app.test_client().get('/readyz').status)"
    carscope serve --bundle bundle        # the same app, run by waitress (carscope/serve/cli.py)

`create_app(bundle_dir, config)` builds everything; importing this module builds nothing. Uploads are read into
memory (never a file, never a client-chosen name), decoded by carscope/serve/imageio.py and answered by
carscope/serve/predictor.py. Bad input maps to 400/413/415/422, not-ready to 503, never to a 500 or a traceback.

Every response carries an X-Request-ID: the client's (or its proxy's) own when it sent a well-formed one, else a
new one. The same id is in the access log (config access_log, `serve --access-log`: one line a request on the
"carscope.access" logger) and in the log line and the answer of an unexpected error, so that a user's report can
be found in the logs.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    current_app,
    g,
    jsonify,
    render_template,
    request,
    send_file,
    url_for,
)
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from carscope import __version__
from carscope.serve.admission import RETRY_AFTER_S, refused
from carscope.serve.config import ServeConfig
from carscope.serve.formparser import FastFormDataParser
from carscope.serve.imageio import SUPPORTED_MIME, ImageRejected
from carscope.serve.metrics import Metrics
from carscope.serve.predictor import NotReady, Predictor

log = logging.getLogger("carscope.serve")
access_log = logging.getLogger("carscope.access")

REQUEST_ID_HEADER = "X-Request-ID"
# What a request id from a client or a proxy may look like (uuids, hex, ULIDs, "host-123.4"); anything else, a
# header-injection attempt or a log-flooding one included, is replaced by a new id.
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

# 'self' only: no CDN, no inline script or style; data: for the uploaded photo, blob: for the JS preview.
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
MULTIPART_SLACK = 64 * 1024  # multipart boundaries and headers on top of the file itself

# (column, label, formatter) of the specs table on the result page; the API returns every column.
SPEC_ROWS = (
    ("make", "Make", str), ("model", "Model", str), ("year", "Year", str),
    ("msrp_usd", "Starting MSRP", lambda v: f"${int(v):,}"),
    ("price", "Price", None),  # a price in another currency (carscope/crawler/specs.py invents no exchange rates)
    ("body_style", "Body style", str), ("epa_class", "EPA class", str), ("drivetrain", "Drivetrain", str),
    ("engine", "Engine", str), ("displacement_l", "Displacement", lambda v: f"{float(v):.1f} L"),
    ("cylinders", "Cylinders", str), ("fuel", "Fuel", str),
    ("horsepower", "Horsepower", lambda v: f"{int(v)} hp"), ("horsepower_rpm", "Peak power at", lambda v: f"{int(v):,} rpm"),
    ("mpg_city", "MPG city", str), ("mpg_highway", "MPG highway", str),
    ("length_in", "Length", lambda v: f"{float(v):g} in"), ("width_in", "Width", lambda v: f"{float(v):g} in"),
    ("height_in", "Height", lambda v: f"{float(v):g} in"), ("wheelbase_in", "Wheelbase", lambda v: f"{float(v):g} in"),
    ("seats", "Seats", str), ("doors", "Doors", str), ("wheel_size_in", "Wheel size", lambda v: f"{float(v):g} in"),
)


class InMemoryRequest(Request):
    """Uploads are parsed by python-multipart and held in memory (carscope/serve/formparser.py); werkzeug would spool
    files over 500 KB to a temp file. The size cap (MAX_CONTENT_LENGTH) bounds the memory this takes."""

    form_data_parser_class = FastFormDataParser

    def _get_file_stream(self, total_content_length, content_type, filename=None, content_length=None):
        return io.BytesIO()


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def create_app(bundle_dir: str | Path, config: ServeConfig | Mapping[str, Any] | None = None) -> Flask:
    """The app for one bundle. Verifies the bundle (CarscopeError on a sha256 mismatch), creates and warms the
    onnxruntime sessions (in the background with config background_load=True; /readyz tells when)."""
    cfg = ServeConfig.from_any(config)
    metrics = Metrics()
    predictor = Predictor(bundle_dir, cfg, metrics)

    app = Flask(__name__, static_folder="static", template_folder="templates")
    app.request_class = InMemoryRequest
    app.config.update(
        MAX_CONTENT_LENGTH=cfg.max_upload_bytes + MULTIPART_SLACK,
        MAX_FORM_PARTS=16,  # one image and a few fields; a flood of parts is an attack, not a photo
        TEMPLATES_AUTO_RELOAD=False,
        PROPAGATE_EXCEPTIONS=False,
        SEND_FILE_MAX_AGE_DEFAULT=3600,
    )
    app.json.sort_keys = False
    app.extensions["carscope"] = predictor
    app.extensions["carscope_metrics"] = metrics
    app.jinja_env.globals.update(version=__version__, accept=",".join(SUPPORTED_MIME),
                                 max_upload_mb=cfg.max_upload_mb)

    app.register_blueprint(_ops_blueprint())
    app.register_blueprint(_api_blueprint())
    app.register_blueprint(_pages_blueprint())
    _install_hooks(app, cfg, metrics)
    predictor.start()
    return app


def get_predictor() -> Predictor:
    return current_app.extensions["carscope"]


def request_id() -> str:
    """This request's id (the X-Request-ID header of its response)."""
    return g.get("request_id") or "-"


# -- request hooks: size cap, metrics, security headers, errors ---------------------------------------------------
def _route_label() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"  # bounded label set: never the raw path


def _install_hooks(app: Flask, cfg: ServeConfig, metrics: Metrics) -> None:
    @app.before_request
    def _before():
        g.t0 = time.perf_counter()
        rid = request.headers.get(REQUEST_ID_HEADER, "")
        g.request_id = rid if _REQUEST_ID.fullmatch(rid) else secrets.token_hex(8)
        metrics.in_flight.inc()
        g.counted = True
        if refused() is not None:  # refused at arrival (carscope/serve/admission.py): answered now, upload unread
            metrics.shed.inc()
            raise NotReady("the server is overloaded; try again in a second", code="overloaded")
        # Refuse an oversized upload from its Content-Length header, before anyone reads the body.
        if request.content_length is not None and request.content_length > app.config["MAX_CONTENT_LENGTH"]:
            raise RequestEntityTooLarge()

    @app.after_request
    def _after(resp: Response) -> Response:
        h = resp.headers
        h.setdefault("Content-Security-Policy", CSP)
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("X-Frame-Options", "DENY")  # frame-ancestors for browsers that predate CSP 2
        h.setdefault("Referrer-Policy", "no-referrer")
        h.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        h.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        h[REQUEST_ID_HEADER] = request_id()
        if request.method == "POST" or request.path.startswith("/api/"):
            h.setdefault("Cache-Control", "no-store")  # a result page holds the user's photo
        if getattr(g, "counted", False):
            g.counted = False
            metrics.in_flight.dec()
            route = _route_label()
            metrics.requests.labels(route, request.method, str(resp.status_code)).inc()
            seconds = time.perf_counter() - g.t0
            metrics.latency.labels(route).observe(seconds)
            if cfg.access_log:  # the path without its query string, never the upload's file name
                access_log.info('%s "%s %s" %d %s %.1fms id=%s', request.remote_addr or "-", request.method,
                                request.path, resp.status_code, resp.content_length or "-", 1000.0 * seconds,
                                request_id())
        return resp

    def wants_json() -> bool:
        return request.path.startswith("/api/") or request.path in ("/healthz", "/readyz")

    def error_response(status: int, code: str, message: str):
        if status >= 500 and status != 503:
            log.error("%s %s -> %d %s (request %s)", request.method, request.path, status, code, request_id())
        if wants_json():
            return jsonify(error={"code": code, "message": message}), status
        template = "index.html" if request.endpoint == "pages.upload" else "error.html"
        return render_template(template, error=message, error_code=code, status=status), status

    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(ImageRejected)
    def _rejected(exc: ImageRejected):
        metrics.rejected.labels(exc.code).inc()
        return error_response(exc.status, exc.code, exc.message)

    @app.errorhandler(NotReady)
    def _not_ready(exc: NotReady):
        resp = error_response(503, exc.code, exc.message)
        return resp[0], 503, {"Retry-After": str(RETRY_AFTER_S) if exc.code == "overloaded" else "2"}

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        if isinstance(exc, RequestEntityTooLarge):
            length = request.content_length
            if length is not None and length <= app.config["MAX_CONTENT_LENGTH"]:  # werkzeug's form-parts limit
                metrics.rejected.labels("too_many_parts").inc()
                return error_response(413, "too_many_parts", "the form has too many fields; send one file named 'image'")
            metrics.rejected.labels("too_large").inc()
            return error_response(413, "too_large", f"the upload is larger than the {cfg.max_upload_mb:g} MB limit")
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 500, code, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        # Logged in full here, and never shown: no path, no traceback, no exception text in the answer. The
        # request id is both, so the user's report leads to the log line.
        log.exception("unhandled error on %s %s (request %s)", request.method, request.path, request_id())
        return error_response(500, "internal_error",
                              f"something went wrong on our side; the error was logged as request {request_id()}")


# -- health, readiness, metrics -----------------------------------------------------------------------------
def _ops_blueprint() -> Blueprint:
    bp = Blueprint("ops", __name__)

    @bp.get("/healthz")
    def healthz():
        return jsonify(status="ok")

    @bp.get("/readyz")
    def readyz():
        p = get_predictor()
        if p.ready.is_set():
            return jsonify(status="ready", **p.engine.describe())
        if p.load_error:
            return jsonify(error={"code": "load_failed", "message": "the models failed to load"}), 503
        return jsonify(error={"code": "not_ready", "message": "the models are still loading"}), 503, {"Retry-After": "2"}

    @bp.get("/metrics")
    def metrics():
        from prometheus_client import CONTENT_TYPE_LATEST

        body = current_app.extensions["carscope_metrics"].exposition()
        return Response(body, mimetype=CONTENT_TYPE_LATEST.split(";")[0],
                        headers={"Content-Type": CONTENT_TYPE_LATEST})

    @bp.get("/bundle/<path:relpath>")
    def bundle_file(relpath: str):
        # Only files bundle.json lists as thumbs, looked up by exact key: no path from the URL reaches the disk.
        path = get_predictor().thumb_files.get(relpath)
        if path is None:
            raise NotFound()
        return send_file(path, mimetype="image/jpeg", max_age=3600)

    return bp


# -- JSON API -------------------------------------------------------------------------------------------------
def _read_upload() -> bytes:
    file = request.files.get("image") if request.mimetype == "multipart/form-data" else None
    if file is None:
        raise ApiError(400, "no_file", "no photo was sent (expected a multipart/form-data file field named 'image')")
    data = file.read()
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    return data


def _with_urls(result: dict[str, Any]) -> dict[str, Any]:
    result["thumbs"] = {view: [url_for("ops.bundle_file", relpath=rel) for rel in rels]
                        for view, rels in result.get("thumbs", {}).items()}
    return result


def _api_blueprint() -> Blueprint:
    bp = Blueprint("api", __name__, url_prefix="/api/v1")

    @bp.post("/predict")
    def predict():
        data = _read_upload()
        return jsonify(_with_urls(get_predictor().predict(data)))

    @bp.get("/models")
    def models():
        from carscope.serve.predictor import CLASSES_PAGE

        try:
            offset = int(request.args.get("offset", 0))
            limit = int(request.args.get("limit", CLASSES_PAGE))
        except ValueError:
            raise ApiError(400, "bad_query", "offset and limit must be integers") from None
        if offset < 0 or limit < 0:
            raise ApiError(400, "bad_query", "offset and limit must not be negative")
        return jsonify(get_predictor().describe(offset, limit))

    @bp.get("/openapi.json")
    def openapi():
        from carscope.serve.openapi import openapi_spec

        return jsonify(openapi_spec(__version__, current_app.config["MAX_CONTENT_LENGTH"]))

    return bp


# -- pages ------------------------------------------------------------------------------------------------------
def spec_rows(specs: dict[str, Any] | None) -> list[tuple[str, str]]:
    rows = []
    specs = specs or {}
    for column, label, fmt in SPEC_ROWS:
        value = specs.get(column)
        if value is None or value == "":
            continue
        if column == "price":
            if specs.get("msrp_usd") not in (None, ""):
                continue  # dollars: already the MSRP row
            currency = specs.get("price_currency") or ""
            rows.append((label, f"{float(value):,.0f} {currency}".strip()))
            continue
        try:
            rows.append((label, fmt(value)))
        except (TypeError, ValueError):
            rows.append((label, str(value)))
    return rows


def range_rows(specs_range: dict[str, Any] | None) -> dict[str, Any]:
    """A model-level answer's specifications for the page: the rows its years share, and per differing row the
    value of each year (formatted like spec_rows)."""
    if not specs_range:
        return {"shared": [], "differ": [], "years": []}
    differ = specs_range.get("differ") or {}
    years = sorted({y for per_year in differ.values() for y in per_year})
    rows = []
    for column, label, _ in SPEC_ROWS:
        if column in differ:
            values = [dict(spec_rows({column: differ[column].get(y)})).get(label, "\u2013") for y in years]
            rows.append((label, values))
    return {"shared": spec_rows(specs_range.get("shared")), "differ": rows, "years": years}


def _pages_blueprint() -> Blueprint:
    bp = Blueprint("pages", __name__)

    @bp.route("/", methods=["GET", "POST"], endpoint="upload")
    def upload():
        if request.method == "GET":
            return render_template("index.html")
        data = _read_upload()
        result = _with_urls(get_predictor().predict(data, preview=True))
        return render_template("result.html", r=result, specs=spec_rows(result["specs"]),
                               range_rows=range_rows(result.get("specs_range")))

    return bp
