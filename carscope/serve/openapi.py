"""The OpenAPI 3 description served at GET /api/v1/openapi.json (kept next to nothing else so it stays readable)."""

from __future__ import annotations

from typing import Any

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message"], "properties": {
        "code": {"type": "string", "example": "not_an_image"},
        "message": {"type": "string", "example": "the upload is not an image"}}}},
}
_CANDIDATE = {
    "type": "object",
    "required": ["label", "name", "confidence"],
    "properties": {
        "label": {"type": "string", "example": "2023_acme_roadster"},
        "name": {"type": "string", "example": "2023 Acme Roadster"},
        "make": {"type": "string"}, "model": {"type": "string"}, "year": {"type": "integer"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "calibrated: softmax(logits / temperature)"},
    },
}
_ANSWER = {
    "type": "object",
    "required": ["level", "name", "confidence", "labels"],
    "description": "model_year: a Candidate with these fields added; model: make, model and years; make: make",
    "properties": {
        "level": {"type": "string", "enum": ["model_year", "model", "make"]},
        "name": {"type": "string", "description": "e.g. '2023 Acme Roadster', 'Acme Roadster, 2021\u20132023', 'Acme'"},
        "label": {"type": "string", "description": "model_year only: the class label (model_id)"},
        "make": {"type": "string"}, "model": {"type": "string"}, "year": {"type": "integer"},
        "years": {"type": ["array", "null"], "items": {"type": "integer"}, "minItems": 2, "maxItems": 2,
                  "description": "model only: the first and last year the answer covers"},
        "grouped": {"type": "boolean",
                    "description": "model only: the years are a group held-out photos cannot tell apart"},
        "labels": {"type": "array", "items": {"type": "string"}, "description": "the model-years the answer covers"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1,
                       "description": "the calibrated probability of the whole answer (the sum over its labels)"},
    },
}
_PREDICTION = {
    "type": "object",
    "required": ["view", "model", "ood", "specs", "notes", "timings_ms"],
    "properties": {
        "view": {"type": "object", "properties": {
            "label": {"type": "string", "enum": ["exterior", "interior", "other"],
                      "description": "other: not a car photo (bundles exported before the view classifier learned "
                                     "it have exterior and interior only)"},
            "confidence": {"type": "number"}, "interior": {"type": "boolean"},
            "not_a_car": {"type": "boolean", "description": "the view classifier's answer is `other`"},
            "probabilities": {"type": "object", "additionalProperties": {"type": "number"}}}},
        "model": {"type": "object", "required": ["sure", "reason", "level", "prediction", "top"], "properties": {
            "sure": {"type": "boolean",
                     "description": "true only when the photo is an exterior car photo like the training photos "
                                    "(view classifier and OOD check), of a model the bundle knows (unknown-model "
                                    "check), and some level's confidence reaches min_confidence"},
            "reason": {"type": ["string", "null"], "enum": ["not_a_car", "unfamiliar", "interior", "unknown_model",
                                                            "low_confidence", None],
                       "description": "why not sure (null when sure), the first that applies: not_a_car (the view "
                                      "classifier says it is not a car photo), unfamiliar (the OOD score is above "
                                      "its threshold), interior (the model-year classifier learned from exterior "
                                      "photos), unknown_model (a car, but the OOD score is above the unknown-model "
                                      "threshold: not a model the bundle knows), low_confidence (not even the "
                                      "make reaches min_confidence)"},
            "level": {"type": ["string", "null"], "enum": ["model_year", "model", "make", None],
                      "description": "what the answer claims, the finest the photo supports: the model-year; else "
                                     "the model over a range of years (model-years held-out photos cannot tell "
                                     "apart, or all its years); else the make; null when not sure"},
            "prediction": {"oneOf": [{"$ref": "#/components/schemas/Answer"}, {"type": "null"}],
                           "description": "the answer at its level, or null when not sure"},
            "top": {"type": "array", "items": {"$ref": "#/components/schemas/Candidate"},
                    "description": "the top-k candidates, best first (always present; only guesses when not sure)"},
            "min_confidence": {"type": "number"}}},
        "ood": {"type": "object", "required": ["checked"], "properties": {
            "checked": {"type": "boolean", "description": "false for a bundle exported without an OOD check"},
            "method": {"type": ["string", "null"], "enum": ["mahalanobis", "knn", None]},
            "score": {"type": ["number", "null"],
                      "description": "how unlike the training photos the photo's features are (larger: less alike)"},
            "threshold": {"type": ["number", "null"],
                          "description": "a score above it is `unfamiliar`; set at export to keep a stated share "
                                         "of held-out in-distribution photos"},
            "unfamiliar": {"type": ["boolean", "null"]},
            "unknown_threshold": {"type": ["number", "null"],
                                  "description": "a car photo scoring above it is `unknown_model` (null: the bundle "
                                                 "has no unknown-model check)"},
            "unknown_model": {"type": ["boolean", "null"]}},
            "description": "the out-of-distribution check of the model classifier's features"},
        "specs": {"type": ["object", "null"],
                  "description": "the answer's row of the bundle's specs table (only when the level is model_year)"},
        "specs_range": {"type": ["object", "null"],
                        "description": "level model: {shared: {key: value the years share}, differ: {key: {year: "
                                       "value}}}; null otherwise"},
        "thumbs": {"type": "object", "description": "example photos of the best match, by view (URLs)"},
        "notes": {"type": "array", "items": {"type": "string"}},
        "image": {"type": "object"},
        "timings_ms": {"type": "object", "additionalProperties": {"type": "number"}},
        "batch_size": {"type": "integer"},
    },
}


def _err(description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def openapi_spec(version: str, max_upload_bytes: int) -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "carscope", "version": version,
                 "description": "Identify a car's model-year from a photo, with its specifications. Every response "
                                "has an X-Request-ID header: the one the request sent when it is 1-128 characters "
                                "of A-Z, a-z, 0-9 and . _ : -, else a new one. The server's logs use the same id."},
        "paths": {
            "/api/v1/predict": {"post": {
                "summary": "Classify a photo: exterior/interior, top-k model-years, the best match's specs",
                "operationId": "predict",
                "requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                    "type": "object", "required": ["image"],
                    "properties": {"image": {"type": "string", "format": "binary",
                                             "description": f"JPEG, PNG, WebP, GIF, BMP or TIFF; at most "
                                                            f"{max_upload_bytes} bytes in the request. A part "
                                                            "without a filename (curl -F image=<photo.jpg) is "
                                                            "read as the photo too"}}}}}},
                "responses": {
                    "200": {"description": "the answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Prediction"}}}},
                    "400": _err("no `image` field, or an empty file"),
                    "413": _err("the request is larger than the upload limit"),
                    "415": _err("not an image, or an image format that is not supported"),
                    "422": _err("a truncated or corrupt image, a decompression bomb, or absurd dimensions"),
                    "503": _err("the models are loading, or the server is overloaded: an upload predicted to wait in "
                                "the queue longer than --max-queue-ms is refused at once, with a Retry-After header "
                                "(`overloaded`), and nothing of it is processed"),
                }}},
            "/api/v1/models": {"get": {"summary": "The served models: labels, input contract, metrics, serving settings",
                                       "operationId": "models",
                                       "description": "`classes` is a page of the served classes (1,000 unless "
                                                      "`limit` says otherwise, at most 5,000); `classes_total` "
                                                      "counts them all and `classes_next` is the next page's "
                                                      "`offset`, null after the last.",
                                       "parameters": [
                                           {"name": "offset", "in": "query", "schema": {"type": "integer",
                                                                                        "minimum": 0, "default": 0}},
                                           {"name": "limit", "in": "query", "schema": {"type": "integer",
                                                                                       "minimum": 0, "maximum": 5000,
                                                                                       "default": 1000}}],
                                       "responses": {"200": {"description": "models",
                                                             "content": {"application/json": {}}},
                                                     "400": _err("offset or limit is not a non-negative integer")}}},
            "/api/v1/openapi.json": {"get": {"summary": "This document", "operationId": "openapi",
                                             "responses": {"200": {"description": "OpenAPI 3.1"}}}},
            "/healthz": {"get": {"summary": "Liveness: the process answers", "responses": {"200": {"description": "ok"}}}},
            "/readyz": {"get": {"summary": "Readiness: models loaded and warm",
                                "responses": {"200": {"description": "ready"}, "503": _err("not ready")}}},
            "/metrics": {"get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "text format"}}}},
        },
        "components": {"schemas": {"Error": _ERROR, "Candidate": _CANDIDATE, "Answer": _ANSWER,
                                   "Prediction": _PREDICTION}},
    }
